"""Stage 2's denoiser: a temporal image-diffusion UNet with a ControlNet branch for the controls.

Every frame is a (C, H, W) image; the T frames of a clip travel as one (B*T, C, H, W) batch
through the spatial layers and are reshaped to put frames side by side only inside the
temporal layers.

Inputs, per frame, concatenated along channels at the first convolution (10 channels):
noisy frame x_t (3) | reference image (3, the same for every frame) | known frame for
temporal outpainting (3, multiplied by its mask) | known mask (1). Nothing known = zeros.
A super-resolution model (`lowres_input=True`) takes a 13th-15th channel: the low-resolution
frame, upsampled to the output size (the cascaded-diffusion recipe), with everything else as
stage 2 (reference, controls, outpainting), so its windows stay consistent in time too.

Controls (`control_channels`: 14, 17 with hands and iris; `vlogger.body.render.Controls.stacked`)
go through a ControlNet-style trainable copy of the encoder: a small convolution stem (last conv
zero-initialised) is added to the copy's input features, and zero-initialised 1x1 convolutions
carry each copy level's output to the main UNet's skip connections and middle block. At initialisation the controls
therefore have no effect.

Temporal layers, all zero-initialised residuals, so that a fresh model gives exactly the
output it gives with `temporal=False`:
- a 1D convolution over frames (kernel 3, per pixel) inside each encoder ResBlock, after its
  first convolution (and the step embedding), before its second normalisation;
- temporal self-attention over frames (per pixel, sinusoidal frame-index embedding) after the
  ResBlocks of `temporal_attention_levels` (encoder, middle when the lowest level is listed,
  decoder).
With T = 1 or `temporal=False` they are skipped and each frame is an independent image
(phase-1 single-frame training). The ControlNet copy has no temporal layers (controls are
per-frame; the main UNet mixes frames).

Classifier-free guidance: `drop_reference` replaces the reference image by a learned null
image (a learned per-channel constant, initialised to 0, broadcast over the image);
`drop_controls` replaces the controls by zeros (an all-zero semantic one-hot never occurs in
real controls, so "no controls" is unambiguous).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from vlogger.models.diffusion import step_embedding

IMAGE_CHANNELS = 3
CONTROL_CHANNELS = 14  # the face and body's controls (`render.control_channels`)
INPUT_CHANNELS = 3 * IMAGE_CHANNELS + 1  # x_t | reference | known | known mask


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(channels, groups), channels)


class TemporalConv(nn.Module):
    """Zero-initialised residual 1D convolution over frames, applied at every pixel.

    Run as a (k, 1, 1) 3D convolution over (B, C, T, H, W); the weight is kept 3D (C, C, k) so
    that `model.to(memory_format=torch.channels_last)` (4D/5D weights only) leaves it alone."""

    def __init__(self, channels: int, kernel: int = 3):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(channels, channels, kernel))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, h: torch.Tensor, frames: int) -> torch.Tensor:
        bt, c, height, width = h.shape
        x = h.reshape(bt // frames, frames, c, height, width).permute(0, 2, 1, 3, 4)
        k = self.weight.shape[-1]
        y = F.conv3d(x, self.weight[..., None, None], self.bias, padding=(k // 2, 0, 0))
        return h + y.permute(0, 2, 1, 3, 4).reshape(bt, c, height, width)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, + step embedding, [temporal conv], GroupNorm-SiLU-dropout-conv (zero
    init), + skip."""

    def __init__(
        self,
        cin: int,
        cout: int,
        emb_dim: int,
        groups: int,
        dropout: float,
        temporal_conv: bool = False,
        temporal_kernel: int = 3,
    ):
        super().__init__()
        self.norm1 = _norm(cin, groups)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, cout)
        self.temporal = TemporalConv(cout, temporal_kernel) if temporal_conv else None
        self.norm2 = _norm(cout, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor, frames: int) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        if self.temporal is not None and frames > 1:
            h = self.temporal(h, frames)
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SpatialAttention(nn.Module):
    """Multi-head self-attention over the H*W positions of each frame (zero-init output)."""

    def __init__(self, channels: int, head_dim: int, groups: int):
        super().__init__()
        self.heads = max(1, channels // head_dim)
        self.norm = _norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor, frames: int) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).transpose(-1, -2)
        q, k, v = qkv.unbind(1)  # (b, heads, hw, d)
        o = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(o.transpose(-1, -2).reshape(b, c, h, w))


