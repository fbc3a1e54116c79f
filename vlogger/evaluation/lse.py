"""LSE-C / LSE-D: lip-sync scores with SyncNet, following joonson/syncnet_python's `SyncNetInstance.evaluate`.

This is the protocol behind the numbers Wav2Lip, SadTalker, Hallo etc. report, so the steps are kept as the
original has them: 224x224 BGR crops with raw 0..255 values, 5-frame windows (one per frame), 13 MFCCs at 100 Hz
from 16-bit PCM (python_speech_features defaults) in 20-row windows 4 rows apart, Euclidean distances at offsets
-15..+15 against zero-padded audio, averaged over the clip per offset.

    LSE-D = min over offsets of the mean distance            (lower is better)
    LSE-C = median over offsets - that minimum               (higher is better)
    offset = vshift - argmin                                 (frames, see `sync_scores` for the sign)

Crops come in two modes (protocol `lse.mode`; results name it and are never mixed): `fast` cuts SyncNet's crop
geometry from the face-mesh box of the tracked frames; `reference` runs the original's pipeline (S3FD boxes,
its face tracks, 13-frame median, its crop, the XVID/JPEG round trip; `crops.py`, `s3fd.py`) and scores each
face track, averaged over tracks weighted by their frames (offset: the longest track's).

Input: the face crop, as the original's S3FD pipeline makes it. There a median-smoothed face box (half side
s = max(w, h) / 2, centre cx, cy) becomes the square [cx - 1.4 s, cx + 1.4 s] x [cy - s, cy + 1.8 s], padded with
grey 110 where it leaves the frame: the box plus a 40% margin, shifted down so the mouth sits in the lower
middle. Other crops change the scores; the crop itself is the caller's job. Frames are RGB uint8 at 25 fps,
audio mono float in [-1, 1] at 16 kHz.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vlogger.core.errors import UsageError
from vlogger.evaluation import crops
from vlogger.evaluation.crops import syncnet_crop_chunks
from vlogger.evaluation.metric import EvalVideo, FrameReader, Measured, Needs, VideoMetric
from vlogger.evaluation.s3fd import S3FD, detect_faces, load_s3fd
from vlogger.evaluation.syncnet_model import SyncNet, load_syncnet
from vlogger.evaluation.tracks import TrackedVideo, VideoSource

FPS = 25
SAMPLE_RATE = 16000
CROP_SIZE = 224
WINDOW_FRAMES = 5
MFCC_PER_FRAME = 4  # 100 Hz MFCC rows / 25 fps
VSHIFT = 15


@dataclass(frozen=True)
class SyncScores:
    """One clip's scores: LSE-C (`confidence`), LSE-D (`distance`) and the best offset in frames."""

    confidence: float
    distance: float
    offset: int


def offset_distances(video_emb: torch.Tensor, audio_emb: torch.Tensor, vshift: int = VSHIFT) -> torch.Tensor:
    """(T, 2*vshift+1): column j holds |video_t - audio_{t+j-vshift}|, with zero vectors past either end.

    The original's `calc_pdist`, vectorised; `pairwise_distance`'s eps and the zero padding are kept because
    both enter the averages and so the reported numbers.
    """
    padded = F.pad(audio_emb, (0, 0, vshift, vshift))
    shifted = padded.unfold(0, len(video_emb), 1).permute(2, 0, 1)  # (T, offsets, D)
    return F.pairwise_distance(video_emb[:, None, :], shifted)


def sync_scores(video_emb: torch.Tensor, audio_emb: torch.Tensor, vshift: int = VSHIFT) -> SyncScores:
    """LSE-C, LSE-D and offset from per-window embeddings (T, D) of the same clip.

    Sign: offset k means frame t matches audio window t - k best, so k > 0 when the audio runs k frames ahead
    of the video (an audio track delayed by k frames gives -k).
    """
    if video_emb.shape != audio_emb.shape or video_emb.ndim != 2:
        raise ValueError(f"need two (T, D) embedding sequences of one shape, got {video_emb.shape}, {audio_emb.shape}")
    # Reduced along a contiguous row, as the original's stack(dists, 1).mean(1): the same float32 sums, bit for bit.
    mean = offset_distances(video_emb, audio_emb, vshift).t().contiguous().mean(1)
    min_dist, best = torch.min(mean, 0)
    return SyncScores(float(torch.median(mean) - min_dist), float(min_dist), vshift - int(best))


