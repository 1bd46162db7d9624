"""Pictures of a training run: the per-epoch grid of the fixed display set and the metrics plot.

Both are drawn with PIL (no plotting library is a requirement). The epoch grid has one row per
display caption: the caption, the real test image it describes, then one cell per fixed noise
vector, each the generated image over the masks of every stage (4x4 first). Because captions and
noise are the same in every epoch, grids of two epochs differ only by what the generator learned.
"""
from __future__ import annotations

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


def metrics_plot(epochs: Sequence[int], series: dict[str, Sequence[Optional[float]]],
                 titles: dict[str, str], best: Optional[tuple[str, int]] = None) -> Image.Image:
    """One panel per metric: value against epoch (missing values skipped), ``best`` = (metric,
    epoch) circled in red."""
    panel_w, panel_h, margin = 640, 200, 64
    names = list(series)
    plot = Image.new("RGB", (panel_w, max(1, len(names)) * panel_h), "white")
    draw = ImageDraw.Draw(plot)
    font = _font(12)
    for i, name in enumerate(names):
        top = i * panel_h
        x0, x1, y0, y1 = margin, panel_w - 16, top + 24, top + panel_h - 28
        draw.rectangle((x0, y0, x1, y1), outline="black")
        draw.text((x0, top + 6), titles.get(name, name), fill="black", font=font)
        points = [(e, v) for e, v in zip(epochs, series[name]) if v is not None]
        if not points:
            draw.text((x0 + 8, y0 + 8), "not computed", fill="grey", font=font)
            continue
        e_lo, e_hi = min(e for e, _ in points), max(e for e, _ in points)
        v_lo, v_hi = min(v for _, v in points), max(v for _, v in points)
        if v_hi == v_lo:
            v_lo, v_hi = v_lo - 0.5 * (abs(v_lo) or 1.0), v_hi + 0.5 * (abs(v_hi) or 1.0)

        def xy(e: float, v: float) -> tuple[float, float]:
            fx = 0.5 if e_hi == e_lo else (e - e_lo) / (e_hi - e_lo)
            return x0 + 8 + fx * (x1 - x0 - 16), y1 - 8 - (v - v_lo) / (v_hi - v_lo) * (y1 - y0 - 16)

        draw.text((4, y0), f"{v_hi:.6g}", fill="black", font=font)
        draw.text((4, y1 - 14), f"{v_lo:.6g}", fill="black", font=font)
        draw.text((x0, y1 + 4), f"epoch {e_lo}", fill="black", font=font)
        draw.text((x1 - 70, y1 + 4), f"epoch {e_hi}", fill="black", font=font)
        coords = [xy(e, v) for e, v in points]
        if len(coords) > 1:
            draw.line(coords, fill=(30, 90, 200), width=2)
        for x, y in coords:
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=(30, 90, 200))
        if best is not None and best[0] == name:
            for e, v in points:
                if e == best[1]:
                    x, y = xy(e, v)
                    draw.ellipse((x - 7, y - 7, x + 7, y + 7), outline=(210, 30, 30), width=2)
                    label = f"best {v:.4g} (epoch {e})"
                    lx = x + 9 if x + 9 + font.getlength(label) < x1 else x - 9 - font.getlength(label)
                    draw.text((lx, max(y0 + 2, y - 16)), label, fill=(210, 30, 30), font=font)
    return plot
