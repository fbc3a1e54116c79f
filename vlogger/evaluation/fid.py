"""FID on frames: torchmetrics' FrechetInceptionDistance driven by our copy of the official FID Inception.

torchmetrics does the DDP-syncable accumulation (feature sums and outer products, N-1 covariance); passing our
module as `feature` avoids torch-fidelity and its separate weights file, so scores use the same TF-ported network
as pytorch-fid. torchmetrics hands images to a custom module unchanged (its `normalize` flag only converts for the
built-in network); our module accepts uint8 in [0, 255] or float in [0, 1].
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor
from torchmetrics.image.fid import FrechetInceptionDistance

from vlogger.core.video import read_frames, scaled_size
from vlogger.evaluation.frechet import frechet_distance, mean_cov
from vlogger.evaluation.inception import load_fid_inception
from vlogger.evaluation.metric import EvalVideo, FrameReader, Measured, Needs, VideoMetric, spread
from vlogger.evaluation.tracks import VideoSource

BATCH = 32  # frames through Inception at a time


class FID(FrechetInceptionDistance):
    """torchmetrics' FID with the distance computed by `frechet_distance`.

    torchmetrics takes the eigenvalues of the non-symmetric product S_real S_fake. With fewer images than 2048
    features that product is rank-deficient, and LAPACK's general eigensolver then took over a minute on CPU (and
    gave -3e-4 for identical sets); the symmetric form gives the same value (to 1e-6) in about a second.
    """

    @torch.no_grad()
    def features(self, imgs: Tensor) -> Tensor:
        """(N, 2048) float64 Inception features: the part of `update` that a worker can do."""
        return self.inception(imgs).double().reshape(len(imgs), -1)

    def add_features(self, features: Tensor, real: bool) -> None:
        """Add features to the real or generated statistics, as torchmetrics' `update` does."""
        side = "real" if real else "fake"
        getattr(self, f"{side}_features_sum").add_(features.sum(dim=0))
        getattr(self, f"{side}_features_cov_sum").add_(features.t().mm(features))
        getattr(self, f"{side}_features_num_samples").add_(len(features))

    def update(self, imgs: Tensor, real: bool) -> None:
        self.add_features(self.features(imgs), real)

    def compute(self) -> Tensor:
        return self.distance()

    def distance(self) -> Tensor:
        """`compute` without torchmetrics' wrapper, for states filled by `add_features` (which the
        wrapper does not count as updates)."""
        n_real, n_fake = int(self.real_features_num_samples), int(self.fake_features_num_samples)
        if min(n_real, n_fake) < 2:
            raise RuntimeError(f"FID needs at least 2 real and 2 generated images, got {n_real} and {n_fake}")
        real = mean_cov(n_real, self.real_features_sum, self.real_features_cov_sum, ddof=1)
        fake = mean_cov(n_fake, self.fake_features_sum, self.fake_features_cov_sum, ddof=1)
        return torch.tensor(frechet_distance(*real, *fake), dtype=torch.float64)


def make_fid(path: str | Path | None = None, **kwargs: Any) -> FID:
    """FID metric: `update(frames (N, 3, H, W), real=bool)`, then `compute()`; kwargs go to torchmetrics.

    Weights come from `path`, else from the zoo (`vlogger zoo fetch fid_inception_v3`).
    """
    return FID(feature=load_fid_inception(path), **kwargs)


class FIDScore(VideoMetric):
    """FID of generated against reference frames, sampled as papers do: every frame (or the protocol's N,
    spread over each video), decoded again at native size (or the protocol's max side), since pytorch-fid
    resizes each image to 299 px itself. Features are taken in the worker, batch by batch, so a long
    video's frames are never all held. `fid_n_samples` / `fid_n_reference` give the image counts."""

    name, higher_is_better = "fid", False
    needs = Needs(reference_video=True, weights=("fid_inception_v3",))
    scores: ClassVar[dict[str, bool | None]] = {"fid": False, "fid_n_samples": None, "fid_n_reference": None}

    def __init__(self, fid: FID, frames_per_video: int = 0, max_side: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fid, self.frames_per_video, self.max_side = fid, frames_per_video, max_side

    @classmethod
    def from_protocol(cls, protocol: dict) -> FIDScore:
        return cls(make_fid(), protocol["fid"]["frames_per_video"], protocol["fid"]["max_side"])

    def source_features(self, source: VideoSource, batch: int = BATCH) -> Tensor:
        """(N, 2048) features of the protocol's frames of one video."""
        n = source.n_frames
        picked = source.indices[spread(n, self.frames_per_video) if self.frames_per_video else np.arange(n)]
        w, h = source.info.width, source.info.height
        size = scaled_size(w, h, self.max_side) if self.max_side else None
        frames = read_frames(source.info, picked, size)
        blocks = iter(lambda: list(itertools.islice(frames, batch)), [])
        return torch.cat([self.fid.features(torch.from_numpy(np.stack(b)).permute(0, 3, 1, 2)) for b in blocks])

    def measure(self, video: EvalVideo, frames: FrameReader | None) -> Measured:
        return Measured(value=(self.source_features(video.gen.source), self.source_features(video.ref.source)))

    def update(self, measured: Measured) -> None:
        gen, ref = measured.value
        self.fid.add_features(gen, real=False)
        self.fid.add_features(ref, real=True)

    def compute(self) -> dict[str, float]:
        n_gen, n_ref = int(self.fid.fake_features_num_samples), int(self.fid.real_features_num_samples)
        return {"fid": float(self.fid.distance()), "fid_n_samples": n_gen, "fid_n_reference": n_ref}
