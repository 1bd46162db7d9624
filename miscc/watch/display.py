"""Pictures of a training run: the per-epoch grid of the fixed display set and the metrics plot.

Both are drawn with PIL (no plotting library is a requirement). The epoch grid has one row per
display caption: the caption, the real test image it describes, then one cell per fixed noise
vector, each the generated image over the masks of every stage (4x4 first). Because captions and
noise are the same in every epoch, grids of two epochs differ only by what the generator learned.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from miscc.sample.grid import GridStyle, fit_tile, labelled_grid

TILE = 128  # pixels of an image in the grid: 64-px images are enlarged, 256-px ones reduced
MASKS_PER_LINE = 4
PAD = 4
TEXT_WIDTH = 2 * TILE
HEADER = 34  # the title and the column labels above the first row


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _cell(image: Optional[np.ndarray], masks: Sequence[np.ndarray], height: int) -> Image.Image:
    """One grid cell: the image at TILE x TILE, the masks under it (MASKS_PER_LINE a line), white below."""
    cell = Image.new("RGB", (TILE, height), "white")
    if image is not None:
        cell.paste(fit_tile(image, (TILE, TILE), Image.BILINEAR), (0, 0))
    mask_size = TILE // MASKS_PER_LINE
    for s, mask in enumerate(masks):
        row, col = divmod(s, MASKS_PER_LINE)
        cell.paste(fit_tile(mask, (mask_size, mask_size), Image.BILINEAR), (col * mask_size, TILE + row * mask_size))
    return cell


def epoch_grid(captions: Sequence[str], real: Optional[np.ndarray], images: np.ndarray,
               masks: Sequence[np.ndarray], title: str) -> Image.Image:
    """The grid of one epoch.

    ``images``: uint8 [C, K, H, W, 3] (caption c, noise k); ``masks``: per stage uint8 [C, K, r, r];
    ``real``: uint8 [C, H, W, 3] or None. Every stage's mask is drawn under its image, up to
    MASKS_PER_LINE per line.
    """
    n_captions, n_noises = images.shape[:2]
    height = TILE + -(-len(masks) // MASKS_PER_LINE) * (TILE // MASKS_PER_LINE)
    rows = []
    for c, text in enumerate(captions[:n_captions]):
        cells = [_cell(real[c], (), height)] if real is not None else []
        cells += [_cell(images[c, k], [stage[c, k] for stage in masks], height) for k in range(n_noises)]
        rows.append((text, [cells]))
    labels = (["real (test)"] if real is not None else []) + [f"noise {k + 1}" for k in range(n_noises)]
    style = GridStyle(tile=(TILE, height), text_width=TEXT_WIDTH, pad=PAD, font_size=12, top=HEADER - PAD,
                      margin=PAD, shrink=Image.BILINEAR)
    return labelled_grid(rows, style, title, labels)


# --- metrics.png -----------------------------------------------------------------------------------
PANEL_W, PANEL_H, PLOT_LEFT = 640, 200, 64
SERIES_COLOUR, BEST_COLOUR = (30, 90, 200), (210, 30, 30)
REFERENCE_COLOUR, GRID_COLOUR = (110, 110, 110), (225, 225, 225)


@dataclass(frozen=True)
class Panel:
    """What one metric's panel shows, computed before anything is drawn (tests read it)."""
    name: str
    title: str
    points: list[tuple[int, float]]  # (epoch, value) of every evaluation that computed the metric
    y_range: tuple[float, float]  # the values at the bottom and the top of the plot area
    y_ticks: list[tuple[float, str]]  # (value, label): round steps of 1, 2, 2.5 or 5 x 10^k
    x_ticks: list[tuple[int, str]]  # every evaluated epoch; label '' where it would run into its neighbour
    references: list[tuple[str, list[tuple[int, float]]]]  # (label, (epoch, level) per evaluation)


def _step(span: float, target: int = 4) -> float:
    raw = span / target
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))


def _decimals(step: float) -> int:
    """The fewest decimals that write every multiple of ``step`` exactly (0.25 -> 2, 20 -> 0)."""
    return next(d for d in range(12) if abs(step * 10 ** d - round(step * 10 ** d)) < 1e-6 * step * 10 ** d)


