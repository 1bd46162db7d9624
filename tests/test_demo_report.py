"""tools/demo_report.py: part scores against chance and real crops, swap captions, grids."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from datasets import TextDataset, build_transform, tokenize
from tools import demo_report
from miscc.metrics.colour import load_attributes
from tests.helpers import visible_spaces


def _fake_samples(folder: Path, keys: list[str], images: np.ndarray, texts: list[str]) -> None:
    """A sample folder in the sampler's layout (img/*.png + samples.jsonl)."""
    (folder / "img").mkdir(parents=True)
    with open(folder / "samples.jsonl", "w") as f:
        for i, (key, img, text) in enumerate(zip(keys, images, texts)):
            Image.fromarray(img).save(folder / "img" / f"{i:06d}.png")
            f.write(json.dumps({"file": f"img/{i:06d}.png", "key": key, "caption_idx": 0, "text": text,
                                "tokens": [1]}) + "\n")


def test_real_crops_as_samples_score_one_and_swapped_images_score_low(synthetic_birds, tmp_path):
    keys, crops = demo_report.real_crops(synthetic_birds, 64)
    _fake_samples(tmp_path / "right", keys, crops, ["t"] * len(keys))
    result = demo_report.main(["--data_dir", str(synthetic_birds), "--samples", str(tmp_path / "right"),
                               "--out", str(tmp_path / "out")])
    for part in demo_report.PARTS:
        assert result["parts"][part]["accuracy"] == 1.0
        assert result["parts"][part]["real_test_crops_accuracy"] == 1.0
    assert result["colour_accuracy"] == 1.0 and (tmp_path / "out" / "results_grid.png").is_file()
    # Samples showing birds of another body colour than their captions ask for must score low.
    test_colour = load_attributes(synthetic_birds, "test")[keys[0]]["body_colour"]
    train = load_attributes(synthetic_birds, "train")
    tds = TextDataset(synthetic_birds, "train", transform=build_transform(64, train=False))
    others = [i for i, k in enumerate(tds.filenames) if train[k]["body_colour"] != test_colour]
    wrong = np.stack([((tds[others[i % len(others)]][0][0].clamp(-1, 1) + 1) * 127.5).byte()
                      .permute(1, 2, 0).numpy() for i in range(len(keys))])
    _fake_samples(tmp_path / "wrong", keys, wrong, ["t"] * len(keys))
    bad = demo_report.main(["--data_dir", str(synthetic_birds), "--samples", str(tmp_path / "wrong"),
                            "--out", str(tmp_path / "out2")])
    assert bad["parts"]["body"]["accuracy"] < 0.5


def test_swap_captions_differ_in_one_colour_word_and_parse(synthetic_birds, tmp_path):
    path = tmp_path / "swap.txt"
    demo_report.main(["--data_dir", str(synthetic_birds), "--write_swap_captions", str(path)])
    lines = path.read_text().splitlines()
    rows = json.loads(path.with_suffix(".json").read_text())
    colours = sorted({a["body_colour"] for s in ("train", "test")
                      for a in load_attributes(synthetic_birds, s).values()})
    assert len(lines) == len(rows) == len(colours)  # one frame per test species; the tiny set has one
    vocab = TextDataset(synthetic_birds, "train").wordtoix
    tokens = [tokenize(line) for line in lines]
    assert all(t in vocab for ts in tokens for t in ts)
    for ts in tokens[1:]:  # same words except the colour
        assert sum(a != b for a, b in zip(ts, tokens[0])) == 1 and len(ts) == len(tokens[0])
    assert sorted(r["attributes"]["body_colour"] for r in rows) == colours


