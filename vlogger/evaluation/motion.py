"""Landmark- and pixel-based per-video scores: jitter, LME, expression diversity, head pose,
CPBD, PSNR/SSIM. Each is a function of tracks or frames; `VideoMean` makes the protocol's
metric of one (sums, so it syncs under DDP)."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from vlogger.core import landmarks
from vlogger.evaluation.metric import EvalVideo, FrameReader, Measured, Needs, SampledFrames, VideoMetric, spread
from vlogger.evaluation.tracks import TrackedVideo, VideoSource


def _normalised(v: TrackedVideo) -> np.ndarray:
    """Landmarks in units of the clip's median face height (resolution-free)."""
    return v.lmk[..., :2].astype(np.float64) / float(np.median(landmarks.face_height(v.lmk, v.landmark_format)))


def jitter(v: TrackedVideo) -> float:
    """Mean jerk (third difference) of every landmark in the image plane, face heights / frame^3 x 1000
    (protocol 1.0's definition, kept). A frozen video scores 0; tracking noise on a still face scores > 0."""
    x = _normalised(v)
    if len(x) < 4:
        return float("nan")
    return float(np.linalg.norm(np.diff(x, 3, axis=0), axis=-1).mean() * 1000)


def jitter_3d(v: TrackedVideo) -> float:
    """Mean jerk of every landmark in 3D (the tracker's depth is in x's pixel units), in face heights / s^3:
    the third difference times fps^3, so videos at other rates give the same number for the same motion."""
    x = v.lmk.astype(np.float64) / float(np.median(landmarks.face_height(v.lmk, v.landmark_format)))
    if len(x) < 4:
        return float("nan")
    return float(np.linalg.norm(np.diff(x, 3, axis=0), axis=-1).mean() * v.fps**3)


def expression_diversity(v: TrackedVideo) -> float:
    """Temporal std of centred landmarks (translation and scale removed), x 100."""
    x = _normalised(v)
    x = x - x.mean(axis=1, keepdims=True)
    return float(x.std(axis=0).mean() * 100)


def head_angles(lmk: np.ndarray, fmt: str) -> np.ndarray:
    """(T, 3) yaw, pitch, roll in degrees from the face-mesh geometry (no 3DMM needed)."""
    yaw = landmarks.yaw_degrees(lmk, fmt)
    v = landmarks.point(lmk, fmt, "chin") - landmarks.point(lmk, fmt, "forehead")
    pitch = np.degrees(np.arctan2(v[..., 2], np.abs(v[..., 1]) + 1e-6))
    e = landmarks.point(lmk, fmt, "cheek_left") - landmarks.point(lmk, fmt, "cheek_right")
    roll = np.degrees(np.arctan2(e[..., 1], e[..., 0]))
    return np.stack([yaw, pitch, roll], axis=-1)


def cpbd_sharpness(frames: np.ndarray) -> float:
    """CPBD (Narvekar & Karam 2011) on the gray frames, mean over them: probability that edges
    are not perceived as blurred (higher = sharper); `sharpness.cpbd` is the `cpbd` package's
    maths without its per-pixel loops. Imported here: the package is the `eval` extra's."""
    from vlogger.evaluation.sharpness import cpbd

    return float(np.mean([cpbd(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float64)) for f in frames]))


def face_crops(frames: np.ndarray, lmk: np.ndarray, fmt: str, scale: float) -> list[np.ndarray]:
    """Square crops of side scale x face height around each frame's landmark-box centre, cut at the
    frame's edges (no padding, which would add edges of its own)."""
    out = []
    for frame, pts in zip(frames, lmk, strict=True):
        half = scale * float(landmarks.face_height(pts, fmt)) / 2
        cx, cy = (pts[:, :2].min(0) + pts[:, :2].max(0)) / 2
        x0, y0 = max(0, round(cx - half)), max(0, round(cy - half))
        out.append(frame[y0 : max(y0 + 1, round(cy + half)), x0 : max(x0 + 1, round(cx + half))])
    return out


def _paired(gen: TrackedVideo, ref: TrackedVideo) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(gen.lmk), len(ref.lmk))
    return _normalised(gen)[:n], _normalised(ref)[:n]


def lip_landmark_error(gen: TrackedVideo, ref: TrackedVideo) -> float:
    """LME: mean distance of lip landmarks (each face centred on its lips), % of face height."""
    lips = landmarks.FORMATS[gen.landmark_format]["lips"]
    g, r = (x[:, lips] - x[:, lips].mean(axis=1, keepdims=True) for x in _paired(gen, ref))
    return float(np.linalg.norm(g - r, axis=-1).mean() * 100)


