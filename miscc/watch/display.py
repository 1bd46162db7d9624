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

from miscc.sample.grid import wrap_text

TILE = 128  # pixels of an image in the grid: 64-px images are enlarged, 256-px ones reduced
MASKS_PER_LINE = 4
PAD = 4
TEXT_WIDTH = 2 * TILE


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _tile(array: np.ndarray, size: int) -> Image.Image:
    """uint8 HxWx3 or HxW -> size x size RGB: nearest when enlarging (mask cells stay visible),
    bilinear when reducing."""
    image = Image.fromarray(array).convert("RGB")
    if image.size[0] == size:
        return image
    return image.resize((size, size), Image.NEAREST if image.size[0] < size else Image.BILINEAR)


def epoch_grid(captions: Sequence[str], real: Optional[np.ndarray], images: np.ndarray,
               masks: Sequence[np.ndarray], title: str) -> Image.Image:
    """The grid of one epoch.

    ``images``: uint8 [C, K, H, W, 3] (caption c, noise k); ``masks``: per stage uint8 [C, K, r, r];
    ``real``: uint8 [C, H, W, 3] or None. Every stage's mask is drawn under its image, up to
    MASKS_PER_LINE per line.
    """
    n_captions, n_noises = images.shape[:2]
    mask_size = TILE // MASKS_PER_LINE
    mask_lines = -(-len(masks) // MASKS_PER_LINE)
    cell_h = TILE + mask_lines * mask_size + PAD
    header = 34
    columns = n_noises + (real is not None)
    width = TEXT_WIDTH + columns * (TILE + PAD) + PAD
    grid = Image.new("RGB", (width, header + n_captions * cell_h + PAD), "white")
    draw = ImageDraw.Draw(grid)
    title_font, font = _font(14), _font(12)
    draw.text((PAD, 2), title, fill="black", font=title_font)
    labels = (["real (test)"] if real is not None else []) + [f"noise {k + 1}" for k in range(n_noises)]
    for j, label in enumerate(labels):
        draw.text((TEXT_WIDTH + j * (TILE + PAD), header - 15), label, fill="black", font=font)
    line_height = font.size + 3
    for c, text in enumerate(captions):
        y = header + c * cell_h
        for n, line in enumerate(wrap_text(text, font, TEXT_WIDTH - 2 * PAD)[: cell_h // line_height]):
            draw.text((PAD, y + n * line_height), line, fill="black", font=font)
        x = TEXT_WIDTH
        if real is not None:
            grid.paste(_tile(real[c], TILE), (x, y))
            x += TILE + PAD
        for k in range(n_noises):
            grid.paste(_tile(images[c, k], TILE), (x, y))
            for s, stage in enumerate(masks):
                row, col = divmod(s, MASKS_PER_LINE)
                grid.paste(_tile(stage[c, k], mask_size), (x + col * mask_size, y + TILE + row * mask_size))
            x += TILE + PAD
    return grid


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
