"""Stage 1's denoiser: a transformer over the N frames of a window that predicts clean motion.

Each frame token sums the noisy motion, the frame's audio (log-mel rows with context either
side, reduced to one vector per frame by a convolution) and the known-frames channel used
for temporal outpainting (motion values + a 0/1 mask, zero when nothing is known). Two
conditioning tokens lead the sequence: the diffusion step and the reference frame's
parameters. A causal mask (VLOGGER's choice, configurable) lets frame i see frames <= i
and both conditioning tokens. Audio and reference can be replaced by learned null
embeddings: classifier-free guidance drops them in training and contrasts them at sampling.
"""

from __future__ import annotations

import torch
from torch import nn

from vlogger.models.diffusion import step_embedding

MEL_SCALE = 2.5  # typical spread of a centred log-mel bin over a window of speech


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
    ):
        super().__init__()
        self.window, self.mel_context, self.rows_per_frame, self.width = window, mel_context, rows_per_frame, width
        self.causal = causal
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

        Each mel bin is centred on its window mean first: recording gain and channel colour
        change that mean, speech does not, so the model hears articulation, not the microphone."""
        b = mel.shape[0]
        mel = (mel - mel.mean(1, keepdim=True)) / MEL_SCALE
        frames = mel.reshape(b, -1, self.rows_per_frame * mel.shape[-1])
        h = self.audio_in(frames).transpose(1, 2)
        return self.audio_conv(h).transpose(1, 2)

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