def mouth_points(lmk: np.ndarray, fmt: str) -> np.ndarray:
    """(T, K, 2) outer and inner lip contours: the mouth landmarks LMD compares."""
    f = landmarks.FORMATS[fmt]
    return lmk[:, [*f["lips"], *f["inner_lips"]], :2]


def lmd(gen: TrackedVideo, ref: TrackedVideo, size: int) -> float:
    """LMD (Chen et al. 2018): mean Euclidean distance between generated and reference mouth landmarks
    (outer and inner lip), in pixels of the frames scaled so their longest side is `size`, over paired
    frames. Not centred, so a mouth in the wrong place counts, unlike LME."""
    n = min(gen.n_frames, ref.n_frames)
    g, r = (mouth_points(v.lmk[:n], v.landmark_format) * (size / max(v.source.size)) for v in (gen, ref))
    return float(np.linalg.norm(g - r, axis=-1).mean())


def head_pose_error(gen: TrackedVideo, ref: TrackedVideo) -> float:
    """Mean absolute yaw/pitch/roll difference in degrees over paired frames."""
    n = min(len(gen.lmk), len(ref.lmk))
    fmt = gen.landmark_format
    return float(np.abs(head_angles(gen.lmk[:n], fmt) - head_angles(ref.lmk[:n], fmt)).mean())


PSNR_CAP = 100.0  # dB for identical frames (instead of inf, which JSON cannot hold)
PAIR_BATCH = 16  # paired frames scored at a time (4 took 2.3x the CPU in SSIM, 32 more memory)