def mfcc_rows(audio: np.ndarray) -> torch.Tensor:
    """(13, steps) MFCCs at 100 Hz, computed on 16-bit PCM like the original's wav (c0 is log energy: scale matters)."""
    import python_speech_features

    pcm = np.clip(np.round(np.asarray(audio, np.float64) * 32768.0), -32768, 32767).astype(np.int16)
    return torch.from_numpy(python_speech_features.mfcc(pcm, SAMPLE_RATE).T).float()


def crop_frames(frames: np.ndarray) -> torch.Tensor:
    """(3, T, 224, 224) uint8 BGR: the original reads its crops with cv2, so SyncNet was trained on BGR."""
    if frames.shape[1:3] != (CROP_SIZE, CROP_SIZE):
        frames = np.stack([cv2.resize(f, (CROP_SIZE, CROP_SIZE)) for f in frames])
    return torch.from_numpy(np.ascontiguousarray(frames[..., ::-1])).permute(3, 0, 1, 2)


def window_count(n_frames: int, n_samples: int) -> int:
    """Windows the original scores: min(frames, whole 40 ms of audio) - 5 (it leaves out the last full window)."""
    return min(n_frames, n_samples // (SAMPLE_RATE // FPS)) - WINDOW_FRAMES


def embed_clip(
    model: SyncNet, frames: np.ndarray, audio: np.ndarray, batch_size: int = 20
) -> tuple[torch.Tensor, torch.Tensor]:
    """(video_emb, audio_emb), each (windows, 1024) on the CPU; window t covers frames t..t+4."""
    _check_inputs(frames, audio)
    return embed_chunks(model, [frames], len(frames), audio, batch_size)


@torch.no_grad()
def embed_chunks(
    model: SyncNet, chunks: Iterable[np.ndarray], n_frames: int, audio: np.ndarray, batch_size: int = 20
) -> tuple[torch.Tensor, torch.Tensor]:
    """`embed_clip` of crops that arrive in chunks: only the windows of one batch are held."""
    n = window_count(n_frames, len(audio))
    mfcc, chunks = mfcc_rows(audio), iter(chunks)
    device = next(model.parameters()).device
    video, offset = crop_frames(np.zeros((0, CROP_SIZE, CROP_SIZE, 3), np.uint8)), 0  # crops from frame `offset` on
    video_emb, audio_emb = [], []
    for start in range(0, n, batch_size):
        starts = range(start, min(n, start + batch_size))
        while offset + video.shape[1] < starts[-1] + WINDOW_FRAMES:
            video = torch.cat([video, crop_frames(next(chunks))], dim=1)
        lips = torch.stack([video[:, t - offset : t - offset + WINDOW_FRAMES] for t in starts])
        rows = torch.stack([mfcc[None, :, MFCC_PER_FRAME * t : MFCC_PER_FRAME * (t + WINDOW_FRAMES)] for t in starts])
        video_emb.append(model.embed_lip(lips.to(device, torch.float32)).cpu())
        audio_emb.append(model.embed_audio(rows.to(device)).cpu())
        video, offset = video[:, starts[-1] + 1 - offset :], starts[-1] + 1
    return torch.cat(video_emb), torch.cat(audio_emb)


def _check_inputs(frames: np.ndarray, audio: np.ndarray) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3) RGB face crops, got {frames.dtype} {frames.shape}")
    if audio.ndim != 1:
        raise ValueError(f"audio must be mono (samples,) at {SAMPLE_RATE} Hz, got shape {audio.shape}")
    if window_count(len(frames), len(audio)) < 1:
        raise ValueError(
            f"clip too short for SyncNet: {len(frames)} frames, {len(audio) / SAMPLE_RATE:.2f} s of audio "
            f"(needs more than {WINDOW_FRAMES} frames of both)"
        )


