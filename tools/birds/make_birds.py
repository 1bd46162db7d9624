"""Write a synthetic CUB-like bird data set in exactly the CUB / AttnGAN layout ``datasets.py`` reads.

    python -m tools.birds.make_birds OUT_DIR [--classes 20] [--per-class 30] [--seed 0] [--size W H]
                               [--body-colours yellow red ...] [--facing both|right|left]
                               [--parts species|image]

Species differ in the parts and attributes CUB-200-2011 annotates: breast/belly (body), crown/head,
wing and tail colour from CUB's 15 colour names, bill colour, shape (cone, pointed, curved, hooked)
and length relative to the head, eye ring or eyebrow, wing bars, a spotted or striped breast, leg
colour, size and body shape, tail length. Each image draws one bird of its species in a perched side
view (pose, colour, lighting and position jittered; facing left or right, or one way with ``--facing``;
sometimes on a branch) on a blurred, muted background, and gets 10 captions in CUB annotators'
phrasings (``tools.birds.bird_captions``).

``--parts image`` draws the crown (head) and wing colours of every image anew, from the body colours
and never the image's own body colour, instead of fixing them per species (the tail takes the wing's
colour), and every caption names both. With ``species`` (the default, like CUB) a part colour belongs
to one to three species and the test species' crowns and wings take colours no training species has,
so a model can only learn them through the species; drawn per image they vary independently of the
body and the species, and every colour is seen in both splits (the CPU demo uses this).
Part geometry lives in ``miscc.metrics.bird_geometry``, shared with the part-locating scorer
(``miscc.metrics.colour``).

Output (OUT_DIR should contain ``birds`` in its name, or keep ``DATASET_NAME: birds``)::

    CUB_200_2011/images/<class>/<name>.jpg   CUB_200_2011/images.txt   CUB_200_2011/bounding_boxes.txt
    text/<class>/<name>.txt                  (10 captions, one per line)
    train/filenames.pickle train/class_info.pickle test/filenames.pickle test/class_info.pickle
    attributes_train.json attributes_test.json   (key -> ground truth, see ``_attributes``)
    SYNTHETIC.txt                            (the parameters; marks the folder as ours)

Classes are split like CUB: disjoint, the last ~25% of the classes are the test split; body colours
cycle so that every body colour has training species and, with enough classes, a test species.
Output is byte-identical for the same arguments. No ``captions.pickle`` is written:
``datasets.TextDataset`` builds it on first use, as it does for real CUB text.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import pickle
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

from miscc.errors import SSAGANError
from tools.birds.bird_captions import captions as write_captions
from miscc.metrics.bird_geometry import (BILL_SHAPES, BODY_RATIO, PART_IDS, TAIL_LEN, Geometry, Pose, bird_parts,
                                 bounds, rasterise)
from miscc.metrics.colour import IRIDESCENT_SHEEN, NAMES, PALETTE

DEFAULT_SIZE = (192, 144)
# Body colours of the default set: far apart in colour, so a small demo GAN can be scored on them.
DEFAULT_BODY_COLOURS = ("yellow", "red", "blue", "black", "white")
MARKER = "SYNTHETIC.txt"
FACINGS = ("both", "right", "left")
PART_RULES = ("species", "image")
_OWNED = ("CUB_200_2011", "text", "train", "test", "captions.pickle", "attributes_train.json",
          "attributes_test.json", MARKER)

BILL_COLOURS = ("black", "grey", "yellow", "orange", "red", "pink", "brown", "white")
LEG_COLOURS = ("black", "grey", "pink", "orange", "brown", "yellow")
MARK_COLOURS = ("white", "yellow", "black", "orange")
WINGBAR_COLOURS = ("white", "yellow", "black", "buff")
PATTERN_COLOURS = ("brown", "black", "grey", "rufous", "olive")
BILL_LENGTHS = {"cone": ("short",), "pointed": ("short", "medium", "long"), "curved": ("medium", "long"),
                "hooked": ("short", "medium")}
NOUNS = ("Finch", "Warbler", "Sparrow", "Tanager", "Wren", "Bunting", "Vireo", "Flycatcher",
         "Grosbeak", "Oriole", "Thrush", "Kinglet", "Tern", "Cardinal", "Jay", "Grackle")
# Longer bbox side as a fraction of the shorter image side: at most 1/1.5, so the CUB crop (a square
# of 1.5 x the longer side around the box) always fits and the bird sits at the crop's centre.
SIZE_FRACTION = {"small": (0.42, 0.50), "medium": (0.50, 0.58), "large": (0.58, 0.66)}
BRANCH_COLOUR = (112, 104, 92)  # muted on purpose: must not compete with the bird's colours
SUPERSAMPLE = 2


@dataclass(frozen=True)
class Species:
    class_id: int  # 1-based, the number in the folder name, like CUB
    folder: str
    name: str
    body_colour: str
    head_colour: str
    wing_colour: str
    tail_colour: str
    bill_colour: str
    leg_colour: str
    eye_mark_colour: str
    wingbar_colour: str
    pattern: str          # solid | spotted | striped (breast)
    pattern_colour: str
    size: str             # small | medium | large (of the bird in the photo)
    shape: str            # Geometry fields from here on
    tail_length: str
    bill_shape: str
    bill_length: str
    eye_mark: str
    wingbars: int

    @property
    def geometry(self) -> Geometry:
        return Geometry.from_attributes(asdict(self))


def _pick(rng: np.random.RandomState, options: Sequence[str], avoid: Sequence[str] = ()) -> str:
    allowed = [o for o in options if o not in avoid]
    return allowed[int(rng.randint(len(allowed)))]


def _species(n_classes: int, body_colours: Sequence[str], rng: np.random.RandomState,
             named_by_crown: bool = True) -> list[Species]:
    # Body colours cycle through a shuffled order: every colour gets training species (the first 75%)
    # and, with at least len(body_colours) test classes, each colour also gets a test species.
    order = [body_colours[i] for i in rng.permutation(len(body_colours))]
    out = []
    for i in range(n_classes):
        body = order[i % len(order)]
        head = body if rng.rand() < 0.3 else _pick(rng, NAMES, (body,))
        wing = _pick(rng, NAMES, (body,))
        tail = wing if rng.rand() < 0.6 else _pick(rng, NAMES)
        bill_shape = _pick(rng, BILL_SHAPES)
        eye_mark = _pick(rng, ("none", "none", "ring", "eyebrow"))
        pattern = _pick(rng, ("solid",) * 5 + ("spotted", "striped"))
        noun = NOUNS[int(rng.randint(len(NOUNS)))]
        # (drawn either way, so that a species is the same bird under both --parts rules)
        name = (f"{body.capitalize()}_{noun}" if head == body or not named_by_crown
                else f"{head.capitalize()}_crowned_{body.capitalize()}_{noun}")
        out.append(Species(
            class_id=i + 1, folder=f"{i + 1:03d}.{name}", name=name, body_colour=body, head_colour=head,
            wing_colour=wing, tail_colour=tail, bill_colour=_pick(rng, BILL_COLOURS, (head,)),
            leg_colour=_pick(rng, LEG_COLOURS), eye_mark_colour=_pick(rng, MARK_COLOURS, (head,)),
            wingbar_colour=_pick(rng, WINGBAR_COLOURS, (wing,)), pattern=pattern,
            pattern_colour=_pick(rng, PATTERN_COLOURS, (body,)), size=_pick(rng, ("small", "medium", "large")),
            shape=_pick(rng, tuple(BODY_RATIO)), tail_length=_pick(rng, tuple(TAIL_LEN)),
            bill_shape=bill_shape, bill_length=_pick(rng, BILL_LENGTHS[bill_shape]), eye_mark=eye_mark,
            wingbars=int(rng.choice([0, 0, 0, 1, 2]))))
    return out


# What --parts image draws per image (tools.birds.bird_captions names them in every caption).
IMAGE_PARTS = ("head", "wing")


def _with_parts_of_image(sp: Species, colours: Sequence[str], rng: np.random.RandomState) -> Species:
    """The species with crown and wing colours of this image: any of ``colours`` but the body's; the
    tail follows the wing, the wing bars and eye marks keep off the new colours."""
    head = _pick(rng, colours, (sp.body_colour,))
    wing = _pick(rng, colours, (sp.body_colour,))
    return replace(sp, head_colour=head, wing_colour=wing, tail_colour=wing,
                   wingbar_colour=_pick(rng, WINGBAR_COLOURS, (wing,)),
                   eye_mark_colour=_pick(rng, MARK_COLOURS, (head,)),
                   bill_colour=sp.bill_colour if sp.bill_colour != head else _pick(rng, BILL_COLOURS, (head,)))


def _muted(rng: np.random.RandomState) -> np.ndarray:
    """A natural, low-saturation background tone (foliage, sky, bark), away from every bird colour."""
    h = rng.uniform(0, 1)
    s = rng.uniform(0.08, 0.24)
    v = rng.uniform(0.5, 0.76)
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb) * 255.0


def _background(w: int, h: int, rng: np.random.RandomState) -> Image.Image:
    """Muted gradient with out-of-focus foliage and rocks: drawn at 1/4 size, upsampled = blurred.

    Blobs stay close to the gradient behind them (15% of the way to another muted tone): a calm,
    out-of-focus backdrop like a telephoto bird photo, so a small GAN spends its capacity on the bird.
    """
    sw, sh = max(8, w // 4), max(8, h // 4)
    top, bottom = _muted(rng), _muted(rng)
    ramp = np.linspace(0.0, 1.0, sh)[:, None, None]
    arr = np.broadcast_to(top * (1 - ramp) + bottom * ramp, (sh, sw, 3))
    img = Image.fromarray(np.ascontiguousarray(arr).round().astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.randint(3, 8))):
        cx, cy = rng.uniform(0, sw), rng.uniform(0, sh)
        rx, ry = rng.uniform(0.08, 0.3) * sw, rng.uniform(0.08, 0.3) * sh
        behind = top * (1 - cy / sh) + bottom * cy / sh
        fill = 0.85 * behind + 0.15 * _muted(rng)
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=tuple(int(c) for c in fill))
    return img.resize((w, h), Image.BICUBIC)


def _part_colours(sp: Species, rng: np.random.RandomState) -> dict[int, np.ndarray]:
    colours = {"body": sp.body_colour, "wing": sp.wing_colour, "head": sp.head_colour, "tail": sp.tail_colour,
               "wingbar": sp.wingbar_colour, "bill": sp.bill_colour, "eye": "black",
               "eye_mark": sp.eye_mark_colour, "legs": sp.leg_colour, "pattern": sp.pattern_colour}
    return {PART_IDS[part]: np.clip(np.array(PALETTE[c], np.float64) + rng.uniform(-8, 8, 3), 0, 255)
            for part, c in colours.items()}


def _paint(labels: np.ndarray, sp: Species, rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    """RGB float image of the bird and its coverage mask, both at the label map's resolution."""
    lut = np.zeros((256, 3), np.float32)
    for lab, rgb in _part_colours(sp, rng).items():
        lut[lab] = rgb
    rgb = lut[labels]
    mask = labels > 0
    ys, xs = np.nonzero(mask)
    top, height = ys.min(), max(1, ys.max() - ys.min())
    # Light from above: the underside a little darker, so the bird reads as a body, not a sticker.
    light = rng.uniform(0.97, 1.03) * (1.05 - 0.11 * (np.arange(labels.shape[0]) - top) / height)
    light = light.astype(np.float32)
    rgb *= light[:, None, None]
    for part in ("body", "wing", "head", "tail"):
        if getattr(sp, f"{part}_colour") == "iridescent":  # sheen: hue drifts along the diagonal
            sel = labels == PART_IDS[part]
            t = ((np.arange(labels.shape[1])[None, :] + np.arange(labels.shape[0])[:, None])
                 / sum(labels.shape))[sel][:, None]
            rgb[sel] = IRIDESCENT_SHEEN[0] * (1 - t) + IRIDESCENT_SHEEN[1] * t
    return np.clip(rgb, 0, 255), mask


