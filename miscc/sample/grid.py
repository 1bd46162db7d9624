"""The picture grid of a captions-file run (``grid.png``) and of the interactive page's download.

One block per caption, one above the other: the caption in a text panel ``3 * size`` pixels wide,
then the block's lines of tiles. A tile is an image file or a uint8 array (RGB or greyscale) and is
shown at ``size x size`` (nearest-neighbour, so a small mask shows its cells). Words written
``[word]`` in a caption are the ones the model did not read: drawn red and struck through.
"""
from __future__ import annotations

import os
from typing import Sequence, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Tile = Union[str, os.PathLike, np.ndarray]
PAD = 2
_DROPPED_COLOUR = (190, 30, 30)


def wrap_text(text: str, font: ImageFont.FreeTypeFont, width: int, max_lines: int = 10 ** 6) -> list[str]:
    """Greedy word wrap to ``width`` pixels; an overflowing last line ends in '...'."""
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while " " in last and font.getlength(f"{last} ...") > width:
            last = last.rsplit(" ", 1)[0]
        lines = lines[:max_lines - 1] + [f"{last} ..."]
    return lines


def _draw_line(draw: ImageDraw.ImageDraw, xy: tuple[int, int], line: str,
               font: ImageFont.FreeTypeFont) -> None:
    x0, y = xy
    words = line.split(" ")
    for i, word in enumerate(words):
        # Offsets from the whole prefix, so spacing matches the line drawn as one string.
        x = x0 + (font.getlength(" ".join(words[:i]) + " ") if i else 0)
        dropped = len(word) > 2 and word.startswith("[") and word.endswith("]")
        draw.text((x, y), word, fill=_DROPPED_COLOUR if dropped else "black", font=font)
        if dropped:
            middle = y + font.size * 0.6
            draw.line([(x, middle), (x + font.getlength(word), middle)], fill=_DROPPED_COLOUR,
                      width=max(1, font.size // 10))


def _tile(tile: Tile, size: int) -> Image.Image:
    if isinstance(tile, np.ndarray):
        image = Image.fromarray(tile).convert("RGB")
    else:
        with Image.open(tile) as im:
            image = im.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.NEAREST)
    return image


def caption_grid(blocks: Sequence[tuple[str, Sequence[Sequence[Tile]]]], size: int) -> Image.Image:
    """``blocks``: (caption, lines of tiles) per caption. Tiles are size x size with a PAD-pixel gap
    after each tile and above each line, so the grid is (3*size + w*(size+PAD)) x (PAD + L*(size+PAD))
    for L lines in all and at most w tiles per line. The caption is wrapped to its block's height."""
    cell = size + PAD
    text_width = 3 * size
    width = max(len(line) for _, lines in blocks for line in lines)
    height = sum(len(lines) for _, lines in blocks)
    grid = Image.new("RGB", (text_width + width * cell, PAD + height * cell), "white")
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default(size=max(10, size // 16))
    line_height = font.size + 3
    y = PAD
    for text, lines in blocks:
        max_lines = max(1, (len(lines) * cell - PAD) // line_height)
        for n, line in enumerate(wrap_text(text, font, text_width - 2 * PAD, max_lines)):
            _draw_line(draw, (PAD, y + n * line_height), line, font)
        for line in lines:
            for j, tile in enumerate(line):
                grid.paste(_tile(tile, size), (text_width + j * cell, y))
            y += cell
    return grid


def caption_block(text: str, images: Sequence[Tile], masks: Sequence[Sequence[Tile]], layout: str
                  ) -> tuple[str, list[list[Tile]]]:
    """The block of one caption: ``masks[i]`` are the mask tiles of image i.

    layout 'all' (every stage): one line per image, the image then its masks, as the original
    GUI/view.py showed them; otherwise one line, the images then their masks (none for 'none').
    """
    if layout == "all":
        return text, [[image, *own] for image, own in zip(images, masks)]
    return text, [[*images, *(m for own in masks for m in own)]]
