"""Scores on the bird feature network (``bird_net.py``) and the synthetic birds' layout, with their
real-image reference levels, so that each number can be read against what real images score.

    FD         Fréchet distance (the FID formula, ``stats.fid_from_stats``) between the features of the
               generated images and of the real test-split images. Floor: FD between two disjoint
               halves (even / odd file positions) of the real test images.
    IS         exp(E KL(p(species|x) || p(species))) from the species logits, over splits of a fixed
               shuffle (the files are sorted by species: consecutive splits would hold one species
               each). Ceiling: IS of the real test images.
    diversity  mean pairwise L2 distance between the features of the images of one caption (N noises),
               averaged over captions. Reference: the same over real test images of one species,
               averaged over the test species.
    coverage   per generator stage, the share of the mask's mass that lies on the bird, the bird
               located in the generated image by the colour scorer's layout fit (``colour.locate``).
               A uniform mask scores the bird's area share; a perfect mask (1 on the bird) scores 1.

Pure functions of arrays; the registry (``registry.py``) wires them to images and records.
"""
from __future__ import annotations

from typing import Hashable, Mapping, Sequence

import numpy as np
import torch

from miscc.metrics import bird_geometry as geo
from miscc.metrics.colour import locate
from miscc.metrics.stats import as_float64, check_splits, compute_stats, fid_from_stats, inception_score

SHUFFLE_SEED = 0  # of the fixed permutation before IS splits: the same for generated and real images


def frechet_distance(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """FD between two feature sets N x D (``stats.fid_from_stats`` of their mean and covariance)."""
    mu1, s1 = compute_stats(a)
    mu2, s2 = compute_stats(b)
    return fid_from_stats(mu1, s1, mu2, s2)


def fd_floor(real: np.ndarray | torch.Tensor) -> float:
    """FD between the even- and odd-positioned halves of real features: what real images score
    against real images. Interleaved halves keep every species in both (files are in species order)."""
    f = as_float64(real)
    return frechet_distance(f[0::2], f[1::2])


def shuffled_is(logits: np.ndarray | torch.Tensor, splits: int) -> tuple[float, float]:
    """IS (mean, std over ``splits``) after a fixed permutation of the rows (``SHUFFLE_SEED``)."""
    p = as_float64(logits)
    check_splits(len(p), splits, "bird IS")
    order = np.random.RandomState(SHUFFLE_SEED).permutation(len(p))
    return inception_score(p[order], splits)


def mean_pairwise_distance(feats: np.ndarray) -> float:
    """Mean L2 distance over the unordered pairs of rows of ``feats`` (needs >= 2 rows)."""
    f = as_float64(feats)
    d = np.sqrt(np.maximum(((f[:, None, :] - f[None, :, :]) ** 2).sum(-1), 0.0))
    n = len(f)
    return float(d[np.triu_indices(n, 1)].mean())


def group_diversity(feats: np.ndarray | torch.Tensor, groups: Sequence[Hashable]) -> tuple[float, float, int]:
    """(mean, std over groups, number of groups) of ``mean_pairwise_distance`` within each group of rows
    sharing a label (e.g. one caption's images); groups of one image are skipped."""
    f = as_float64(feats)
    members: dict[Hashable, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    values = [mean_pairwise_distance(f[idx]) for idx in members.values() if len(idx) > 1]
    if not values:
        return float("nan"), float("nan"), 0
    return float(np.mean(values)), float(np.std(values)), len(values)


def bird_region(image: np.ndarray, attributes: Mapping) -> np.ndarray:
    """Boolean [S, S]: where the bird of ``attributes`` lies in a square uint8 image [S, S, 3], found
    by the colour scorer's layout fit (its canonical silhouette, shifted and mirrored to fit)."""
    geometry = geo.Geometry.from_attributes(attributes)
    size = image.shape[0]
    (mirror, dy, dx), = locate(image[None], geometry)
    labels = geo.crop_layout(geometry, size, mirror) > 0
    out = np.zeros_like(labels)
    h, w = labels.shape
    out[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)] = \
        labels[max(0, -dy):h + min(0, -dy), max(0, -dx):w + min(0, -dx)]
    return out


def mask_coverage(masks: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Per mask [K, S, S] (values in [0, 1]): its mass on ``region`` / its total mass (nan for an
    all-zero mask, which puts nothing anywhere)."""
    m = as_float64(masks)
    total = m.sum(axis=(1, 2))
    on = (m * region[None]).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, on / np.where(total > 0, total, 1.0), np.nan)
