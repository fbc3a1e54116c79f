"""FVD: Frechet distance between I3D (Kinetics-400) features of real and generated clips.

Follows StyleGAN-V (universome/stylegan-v, src/metrics/frechet_video_distance.py and metric_utils.py), which
reproduces google-research's TF FVD with a TorchScript I3D (zoo name `i3d_torchscript`):
- the detector gets uint8 clips (N, 3, T, H, W) in [0, 255] and is called with
  `rescale=True, resize=True, return_features=True`, so the scaling to [-1, 1] and the resize to 224x224
  happen inside it, and it returns the 400-d pre-softmax features;
- generated frames are quantised to uint8 first (`(img * 127.5 + 128).clamp(0, 255).to(torch.uint8)` there
  for [-1, 1] output, which is round-half-up of 255 x for our [0, 1] frames);
- clips of 16 consecutive frames; mean and covariance with 1/N (`FeatureStats.get_mean_cov`).
"""

from __future__ import annotations

import warnings
import zlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

from vlogger.core.errors import UsageError
from vlogger.evaluation.frechet import frechet_distance, mean_cov
from vlogger.evaluation.metric import EvalVideo, Measured, Needs, SampledFrames, VideoMetric
from vlogger.evaluation.tracks import VideoSource
from vlogger.zoo import resolve

WEIGHTS = "i3d_torchscript"
NUM_FEATURES = 400
CLIP_FRAMES = 16
DETECTOR_KWARGS = {"rescale": True, "resize": True, "return_features": True}


def load_i3d(path: str | Path | None = None) -> torch.jit.ScriptModule:
    """The TorchScript I3D from `path`, else from the zoo (which never downloads), in eval mode on the CPU."""
    path = Path(path) if path is not None else resolve(WEIGHTS)
    with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.13, but it is the standard's format
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(path), map_location="cpu").eval()


def to_uint8(videos: Tensor) -> Tensor:
    """uint8 as is; float frames in [0, 1] quantised the way StyleGAN-V quantises generator output."""
    if videos.dtype == torch.uint8:
        return videos
    return (videos * 255 + 0.5).clamp(0, 255).to(torch.uint8)


def split_clips(video: Tensor, num_frames: int = CLIP_FRAMES) -> Tensor:
    """(T, 3, H, W) -> (T // num_frames, num_frames, 3, H, W) consecutive clips; a shorter tail is dropped."""
    n = video.shape[0] // num_frames
    return video[: n * num_frames].reshape(n, num_frames, *video.shape[1:])


