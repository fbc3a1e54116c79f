"""FID on frames: torchmetrics' FrechetInceptionDistance driven by our copy of the official FID Inception.

torchmetrics does the DDP-syncable accumulation (feature sums and outer products, N-1 covariance); passing our
module as `feature` avoids torch-fidelity and its separate weights file, so scores use the same TF-ported network
as pytorch-fid. torchmetrics hands images to a custom module unchanged (its `normalize` flag only converts for the
built-in network); our module accepts uint8 in [0, 255] or float in [0, 1].
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torchmetrics.image.fid import FrechetInceptionDistance

from vlogger.evaluation.frechet import frechet_distance, mean_cov
from vlogger.evaluation.inception import load_fid_inception


class FID(FrechetInceptionDistance):
    """torchmetrics' FID with the distance computed by `frechet_distance`.

    torchmetrics takes the eigenvalues of the non-symmetric product S_real S_fake. With fewer images than 2048
    features that product is rank-deficient, and LAPACK's general eigensolver then took over a minute on CPU (and
    gave -3e-4 for identical sets); the symmetric form gives the same value (to 1e-6) in about a second.
    """

    def compute(self) -> Tensor:
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
