"""Labelled picture grids: the one drawer behind every grid of the project.

A grid is a list of rows; a row is a label, wrapped into a text panel left of the tiles, and one or more
lines of tiles. An optional title and column labels sit above the first line. A tile is an image file,
a uint8 array (RGB or greyscale) or a PIL image, shown at the style's tile size (enlarged
nearest-neighbour, so a small mask shows its cells); ``Framed`` outlines one, ``None`` leaves its place
empty. Words written ``[word]`` in a label are the ones the model did not read: drawn red and struck
through.

Users: the sampler's captions-file grid (``grid.png``) and the interactive page's download
(``caption_grid``), the training's epoch grid (``miscc/watch/display.py``) and the demo report's
grids (``tools/demo_report.py``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Tile = Union[str, os.PathLike, np.ndarray, Image.Image]
PAD = 2
_DROPPED_COLOUR = (190, 30, 30)


@dataclass(frozen=True)
class Framed:
    """A tile drawn with an outline of ``colour``, ``width`` pixels wide, just outside it (in the gap)."""
    tile: Tile
    colour: Union[str, tuple[int, int, int]]
    width: int = 2


Cell = Union[Tile, Framed, None]  # None: an empty place
Row = tuple[str, Sequence[Sequence[Cell]]]  # (label, lines of cells)


@dataclass(frozen=True)
class GridStyle:
    """Sizes of a grid. Tiles are ``tile`` = (width, height) with a ``pad`` gap right of each tile and
    above each line, so a grid of L lines in all and at most w tiles per line is
    (text_width + w*(width+pad) + margin) x (top + pad + L*(height+pad) + margin)."""
    tile: tuple[int, int]
    text_width: int
    pad: int = PAD
    font_size: int = 10
    # The default font's space is ~0.2 em: at 10-13 px it is 2-3 pixels, no wider than the gaps between
    # letters, so a caption reads as run-together words. A positive value widens every space to it.
    min_word_space: float = 0.0
    top: Optional[int] = None  # room above the first line; None: what the title and column labels need
    margin: int = 0
    title_size: int = 14
    shrink: int = Image.NEAREST  # how a larger tile is reduced (enlarging is always nearest)

    def header(self, title: str, column_labels: Sequence[str]) -> int:
        if self.top is not None:
            return self.top
        return (self.title_size + 6 if title else 0) + (self.font_size + 3 if column_labels else 0)


def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _extra_space(font_: ImageFont.FreeTypeFont, min_word_space: float) -> float:
    return max(0.0, min_word_space - font_.getlength(" "))


def _length(text: str, font_: ImageFont.FreeTypeFont, extra: float) -> float:
    return font_.getlength(text) + extra * text.count(" ")


def wrap_text(text: str, font_: ImageFont.FreeTypeFont, width: int, max_lines: int = 10 ** 6,
              min_word_space: float = 0.0) -> list[str]:
    """Greedy word wrap to ``width`` pixels (spaces at least ``min_word_space`` wide); an overflowing
    last line ends in '...'."""
    extra = _extra_space(font_, min_word_space)
    lines: list[str] = []
    for word in text.split():
        if lines and _length(f"{lines[-1]} {word}", font_, extra) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while " " in last and _length(f"{last} ...", font_, extra) > width:
            last = last.rsplit(" ", 1)[0]
        lines = lines[:max_lines - 1] + [f"{last} ..."]
    return lines


def draw_line(draw: ImageDraw.ImageDraw, xy: tuple[float, float], line: str, font_: ImageFont.FreeTypeFont,
              min_word_space: float = 0.0) -> None:
    """One line of text, word by word (a dropped ``[word]`` red and struck through)."""
    x0, y = xy
    extra = _extra_space(font_, min_word_space)
    words = line.split(" ")
    for i, word in enumerate(words):
        # Offsets from the whole prefix, so with no extra space the line is the one drawn as one string.
        x = x0 + (font_.getlength(" ".join(words[:i]) + " ") + i * extra if i else 0)
        dropped = len(word) > 2 and word.startswith("[") and word.endswith("]")
        draw.text((x, y), word, fill=_DROPPED_COLOUR if dropped else "black", font=font_)
        if dropped:
            middle = y + font_.size * 0.6
            draw.line([(x, middle), (x + font_.getlength(word), middle)], fill=_DROPPED_COLOUR,
                      width=max(1, font_.size // 10))


def fit_tile(tile: Tile, size: tuple[int, int], shrink: int = Image.NEAREST) -> Image.Image:
    """``tile`` as an RGB image of ``size``: enlarged nearest-neighbour, reduced with ``shrink``."""
    if isinstance(tile, Image.Image):
        image = tile.convert("RGB")
    elif isinstance(tile, np.ndarray):
        image = Image.fromarray(tile).convert("RGB")
    else:
        with Image.open(tile) as im:
            image = im.convert("RGB")
    if image.size == tuple(size):
        return image
    enlarging = image.size[0] <= size[0] and image.size[1] <= size[1]
    return image.resize(tuple(size), Image.NEAREST if enlarging else shrink)


def labelled_grid(rows: Sequence[Row], style: GridStyle, title: str = "",
                  column_labels: Sequence[str] = ()) -> Image.Image:
    """The grid of ``rows``; each row's label is wrapped to the text panel and cut ('...') at the
    row's height."""
    tile_w, tile_h = style.tile
    pad = style.pad
    top = style.header(title, column_labels)
    width = max((len(line) for _, lines in rows for line in lines), default=0)
    n_lines = sum(len(lines) for _, lines in rows)
    grid = Image.new("RGB", (style.text_width + width * (tile_w + pad) + style.margin,
                             top + pad + n_lines * (tile_h + pad) + style.margin), "white")
    draw = ImageDraw.Draw(grid)
    text_font = font(style.font_size)
    line_height = style.font_size + 3
    if title:
        draw_line(draw, (pad, 2), title, font(style.title_size), style.min_word_space)
    for j, label in enumerate(column_labels):
        draw_line(draw, (style.text_width + j * (tile_w + pad), top + pad - line_height), label, text_font,
                  style.min_word_space)
    y = top + pad
    for label, lines in rows:
        max_lines = max(1, (len(lines) * (tile_h + pad) - pad) // line_height)
        for n, text in enumerate(wrap_text(label, text_font, style.text_width - 2 * pad, max_lines,
                                           style.min_word_space)):
            draw_line(draw, (pad, y + n * line_height), text, text_font, style.min_word_space)
        for line in lines:
            for j, cell in enumerate(line):
                if cell is None:
                    continue
                x = style.text_width + j * (tile_w + pad)
                tile = cell.tile if isinstance(cell, Framed) else cell
                grid.paste(fit_tile(tile, style.tile, style.shrink), (x, y))
                if isinstance(cell, Framed):
                    w = cell.width
                    draw.rectangle([x - w, y - w, x + tile_w - 1 + w, y + tile_h - 1 + w], outline=cell.colour, width=w)
            y += tile_h + pad
    return grid


def caption_grid(blocks: Sequence[Row], size: int) -> Image.Image:
    """The sampler's and the page's grid: ``blocks`` are (caption, lines of tiles) per caption, tiles
    ``size`` x ``size``, the caption in a text panel ``3 * size`` wide."""
    fs = max(10, size // 16)
    return labelled_grid(blocks, GridStyle(tile=(size, size), text_width=3 * size, font_size=fs,
                                           min_word_space=0.4 * fs))  # ~4 px at 10 px: words stay apart


def caption_block(text: str, images: Sequence[Tile], masks: Sequence[Sequence[Tile]], layout: str
                  ) -> tuple[str, list[list[Tile]]]:
    """The block of one caption: ``masks[i]`` are the mask tiles of image i.

    layout 'all' (every stage): one line per image, the image then its masks, as the original
    GUI/view.py showed them; otherwise one line, the images then their masks (none for 'none').
    """
    if layout == "all":
        return text, [[image, *own] for image, own in zip(images, masks)]
    return text, [[*images, *(m for own in masks for m in own)]]