class FVD(Metric):
    """FVD over clips: `update(videos (N, T, 3, H, W), real=bool)`, T = num_frames; uint8 or float in [0, 1].

    States are feature sums, outer-product sums and counts, so DDP (or `merge_state`) just adds them up.
    """

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(self, path: str | Path | None = None, num_frames: int = CLIP_FRAMES, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_frames = num_frames
        self.detector = load_i3d(path)
        for side in ("real", "fake"):
            self.add_state(f"{side}_sum", torch.zeros(NUM_FEATURES, dtype=torch.float64), dist_reduce_fx="sum")
            outer = torch.zeros(NUM_FEATURES, NUM_FEATURES, dtype=torch.float64)
            self.add_state(f"{side}_outer", outer, dist_reduce_fx="sum")
            self.add_state(f"{side}_n", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def train(self, mode: bool = True) -> FVD:
        """Keep the detector in eval mode whatever a trainer does to its metrics."""
        super().train(mode)
        self.detector.eval()
        return self

    @torch.no_grad()
    def features(self, videos: Tensor) -> Tensor:
        """(N, 400) float64 I3D features of clips: the part of `update` that a worker can do."""
        if videos.ndim != 5 or videos.shape[1] != self.num_frames or videos.shape[2] != 3:
            raise ValueError(
                f"FVD expects clips of shape (N, {self.num_frames}, 3, H, W), got {tuple(videos.shape)}; "
                "cut long videos with split_clips"
            )
        clips = to_uint8(videos).permute(0, 2, 1, 3, 4).contiguous()
        features = self.detector(clips, **DETECTOR_KWARGS).double()
        if features.shape != (len(videos), NUM_FEATURES):
            raise ValueError(f"I3D returned features of shape {tuple(features.shape)}, expected (N, {NUM_FEATURES})")
        return features

    def add_features(self, features: Tensor, real: bool) -> None:
        side = "real" if real else "fake"
        getattr(self, f"{side}_sum").add_(features.sum(0))
        getattr(self, f"{side}_outer").add_(features.T @ features)
        getattr(self, f"{side}_n").add_(len(features))

    def update(self, videos: Tensor, real: bool) -> None:
        self.add_features(self.features(videos), real)

    def compute(self) -> Tensor:
        return self.distance()

    def distance(self) -> Tensor:
        """`compute` without torchmetrics' wrapper, for states filled by `add_features` (which the
        wrapper does not count as updates)."""
        n_real, n_fake = int(self.real_n), int(self.fake_n)
        if min(n_real, n_fake) < 2:
            raise RuntimeError(f"FVD needs at least 2 real and 2 generated clips, got {n_real} and {n_fake}")
        real = mean_cov(n_real, self.real_sum, self.real_outer)
        fake = mean_cov(n_fake, self.fake_sum, self.fake_outer)
        return torch.tensor(frechet_distance(*fake, *real), dtype=torch.float64)


def clip_starts(n_frames: int, num_frames: int, sampling: str, seed: int, key: str) -> list[int]:
    """First frames of the clips scored in one video: `random`, one clip at an offset drawn from a
    generator seeded by (seed, key) (StyleGAN-V samples one clip per video at a random offset; the
    key, e.g. the file name, keeps the draw the same in any worker); `all`, every non-overlapping clip."""
    if n_frames < num_frames:
        return []
    if sampling == "all":
        return list(range(0, n_frames - num_frames + 1, num_frames))
    if sampling == "random":
        rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
        return [int(rng.integers(0, n_frames - num_frames + 1))]
    raise UsageError(f"fvd.sampling must be random or all, got {sampling!r}")


class FVDScore(VideoMetric):
    """FVD of generated against reference clips, sampled as the protocol says (`clip_starts`).

    Only the sampled clips' frames are kept while decoding. `fvd_n_samples` / `fvd_n_reference` give the
    clip counts: the covariance of 400-d features wants thousands (StyleGAN-V uses 2048 videos)."""

    name, higher_is_better = "fvd", False
    needs = Needs(reference_video=True, weights=(WEIGHTS,))
    scores: ClassVar[dict[str, bool | None]] = {"fvd": False, "fvd_n_samples": None, "fvd_n_reference": None}

    def __init__(self, fvd: FVD, sampling: str = "random", seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fvd, self.sampling, self.seed = fvd, sampling, seed

    @classmethod
    def from_protocol(cls, protocol: dict) -> FVDScore:
        f = protocol["fvd"]
        return cls(FVD(num_frames=f["clip_frames"]), f["sampling"], f["seed"])

    def _frames(self, source: VideoSource, side: str) -> list[int]:
        k = self.fvd.num_frames
        starts = clip_starts(source.n_frames, k, self.sampling, self.seed, f"{side}/{source.path.name}")
        return [s + i for s in starts for i in range(k)]

    def reader(self, gen: VideoSource, ref: VideoSource | None) -> SampledFrames:
        return SampledFrames(self._frames(gen, "gen"), self._frames(ref, "ref"))

    def measure(self, video: EvalVideo, frames: SampledFrames) -> Measured:
        features = []
        for kept, source, side in ((frames.gen, video.gen.source, "gen"), (frames.ref, video.ref.source, "ref")):
            picked = self._frames(source, side)
            if not picked:  # shorter than one clip
                features.append(None)
                continue
            clips = split_clips(torch.from_numpy(kept(picked)).permute(0, 3, 1, 2), self.fvd.num_frames)
            features.append(self.fvd.features(clips))
        return Measured(value=tuple(features))

    def update(self, measured: Measured) -> None:
        for features, real in zip(measured.value, (False, True), strict=True):
            if features is not None:
                self.fvd.add_features(features, real)

    def compute(self) -> dict[str, float]:
        n_gen, n_ref = int(self.fvd.fake_n), int(self.fvd.real_n)
        return {"fvd": float(self.fvd.distance()), "fvd_n_samples": n_gen, "fvd_n_reference": n_ref}
