"""Frechet distance between two Gaussians, shared by FVD (and checked against torchmetrics' FID).

FD = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr(sqrt(S1 S2)). The cross term is computed as
tr(sqrt(R S2 R)) with R = sqrt(S1): R S2 R is symmetric PSD with the same eigenvalues as S1 S2, so
symmetric eigendecompositions suffice and rank-deficient covariances (fewer samples than features)
give no complex or NaN values, unlike a general `sqrtm(S1 @ S2)`.
"""

from __future__ import annotations

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def _float64(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def _above_rounding(w: np.ndarray) -> np.ndarray:
    """Eigenvalues with those below the rounding floor (numpy's matrix_rank tolerance) set to zero.

    With fewer samples than features most eigenvalues are zero up to rounding, and square roots would blow that
    noise up (1e-16 -> 1e-8 each, times thousands of them).
    """
    tol = w.max(initial=0.0) * len(w) * np.finfo(np.float64).eps
    return np.where(w > tol, w, 0.0)


def _sym(m: np.ndarray) -> np.ndarray:
    return (m + m.T) / 2


def _psd_sqrt(m: np.ndarray) -> np.ndarray:
    """Symmetric square root of a PSD matrix."""
    w, v = np.linalg.eigh(_sym(m))
    return (v * np.sqrt(_above_rounding(w))) @ v.T


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """Squared Frechet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2), in float64."""
    mu1, sigma1, mu2, sigma2 = map(_float64, (mu1, sigma1, mu2, sigma2))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}")
    root1 = _psd_sqrt(sigma1)
    cross = np.sqrt(_above_rounding(np.linalg.eigvalsh(_sym(root1 @ sigma2 @ root1)))).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * cross)


def mean_cov(n: int, total: ArrayLike, outer: ArrayLike, ddof: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance from a count, a feature sum and a sum of outer products (what DDP can add up)."""
    if n <= ddof:
        raise ValueError(f"need more than {ddof} samples for a covariance, got {n}")
    mean = _float64(total) / n
    cov = (_float64(outer) - n * np.outer(mean, mean)) / (n - ddof)
    return mean, cov