def _draw_image(sp: Species, size: tuple[int, int], rng: np.random.RandomState,
                facing_rule: str = "both") -> tuple[bytes, dict]:
    w, h = size
    img = _background(w, h, rng)
    drawn = "right" if rng.rand() < 0.5 else "left"  # drawn even when fixed: the same birds otherwise
    facing = drawn if facing_rule == "both" else facing_rule
    pose = Pose.random(rng)
    spots = ([(float(x), float(y)) for x, y in zip(rng.uniform(-0.1, 0.85, 9), rng.uniform(0.05, 0.85, 9))]
             if sp.pattern != "solid" else [])
    parts = bird_parts(sp.geometry, pose, spots, sp.pattern)
    lo, hi = bounds(parts)
    extent = hi - lo
    frac = rng.uniform(*SIZE_FRACTION[sp.size])
    scale = frac * min(w, h) / extent.max()  # pixels per unit
    bw, bh = extent * scale
    half = 0.75 * max(bw, bh)  # the CUB crop's half side: keep it inside the image
    cx, cy = rng.uniform(half, w - half), rng.uniform(half, h - half)
    left, top = cx - bw / 2, cy - bh / 2
    mirror = facing == "left"

    perched = bool(rng.rand() < 0.5)
    if perched:
        feet, thick = top + bh, max(2.0, 0.1 * scale)
        x0, x1 = rng.uniform(0, left + 0.3 * bw), rng.uniform(left + 0.7 * bw, w)
        ImageDraw.Draw(img).rectangle([x0, feet - thick / 3, x1, feet + 2 * thick / 3], fill=BRANCH_COLOUR)
    # The bird is drawn SUPERSAMPLE x larger inside its own window, then averaged down and blended:
    # anti-aliased edges at the cost of a small window instead of the whole image.
    k = SUPERSAMPLE
    x0, y0 = max(0, math.floor(left) - 1), max(0, math.floor(top) - 1)
    x1, y1 = min(w, math.ceil(left + bw) + 2), min(h, math.ceil(top + bh) + 2)
    offset_x = left - x0 + (hi[0] if mirror else -lo[0]) * scale
    offset_y = top - y0 - lo[1] * scale
    labels = rasterise(parts, ((x1 - x0) * k, (y1 - y0) * k), (offset_x * k, offset_y * k), scale * k,
                       mirror=mirror)
    bird, mask = _paint(labels, sp, rng)
    ww, wh = x1 - x0, y1 - y0
    alpha = mask.reshape(wh, k, ww, k).mean(axis=(1, 3))[..., None]
    colour = (bird * mask[..., None]).reshape(wh, k, ww, k, 3).mean(axis=(1, 3))
    canvas = np.asarray(img).copy()
    window = canvas[y0:y1, x0:x1].astype(np.float32)
    canvas[y0:y1, x0:x1] = np.clip(colour + window * (1 - alpha) + 0.5, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(canvas, "RGB").save(buf, format="JPEG", quality=92)
    x, y = math.floor(left), math.floor(top)
    bbox = [float(x), float(y), float(min(w - x, math.ceil(left + bw) - x)),
            float(min(h - y, math.ceil(top + bh) - y))]
    pose_record = {name: round(float(v), 4) for name, v in asdict(pose).items()}
    return buf.getvalue(), {"facing": facing, "perched": perched, "bbox": bbox, "pose": pose_record}


def _attributes(sp: Species, extra: dict) -> dict:
    """The JSON record of one image: every species attribute, colours by ``colour_score.PALETTE`` name.

    ``body_colour`` is the breast and belly (the largest area), ``head_colour`` the crown and nape,
    ``wing_colour`` the wings; ``breast_colour``/``belly_colour``/``crown_colour`` repeat them under
    CUB's part names.
    """
    record = {k: v for k, v in asdict(sp).items() if k != "folder"}
    record["species"] = record.pop("name")
    record.update(breast_colour=sp.body_colour, belly_colour=sp.body_colour, crown_colour=sp.head_colour)
    record.update(extra)
    return record


def _prepare_out_dir(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise SSAGANError(
                f"{out} is not empty and was not written by tools.birds.make_birds (no {MARKER}); "
                f"choose an empty or new folder, e.g. data/birds_synth.")
        for name in _OWNED:  # a stale captions.pickle would silently mismatch the new text
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _check(classes: int, per_class: int, size: tuple[int, int], body_colours: Sequence[str],
           facing: str = "both", parts: str = "species") -> None:
    if facing not in FACINGS:
        raise SSAGANError(f"--facing must be one of {', '.join(FACINGS)}, got {facing!r}")
    if parts not in PART_RULES:
        raise SSAGANError(f"--parts must be one of {', '.join(PART_RULES)}, got {parts!r}")
    if parts == "image" and len(body_colours) < 3:
        raise SSAGANError(f"--parts image draws crown and wing colours from the body colours other than the "
                          f"image's own: give at least 3 --body-colours, got {len(body_colours)}")
    if classes < 2:
        raise SSAGANError(f"--classes must be >= 2 (one train and one test class), got {classes}")
    if per_class < 1:
        raise SSAGANError(f"--per-class must be >= 1, got {per_class}")
    if min(size) < 32:
        raise SSAGANError(f"--size must be at least 32x32, got {size[0]}x{size[1]}")
    unknown = [c for c in body_colours if c not in PALETTE]
    if unknown or not body_colours or len(set(body_colours)) != len(body_colours):
        raise SSAGANError(f"--body-colours {' '.join(body_colours)}: give distinct names from "
                          f"{', '.join(NAMES)}" + (f" (unknown: {', '.join(unknown)})" if unknown else ""))


def make_birds(out_dir: str | os.PathLike, classes: int = 20, per_class: int = 30, seed: int = 0,
               size: tuple[int, int] = DEFAULT_SIZE,
               body_colours: Sequence[str] = DEFAULT_BODY_COLOURS, facing: str = "both",
               parts: str = "species") -> dict[str, int]:
    """Write the data set; returns the number of images per split, {'train': n, 'test': m}.

    ``facing``: ``both`` (each image left or right at random, like photographs) or ``right`` / ``left``
    (every bird that way; the CPU demo trains without random flips on such a set).
    ``parts``: ``species`` (crown and wing colours fixed per species, like CUB) or ``image`` (drawn per
    image from ``body_colours``, named by every caption; see the module's docstring).
    """
    body_colours = tuple(body_colours)
    _check(classes, per_class, size, body_colours, facing, parts)
    out = Path(out_dir)
    _prepare_out_dir(out)
    rng = np.random.RandomState(seed)
    species = _species(classes, body_colours, rng, named_by_crown=parts == "species")
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
            bird = _with_parts_of_image(sp, body_colours, rng) if parts == "image" else sp
            jpeg, extra = _draw_image(bird, size, rng, facing)
            record = _attributes(bird, extra)
            (out / "CUB_200_2011" / "images" / f"{key}.jpg").write_bytes(jpeg)
            caps = write_captions(record, rng, always=IMAGE_PARTS if parts == "image" else ())
            (out / "text" / f"{key}.txt").write_text("\n".join(caps) + "\n", encoding="utf-8")
            image_rows.append(f"{len(image_rows) + 1} {key}.jpg")
            bbox_rows.append(f"{len(bbox_rows) + 1} " + " ".join(f"{v:.1f}" for v in extra["bbox"]))
            split = split_of[sp.class_id]
            names[split].append(key)
            class_info[split].append(sp.class_id)
            attributes[split][key] = record

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
        "Synthetic CUB-layout bird set written by `python -m tools.birds.make_birds`.\n"
        f"classes={classes} per_class={per_class} seed={seed} size={size[0]}x{size[1]} "
        f"body_colours={','.join(body_colours)}" + ("" if facing == "both" else f" facing={facing}")
        + ("" if parts == "species" else f" parts={parts}") + "\n"
        f"train classes={classes - n_test} ({len(names['train'])} images), "
        f"test classes={n_test} ({len(names['test'])} images)\n")
    return {"train": len(names["train"]), "test": len(names["test"])}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.birds.make_birds", description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", help="output folder (e.g. data/birds_synth)")
    parser.add_argument("--classes", type=int, default=20, help="number of species (default 20)")
    parser.add_argument("--per-class", type=int, default=30, help="images per species (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--size", type=int, nargs=2, metavar=("W", "H"), default=list(DEFAULT_SIZE),
                        help=f"image width and height (default {DEFAULT_SIZE[0]} {DEFAULT_SIZE[1]})")
    parser.add_argument("--body-colours", nargs="+", default=list(DEFAULT_BODY_COLOURS), metavar="COLOUR",
                        help=f"breast/belly colours the species cycle through (default "
                             f"{' '.join(DEFAULT_BODY_COLOURS)}; any of {' '.join(NAMES)})")
    parser.add_argument("--facing", choices=FACINGS, default="both",
                        help="both (default: left or right at random) or every bird facing right / left")
    parser.add_argument("--parts", choices=PART_RULES, default="species",
                        help="crown and wing colours fixed per species (default, like CUB) or drawn per image "
                             "from the body colours and named by every caption (image)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        counts = make_birds(args.out_dir, args.classes, args.per_class, args.seed, tuple(args.size),
                            args.body_colours, args.facing, args.parts)
    except SSAGANError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {counts['train']} train + {counts['test']} test images to {args.out_dir} "
          f"in {time.perf_counter() - start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
