"""Shape of a synthetic bird: part polygons, the label map they rasterise to, and its crop layout.

One description serves two users: ``tools.birds.make_birds`` draws every bird from it (with per-image pose
jitter), and ``miscc.metrics.colour`` renders the same bird in its canonical pose as a *layout prior*
to find the crown, wings and body in a generated image. Keeping both in one module is what makes the
scorer's part locations trustworthy.

Conventions: a bird faces +x, y points down (image convention), one unit is half the body length.
The body is tilted ``TILT`` radians, front up, like a perched songbird; the tail points back and down,
so the space above the back is empty and only the head rises above the body on the front side.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw

# Label ids of the rasterised bird (0 = background). Scored parts first.
BODY, WING, HEAD, TAIL, WINGBAR, BILL, EYE, EYE_MARK, LEGS, PATTERN = range(1, 11)
PART_IDS: dict[str, int] = {"body": BODY, "wing": WING, "head": HEAD, "tail": TAIL, "wingbar": WINGBAR,
                            "bill": BILL, "eye": EYE, "eye_mark": EYE_MARK, "legs": LEGS,
                            "pattern": PATTERN}

TILT = -0.6  # radians; negative lifts the front (y is down): an upright perched songbird
HEAD_RADIUS = 0.40
BODY_RATIO = {"round": 0.78, "slim": 0.64}
TAIL_LEN = {"short": 0.4, "long": 0.7}
# Bill length is annotated relative to the head in CUB ("shorter than head", "about the same as head",
# "longer than head"); the head is 2 * HEAD_RADIUS = 0.8 units long.
BILL_LEN = {"short": 0.22, "medium": 0.42, "long": 0.65}
BILL_THICKNESS = {"cone": 0.15, "pointed": 0.075, "curved": 0.07, "hooked": 0.12}
BILL_SHAPES = tuple(BILL_THICKNESS)
EYE_MARKS = ("none", "ring", "eyebrow")
CROP_SCALE = 1.5  # CUB crop: a square of 1.5 x the longer bbox side (datasets.bbox_crop_box)
LOAD_RATIO = 76 / 64  # datasets.build_transform: resize to base*76/64, then crop base


@dataclass(frozen=True)
class Geometry:
    """The species-level shape attributes that move parts around (colours do not)."""
    shape: str = "round"          # BODY_RATIO key
    tail_length: str = "short"    # TAIL_LEN key
    bill_shape: str = "pointed"   # BILL_SHAPES
    bill_length: str = "short"    # BILL_LEN key
    eye_mark: str = "none"        # EYE_MARKS
    wingbars: int = 0             # 0, 1 or 2 bars across the wing

    @classmethod
    def from_attributes(cls, attrs: Mapping) -> "Geometry":
        return cls(**{k: attrs[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Pose:
    """Per-image jitter around the canonical pose (all zero = the scorer's layout prior)."""
    tilt: float = 0.0
    head_dx: float = 0.0
    head_dy: float = 0.0
    wing_angle: float = 0.0
    tail_angle: float = 0.0

    @classmethod
    def random(cls, rng: np.random.RandomState) -> "Pose":
        t, hx, hy, w, a = rng.uniform(-1, 1, 5)
        return cls(tilt=0.07 * t, head_dx=0.05 * hx, head_dy=0.05 * hy, wing_angle=0.08 * w,
                   tail_angle=0.12 * a)


def _ellipse(cx: float, cy: float, rx: float, ry: float, angle: float = 0.0, n: int = 40) -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    x, y = rx * np.cos(t), ry * np.sin(t)
    ca, sa = math.cos(angle), math.sin(angle)
    return np.stack([cx + x * ca - y * sa, cy + x * sa + y * ca], axis=1)


def _bill(g: Geometry, x0: float, y0: float) -> np.ndarray:
    length, half = BILL_LEN[g.bill_length], BILL_THICKNESS[g.bill_shape]
    if g.bill_shape == "curved":  # thin and bending down along a parabola
        s = np.linspace(0, 1, 12)
        cx, cy = x0 + length * s, y0 + 0.45 * length * s ** 2
        th = half * (1 - 0.85 * s)
        return np.concatenate([np.stack([cx, cy - th], 1), np.stack([cx, cy + th], 1)[::-1]])
    if g.bill_shape == "hooked":  # stout, the upper mandible bends over the tip
        return np.array([(x0 - 0.05, y0 - half), (x0 + 0.8 * length, y0 - 0.45 * half),
                         (x0 + length, y0 + 0.2 * half), (x0 + 0.92 * length, y0 + 0.9 * half),
                         (x0 + 0.75 * length, y0 + 0.35 * half), (x0 - 0.05, y0 + half)])
    return np.array([(x0 - 0.05, y0 - half), (x0 + length, y0 + 0.15 * half), (x0 - 0.05, y0 + half)])


def bird_parts(g: Geometry, pose: Pose = Pose(), spots: Sequence[tuple[float, float]] = (),
               pattern: str = "solid") -> list[tuple[int, np.ndarray, str]]:
    """The bird in draw order: (label id, points [K, 2], 'polygon' | 'line').

    Coordinates are already tilted (image frame, facing +x, head up); ``spots`` are points in the
    body's own frame (inside the unit ellipse) for spotted or striped breasts.
    """
    b = BODY_RATIO[g.shape]
    hc = np.array([0.86 + pose.head_dx, -0.5 * b - 0.13 + pose.head_dy])
    r = HEAD_RADIUS
    tail_len = TAIL_LEN[g.tail_length]
    ta = 0.45 + pose.tail_angle  # tail bends further down than the body axis
    tail_dir = np.array([-math.cos(ta), math.sin(ta)])
    normal = np.array([-tail_dir[1], tail_dir[0]])
    base = np.array([-0.78, 0.08 * b])
    tail = np.array([base + normal * 0.2 * b, base + tail_dir * tail_len + normal * 0.17,
                     base + tail_dir * (tail_len + 0.04), base + tail_dir * tail_len - normal * 0.17,
                     base - normal * 0.2 * b])
    wing = _ellipse(-0.2, -0.24 * b, 0.68, 0.46 * b, 0.14 + pose.wing_angle)
    parts: list[tuple[int, np.ndarray, str]] = [
        (TAIL, tail, "polygon"),
        (BODY, _ellipse(0.0, 0.0, 1.0, b), "polygon"),
    ]
    for sx, sy in spots:  # breast pattern, later clipped to the visible body
        if pattern == "striped":
            parts.append((PATTERN, np.array([(sx, sy - 0.1), (sx + 0.04, sy + 0.1)]), "line"))
        else:
            parts.append((PATTERN, _ellipse(sx, sy * b, 0.06, 0.05, 0.0, 10), "polygon"))
    parts.append((WING, wing, "polygon"))
    for k in range(g.wingbars):  # bars across the wing, later clipped to it
        x = -0.05 - 0.22 * k
        parts.append((WINGBAR, _ellipse(x, -0.24 * b, 0.045, 0.6 * b, 0.35, 12), "polygon"))
    parts.append((HEAD, _ellipse(hc[0], hc[1], r, r), "polygon"))
    eye = hc + np.array([0.14, -0.06])
    if g.eye_mark == "ring":
        parts.append((EYE_MARK, _ellipse(eye[0], eye[1], 0.115, 0.115, 0.0, 16), "polygon"))
    elif g.eye_mark == "eyebrow":
        parts.append((EYE_MARK, _ellipse(eye[0] - 0.1, eye[1] - 0.13, 0.24, 0.045, 0.12, 16), "polygon"))
    parts.append((EYE, _ellipse(eye[0], eye[1], 0.065, 0.065, 0.0, 12), "polygon"))
    parts.append((BILL, _bill(g, hc[0] + 0.9 * r, hc[1] + 0.07), "polygon"))

    tilt = TILT + pose.tilt
    ca, sa = math.cos(tilt), math.sin(tilt)
    rot = np.array([[ca, sa], [-sa, ca]])  # row vectors: p @ rot rotates by ``tilt``
    out = [(lab, pts @ rot, kind) for lab, pts, kind in parts]
    # Legs hang straight down in the image whatever the tilt, from two points under the body.
    for x in (0.05, 0.3):
        top = np.array([[x, 0.9 * b]]) @ rot
        foot = top[0] + np.array([0.0, 0.3])
        out.append((LEGS, np.array([top[0], foot, foot + np.array([0.16, 0.0])]), "line"))
    return out


def bounds(parts: Sequence[tuple[int, np.ndarray, str]]) -> tuple[np.ndarray, np.ndarray]:
    """(min xy, max xy) over every part: the bird's bounding box in its own units."""
    pts = np.concatenate([p for _, p, _ in parts])
    return pts.min(0), pts.max(0)


def rasterise(parts: Sequence[tuple[int, np.ndarray, str]], size: tuple[int, int], offset: Sequence[float],
              scale: float, mirror: bool = False, line_width: float = 0.06) -> np.ndarray:
    """Label map uint8 [H, W] of the bird drawn at pixel = offset + scale * (x, y) (x negated if mirror).

    Patterns and wing bars only survive on the part they decorate (spots on the visible body, bars on
    the wing), which is why they are clipped here rather than drawn blindly.
    """
    w, h = size
    img = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(img)
    sign = -1.0 if mirror else 1.0
    width = max(1, int(round(line_width * scale)))
    decor: dict[int, Image.Image] = {}
    for lab, pts, kind in parts:
        xy = [(offset[0] + sign * scale * x, offset[1] + scale * y) for x, y in pts]
        if lab in (PATTERN, WINGBAR):
            layer = decor.setdefault(lab, Image.new("L", (w, h), 0))
            d = ImageDraw.Draw(layer)
            if kind == "line":
                d.line(xy, fill=1, width=max(1, width // 2))
            else:
                d.polygon(xy, fill=1)
            continue
        if kind == "line":
            draw.line(xy, fill=lab, width=width)
        else:
            draw.polygon(xy, fill=lab)
    labels = np.asarray(img).copy()
    for lab, host in ((PATTERN, BODY), (WINGBAR, WING)):
        if lab in decor:
            labels[(np.asarray(decor[lab]) > 0) & (labels == host)] = lab
    return labels


def crop_layout(g: Geometry, size: int = 64, mirror: bool = False) -> np.ndarray:
    """Label map of the canonical bird as the GAN sees it: bbox crop, resize, centre crop to ``size``.

    Mirrors ``datasets.bbox_crop_box`` + ``build_transform(size, train=False)``: a square of
    ``CROP_SCALE`` x the longer bbox side around the bbox centre, resized to size*76/64 and
    centre-cropped, so the bbox centre lands on the image centre and one unit is ``scale`` pixels.
    """
    parts = bird_parts(g)
    lo, hi = bounds(parts)
    scale = int(size * LOAD_RATIO) / (CROP_SCALE * float((hi - lo).max()))
    cx, cy = (lo + hi) / 2
    offset_x = size / 2 + scale * cx if mirror else size / 2 - scale * cx
    return rasterise(parts, (size, size), (offset_x, size / 2 - scale * cy), scale, mirror=mirror)


def bill_length_words(length: str) -> str:
    """CUB's wording for the bill-length attribute (compared with the head)."""
    return {"short": "shorter than", "medium": "about the same length as", "long": "longer than"}[length]