class LSE(VideoMetric):
    """LSE-C, LSE-D and offset of each video with its audio; aggregates are their means and the
    mean |offset| over videos. Sums sync under DDP; SyncNet is a frozen child module, so
    `.to(device)` moves it with the states. Crops are decoded again chunk by chunk."""

    name, needs, higher_is_better = "lse", Needs(audio=True, weights=("syncnet_v2",)), None
    scores: ClassVar[dict[str, bool | None]] = {
        "lse_c": True,
        "lse_d": False,
        "lse_offset": None,
        "lse_abs_offset": False,
    }

    def __init__(
        self,
        weights: str | Path | None = None,
        model: SyncNet | None = None,
        vshift: int = VSHIFT,
        batch_size: int = 20,
        detector: S3FD | None = None,
        **kwargs,
    ) -> None:
        """`detector` given: the reference mode (S3FD pipeline); None: the fast mode (face-mesh boxes)."""
        super().__init__(**kwargs)
        self.syncnet = model.requires_grad_(False).eval() if model is not None else load_syncnet(weights)
        self.vshift, self.batch_size, self.detector = vshift, batch_size, detector
        for name in ("conf_sum", "dist_sum", "offset_sum", "abs_offset_sum", "videos"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    @classmethod
    def from_protocol(cls, protocol: dict) -> LSE:
        mode = protocol["lse"]["mode"]
        if mode not in ("fast", "reference"):
            raise UsageError(f"lse.mode must be fast or reference, got {mode!r}")
        return cls(detector=load_s3fd() if mode == "reference" else None)

    def score_clip(self, frames: np.ndarray, audio: np.ndarray) -> SyncScores:
        """One clip's scores from its face crops (T, H, W, 3) uint8 RGB."""
        return sync_scores(*embed_clip(self.syncnet, frames, audio, self.batch_size), vshift=self.vshift)

    def measure(self, video: EvalVideo, frames: FrameReader | None) -> Measured:
        gen = video.gen
        if self.detector is not None:
            return self._measure_reference(gen)
        embeddings = embed_chunks(self.syncnet, syncnet_crop_chunks(gen), gen.n_frames, gen.audio, self.batch_size)
        scores = sync_scores(*embeddings, vshift=self.vshift)
        return Measured({"lse_c": scores.confidence, "lse_d": scores.distance, "lse_offset": scores.offset}, scores)

    def _measure_reference(self, gen: TrackedVideo) -> Measured:
        """syncnet_python's pipeline on the native frames: S3FD on every frame (as JPEG), its tracks, a score per
        track from that track's crops (through XVID and JPEG) and audio."""
        native = replace(gen.source, size=(gen.source.info.width, gen.source.info.height))
        detections = [
            detect_faces(self.detector, cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
            for chunk in native.chunks()
            for f in crops.jpeg(chunk[..., ::-1])
        ]
        tracks = crops.face_tracks(detections)
        if not tracks:
            return Measured({"lse_skipped": "no face track of more than 100 frames with faces over 100 px"})
        hop, results = SAMPLE_RATE // FPS, []
        for span, boxes in tracks:
            cut = self._track_crops(native, span, crops.smoothed(boxes))
            with tempfile.TemporaryDirectory() as tmp:
                clip = crops.xvid_round_trip(cut, FPS, tmp)[..., ::-1]
            audio = gen.audio[span[0] * hop : (span[-1] + 1) * hop]
            results.append((len(span), self.score_clip(np.ascontiguousarray(clip), audio)))
        weights = np.array([n for n, _ in results], np.float64) / sum(n for n, _ in results)
        scores = SyncScores(
            float(sum(w * r.confidence for w, (_, r) in zip(weights, results, strict=True))),
            float(sum(w * r.distance for w, (_, r) in zip(weights, results, strict=True))),
            max(results, key=lambda x: x[0])[1].offset,
        )
        row = {
            "lse_c": scores.confidence,
            "lse_d": scores.distance,
            "lse_offset": scores.offset,
            "lse_tracks": len(tracks),
        }
        return Measured(row, scores)

    @staticmethod
    def _track_crops(native: VideoSource, span: np.ndarray, sxy: np.ndarray) -> np.ndarray:
        """(n, 224, 224, 3) BGR crops of one track, cut from its frames (as JPEG) while they stream past."""
        out, start = [], 0
        for chunk in native.chunks():
            for i, f in enumerate(crops.jpeg(chunk[..., ::-1]), start):
                if span[0] <= i <= span[-1]:
                    out.append(crops.reference_crop(f, *sxy[i - span[0]]))
            start += len(chunk)
        return np.stack(out)

    def update(self, measured: Measured) -> None:
        if measured.value is None:
            return
        scores: SyncScores = measured.value
        self.conf_sum += scores.confidence
        self.dist_sum += scores.distance
        self.offset_sum += scores.offset
        self.abs_offset_sum += abs(scores.offset)
        self.videos += 1

    def compute(self) -> dict[str, float]:
        if self.videos == 0:
            return {}
        n = self.videos
        return {
            "lse_c": float(self.conf_sum / n),
            "lse_d": float(self.dist_sum / n),
            "lse_offset": float(self.offset_sum / n),
            "lse_abs_offset": float(self.abs_offset_sum / n),
        }