def y_axis(values: Sequence[float]) -> tuple[tuple[float, float], list[tuple[float, str]]]:
    """The value range (widened to whole ticks) and its ticks, for ``values`` (points and references)."""
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12 * max(1.0, abs(hi)):
        lo, hi = lo - 0.5 * (abs(lo) or 1.0), hi + 0.5 * (abs(hi) or 1.0)
    step = _step(hi - lo)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    decimals = _decimals(step)
    labels = [f"{k * step:.{decimals}f}" for k in range(first, last + 1)]
    ticks = [(float(label), label) for label in labels]  # the value a label names, without float noise
    return (first * step, last * step), ticks


def x_axis(epochs: Sequence[int], width: float, font_: ImageFont.ImageFont) -> list[tuple[int, str]]:
    """A tick at every epoch of ``epochs`` (sorted) over ``width`` pixels; a label wherever it keeps
    6 px from the previous one, and always at the last epoch."""
    lo, hi = epochs[0], epochs[-1]
    x = [0.5 * width if hi == lo else (e - lo) / (hi - lo) * width for e in epochs]
    half = [font_.getlength(str(e)) / 2 for e in epochs]
    labelled: list[int] = []
    for i in range(len(epochs)):
        if not labelled or x[i] - half[i] >= x[labelled[-1]] + half[labelled[-1]] + 6:
            labelled.append(i)
    last = len(epochs) - 1
    while labelled and labelled[-1] != last and x[last] - half[last] < x[labelled[-1]] + half[labelled[-1]] + 6:
        labelled.pop()
    if last not in labelled:
        labelled.append(last)
    return [(e, str(e) if i in labelled else "") for i, e in enumerate(epochs)]


def plot_panels(epochs: Sequence[int], series: dict[str, Sequence[Optional[float]]], titles: dict[str, str],
                references: Optional[dict[str, dict[str, Sequence[Optional[float]]]]] = None) -> list[Panel]:
    """The panels of ``metrics_plot``. ``references[name][label]``: the metric's reference level (e.g.
    'real-image floor') per evaluation, aligned with ``epochs`` like ``series``."""
    panels = []
    width = PANEL_W - 16 - PLOT_LEFT - 16
    for name, values in series.items():
        points = [(e, float(v)) for e, v in zip(epochs, values) if v is not None]
        refs = [(label, [(e, float(v)) for e, v in zip(epochs, levels) if v is not None])
                for label, levels in (references or {}).get(name, {}).items()]
        refs = [(label, levels) for label, levels in refs if levels]
        if not points:
            panels.append(Panel(name, titles.get(name, name), [], (0.0, 1.0), [], [], []))
            continue
        y_range, y_ticks = y_axis([v for _, v in points] + [v for _, levels in refs for _, v in levels])
        x_ticks = x_axis(sorted({e for e, _ in points}), width, _font(12))
        panels.append(Panel(name, titles.get(name, name), points, y_range, y_ticks, x_ticks, refs))
    return panels


def _dashed(draw: ImageDraw.ImageDraw, coords: Sequence[tuple[float, float]], fill: tuple, dash: int = 5) -> None:
    for (xa, ya), (xb, yb) in zip(coords, coords[1:]):
        length = max(1.0, math.hypot(xb - xa, yb - ya))
        for start in range(0, int(length), 2 * dash):
            t0, t1 = start / length, min(1.0, (start + dash) / length)
            draw.line([(xa + t0 * (xb - xa), ya + t0 * (yb - ya)), (xa + t1 * (xb - xa), ya + t1 * (yb - ya))],
                      fill=fill, width=1)