class TemporalAttention(nn.Module):
    """Multi-head self-attention over the frames at each pixel (zero-init output projection).
    A sinusoidal frame-index embedding tells the frames apart; skipped when frames == 1."""

    def __init__(self, channels: int, head_dim: int):
        super().__init__()
        self.heads = max(1, channels // head_dim)
        self.norm = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = _zero(nn.Linear(channels, channels))

    def forward(self, x: torch.Tensor, emb: torch.Tensor, frames: int) -> torch.Tensor:
        if frames == 1:
            return x
        bt, c, h, w = x.shape
        b, n = bt // frames, bt // frames * h * w
        tok = x.reshape(b, frames, c, h * w).permute(0, 3, 1, 2).reshape(n, frames, c)
        pos = step_embedding(torch.arange(frames, device=x.device), c)
        y = self.norm(tok) + pos.to(tok.dtype)
        q, k, v = self.qkv(y).reshape(n, frames, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        o = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, frames, c)
        o = self.out(o).reshape(b, h * w, frames, c).permute(0, 2, 3, 1).reshape(bt, c, h, w)
        return x + o


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, frames: int) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, frames: int) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Layers(nn.ModuleList):
    """Modules applied in order, each called as m(h, emb, frames)."""

    def forward(self, h: torch.Tensor, emb: torch.Tensor, frames: int) -> torch.Tensor:
        for m in self:
            h = m(h, emb, frames)
        return h


