"""Feature maths: Inception Score from logits, FID from Gaussian statistics, and their ``.npz`` files.

NumPy float64 throughout and no network: tests/test_metrics.py checks these functions against
closed forms, scipy and torch-fidelity.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from scipy.linalg import lapack

from miscc.errors import SSAGANError
from miscc.run.layout import atomic_write


def as_float64(x: Any) -> np.ndarray:
    """A tensor or array-like as a float64 NumPy array (on the host)."""
    if torch.is_tensor(x):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def check_splits(n: int, splits: int, what: str) -> None:
    """Refuse split counts the mean and std over splits cannot be computed with."""
    if splits < 1:
        raise SSAGANError(f"{what}: --splits must be at least 1, got {splits}.")
    if n < splits:
        raise SSAGANError(f"{what}: {n} images are fewer than the {splits} splits; "
                          "evaluate more images or lower --splits.")


def split_bounds(n: int, splits: int) -> list[tuple[int, int]]:
    """[start, end) of ``splits`` consecutive chunks of ``n`` items."""
    # In order and without shuffling, like the original IS code: results do not depend on a seed.
    return [(i * n // splits, (i + 1) * n // splits) for i in range(splits)]


def inception_score(preds: np.ndarray | torch.Tensor, splits: int = 10, *,
                    from_logits: bool = True) -> tuple[float, float]:
    """IS = exp(E_x KL(p(y|x) || p(y))) per split; returns (mean, std) over the splits.

    ``preds`` is N x C: logits (``from_logits=True``, the 1008-way unbiased Inception logits) or
    class probabilities. p(y) is the mean prediction of each split.
    """
    p = as_float64(preds)
    if p.ndim != 2:
        raise SSAGANError(f"inception_score expects an N x classes array, got shape {p.shape}.")
    check_splits(len(p), splits, "Inception Score")
    if from_logits:
        shifted = p - p.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    else:
        if (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
            raise SSAGANError("inception_score(from_logits=False) needs rows of probabilities "
                              "(non-negative, summing to 1); pass logits with from_logits=True.")
        with np.errstate(divide="ignore"):
            log_p = np.log(p)
    probs = np.exp(log_p)
    scores = []
    for a, b in split_bounds(len(p), splits):
        part, log_part = probs[a:b], log_p[a:b]
        with np.errstate(divide="ignore", invalid="ignore"):
            log_marginal = np.log(part.mean(axis=0))
            # Classes a prediction gives no mass contribute 0 (lim p log p = 0), not nan.
            kl = np.where(part > 0, part * (log_part - log_marginal), 0.0).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def compute_stats(feats: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased, N-1) covariance of N x D features, in float64."""
    f = as_float64(feats)
    if f.ndim != 2 or len(f) < 2:
        raise SSAGANError(f"FID statistics need at least 2 feature vectors (N x D), got shape {f.shape}.")
    return f.mean(axis=0), np.cov(f, rowvar=False)


class RunningMoments:
    """Mean and covariance accumulated batch by batch, so no N x 2048 array is kept.

    Sums are taken around a shift (the first batch's mean): without it the final
    ``E[xx^T] - mu mu^T`` cancels catastrophically when features share a large offset.
    """

    def __init__(self) -> None:
        self.count = 0
        self._shift: Optional[np.ndarray] = None
        self._sum: Optional[np.ndarray] = None
        self._outer: Optional[np.ndarray] = None

    def update(self, feats: np.ndarray | torch.Tensor) -> None:
        f = as_float64(feats)
        if f.ndim != 2 or len(f) == 0:
            raise SSAGANError(f"RunningMoments.update expects a non-empty N x D batch, got {f.shape}.")
        if self._shift is None:
            self._shift = f.mean(axis=0)
            self._sum = np.zeros(f.shape[1])
            self._outer = np.zeros((f.shape[1], f.shape[1]))
        centred = f - self._shift
        self._sum += centred.sum(axis=0)
        self._outer += centred.T @ centred
        self.count += len(f)

    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        if self.count < 2:
            raise SSAGANError(f"FID statistics need at least 2 images, got {self.count}.")
        mean_c = self._sum / self.count
        cov = (self._outer - self.count * np.outer(mean_c, mean_c)) / (self.count - 1)
        return self._shift + mean_c, (cov + cov.T) / 2


