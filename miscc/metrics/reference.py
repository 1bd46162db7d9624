"""FID reference statistics: a stats ``.npz``, a CUB data folder or an image folder, with a cache.

Folder statistics cost a pass of Inception over thousands of images, so they are cached, keyed by
every source file's path, size and mtime and by the settings that change the pixels or the network.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from miscc.errors import SSAGANError
from miscc.metrics.images import cub_image_set, folder_image_set, is_cub_folder
from miscc.metrics.inception import InceptionExtractor, extract_features, library_version
from miscc.metrics.stats import load_stats, save_stats
from miscc.sample.protocol import IMAGE_DIR

DEFAULT_CACHE_DIR = Path(os.environ.get("SSAGAN_CACHE_DIR", Path.home() / ".cache" / "ssagan")) / "fid_stats"


@dataclass
class ReferenceStats:
    """The reference Gaussian of FID and how it was obtained (for the protocol)."""
    mu: np.ndarray
    sigma: np.ndarray
    protocol: dict


def reference_stats(ref: str | os.PathLike, model: InceptionExtractor, *, split: str = "test",
                    size: Optional[int] = None, cache_dir: Optional[str | os.PathLike] = DEFAULT_CACHE_DIR,
                    batch_size: int = 50, device: str | torch.device = "cpu",
                    workers: int = 0) -> ReferenceStats:
    """Statistics of the reference set ``ref``: a stats ``.npz``, a CUB data folder or an image folder.

    Folder statistics are cached under ``cache_dir`` (None: no cache) keyed by every source file's
    path/size/mtime and the settings, so a changed file or setting recomputes them.
    """
    ref = Path(ref)
    if ref.suffix == ".npz" or ref.is_file():
        mu, sigma, meta = load_stats(ref)
        return ReferenceStats(mu, sigma, {"reference": str(ref), "kind": "precomputed statistics",
                                          "stats_protocol": meta})
    if is_cub_folder(ref):
        if not size:
            raise SSAGANError("a CUB reference needs --ref_size (the generator's output size, e.g. 256).")
        images = cub_image_set(ref, split, size)
    else:
        # A sampler folder as reference (model vs model): its images, never its masks.
        images = folder_image_set(ref / IMAGE_DIR if (ref / IMAGE_DIR).is_dir() else ref, size)
    protocol = {"reference": str(ref), "kind": "images", "description": images.description,
                "images": len(images), "resolution": list(images.size)}
    settings = {"split": split, "size": size, "weights_sha256": model.sha256, "library": library_version()}
    cache_file = Path(cache_dir) / f"{images.fingerprint(settings)}.npz" if cache_dir else None
    if cache_file is not None and cache_file.is_file():
        mu, sigma, _ = load_stats(cache_file)
        return ReferenceStats(mu, sigma, {**protocol, "cache": str(cache_file)})
    feats = extract_features(images, model, batch_size=batch_size, device=device, workers=workers,
                             keep_logits=False, desc="reference")
    mu, sigma = feats.moments.stats()
    if cache_file is not None:
        save_stats(cache_file, mu, sigma, {**protocol, **settings})
        protocol = {**protocol, "cache": str(cache_file)}
    return ReferenceStats(mu, sigma, protocol)
