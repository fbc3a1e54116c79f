"""Speech-encoder rows aligned to video frames: Whisper's encoder output as stage 1's audio features.

Log-mel rows (`vlogger.core.mel`) hold what a few dozen training speakers can teach; an encoder
pretrained on 680k hours of speech separates what is said from who says it, which is what stage 1
needs to move a new person's lips (issue 17: a ridge map to the jaw reaches r 0.57 on held-out people
from these rows, 0.40 from log-mel). Same layout as log-mel: video frame k owns rows [k*r, (k+1)*r),
r = 50 / fps (the encoder's 20-ms rows). The encoder runs in CTranslate2 through faster-whisper, not
torch: its weights are to be had offline in that format (zoo entry `whisper_tiny_en`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vlogger.core.errors import ContractError, UsageError
from vlogger.core.spec import frame_rows

SAMPLE_RATE = 16000  # Whisper's
HOP = 320  # samples per encoder row: the 10-ms mel frames, halved by the encoder's strided convolution
CHUNK = 30 * SAMPLE_RATE  # the encoder's fixed input: 30 s, shorter audio padded with zeros


class WhisperEncoder:
    """Audio (samples at 16 kHz) -> encoder rows (ceil(samples / 320), width), 30 s at a time."""

    def __init__(self, model_dir: str | Path, sample_rate: int = SAMPLE_RATE, hop_length: int = HOP):
        if (sample_rate, hop_length) != (SAMPLE_RATE, HOP):
            raise ContractError(
                f"a Whisper encoder reads {SAMPLE_RATE} Hz audio in {HOP}-sample rows; the data spec asks "
                f"for {sample_rate} Hz and hop {hop_length}"
            )
        try:
            from faster_whisper import WhisperModel
            from faster_whisper.feature_extractor import FeatureExtractor
        except ImportError as e:  # an optional extra: say which
            raise UsageError("Whisper speech features need the `speech` extra: pip install 'vlogger[speech]'") from e
        self.sample_rate, self.hop_length = sample_rate, hop_length
        threads = torch.get_num_threads()
        self.model = WhisperModel(str(model_dir), device="cpu", compute_type="float32", cpu_threads=threads)
        self.extract = FeatureExtractor()
        self.width = int(self.encode(np.zeros(HOP, np.float32)).shape[1])

    def rows_per_frame(self, fps: float) -> int:
        return frame_rows(self.sample_rate, self.hop_length, fps)

    def encode(self, audio: np.ndarray) -> np.ndarray:
        """(ceil(samples / 320), width) float32; each 30-s piece is encoded on its own."""
        out = []
        for start in range(0, len(audio), CHUNK):
            piece = np.asarray(audio[start : start + CHUNK], dtype=np.float32)
            mel = self.extract(np.pad(piece, (0, CHUNK - len(piece))))[:, : CHUNK // (HOP // 2)]
            rows = np.asarray(self.model.encode(mel)).reshape(CHUNK // HOP, -1)
            out.append(rows[: -(-len(piece) // HOP)])
        return np.concatenate(out)

    def for_frames(self, audio: np.ndarray, n_frames: int, fps: float) -> np.ndarray:
        """Encoder rows of a clip's audio, exactly n_frames * rows_per_frame of them (float16)."""
        n = n_frames * self.rows_per_frame(fps)
        audio = np.asarray(audio[: n * self.hop_length], dtype=np.float32)
        audio = np.pad(audio, (0, n * self.hop_length - len(audio)))
        return self.encode(audio)[:n].astype(np.float16)
