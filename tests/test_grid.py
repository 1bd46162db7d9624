"""miscc/sample/grid.py, the one labelled-grid drawer: where tiles, frames and labels go, and that a
caption's spaces stay visible when asked to (the default font's spaces are as narrow as letter gaps)."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from miscc.sample.grid import Framed, GridStyle, caption_grid, draw_line, font, labelled_grid
from miscc.watch.display import HEADER, MASKS_PER_LINE, PAD, TEXT_WIDTH, TILE, epoch_grid
from tests.helpers import visible_spaces, word_gaps, x_height_band

CAPTIONS = ("this bird has a red belly red wings and a green crown",
            "a small yellow bird with black wings and a short pointy beak",
            "this bird is mostly grey with a white belly a buff crown and rufous wings")


def flat(value: int, size: int = 8) -> np.ndarray:
    return np.full((size, size, 3), value, np.uint8)


def test_tiles_frames_and_empty_places_go_where_the_style_says():
    style = GridStyle(tile=(8, 6), text_width=30, pad=3, margin=5)
    rows = [("first", [[flat(10), None, Framed(flat(20), (255, 0, 0), width=2)]]),
            ("second", [[flat(30)], [flat(40), flat(50)]])]
    grid = np.asarray(labelled_grid(rows, style))
    assert grid.shape[:2] == (0 + 3 + 3 * (6 + 3) + 5, 30 + 3 * (8 + 3) + 5)  # 3 lines, at most 3 tiles
    # An 8x8 tile is shown at 8x6 (reduced nearest): each place holds its tile's value.
    x, y = lambda j: 30 + j * 11, lambda n: 3 + n * 9  # noqa: E731
    assert (grid[y(0):y(0) + 6, x(0):x(0) + 8] == 10).all()
    assert (grid[y(0):y(0) + 6, x(1):x(1) + 8] == 255).all()  # None: left white
    assert (grid[y(0):y(0) + 6, x(2):x(2) + 8] == 20).all()  # the frame is outside the tile ...
    assert (grid[y(0) - 2:y(0) + 8, x(2) - 2] == (255, 0, 0)).all()  # ... in the gap, 2 px wide
    assert (grid[y(0) - 2:y(0) + 8, x(2) - 1] == (255, 0, 0)).all() and (grid[y(0) + 6, x(2) + 8] == (255, 0, 0)).all()
    assert (grid[y(2):y(2) + 6, x(1):x(1) + 8] == 50).all()  # the second line of the second row


def test_the_title_and_column_labels_get_room_above_the_first_line():
    style = GridStyle(tile=(16, 16), text_width=40, font_size=12, title_size=14)
    plain = labelled_grid([("a", [[flat(0)]])], style)
    titled = labelled_grid([("a", [[flat(0)]])], style, "title", ["c1"])
    assert titled.size[1] - plain.size[1] == (14 + 6) + (12 + 3)
    top = np.asarray(titled)[:14 + 6 + 12 + 3 + 2]
    assert (top < 128).any()  # the title and label are drawn in it


def test_min_word_space_makes_every_space_of_a_caption_a_visible_gap():
    size = 10  # the sampler's caption font at 64 px, and the font the demo report used to draw with
    for text in CAPTIONS:
        for widened in (False, True):
            image = Image.new("RGB", (800, 30), "white")
            draw_line(ImageDraw.Draw(image), (2, 4), text, font(size), 5 if widened else 0)
            gaps = word_gaps(x_height_band(np.asarray(image), 0, 4, size))
            if widened:
                assert gaps == text.count(" "), text
            else:  # the bug: most spaces are 2 px, as narrow as the gaps between letters
                assert gaps < text.count(" ") / 2, text


def test_wrapped_labels_keep_their_spaces_and_fit_the_panel():
    style = GridStyle(tile=(64, 64), text_width=150, pad=4, font_size=10, min_word_space=5)
    grid = np.asarray(labelled_grid([(CAPTIONS[2], [[flat(0, 64)]])], style))
    n_lines, spaces = visible_spaces(grid[:, :150], 4, 4, 10, lines=5)
    assert n_lines >= 2  # the caption is wrapped ...
    assert spaces == CAPTIONS[2].count(" ") - (n_lines - 1)  # ... at spaces, and every other space shows
    assert (grid[4:68, 146:150] == 255).all()  # nothing drawn over the panel's edge


def test_the_sampler_grid_is_the_drawer_with_a_three_tile_caption_panel():
    size = 16
    grid = np.asarray(caption_grid([("a bird", [[flat(7, size), flat(9, 4)]])], size))
    assert grid.shape[:2] == (2 + size + 2, 3 * size + 2 * (size + 2))
    assert (grid[2:2 + size, 3 * size + size + 2:3 * size + 2 * size + 2] == 9).all()  # 4 px mask enlarged


def test_the_epoch_grid_puts_each_image_over_its_masks_beside_the_real_image():
    images = np.stack([np.stack([flat(50, 64), flat(60, 64)])])  # 1 caption, 2 noises
    masks = [np.full((1, 2, 4 * 2 ** s, 4 * 2 ** s), 100 + s, np.uint8) for s in range(5)]
    grid = np.asarray(epoch_grid(["a red bird"], flat(20, 64)[None], images, masks, "epoch 1"))
    mask = TILE // MASKS_PER_LINE
    assert grid.shape[:2] == (HEADER + TILE + 2 * mask + PAD + PAD, TEXT_WIDTH + 3 * (TILE + PAD) + PAD)
    x = TEXT_WIDTH + TILE + PAD  # noise 1, after the real image
    assert (grid[HEADER:HEADER + TILE, TEXT_WIDTH:TEXT_WIDTH + TILE] == 20).all()
    assert (grid[HEADER + TILE:HEADER + TILE + mask, TEXT_WIDTH:TEXT_WIDTH + TILE] == 255).all()  # no masks
    assert (grid[HEADER:HEADER + TILE, x:x + TILE] == 50).all()
    for s in range(5):
        row, col = divmod(s, MASKS_PER_LINE)
        y0, x0 = HEADER + TILE + row * mask, x + col * mask
        assert (grid[y0:y0 + mask, x0:x0 + mask] == 100 + s).all(), s


def test_the_sampler_grid_keeps_every_space_of_its_captions_visible():
    size = 64  # the demo's and the ablation's image size: a 10-px caption font
    for text in CAPTIONS:
        grid = np.asarray(caption_grid([(text, [[flat(0, size)]])], size))
        n_lines, spaces = visible_spaces(grid[:, :3 * size], 2, 2, 10, lines=6)
        assert spaces == text.count(" ") - (n_lines - 1), text  # wrapped at spaces, every other space shows