class VideoUNet(nn.Module):
    """x_t (B, T, 3, H, W) + step + reference + controls [+ known frames] -> (B, T, 3, H, W).

    Args:
        channels: width of each resolution level; level i works at H / 2**i.
        blocks_per_level: ResBlocks per encoder level (the decoder has one more, ADM-style).
        attention_levels: levels with spatial self-attention after each ResBlock (the middle
            block always has one).
        temporal_attention_levels: levels with temporal self-attention after each ResBlock.
        temporal_conv: 1D temporal convolutions inside the encoder ResBlocks.
        temporal_kernel: their kernel size over frames.
        head_dim: channels per attention head (heads = channels // head_dim, at least 1).
        norm_groups: GroupNorm groups (gcd with the channel count).
        dropout: inside ResBlocks.
        emb_mult: step-embedding width = emb_mult * channels[0].
        gradient_checkpointing: recompute each ResBlock (with its attention layers) in the
            backward pass while training.
        lowres_input: super-resolution: a low-resolution frame per frame (upsampled to the
            output size) joins the input channels.
        control_level: the level the ControlNet branch starts at: its inputs (controls and
            the network's input) area-shrunk by 2**control_level, its residuals joining the
            skips from that level down. 0: the full branch; 1 halves the side where the
            branch works (a super-resolution model's controls carry no detail its
            low-resolution frame lacks), a quarter of its cost.
    """

    def __init__(
        self,
        channels: Sequence[int] = (32, 64, 128),
        blocks_per_level: int = 1,
        attention_levels: Sequence[int] = (2,),
        temporal_attention_levels: Sequence[int] = (1, 2),
        temporal_conv: bool = True,
        temporal_kernel: int = 3,
        head_dim: int = 32,
        norm_groups: int = 32,
        dropout: float = 0.0,
        emb_mult: int = 4,
        gradient_checkpointing: bool = False,
        lowres_input: bool = False,
        control_level: int = 0,
        control_channels: int = CONTROL_CHANNELS,
    ):
        super().__init__()
        self.control_channels = control_channels
        channels = list(channels)
        levels = len(channels)
        for name, lv in (
            ("attention_levels", attention_levels),
            ("temporal_attention_levels", temporal_attention_levels),
        ):
            if any(not 0 <= i < levels for i in lv):
                raise ValueError(f"{name} {list(lv)}: levels run from 0 to {levels - 1}")
        if not 0 <= control_level < levels:
            raise ValueError(f"control_level {control_level}: levels run from 0 to {levels - 1}")
        self.config = {
            "channels": channels,
            "blocks_per_level": blocks_per_level,
            "attention_levels": list(attention_levels),
            "temporal_attention_levels": list(temporal_attention_levels),
            "temporal_conv": temporal_conv,
            "temporal_kernel": temporal_kernel,
            "head_dim": head_dim,
            "norm_groups": norm_groups,
            "dropout": dropout,
            "emb_mult": emb_mult,
            "gradient_checkpointing": gradient_checkpointing,
            "lowres_input": lowres_input,
            "control_level": control_level,
        }
        self.in_channels = INPUT_CHANNELS + (IMAGE_CHANNELS if lowres_input else 0)
        self.levels = levels
        self.gradient_checkpointing = gradient_checkpointing
        c0, emb_dim = channels[0], emb_mult * channels[0]
        self.step_dim = c0
        self.step_mlp = nn.Sequential(nn.Linear(c0, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.null_reference = nn.Parameter(torch.zeros(IMAGE_CHANNELS))

        def res(cin: int, cout: int, tconv: bool = False) -> ResBlock:
            return ResBlock(cin, cout, emb_dim, norm_groups, dropout, tconv, temporal_kernel)

        def encoder(temporal: bool, first: int = 0) -> tuple[nn.Conv2d, nn.ModuleList, Layers, list[int]]:
            """Levels `first`.. of the encoder (the main one: all; the ControlNet copy: from
            control_level), and the channels of each skip it gives."""
            ch = channels[first]
            stem = nn.Conv2d(self.in_channels, ch, 3, padding=1)
            down, skips = nn.ModuleList(), [ch]
            for level, c in enumerate(channels):
                if level < first:
                    continue
                for _ in range(blocks_per_level):
                    layers = Layers([res(ch, c, temporal and temporal_conv)])
                    ch = c
                    if level in attention_levels:
                        layers.append(SpatialAttention(c, head_dim, norm_groups))
                    if temporal and level in temporal_attention_levels:
                        layers.append(TemporalAttention(c, head_dim))
                    down.append(layers)
                    skips.append(ch)
                if level < levels - 1:
                    down.append(Layers([Downsample(ch)]))
                    skips.append(ch)
            # temporal attention last, so the ControlNet copy's indices are a prefix of these
            middle = Layers([res(ch, ch), SpatialAttention(ch, head_dim, norm_groups), res(ch, ch)])
            if temporal and levels - 1 in temporal_attention_levels:
                middle.append(TemporalAttention(ch, head_dim))
            return stem, down, middle, skips

        self.input, self.down, self.middle, skips = encoder(temporal=True)
        self.control_level = control_level
        self.control_input, self.control_down, self.control_middle, control = encoder(False, control_level)
        cc = channels[control_level]
        self.control_stem = nn.Sequential(
            nn.Conv2d(control_channels, cc, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(cc, cc, 3, padding=1),
            nn.SiLU(),
            _zero(nn.Conv2d(cc, cc, 3, padding=1)),
        )
        # the branch's skips are the main encoder's last ones (same sizes; its stem's output
        # joins the main skip at its resolution: the previous level's downsampling)
        self.control_from = len(skips) - len(control)
        self.control_skips = nn.ModuleList(
            _zero(nn.Conv2d(c, m, 1)) for c, m in zip(control, skips[self.control_from :], strict=True)
        )
        self.control_mid = _zero(nn.Conv2d(channels[-1], channels[-1], 1))

        self.up = nn.ModuleList()
        ch = channels[-1]
        for level in reversed(range(levels)):
            c = channels[level]
            for i in range(blocks_per_level + 1):
                layers = Layers([res(ch + skips.pop(), c)])
                ch = c
                if level in attention_levels:
                    layers.append(SpatialAttention(c, head_dim, norm_groups))
                if level in temporal_attention_levels:
                    layers.append(TemporalAttention(c, head_dim))
                if level > 0 and i == blocks_per_level:
                    layers.append(Upsample(c))
                self.up.append(layers)
        # zero-init output: an untrained model predicts exactly what the module adds it to
        self.out = nn.Sequential(_norm(c0, norm_groups), nn.SiLU(), _zero(nn.Conv2d(c0, IMAGE_CHANNELS, 3, padding=1)))

    def _run(self, layers: Layers, h: torch.Tensor, emb: torch.Tensor, frames: int) -> torch.Tensor:
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(layers, h, emb, frames, use_reentrant=False)
        return layers(h, emb, frames)

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        *,
        reference: torch.Tensor,
        controls: torch.Tensor,
        known: torch.Tensor | None = None,
        known_mask: torch.Tensor | None = None,
        drop_reference: torch.Tensor | None = None,
        drop_controls: torch.Tensor | None = None,
        temporal: bool = True,
        lowres: torch.Tensor | None = None,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> torch.Tensor:
        """x_t (B, T, 3, H, W), t (B,) long, reference (B, 3, H, W), controls (B, T, C, H, W),
        known (B, T, 3, H, W) and known_mask (B, T, 1, H, W) or both None, drop_* (B,) bool or
        None, lowres (B, T, 3, H, W) for a super-resolution model. `temporal=False` treats the
        B*T frames as independent images. `memory_format=torch.channels_last` runs the
        activations channels-last (sampling on CPU: 1.47x faster; training backward: slower)."""
        b, n, _, height, width = x_t.shape
        scale = 2 ** (self.levels - 1)
        if height % scale or width % scale:
            raise ValueError(f"frames of {height}x{width}: height and width must be multiples of {scale}")
        if controls.shape != (b, n, self.control_channels, height, width):
            raise ValueError(
                f"controls of shape {tuple(controls.shape)}, expected {(b, n, self.control_channels, height, width)}"
            )
        if reference.shape != (b, IMAGE_CHANNELS, height, width):
            raise ValueError(
                f"reference of shape {tuple(reference.shape)}, expected {(b, IMAGE_CHANNELS, height, width)}"
            )
        if (lowres is not None) != self.config["lowres_input"]:
            raise ValueError("lowres frames go to a super-resolution model (lowres_input=True) and only there")
        if lowres is not None and lowres.shape != x_t.shape:
            raise ValueError(f"lowres of shape {tuple(lowres.shape)}, expected {tuple(x_t.shape)} (upsampled)")
        if (known is None) != (known_mask is None):
            raise ValueError("known and known_mask go together: give both or neither")

        if drop_reference is not None:
            null = self.null_reference.to(reference.dtype)[None, :, None, None]
            reference = torch.where(drop_reference[:, None, None, None], null, reference)
        if drop_controls is not None:
            controls = torch.where(drop_controls[:, None, None, None, None], torch.zeros_like(controls), controls)
        if known is None:
            known, known_mask = torch.zeros_like(x_t), torch.zeros_like(x_t[:, :, :1])
        ref = reference[:, None].expand(b, n, -1, -1, -1).to(x_t.dtype)
        parts = [x_t, ref, known * known_mask, known_mask] + ([lowres.to(x_t.dtype)] if lowres is not None else [])
        x_in = torch.cat(parts, 2).reshape(b * n, self.in_channels, height, width)
        ctrl = controls.reshape(b * n, self.control_channels, height, width).to(x_in.dtype)
        x_in, ctrl = x_in.contiguous(memory_format=memory_format), ctrl.contiguous(memory_format=memory_format)
        frames = n if temporal else 1
        emb = self.step_mlp(step_embedding(t, self.step_dim)).repeat_interleave(n, 0)

        # ControlNet branch: per-frame residuals for the skips (from control_level on) and the middle block
        x_c = x_in
        if self.control_level:
            x_c, ctrl = (F.avg_pool2d(v, 2**self.control_level) for v in (x_in, ctrl))
        c = self.control_input(x_c) + self.control_stem(ctrl)
        residuals = [None] * self.control_from + [self.control_skips[0](c)]
        for layers, zero in zip(self.control_down, self.control_skips[1:], strict=True):
            c = self._run(layers, c, emb, 1)
            residuals.append(zero(c))
        mid_residual = self.control_mid(self._run(self.control_middle, c, emb, 1))

        h = self.input(x_in)
        skips = [h if residuals[0] is None else h + residuals[0]]
        for layers, r in zip(self.down, residuals[1:], strict=True):
            h = self._run(layers, h, emb, frames)
            skips.append(h if r is None else h + r)
        h = self._run(self.middle, h, emb, frames) + mid_residual
        for layers in self.up:
            h = self._run(layers, torch.cat([h, skips.pop()], 1), emb, frames)
        return self.out(h).reshape(b, n, IMAGE_CHANNELS, height, width)
