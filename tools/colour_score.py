"""Does a generated bird have the body colour its caption names? A cheap, model-free check.

The synthetic bird set (``tools/make_birds.py``) paints every bird from ``PALETTE`` on a muted,
low-saturation background, and the body is the largest coloured area at the centre of the bounding-box
crop the training pipeline feeds the GAN. So the dominant *non-muted* palette colour near the image
centre estimates the body colour of a real crop, and of a generated image if the generator learned
the caption's colour word. ``chance_level`` is what an image-blind guesser scores.

Typical use (sampler / demo)::

    imgs = from_tanh(fake)                                # [N,3,H,W] in [-1,1] -> uint8 [N,H,W,3]
    acc = body_colour_accuracy(imgs, colours)             # colours[i] = body colour named in caption i
    print(acc, chance_level(colours))

Numpy only (no torch import), so the generator and this scorer stay usable without a model.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any, Sequence

import numpy as np

# Saturated colours far apart in RGB (nearest pair ~100 apart), none of them muted: backgrounds of
# the synthetic set are drawn with saturation <= 0.22 and value in [0.5, 0.75], see ``is_muted``.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (210, 25, 25),
    "orange": (245, 125, 15),
    "yellow": (250, 225, 40),
    "green": (35, 155, 55),
    "blue": (35, 75, 215),
    "purple": (130, 50, 170),
    "black": (25, 25, 25),
    "white": (245, 245, 245),
}
NAMES: tuple[str, ...] = tuple(PALETTE)
_RGB = np.array([PALETTE[n] for n in NAMES], dtype=np.float32)

# Muted = grey-ish mid tones: the synthetic backgrounds. White (v high) and black (v low) are not
# muted although their saturation is 0, which is why the value band is closed on both sides.
MUTED_MAX_SATURATION = 0.3
MUTED_VALUE_RANGE = (0.3, 0.82)


def is_muted(pixels: np.ndarray) -> np.ndarray:
    """Boolean mask over ``pixels`` [..., 3] (uint8 or 0-255 floats): background-like colours."""
    p = np.asarray(pixels, dtype=np.float32)
    mx = p.max(axis=-1)
    mn = p.min(axis=-1)
    value = mx / 255.0
    saturation = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-6), 0.0)
    return ((saturation < MUTED_MAX_SATURATION) & (value >= MUTED_VALUE_RANGE[0])
            & (value <= MUTED_VALUE_RANGE[1]))


def _nearest_index(pixels: np.ndarray) -> np.ndarray:
    p = np.asarray(pixels, dtype=np.float32)[..., None, :]
    return ((p - _RGB) ** 2).sum(axis=-1).argmin(axis=-1)


def nearest_colour_name(rgb: Sequence[float]) -> str:
    """Palette name nearest (Euclidean RGB) to one colour given as 0-255 values."""
    return NAMES[int(_nearest_index(np.asarray(rgb, dtype=np.float32)[None])[0])]


def _central_weights(h: int, w: int) -> np.ndarray:
    # Mild centre weighting (sigma = 0.3 of the side). The body is the largest coloured area and sits
    # near the centre, but clipped bbox crops, random crops and flips move it by 10-20% of the side,
    # while wing + tail + head can share one colour; a small hard window then votes for the wing
    # (measured on the synthetic set: 0.95 accuracy with sigma 0.12-0.15, 0.998-1.0 with 0.3).
    ys = (np.arange(h, dtype=np.float32) + 0.5) / h - 0.5
    xs = (np.arange(w, dtype=np.float32) + 0.5) / w - 0.5
    return np.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * 0.3 ** 2))


def dominant_body_colour(image: np.ndarray) -> str:
    """Estimated body colour of one uint8 image [H, W, 3] (a bbox crop, as the GAN sees birds)."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"expected an image [H, W, 3], got shape {img.shape}")
    h, w = img.shape[:2]
    weights = _central_weights(h, w)
    keep = ~is_muted(img)
    if not keep.any():
        # Nothing saturated at all (e.g. an untrained generator's grey): fall back to the
        # centre-weighted mean colour rather than refusing to answer.
        mean = (img.reshape(-1, 3) * weights.reshape(-1, 1)).sum(0) / weights.sum()
        return nearest_colour_name(mean)
    votes = np.bincount(_nearest_index(img[keep]), weights=weights[keep], minlength=len(NAMES))
    return NAMES[int(votes.argmax())]


def body_colour_accuracy(images_uint8: np.ndarray, body_colours: Sequence[str]) -> float:
    """Fraction of images [N, H, W, 3] (uint8) whose estimated body colour equals ``body_colours[i]``."""
    images = np.asarray(images_uint8)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected images [N, H, W, 3], got shape {images.shape}")
    if len(images) != len(body_colours):
        raise ValueError(f"{len(images)} images but {len(body_colours)} colour names")
    unknown = sorted(set(body_colours) - set(NAMES))
    if unknown:
        raise ValueError(f"unknown colour name(s) {unknown}; palette: {list(NAMES)}")
    if len(images) == 0:
        raise ValueError("no images to score")
    hits = sum(dominant_body_colour(img) == c for img, c in zip(images, body_colours))
    return hits / len(images)


def chance_level(body_colours: Sequence[str]) -> float:
    """Expected accuracy of an image-blind guesser that follows the label frequencies.

    Equals the expected score with the labels shuffled: sum over colours of p(colour)^2.
    """
    if len(body_colours) == 0:
        raise ValueError("no colour names")
    n = len(body_colours)
    return float(sum((c / n) ** 2 for c in Counter(body_colours).values()))


def from_tanh(images: Any) -> np.ndarray:
    """Generator output [N, 3, H, W] in [-1, 1] (tensor or array) -> uint8 [N, H, W, 3].

    Same pixel rule as the original sampler: uint8((x + 1) * 127.5), after clamping to [-1, 1] so
    that slightly out-of-range values do not wrap around.
    """
    if hasattr(images, "detach"):
        images = images.detach().float().cpu().numpy()
    x = np.clip(np.asarray(images, dtype=np.float32), -1.0, 1.0)
    return ((x + 1.0) * 127.5).astype(np.uint8).transpose(0, 2, 3, 1)


def load_attributes(data_dir: str | os.PathLike, split: str) -> dict[str, dict[str, Any]]:
    """Ground truth written by ``tools.make_birds``: key -> attributes (see that module)."""
    path = os.path.join(os.fspath(data_dir), f"attributes_{split}.json")
    with open(path, encoding="utf-8") as f:
        return json.load(f)