def _psd_factor(s: np.ndarray) -> np.ndarray:
    """F with F F^T = s for a covariance matrix s, F of shape D x rank (pivoted Cholesky).

    LAPACK's default rank tolerance (size x machine eps x largest diagonal) drops the null space of
    rank-deficient covariances (fewer images than dimensions), where rounding noise of ~1e-16 would
    otherwise enter through square roots as a spurious FID of ~1e-3. It also costs O(D rank^2)
    instead of the O(D^3) of an eigendecomposition when the rank is small.
    """
    c, piv, rank, info = lapack.dpstrf((s + s.T) / 2, lower=1, tol=-1)
    if info < 0:
        raise SSAGANError(f"pivoted Cholesky rejected its input (LAPACK info {info}).")
    factor = np.empty((len(s), rank))
    factor[piv - 1] = np.tril(c)[:, :rank]  # undo the pivoting: s = P L L^T P^T
    return factor


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr((sigma1 sigma2)^(1/2)) for covariance matrices, without a matrix square root.

    With sigma_i = F_i F_i^T, the eigenvalues of sigma1 sigma2 equal those of
    (F1^T F2)(F1^T F2)^T, i.e. the squared singular values of the small matrix F1^T F2; the trace is
    their sum. Everything stays real (``scipy.linalg.sqrtm(sigma1 @ sigma2)`` returns complex parts
    and fails on singular products), and no condition number is squared, so tiny but genuine
    eigenvalues keep their contribution.
    """
    f1, f2 = _psd_factor(sigma1), _psd_factor(sigma2)
    if not (f1.shape[1] and f2.shape[1]):
        return 0.0
    return float(np.linalg.svd(f1.T @ f2, compute_uv=False).sum())


def fid_from_stats(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Frechet distance ||mu1-mu2||^2 + tr(s1) + tr(s2) - 2 tr((s1 s2)^(1/2)) between two Gaussians."""
    mu1, mu2, sigma1, sigma2 = (as_float64(x) for x in (mu1, mu2, sigma1, sigma2))
    d = mu1.shape[0] if mu1.ndim == 1 else -1
    if not (mu1.ndim == 1 and mu2.shape == (d,) and sigma1.shape == (d, d) and sigma2.shape == (d, d)):
        raise SSAGANError(f"FID statistics do not match: mu {mu1.shape} / {mu2.shape}, sigma "
                          f"{sigma1.shape} / {sigma2.shape} (both sets need D and D x D of one D).")
    if not all(np.isfinite(x).all() for x in (mu1, mu2, sigma1, sigma2)):
        raise SSAGANError("FID statistics contain NaN or inf (broken images or features?).")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2)
                 - 2.0 * trace_sqrt_product(sigma1, sigma2))


def save_stats(path: str | os.PathLike, mu: np.ndarray, sigma: np.ndarray,
               meta: Optional[dict] = None) -> None:
    """Write ``mu``/``sigma`` (+ optional protocol as JSON text in ``meta``) atomically as .npz."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"mu": np.asarray(mu, np.float64), "sigma": np.asarray(sigma, np.float64)}
    if meta is not None:
        arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_stats(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read FID statistics (DF-GAN's ``.npz`` format: arrays ``mu`` and ``sigma``) -> (mu, sigma, meta)."""
    path = Path(path)
    if not path.is_file():
        raise SSAGANError(f"FID statistics file {path} does not exist.")
    with open(path, "rb") as f:
        if f.read(2) != b"PK":  # every .npz is a zip archive
            raise SSAGANError(f"{path} is not a readable .npz file (not a zip archive). Make FID statistics with "
                              "`IS.py --fid_ref DATA_DIR --save_stats OUT.npz`, or pass the data folder itself.")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise SSAGANError(f"{path} is not a readable .npz file ({type(e).__name__}: {e}).") from e
    if "mu" not in arrays or "sigma" not in arrays:
        raise SSAGANError(f"{path} holds the arrays {sorted(arrays)}, but FID statistics need 'mu' and "
                          "'sigma' (DF-GAN's .npz format, also written by IS.py --save_stats).")
    mu, sigma = arrays["mu"].astype(np.float64), arrays["sigma"].astype(np.float64)
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise SSAGANError(f"{path}: mu has shape {mu.shape} and sigma {sigma.shape}; expected (D,) and (D, D).")
    meta = json.loads(str(arrays["meta"])) if "meta" in arrays else {}
    return mu, sigma, meta
