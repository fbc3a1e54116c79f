"""Stage 1's denoiser: a transformer over the N frames of a window that predicts clean motion.

Each frame token sums the noisy motion, the frame's audio (log-mel rows with context either
side, reduced to one vector per frame by a convolution, plus optionally a fitted linear line's
jaw from the same rows) and the known-frames channel used
for temporal outpainting (motion values + a 0/1 mask, zero when nothing is known). Two
conditioning tokens lead the sequence: the diffusion step and the reference frame's
parameters. A causal mask (VLOGGER's choice, configurable) lets frame i see frames <= i
and both conditioning tokens. Audio and reference can be replaced by learned null
embeddings: classifier-free guidance drops them in training and contrasts them at sampling.
"""

from __future__ import annotations

import torch
from torch import nn

from vlogger.core.linear_audio import frame_context
from vlogger.models.diffusion import step_embedding

MEL_SCALE = 2.5  # typical spread of a centred log-mel bin over a window of speech


class JawPrior(nn.Module):
    """The ridge line audio -> jaw of `vlogger.core.linear_audio`, frozen in buffers (saved with the
    checkpoint): a network trained on minutes of speech follows a new voice better with it."""

    def __init__(self, features: int):
        super().__init__()
        self.register_buffer("weight", torch.zeros(features))
        self.register_buffer("bias", torch.zeros(()))

    def forward(self, frames: torch.Tensor, context: int) -> torch.Tensor:
        """(B, N + 2c, r·n_mels) centred rows per frame -> (B, N, 1): the line's jaw per inner frame."""
        return (frame_context(frames, context) @ self.weight.to(frames.dtype) + self.bias)[..., None]


class MotionDenoiser(nn.Module):
    """x_t (B, N, D) + conditioning -> x0 (B, N, D)."""

    def __init__(
        self,
        motion_dim: int,
        ref_dim: int,
        window: int,
        n_mels: int = 80,
        rows_per_frame: int = 4,
        mel_context: int = 2,
        width: int = 256,
        depth: int = 4,
        heads: int = 4,
        causal: bool = True,
        dropout: float = 0.1,
        jaw_prior: bool = False,
        centre_windows: bool = True,
    ):
        """`jaw_prior`: a frozen linear line audio -> jaw (`JawPrior`, filled by whoever fitted it)
        joins each frame's audio vector; `centre_windows`: centre each window's rows on its mean
        (False: the rows come centred on their whole clip, `data.centre_audio: clip`)."""
        super().__init__()
        self.window, self.mel_context, self.rows_per_frame, self.width = window, mel_context, rows_per_frame, width
        self.causal, self.centre_windows = causal, centre_windows
        self.motion_in = nn.Linear(motion_dim, width)
        self.known_in = nn.Linear(motion_dim + 1, width)
        self.audio_in = nn.Linear(rows_per_frame * n_mels, width)
        self.audio_conv = nn.Conv1d(width, width, 2 * mel_context + 1)  # valid: N + 2c frames -> N
        self.null_audio = nn.Parameter(torch.zeros(width))
        self.ref_in = nn.Sequential(nn.Linear(ref_dim, width), nn.SiLU(), nn.Linear(width, width))
        self.null_ref = nn.Parameter(torch.zeros(width))
        self.step_in = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.pos = nn.Parameter(torch.randn(window + 2, width) * 0.02)
        layer = nn.TransformerEncoderLayer(
            width, heads, 4 * width, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, motion_dim)
        self.jaw_prior = JawPrior((2 * mel_context + 1) * rows_per_frame * n_mels) if jaw_prior else None
        self.prior_in = nn.Linear(1, width) if jaw_prior else None
        self.register_buffer("mask", self._attention_mask(window, causal), persistent=False)

    @staticmethod
    def _attention_mask(n: int, causal: bool) -> torch.Tensor:
        """(n+2, n+2) boolean, True = may not attend; the two conditioning tokens are always seen."""
        mask = torch.zeros(n + 2, n + 2, dtype=torch.bool)
        if causal:
            mask[2:, 2:] = torch.ones(n, n, dtype=torch.bool).triu(1)
            mask[:2, 2:] = True  # conditioning tokens do not look at frames
        return mask

    def encode_audio(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, (N + 2c)·r, n_mels) mel rows -> (B, N, width), one vector per frame.

        Each mel bin is centred on its mean first (the window's, or the clip's before the windows
        were cut): recording gain and channel colour change that mean, speech does not, so the
        model hears articulation, not the microphone. The clip's mean keeps what a 2-s window's
        removes: a linear line from the rows predicts a new person's jaw at r 0.57 centred on the
        clip, 0.46 on the window (benchmarks/RESULTS.md, issue 17)."""
        b = mel.shape[0]
        centred = mel - mel.mean(1, keepdim=True) if self.centre_windows else mel
        frames = centred.reshape(b, -1, self.rows_per_frame * mel.shape[-1])
        h = self.audio_in(frames / MEL_SCALE).transpose(1, 2)
        audio = self.audio_conv(h).transpose(1, 2)
        if self.jaw_prior is not None:
            audio = audio + self.prior_in(self.jaw_prior(frames, self.mel_context))
        return audio

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        mel: torch.Tensor,
        ref: torch.Tensor,
        known: torch.Tensor | None = None,
        known_mask: torch.Tensor | None = None,
        drop_audio: torch.Tensor | None = None,
        drop_ref: torch.Tensor | None = None,
    ) -> torch.Tensor:
        n = x_t.shape[1]
        if n != self.window:
            raise ValueError(f"window of {n} frames, model built for {self.window}")
        audio = self.encode_audio(mel)
        if drop_audio is not None:
            audio = torch.where(drop_audio[:, None, None], self.null_audio.to(audio.dtype), audio)
        refh = self.ref_in(ref)
        if drop_ref is not None:
            refh = torch.where(drop_ref[:, None], self.null_ref.to(refh.dtype), refh)
        if known is None:
            known, known_mask = torch.zeros_like(x_t), torch.zeros_like(x_t[..., :1])
        frames = self.motion_in(x_t) + audio + self.known_in(torch.cat([known * known_mask, known_mask], -1))
        step = self.step_in(step_embedding(t, self.width).to(frames.dtype))
        h = torch.cat([step[:, None], refh[:, None], frames], 1) + self.pos
        h = self.blocks(h, mask=self.mask)
        return self.out(self.norm(h[:, 2:]))