def metrics_plot(epochs: Sequence[int], series: dict[str, Sequence[Optional[float]]],
                 titles: dict[str, str], best: Optional[tuple[str, int]] = None,
                 references: Optional[dict[str, dict[str, Sequence[Optional[float]]]]] = None) -> Image.Image:
    """One panel per metric (``plot_panels``): value against epoch (missing values skipped) with a tick
    at every evaluated epoch, round value ticks, each reference level as a grey dashed line (straight
    across when it is the same at every evaluation), and ``best`` = (metric, epoch) circled in red."""
    panels = plot_panels(epochs, series, titles, references)
    plot = Image.new("RGB", (PANEL_W, max(1, len(panels)) * PANEL_H), "white")
    draw = ImageDraw.Draw(plot)
    font_ = _font(12)
    for i, panel in enumerate(panels):
        top = i * PANEL_H
        x0, x1, y0, y1 = PLOT_LEFT, PANEL_W - 16, top + 24, top + PANEL_H - 34
        draw.text((x0, top + 6), panel.title, fill="black", font=font_)
        if not panel.points:
            draw.rectangle((x0, y0, x1, y1), outline="black")
            draw.text((x0 + 8, y0 + 8), "not computed", fill="grey", font=font_)
            continue
        e_lo, e_hi = panel.x_ticks[0][0], panel.x_ticks[-1][0]
        v_lo, v_hi = panel.y_range

        def x_of(e: float) -> float:
            return x0 + 16 + (0.5 if e_hi == e_lo else (e - e_lo) / (e_hi - e_lo)) * (x1 - x0 - 32)

        def y_of(v: float) -> float:  # 6 px inside the frame, so points on the extreme ticks stay visible
            return y1 - 6 - (v - v_lo) / (v_hi - v_lo) * (y1 - y0 - 12)

        for value, label in panel.y_ticks:
            y = y_of(value)
            draw.line([(x0, y), (x1, y)], fill=GRID_COLOUR)
            draw.line([(x0 - 4, y), (x0, y)], fill="black")
            draw.text((x0 - 7 - font_.getlength(label), y - 7), label, fill="black", font=font_)
        for epoch, label in panel.x_ticks:
            x = x_of(epoch)
            draw.line([(x, y1), (x, y1 + 4)], fill="black")
            if label:
                draw.text((x - font_.getlength(label) / 2, y1 + 5), label, fill="black", font=font_)
        draw.text((x1 - font_.getlength("epoch"), y1 + 19), "epoch", fill="black", font=font_)
        draw.rectangle((x0, y0, x1, y1), outline="black")
        taken: list[float] = []  # tops of the reference labels drawn: levels close together (chance and
        for label, levels in panel.references:  # shuffled captions) would print one label over another
            flat = len({v for _, v in levels}) == 1
            coords = ([(x0 + 1, y_of(levels[0][1])), (x1 - 1, y_of(levels[0][1]))] if flat
                      else [(x_of(e), y_of(v)) for e, v in levels])
            _dashed(draw, coords, REFERENCE_COLOUR)
            text = f"{label} {levels[-1][1]:.3g}"
            line_y = coords[-1][1]
            spots = [line_y - 15 - 14 * k for k in range(4)] + [line_y + 2 + 14 * k for k in range(4)]
            inside = [ly for ly in spots if y0 < ly < y1 - 13] or [line_y + 2]
            ly = next((ly for ly in inside if all(abs(ly - t) >= 14 for t in taken)), inside[0])
            taken.append(ly)
            draw.text((x1 - 4 - font_.getlength(text), ly), text, fill=REFERENCE_COLOUR, font=font_)
        coords = [(x_of(e), y_of(v)) for e, v in panel.points]
        if len(coords) > 1:
            draw.line(coords, fill=SERIES_COLOUR, width=2)
        for x, y in coords:
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=SERIES_COLOUR)
        if best is not None and best[0] == panel.name:
            for e, v in panel.points:
                if e == best[1]:
                    x, y = x_of(e), y_of(v)
                    draw.ellipse((x - 7, y - 7, x + 7, y + 7), outline=BEST_COLOUR, width=2)
                    label = f"best {v:.4g} (epoch {e})"
                    lx = x + 9 if x + 9 + font_.getlength(label) < x1 else x - 9 - font_.getlength(label)
                    draw.text((lx, max(y0 + 2, y - 16)), label, fill=BEST_COLOUR, font=font_)
    return plot
