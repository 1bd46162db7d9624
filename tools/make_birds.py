"""Write a small synthetic bird data set in exactly the CUB / AttnGAN layout ``datasets.py`` reads.

    python -m tools.make_birds OUT_DIR [--classes 20] [--per-class 30] [--seed 0] [--size W H]

Each class is a species with its own colours (body, wing + tail, head, beak), body shape, beak and
tail length and size; each image draws one bird of that species at a random position, scale and
facing on a muted background, sometimes perched on a branch. Every one of the 10 captions per image
names the body colour (the long ones twice, so it usually survives the 18-word subsampling), which is
what lets a tiny GAN demo show that the body colour follows the text (``tools/colour_score.py``).

Output (OUT_DIR should contain ``birds`` in its name, or keep ``DATASET_NAME: birds``)::

    CUB_200_2011/images/<class>/<name>.jpg   CUB_200_2011/images.txt   CUB_200_2011/bounding_boxes.txt
    text/<class>/<name>.txt                  (10 captions, one per line)
    train/filenames.pickle train/class_info.pickle test/filenames.pickle test/class_info.pickle
    attributes_train.json attributes_test.json   (key -> ground truth, see ``_attributes``)
    SYNTHETIC.txt                            (the parameters; marks the folder as ours)

Classes are split like CUB: disjoint, the last ~25% of the classes are the test split. Output is
byte-identical for the same arguments. No ``captions.pickle`` is written: ``datasets.TextDataset``
builds it on first use, as it does for real CUB text.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import pickle
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

from miscc.errors import SSAGANError
from tools.colour_score import NAMES, PALETTE

DEFAULT_SIZE = (192, 144)
MARKER = "SYNTHETIC.txt"
_OWNED = ("CUB_200_2011", "text", "train", "test", "captions.pickle", "attributes_train.json",
          "attributes_test.json", MARKER)

BEAK_COLOURS = ("yellow", "orange", "black", "red", "white")
NOUNS = ("Finch", "Warbler", "Sparrow", "Tanager", "Wren", "Bunting", "Vireo", "Flycatcher",
         "Grosbeak", "Oriole", "Thrush", "Kinglet")
SIZE_FRACTION = {"small": (0.40, 0.52), "medium": (0.52, 0.66), "large": (0.66, 0.80)}
BODY_RATIO = {"round": 0.8, "slim": 0.62}
BEAK_LEN = {"short": 0.22, "long": 0.46}
TAIL_LEN = {"short": 0.35, "long": 0.7}
LEG_COLOUR = (70, 60, 50)
BRANCH_COLOUR = (112, 104, 92)  # muted on purpose: must not compete with body colours


@dataclass(frozen=True)
class Species:
    class_id: int  # 1-based, the number in the folder name, like CUB
    folder: str
    name: str
    body: str
    wing: str
    head: str
    beak: str
    size: str
    shape: str
    beak_length: str
    tail_length: str


def _species(n_classes: int, rng: np.random.RandomState) -> list[Species]:
    # Body colours cycle through a shuffled palette: with >= 8 training classes (the first 75%) every
    # colour is seen in training, and the test classes reuse colours with new wing/head combinations.
    order = [NAMES[i] for i in rng.permutation(len(NAMES))]
    out = []
    for i in range(n_classes):
        body = order[i % len(order)]
        wing = str(rng.choice([c for c in NAMES if c != body]))
        head = str(rng.choice(NAMES))
        beak = str(rng.choice([c for c in BEAK_COLOURS if c != head]))  # visible against the head
        noun = NOUNS[int(rng.randint(len(NOUNS)))]
        name = f"{body.capitalize()}_{wing.capitalize()}winged_{noun}"
        out.append(Species(
            class_id=i + 1, folder=f"{i + 1:03d}.{name}", name=name, body=body, wing=wing, head=head,
            beak=beak, size=str(rng.choice(list(SIZE_FRACTION))), shape=str(rng.choice(list(BODY_RATIO))),
            beak_length=str(rng.choice(list(BEAK_LEN))), tail_length=str(rng.choice(list(TAIL_LEN)))))
    return out


def _muted(rng: np.random.RandomState) -> np.ndarray:
    h = rng.uniform(0, 1)
    s = rng.uniform(0.06, 0.22)
    v = rng.uniform(0.5, 0.75)
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb) * 255.0


def _background(w: int, h: int, rng: np.random.RandomState) -> Image.Image:
    top, bottom = _muted(rng), _muted(rng)
    ramp = np.linspace(0.0, 1.0, h)[:, None, None]
    arr = np.broadcast_to(top * (1 - ramp) + bottom * ramp, (h, w, 3))
    img = Image.fromarray(np.ascontiguousarray(arr).round().astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.randint(3, 7))):  # out-of-focus foliage / rocks
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        rx, ry = rng.uniform(0.08, 0.3) * w, rng.uniform(0.08, 0.3) * h
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=tuple(int(c) for c in _muted(rng)))
    return img


def _jitter(colour: str, rng: np.random.RandomState) -> tuple[int, int, int]:
    base = np.array(PALETTE[colour], dtype=np.float64)
    return tuple(int(c) for c in np.clip(base + rng.uniform(-10, 10, 3), 0, 255).round())


def _ellipse_points(cx: float, cy: float, rx: float, ry: float, angle: float, n: int = 28):
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    x, y = rx * np.cos(t), ry * np.sin(t)
    ca, sa = math.cos(angle), math.sin(angle)
    return list(zip(cx + x * ca - y * sa, cy + x * sa + y * ca))


def _bird_parts(sp: Species) -> dict[str, list[tuple[float, float]]]:
    """Bird facing right in local units (body = ellipse of half-width 1 at the origin, y down)."""
    b = BODY_RATIO[sp.shape]
    rh = 0.42
    hx, hy = 0.78, -0.62 * b - 0.05
    beak_len = BEAK_LEN[sp.beak_length]
    tail = TAIL_LEN[sp.tail_length]
    leg_top, leg_len = 0.93 * b, 0.3
    return {
        "tail": [(-0.78, -0.2 * b), (-0.78 - tail, -0.45 * b), (-0.78 - 0.9 * tail, 0.15 * b),
                 (-0.78, 0.2 * b)],
        "leg0": [(0.0, leg_top), (0.0, leg_top + leg_len)],
        "leg1": [(0.25, leg_top), (0.25, leg_top + leg_len)],
        "body": _ellipse_points(0.0, 0.0, 1.0, b, 0.0),
        # Kept smaller than the body and towards the back so the crop centre stays body-coloured.
        "wing": _ellipse_points(-0.42, -0.3 * b, 0.48, 0.32 * b, -0.25),
        "head": _ellipse_points(hx, hy, rh, rh, 0.0),
        "beak": [(hx + 0.85 * rh, hy - 0.13), (hx + 0.85 * rh, hy + 0.13), (hx + rh + beak_len, hy + 0.02)],
        "eye_ring": _ellipse_points(hx + 0.35 * rh, hy - 0.25 * rh, 0.1, 0.1, 0.0, 12),
        "eye": _ellipse_points(hx + 0.35 * rh, hy - 0.25 * rh, 0.06, 0.06, 0.0, 10),
    }


def _draw_image(sp: Species, size: tuple[int, int], rng: np.random.RandomState) -> tuple[bytes, dict]:
    w, h = size
    img = _background(w, h, rng)
    facing = "right" if rng.rand() < 0.5 else "left"
    sign = 1.0 if facing == "right" else -1.0
    parts = _bird_parts(sp)
    pts = np.array([p for poly in parts.values() for p in poly])
    pts[:, 0] *= sign
    lo, hi = pts.min(0), pts.max(0)
    extent = hi - lo
    # Scale the bird so its larger bbox side is a class-dependent fraction of the shorter image
    # side; the position is free, so the 1.5x bbox crop is sometimes clipped by the border (as in CUB).
    frac = rng.uniform(*SIZE_FRACTION[sp.size])
    scale = min(frac * min(w, h), w - 4, h - 4) / extent.max()
    bw, bh = extent * scale
    left = rng.uniform(2, w - 2 - bw)
    top = rng.uniform(2, h - 2 - bh)

    def px(poly):
        return [(left + (sign * x - lo[0]) * scale, top + (y - lo[1]) * scale) for x, y in poly]

    draw = ImageDraw.Draw(img)
    perched = bool(rng.rand() < 0.5)
    if perched:
        feet_y = top + bh
        thick = max(2.0, 0.12 * scale)
        x0, x1 = rng.uniform(0, left + 0.3 * bw), rng.uniform(left + 0.7 * bw, w)
        draw.rectangle([x0, feet_y - thick / 3, x1, feet_y + 2 * thick / 3], fill=BRANCH_COLOUR)
    colours = {
        "tail": _jitter(sp.wing, rng), "body": _jitter(sp.body, rng), "wing": _jitter(sp.wing, rng),
        "head": _jitter(sp.head, rng), "beak": _jitter(sp.beak, rng),
    }
    draw.polygon(px(parts["tail"]), fill=colours["tail"])
    for leg in ("leg0", "leg1"):
        draw.line(px(parts[leg]), fill=LEG_COLOUR, width=max(1, int(round(0.06 * scale))))
    for part in ("body", "wing", "head", "beak"):
        draw.polygon(px(parts[part]), fill=colours[part])
    draw.polygon(px(parts["eye_ring"]), fill=(240, 240, 240))
    draw.polygon(px(parts["eye"]), fill=(15, 15, 15))

    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=92)
    x, y = math.floor(left), math.floor(top)
    bbox = [float(x), float(y), float(min(w - x, math.ceil(left + bw) - x)),
            float(min(h - y, math.ceil(top + bh) - y))]
    return buf.getvalue(), {"facing": facing, "perched": perched, "bbox": bbox}


# Short/medium templates; {B} body, {W} wing, {H} head, {K} beak colour, {bl} beak length,
# {tl} tail length, {S} size word, {P} shape word, {beak} beak/bill, {crown} crown/head.
_TEMPLATES = (
    "this bird has a {B} body, {W} wings and a {bl} {K} {beak}.",
    "a {S} {B} bird with a {H} {crown} and {W} wings.",
    "this is a {B} bird with a {H} {crown} and a {bl} {K} {beak}.",
    "the bird has a {B} belly, a {H} head, {W} wing feathers and a {tl} tail.",
    "a {P} bird that is mostly {B} with {W} wings.",
    "{B} bird with {W} wings.",
    "the {B} bird has {W} secondaries, a {H} nape and a {K} {beak}.",
    "{B} body, {H} head, {W} wings, {K} {beak}.",
    "this is a {S} bird with a {B} breast and a {tl} {W} tail.",
    "the bird is {B} with a {bl} {K} {beak}.",
    "a bird {where} with a {B} body and {W} wings.",
    "this bird has a {B} body and a {H} {crown}, its wings are {W} and it has a {K} {beak}.",
    "a {P} {B} bird with a {tl} tail.",
)
# Longer than 18 words; they name the body colour twice so that the random 18-word subset the
# dataset keeps usually still contains it.
_LONG_TEMPLATES = (
    "this bird has a {B} breast and belly, a {H} head, a {bl} {K} {beak} and {W} wings with a {tl} {W} "
    "tail and a {B} rump.",
    "a {S} {P} bird with a {B} body, its {H} head has a small black eye and a {bl} {K} {beak}, and its "
    "wings are {W} over the {B} back.",
    "this {B} bird is {B} all over its body except for the {W} wings, the {H} {crown} and the {bl} {K} "
    "{beak}, and it has a {tl} tail.",
)
_AN = re.compile(r"\ba (?=[aeiou])")
_SIZE_WORDS = {"small": ("small", "tiny", "little"), "medium": ("medium sized", "medium"),
               "large": ("large", "big")}
_SHAPE_WORDS = {"round": ("round", "plump", "chubby"), "slim": ("slim", "slender", "thin")}


def _captions(sp: Species, perched: bool, rng: np.random.RandomState) -> list[str]:
    picks = [_LONG_TEMPLATES[i] for i in rng.choice(len(_LONG_TEMPLATES), 2, replace=False)]
    picks += [_TEMPLATES[i] for i in rng.choice(len(_TEMPLATES), 8, replace=False)]
    out = []
    for k in rng.permutation(len(picks)):
        out.append(_AN.sub("an ", picks[k].format(
            B=sp.body, W=sp.wing, H=sp.head, K=sp.beak, bl=sp.beak_length, tl=sp.tail_length,
            S=str(rng.choice(_SIZE_WORDS[sp.size])), P=str(rng.choice(_SHAPE_WORDS[sp.shape])),
            beak=str(rng.choice(("beak", "bill"))), crown=str(rng.choice(("crown", "head"))),
            where="perched on a branch" if perched else str(rng.choice(("standing", "on the ground"))))))
    return out


def _attributes(sp: Species, extra: dict) -> dict:
    """The JSON record of one image (all colours are names from ``tools.colour_score.PALETTE``)."""
    return {
        "class_id": sp.class_id, "species": sp.name,
        "body_colour": sp.body, "wing_colour": sp.wing, "tail_colour": sp.wing,
        "head_colour": sp.head, "beak_colour": sp.beak,
        "size": sp.size, "shape": sp.shape, "beak_length": sp.beak_length, "tail_length": sp.tail_length,
        "facing": extra["facing"], "perched": extra["perched"], "bbox": extra["bbox"],
    }


def _prepare_out_dir(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise SSAGANError(
                f"{out} is not empty and was not written by tools.make_birds (no {MARKER}); "
                f"choose an empty or new folder, e.g. data/birds_synth.")
        for name in _OWNED:  # a stale captions.pickle would silently mismatch the new text
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)


def make_birds(out_dir: str | os.PathLike, classes: int = 20, per_class: int = 30, seed: int = 0,
               size: tuple[int, int] = DEFAULT_SIZE) -> dict[str, int]:
    """Write the data set; returns the number of images per split, {'train': n, 'test': m}."""
    if classes < 2:
        raise SSAGANError(f"--classes must be >= 2 (one train and one test class), got {classes}")
    if per_class < 1:
        raise SSAGANError(f"--per-class must be >= 1, got {per_class}")
    if min(size) < 32:
        raise SSAGANError(f"--size must be at least 32x32, got {size[0]}x{size[1]}")
    out = Path(out_dir)
    _prepare_out_dir(out)
    rng = np.random.RandomState(seed)
    species = _species(classes, rng)
    n_test = max(1, int(round(0.25 * classes)))
    split_of = {sp.class_id: ("train" if i < classes - n_test else "test") for i, sp in enumerate(species)}

    image_rows, bbox_rows = [], []
    names: dict[str, list[str]] = {"train": [], "test": []}
    class_info: dict[str, list[int]] = {"train": [], "test": []}
    attributes: dict[str, dict] = {"train": {}, "test": {}}
    for sp in species:
        (out / "CUB_200_2011" / "images" / sp.folder).mkdir(parents=True, exist_ok=True)
        (out / "text" / sp.folder).mkdir(parents=True, exist_ok=True)
        for j in range(per_class):
            key = f"{sp.folder}/{sp.name}_{j + 1:04d}"
            jpeg, extra = _draw_image(sp, size, rng)
            (out / "CUB_200_2011" / "images" / f"{key}.jpg").write_bytes(jpeg)
            caps = _captions(sp, extra["perched"], rng)
            (out / "text" / f"{key}.txt").write_text("\n".join(caps) + "\n", encoding="utf-8")
            image_rows.append(f"{len(image_rows) + 1} {key}.jpg")
            bbox_rows.append(f"{len(bbox_rows) + 1} " + " ".join(f"{v:.1f}" for v in extra["bbox"]))
            split = split_of[sp.class_id]
            names[split].append(key)
            class_info[split].append(sp.class_id)
            attributes[split][key] = _attributes(sp, extra)

    (out / "CUB_200_2011" / "images.txt").write_text("\n".join(image_rows) + "\n")
    (out / "CUB_200_2011" / "bounding_boxes.txt").write_text("\n".join(bbox_rows) + "\n")
    for split in ("train", "test"):
        (out / split).mkdir(exist_ok=True)
        with open(out / split / "filenames.pickle", "wb") as f:
            pickle.dump(names[split], f, protocol=2)
        with open(out / split / "class_info.pickle", "wb") as f:
            pickle.dump(class_info[split], f, protocol=2)
        (out / f"attributes_{split}.json").write_text(
            json.dumps(attributes[split], indent=1, sort_keys=True) + "\n", encoding="utf-8")
    (out / MARKER).write_text(
        "Synthetic CUB-layout bird set written by `python -m tools.make_birds`.\n"
        f"classes={classes} per_class={per_class} seed={seed} size={size[0]}x{size[1]}\n"
        f"train classes={classes - n_test} ({len(names['train'])} images), "
        f"test classes={n_test} ({len(names['test'])} images)\n")
    return {"train": len(names["train"]), "test": len(names["test"])}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.make_birds", description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", help="output folder (e.g. data/birds_synth)")
    parser.add_argument("--classes", type=int, default=20, help="number of species (default 20)")
    parser.add_argument("--per-class", type=int, default=30, help="images per species (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--size", type=int, nargs=2, metavar=("W", "H"), default=list(DEFAULT_SIZE),
                        help=f"image width and height (default {DEFAULT_SIZE[0]} {DEFAULT_SIZE[1]})")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        counts = make_birds(args.out_dir, args.classes, args.per_class, args.seed, tuple(args.size))
    except SSAGANError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {counts['train']} train + {counts['test']} test images to {args.out_dir} "
          f"in {time.perf_counter() - start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