def _psnr_frames(g: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return peak_signal_noise_ratio(g, r, data_range=1.0, reduction="none", dim=(1, 2, 3)).clamp(max=PSNR_CAP)


def _ssim_frames(g: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return structural_similarity_index_measure(g, r, data_range=1.0, reduction="none")


class PairedFrames(FrameReader):
    """Every `step`-th paired frame, shrunk to at most max_side, scored by `per_frame` in
    batches of PAIR_BATCH as the frames stream past; keeps one value per scored frame."""

    paired = True

    def __init__(
        self,
        per_frame: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        gen_hw: tuple[int, int],
        ref_hw: tuple[int, int],
        n_frames: int,
        max_side: int,
        step: int,
    ) -> None:
        self.per_frame, self.step, self.n_frames = per_frame, step, n_frames
        self.error = None if gen_hw == ref_hw else f"frame sizes differ: {gen_hw} vs {ref_hw}"
        h, w = gen_hw
        scale = min(1.0, max_side / max(h, w))
        self.size = (round(w * scale), round(h * scale))
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []
        self.values: list[torch.Tensor] = []

    def _load(self, frames: list[np.ndarray]) -> torch.Tensor:
        small = np.stack([cv2.resize(f, self.size, interpolation=cv2.INTER_AREA) for f in frames])
        return torch.from_numpy(small).permute(0, 3, 1, 2).float() / 255

    def _flush(self) -> None:
        gen, ref = zip(*self.pending, strict=True)
        self.values.append(self.per_frame(self._load(gen), self._load(ref)))
        self.pending = []

    def add(self, start: int, gen: np.ndarray | None, ref: np.ndarray | None) -> None:
        if self.error is not None:
            return
        first = -(-start // self.step) * self.step
        for i in range(first, min(start + len(gen), start + len(ref), self.n_frames), self.step):
            self.pending.append((gen[i - start], ref[i - start]))
            if len(self.pending) == PAIR_BATCH:
                self._flush()

    def mean(self) -> float:
        """Mean over the scored frames; ValueError when the pair cannot be compared."""
        if self.error is not None:
            raise ValueError(self.error)
        if self.pending:
            self._flush()
        return float(torch.cat(self.values).mean())


def _pair_reader(per_frame, gen: np.ndarray, ref: np.ndarray, max_side: int, step: int) -> PairedFrames:
    reader = PairedFrames(per_frame, gen.shape[1:3], ref.shape[1:3], min(len(gen), len(ref)), max_side, step)
    reader.add(0, gen, ref)
    return reader


def psnr(gen: np.ndarray, ref: np.ndarray, max_side: int = 256, step: int = 1) -> float:
    """Mean over paired frames (T, H, W, 3) of each frame's PSNR (dB), each capped at PSNR_CAP."""
    return _pair_reader(_psnr_frames, gen, ref, max_side, step).mean()


def ssim(gen: np.ndarray, ref: np.ndarray, max_side: int = 256, step: int = 1) -> float:
    """Mean over paired frames (T, H, W, 3) of each frame's SSIM (Gaussian window 11, sigma 1.5)."""
    return _pair_reader(_ssim_frames, gen, ref, max_side, step).mean()


class VideoMean(VideoMetric):
    """Mean of a per-video score over videos; NaN scores are left out, and a score undefined for a
    video (ValueError, e.g. frame sizes differ) is recorded as `<name>_skipped` in its row."""

    def __init__(self, protocol: dict | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.protocol = protocol
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def score(self, video: EvalVideo, frames: FrameReader | None) -> float:
        raise NotImplementedError

    def measure(self, video: EvalVideo, frames: FrameReader | None) -> Measured:
        try:
            value = self.score(video, frames)
        except ValueError as e:
            return Measured({self.name + "_skipped": str(e)})
        return Measured({self.name: value}, value)

    def update(self, measured: Measured) -> None:
        if measured.value is not None and not np.isnan(measured.value):
            self.total += measured.value
            self.count += 1

    def compute(self) -> dict[str, float]:
        return {self.name: float(self.total / self.count)} if self.count > 0 else {}


class Jitter(VideoMean):
    name, higher_is_better = "jitter", False

    def score(self, video: EvalVideo, frames: FrameReader | None) -> float:
        return jitter(video.gen)


class ExpressionDiversity(VideoMean):
    name, higher_is_better = "expression_diversity", True

    def score(self, video: EvalVideo, frames: FrameReader | None) -> float:
        return expression_diversity(video.gen)


class Jitter3D(VideoMean):
    name, higher_is_better = "jitter_3d", False

    def score(self, video: EvalVideo, frames: FrameReader | None) -> float:
        return jitter_3d(video.gen)


class CPBD(VideoMean):
    """Sharpness of the face crop on `cpbd.frames` frames spread over the generated video (the face, not
    the background, is what a talking-head model blurs)."""

    name, higher_is_better = "cpbd", True

    def reader(self, gen: VideoSource, ref: VideoSource | None) -> SampledFrames:
        return SampledFrames(spread(gen.n_frames, self.protocol["cpbd"]["frames"]))

    def score(self, video: EvalVideo, frames: SampledFrames) -> float:
        idx = spread(video.gen.n_frames, self.protocol["cpbd"]["frames"])
        crops = face_crops(
            frames.gen(idx), video.gen.lmk[idx], video.gen.landmark_format, self.protocol["cpbd"]["crop_scale"]
        )
        return float(np.mean([cpbd_sharpness(c[None]) for c in crops]))


class LipLandmarkError(VideoMean):
    """LME (ours): lip landmarks each centred on their own centroid, % of face height."""

    name, higher_is_better, needs = "lme", False, Needs(reference_video=True)

    def score(self, video: EvalVideo, frames: FrameReader | None) -> float:
        return lip_landmark_error(video.gen, video.ref)


class LMD(VideoMean):
    name, higher_is_better, needs = "lmd", False, Needs(reference_video=True)

    def score(self, video: EvalVideo, frames: FrameReader | None) -> float:
        return lmd(video.gen, video.ref, self.protocol["lmd"]["size"])


class HeadPoseError(VideoMean):
    name, higher_is_better, needs = "head_pose_error", False, Needs(reference_video=True)

    def score(self, video: EvalVideo, frames: FrameReader | None) -> float:
        return head_pose_error(video.gen, video.ref)


class _PixelMean(VideoMean):
    """PSNR / SSIM against ground truth at the protocol's size and frame step, streamed."""

    needs = Needs(reference_video=True)
    per_frame: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

    def reader(self, gen: VideoSource, ref: VideoSource | None) -> PairedFrames:
        px = self.protocol["pixel_metrics"]
        n = min(gen.n_frames, ref.n_frames)
        return PairedFrames(self.per_frame, gen.size[::-1], ref.size[::-1], n, px["max_side"], px["frame_step"])

    def score(self, video: EvalVideo, frames: PairedFrames) -> float:
        return frames.mean()


class PSNR(_PixelMean):
    name, higher_is_better = "psnr", True
    per_frame = staticmethod(_psnr_frames)


class SSIM(_PixelMean):
    name, higher_is_better = "ssim", True
    per_frame = staticmethod(_ssim_frames)
