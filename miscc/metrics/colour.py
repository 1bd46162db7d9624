"""Does a generated bird have the colours its caption names? A cheap, model-free check per part.

Synthetic birds (``tools/birds/make_birds.py``) are drawn in one canonical perched pose (with a little
jitter), so the layout of a bird in the GAN's bbox crop is known from its shape attributes
(``miscc.metrics.bird_geometry.crop_layout``). The scorer slides that layout prior over the image
(shifts of up to ~1/8 of the side, both facings: training crops are random and flipped) and keeps
the placement where the parts (body, wing, head, tail) and the background are most uniform in colour: a
piecewise-constant fit. Each part's colour is then the majority vote of its (eroded) pixels over the
candidate colours, the colours that part takes anywhere in the data set.

Typical use (demo report)::

    imgs = from_tanh(fake)                                  # [N,3,H,W] in [-1,1] -> uint8 [N,H,W,3]
    pred = score_parts(imgs, records, candidates)           # records[i]: attributes of caption i's image
    acc = accuracy(pred["body"], [r["body_colour"] for r in records])

Numpy only (no torch import), so the generator and this scorer stay usable without a model.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from functools import lru_cache
from typing import Any, Mapping, NamedTuple, Optional, Sequence

import numpy as np

from miscc.metrics import bird_geometry as geo

# CUB's 15 colour names. Chosen pairwise far apart (nearest pair ~50 in RGB) and away from the muted
# backgrounds; 'iridescent' is drawn as a teal sheen between IRIDESCENT_SHEEN's two ends.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (205, 30, 35),
    "orange": (245, 135, 25),
    "yellow": (245, 215, 45),
    "olive": (115, 120, 40),
    "green": (45, 150, 60),
    "blue": (40, 80, 210),
    "iridescent": (20, 160, 170),
    "purple": (125, 50, 160),
    "pink": (240, 145, 180),
    "rufous": (165, 80, 35),
    "brown": (100, 65, 40),
    "buff": (225, 195, 145),
    "grey": (140, 140, 140),
    "black": (25, 25, 25),
    "white": (245, 245, 245),
}
NAMES: tuple[str, ...] = tuple(PALETTE)
IRIDESCENT_SHEEN = (np.array([10.0, 172.0, 150.0]), np.array([35.0, 142.0, 188.0]))
_RGB = np.array([PALETTE[n] for n in NAMES], dtype=np.float32)

# Parts the scorer can locate, with the attribute that holds their colour and the labels they cover.
SCORED_PARTS: dict[str, tuple[str, tuple[int, ...]]] = {
    "body": ("body_colour", (geo.BODY,)),
    "head": ("head_colour", (geo.HEAD,)),
    "wing": ("wing_colour", (geo.WING,)),
    "tail": ("tail_colour", (geo.TAIL,)),
}
MAX_SHIFT = 1 / 8   # of the side: random 64-of-76 crops move the bird by up to 6/64
SHIFT_STEP = 1 / 32

# Muted = grey-ish mid tones: the synthetic backgrounds (saturation <= 0.24, value 0.5-0.76).
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


def nearest_colour_name(rgb: Sequence[float], candidates: Sequence[str] = NAMES) -> str:
    """Name among ``candidates`` nearest (Euclidean RGB) to one colour given as 0-255 values."""
    return vote(np.asarray(rgb, dtype=np.float32)[None], candidates)


def vote(pixels: np.ndarray, candidates: Sequence[str] = NAMES) -> str:
    """Majority over pixels [N, 3] of their nearest candidate colour (ties: first candidate)."""
    if not len(candidates):
        raise ValueError("no candidate colours")
    unknown = sorted(set(candidates) - set(NAMES))
    if unknown:
        raise ValueError(f"unknown colour name(s) {unknown}; palette: {list(NAMES)}")
    ref = np.array([PALETTE[c] for c in candidates], dtype=np.float32)
    p = np.asarray(pixels, dtype=np.float32).reshape(-1, 3)
    nearest = ((p[:, None, :] - ref[None]) ** 2).sum(-1).argmin(-1)
    return candidates[int(np.bincount(nearest, minlength=len(candidates)).argmax())]


def _shift(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(mask)
    h, w = mask.shape
    out[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)] = \
        mask[max(0, -dy):h + min(0, -dy), max(0, -dx):w + min(0, -dx)]
    return out


def _erode(mask: np.ndarray, r: int) -> np.ndarray:
    for _ in range(r):
        m = mask.copy()
        for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            m &= _shift(mask, dy, dx)
        mask = m
    return mask


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    for _ in range(r):
        m = mask.copy()
        for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            m |= _shift(mask, dy, dx)
        mask = m
    return mask


@lru_cache(maxsize=16)  # ~13 MB each at 64 px; a test split has a few shapes
def _hypotheses(geometry: geo.Geometry, size: int) -> tuple[np.ndarray, np.ndarray, list]:
    """Region indicators for every placement: M [hyp * regions, pixels], counts, placements.

    Regions per placement: the scored parts (eroded, so jitter and blur stay inside) and the
    background (outside the dilated bird); the ring between them is ignored.
    """
    r = max(1, round(size / 64))
    step, reach = max(1, round(SHIFT_STEP * size)), round(MAX_SHIFT * size)
    shifts = range(-reach, reach + 1, step)
    rows, placements = [], []
    for mirror in (False, True):
        labels = geo.crop_layout(geometry, size, mirror)
        regions = [_erode(np.isin(labels, labs), r) for _, labs in SCORED_PARTS.values()]
        regions.append(~_dilate(labels > 0, 2 * r))
        for dy in shifts:
            for dx in shifts:
                placements.append((mirror, dy, dx))
                for k, region in enumerate(regions):
                    moved = _shift(region, dy, dx)
                    if k == len(regions) - 1:  # background: what enters the frame is background too
                        moved |= ~_shift(np.ones_like(region), dy, dx)
                    rows.append(moved.reshape(-1))
    m = np.stack(rows).astype(np.float32)
    return m, m.sum(1), placements


def locate(images: np.ndarray, geometry: geo.Geometry) -> list[tuple[bool, int, int]]:
    """Best placement (mirrored?, dy, dx) of the layout prior in each uint8 image [N, S, S, 3]."""
    n, size = images.shape[0], images.shape[1]
    m, counts, placements = _hypotheses(geometry, size)
    x = images.reshape(n, -1, 3).astype(np.float32) / 255.0
    sums = (m @ x.transpose(1, 0, 2).reshape(x.shape[1], -1)).reshape(len(m), n, 3)  # [R, N, 3]
    squares = m @ (x ** 2).sum(-1).T                                                 # [R, N]
    sse = (squares - (sums ** 2).sum(-1) / np.maximum(counts, 1)[:, None]).T         # [N, R]
    k = len(SCORED_PARTS) + 1
    per_hyp = sse.reshape(n, -1, k).sum(-1) / counts.reshape(-1, k).sum(-1)
    return [placements[i] for i in per_hyp.argmin(1)]


@lru_cache(maxsize=256)
def _part_region(geometry: geo.Geometry, size: int, mirror: bool, part: str) -> np.ndarray:
    labels = geo.crop_layout(geometry, size, mirror)
    full = np.isin(labels, SCORED_PARTS[part][1])
    return np.stack([_erode(full, max(1, round(size / 64))), full])


def _part_pixels(image: np.ndarray, geometry: geo.Geometry, placement: tuple[bool, int, int],
                 part: str) -> np.ndarray:
    mirror, dy, dx = placement
    eroded, full = _part_region(geometry, image.shape[0], mirror, part)
    region = _shift(eroded, dy, dx)
    if not region.any():  # shifted out of the frame: fall back to the unshifted part
        region = full
    return image[region]


def score_parts(images_uint8: np.ndarray, records: Sequence[Mapping[str, Any]],
                candidates: Mapping[str, Sequence[str]], parts: Sequence[str] = ("body", "head", "wing")
                ) -> dict[str, list[str]]:
    """Predicted colour of each part of each square image [N, S, S, 3] (uint8).

    ``records[i]`` holds the shape attributes of the bird image i should show (its caption's image),
    which fix the layout prior; ``candidates[part]`` the colour names to choose from. A key
    ``"<part>:all"`` in ``candidates`` (e.g. ``{"body": ..., "body:all": NAMES}``) also votes that
    part's pixels over another set, returned under the same key, at no extra locating cost.
    """
    images = np.asarray(images_uint8)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"expected square images [N, S, S, 3], got shape {images.shape}")
    if len(images) != len(records):
        raise ValueError(f"{len(images)} images but {len(records)} attribute records")
    bad = [p for p in parts if p not in SCORED_PARTS]
    if bad:
        raise ValueError(f"cannot score part(s) {bad}; scorable: {list(SCORED_PARTS)}")
    extra = {k: k.split(":")[0] for k in candidates if ":" in k and k.split(":")[0] in parts}
    out: dict[str, list[str]] = {p: [""] * len(images) for p in [*parts, *extra]}
    groups: dict[geo.Geometry, list[int]] = {}
    for i, rec in enumerate(records):
        groups.setdefault(geo.Geometry.from_attributes(rec), []).append(i)
    for geometry, idx in groups.items():
        for start in range(0, len(idx), 256):  # bounded memory for the [R, N] products
            chunk = idx[start:start + 256]
            for i, placement in zip(chunk, locate(images[chunk], geometry)):
                for p in parts:
                    pixels = _part_pixels(images[i], geometry, placement, p)
                    out[p][i] = vote(pixels, candidates[p])
                    for key in (k for k, part in extra.items() if part == p):
                        out[key][i] = vote(pixels, candidates[key])
    return out


def candidate_colours(records: Sequence[Mapping[str, Any]], parts: Sequence[str] = tuple(SCORED_PARTS)
                      ) -> dict[str, tuple[str, ...]]:
    """Colours each part takes in ``records`` (in palette order): what the scorer chooses among."""
    return {p: tuple(c for c in NAMES if c in {r[SCORED_PARTS[p][0]] for r in records}) for p in parts}


def accuracy(predicted: Sequence[str], expected: Sequence[str]) -> float:
    if len(predicted) != len(expected) or not len(expected):
        raise ValueError(f"need equally many predictions and labels, got {len(predicted)} and {len(expected)}")
    return float(np.mean([p == e for p, e in zip(predicted, expected)]))


def body_colour_accuracy(images_uint8: np.ndarray, records: Sequence[Mapping[str, Any]],
                         candidates: Optional[Sequence[str]] = None) -> float:
    """Fraction of images whose located body has the record's ``body_colour``."""
    cands = candidate_colours(records, ("body",))["body"] if candidates is None else tuple(candidates)
    pred = score_parts(images_uint8, records, {"body": cands}, ("body",))["body"]
    return accuracy(pred, [r["body_colour"] for r in records])


def chance_level(labels: Sequence[str]) -> float:
    """Expected accuracy of an image-blind guesser that follows the label frequencies.

    Equals the expected score with the labels shuffled: sum over colours of p(colour)^2.
    """
    if len(labels) == 0:
        raise ValueError("no colour names")
    n = len(labels)
    return float(sum((c / n) ** 2 for c in Counter(labels).values()))


def shuffled_baseline(predicted: Sequence[str], expected: Sequence[str]) -> float:
    """Expected accuracy if the images were matched to random captions: sum_c p_pred(c) p_label(c).

    The chance level of *this* scorer on *these* images, including any bias of the scorer.
    """
    n = len(expected)
    pe, pp = Counter(expected), Counter(predicted)
    return float(sum(pe[c] * pp[c] for c in pe) / (n * n))


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
    """Ground truth written by ``tools.birds.make_birds``: key -> attributes (see that module)."""
    path = os.path.join(os.fspath(data_dir), f"attributes_{split}.json")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class BodyColourTruth(NamedTuple):
    """What the body-colour metric checks images against: each test key's attributes, and the body
    colours of the whole test split (every image is scored among all of them, not only its own)."""
    attributes: dict[str, dict[str, Any]]
    candidates: tuple[str, ...]


def body_colour_truth(data_dir: str | os.PathLike, keys: Sequence[str]) -> BodyColourTruth:
    """The test split's ground truth; KeyError when an image of ``keys`` has no ``body_colour``."""
    attributes = load_attributes(data_dir, "test")
    if not all("body_colour" in attributes[key] for key in keys):
        raise KeyError("body_colour")
    return BodyColourTruth(attributes, candidate_colours(list(attributes.values()), ("body",))["body"])


def body_colour_hits(images_uint8: np.ndarray, keys: Sequence[str], truth: BodyColourTruth) -> list[float]:
    """1.0 or 0.0 per image [N, S, S, 3]: does its located body have the colour of its key's bird?"""
    return [body_colour_accuracy(images_uint8[i:i + 1], [truth.attributes[key]], truth.candidates)
            for i, key in enumerate(keys)]


def frequency_chance(colours: Sequence[str]) -> float:
    """Accuracy of an image-blind guesser that follows the colour frequencies: sum of p(colour)^2
    (``chance_level``'s value, summed as numpy sums it)."""
    _, counts = np.unique(np.asarray(colours), return_counts=True)
    return float(((counts / len(colours)) ** 2).sum())