def test_swap_samples_are_scored_per_caption_and_drawn(synthetic_birds, tmp_path):
    path = tmp_path / "swap.txt"
    rows = demo_report.write_swap_captions(synthetic_birds, path)
    keys, crops = demo_report.real_crops(synthetic_birds, 64)
    test = load_attributes(synthetic_birds, "test")
    # Four real crops of the base bird per caption: right only for the line naming its own colour.
    samples, texts, images = [], [], []
    for r in rows:
        for j in range(4):
            samples.append(f"swap.txt:{r['line']}")
            texts.append(r["text"])
            images.append(crops[j])
    _fake_samples(tmp_path / "swap", samples, np.stack(images), texts)
    report, scored = demo_report.swap_report(tmp_path / "swap", path, {"body": tuple(
        sorted({a["body_colour"] for a in test.values()} | {r["attributes"]["body_colour"] for r in rows}))})
    assert report["n_samples"] == 4 * len(rows)
    assert report["body_accuracy"] == 1 / len(rows)
    grid = np.asarray(demo_report.swap_grid(scored))
    style = demo_report.report_style(64, 2 * 128)
    top = style.header("title", ["noise 1"])
    assert grid.shape[0] == top + style.pad + len(rows) * (128 + style.pad) + style.margin
    base_colour = test[keys[0]]["body_colour"]
    for r, row in enumerate(rows):
        y = top + style.pad + r * (128 + style.pad)
        # Every space of the caption that is not a line break shows as a gap (it drew 'hasa', 'wingsand').
        n_lines, gaps = visible_spaces(grid[:, :style.text_width - style.pad], style.pad, y, style.font_size, lines=8)
        assert n_lines >= 1 and gaps == len(row["text"].split()) - n_lines, row["text"]
        # A sample of another body colour than its caption's is framed red, a right one is not.
        framed = tuple(grid[y - 1, style.text_width + 64]) == (255, 0, 0)
        assert framed == (row["attributes"]["body_colour"] != base_colour), row["text"]


def test_noise_diversity_compares_samples_of_one_caption_with_samples_of_others():
    flat = lambda v: np.full((4, 4, 3), v, np.float32)  # noqa: E731
    report = demo_report.noise_diversity([[flat(0), flat(10)], [flat(100), flat(100)]])
    assert report["mean_abs_pixel_difference_same_caption"] == 5.0  # (10 + 0) / 2 pairs
    assert report["mean_abs_pixel_difference_other_caption"] == 100.0  # first sample of each caption
    assert demo_report.noise_diversity([[flat(1)]])["mean_abs_pixel_difference_same_caption"] == 0.0


def test_coarse_noise_measure_ignores_grain_but_sees_layout():
    rng = np.random.RandomState(0)
    base = np.full((64, 64, 3), 120, np.float32)
    grain = np.where(np.indices((64, 64)).sum(0)[..., None] % 2 == 0, 20.0, -20.0)  # +-20 checkerboard
    moved = base.copy()
    moved[:32] = 200  # the top half changes colour: visible at a glance
    report = demo_report.noise_diversity([[base, base + grain, moved]])
    assert report["mean_abs_pixel_difference_same_caption"] > 20  # grain counts per pixel ...
    coarse_pairs = [0.0, 40.0, 40.0]  # ... but averages out over 8x8 cells; the colour change stays
    assert abs(report["mean_abs_8x8_difference_same_caption"] - np.mean(coarse_pairs)) < 1e-4
    assert demo_report.coarse(rng.uniform(0, 255, (60, 44, 3)).astype(np.float32)).shape == (8, 8, 3)


def test_species_diversity_groups_real_images_by_species():
    flat = lambda v: np.full((4, 4, 3), v, np.uint8)  # noqa: E731
    images = np.stack([flat(0), flat(20), flat(200), flat(200)])
    records = [{"species": "A"}, {"species": "A"}, {"species": "B"}, {"species": "B"}]
    ref = demo_report.species_diversity(images, records)
    assert ref["mean_abs_pixel_difference_same_species"] == 10.0  # A: 20, B: 0
    assert ref["mean_abs_pixel_difference_other_species"] == 200.0
    assert ref["mean_abs_8x8_difference_same_species"] == 10.0  # flat images: the same at any scale
