"""tools/demo_report.py: part scores against chance and real crops, swap captions, grids."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
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


def _is_py_result(folder: str, **entries) -> dict:
    return {"protocol": {"image_dir": folder, "inception": None}, "inception_score": None, "fid": None, **entries}


ONE_PER_IMAGE = _is_py_result(
    "samples/one_per_image",
    bird_fd={"fd": 33.6, "floor": 0.25, "images": 150, "real_images": 150},
    bird_is={"mean": 4.06, "std": 0.07, "ceiling": 4.15, "classes": 20, "splits": 10},
    r_precision={"mean": 0.48, "std": 0.03, "mismatched": 99, "images": 150},
    mask_coverage={"stages": [0.31, 0.63], "uniform": 0.30, "perfect": 1.0, "images": 150, "mean": 0.47},
    colour_accuracy={"accuracy": 0.93, "chance": 0.2, "images": 150},
    crown_colour={"accuracy": 0.35, "chance": 0.44, "shuffled_caption_baseline": 0.17, "images": 150},
    wing_colour={"accuracy": 0.12, "chance": 0.28, "shuffled_caption_baseline": 0.11, "images": 150})
SWAP = _is_py_result("samples/swap", bird_fd={"fd": 80.0, "floor": 0.25, "images": 40, "real_images": 150},
                     bird_diversity={"mean": 0.68, "std": 0.1, "captions": 10, "real_one_species": 1.16})


def _parts() -> dict:
    return {p: {"accuracy": a, "chance_level": c, "shuffled_caption_baseline": b, "real_test_crops_accuracy": 1.0}
            for p, a, c, b in (("body", 0.941, 0.2, 0.21), ("head", 0.315, 0.44, 0.169), ("wing", 0.095, 0.28, 0.107))}


def test_the_headline_gives_every_score_with_its_reference_from_the_folder_that_fits():
    swap = {"body_accuracy": 0.925, "chance_level": 0.2, "n_samples": 40, "predicted_body_colours": {"a": [], "b": []}}
    h = demo_report.headline(_parts(), swap, [("samples/one_per_image", ONE_PER_IMAGE), ("samples/swap", SWAP)])
    assert set(h) == {"colour", "swap_body_colour", "bird_fd", "bird_is", "r_precision", "mask_coverage",
                      "bird_diversity", "colour_accuracy", "crown_colour", "wing_colour", "not_measured"}
    assert h["not_measured"] == {}
    assert h["colour"]["head"] == {"accuracy": 0.315, "chance": 0.44, "shuffled_captions": 0.169, "real_test_crops": 1.0}
    # FD is in both files: the first (one sample per test image, as the real reference) wins over the swap set's.
    assert h["bird_fd"] == {"value": 33.6, "floor": 0.25, "images": 150, "real_images": 150,
                            "samples": "samples/one_per_image"}
    assert h["bird_is"]["ceiling"] == 4.15 and h["r_precision"]["chance"] == pytest.approx(0.01)
    assert h["mask_coverage"]["uniform"] == 0.30 and h["mask_coverage"]["stages"] == [0.31, 0.63]
    assert h["bird_diversity"] == {"value": 0.68, "real_one_species": 1.16, "captions": 10, "samples": "samples/swap"}
    lines = demo_report.headline_lines(h, 1500)
    text = "\n".join(lines)
    # The colours lead, each with chance, shuffled captions and real crops; then each score with its reference.
    assert lines[0].startswith("colour the caption names (1500 samples)") and "shuffled captions" in lines[0]
    assert lines[2].split() == ["crown", "0.315", "0.440", "0.169", "1.000"]
    for expected in ("FD on the bird network: 33.600 (real-image floor 0.250", "real-image ceiling 4.150",
                     "R-precision (demo DAMSM): 0.480 ± 0.030 (chance 0.010", "0.310 0.630 (uniform mask 0.300, perfect 1)",
                     "noise diversity on the bird network: 0.680 (real images of one species 1.160) over 10 captions "
                     "- samples/swap", "0.925 (chance 0.200)",
                     "colour as training measures it: body 0.930 (chance 0.200), crown 0.350 (shuffled captions "
                     "0.170), wings 0.120 (shuffled captions 0.110) - 150 samples of samples/one_per_image"):
        assert expected in text, expected
    assert "not measured" not in text and "Inception" not in text and "pixel" not in text


def test_a_score_without_its_is_py_result_is_named_with_the_option_that_measures_it():
    h = demo_report.headline(_parts(), None, [("samples/swap", SWAP)])
    assert set(h["not_measured"]) == {"bird_is", "r_precision", "mask_coverage", "colour_accuracy", "crown_colour",
                                      "wing_colour"}
    assert h["bird_fd"]["samples"] == "samples/swap"  # only there: taken, and said where it comes from
    assert "--r_precision" in h["not_measured"]["r_precision"]
    assert any(line.startswith("not measured: mask_coverage (IS.py --mask_coverage")
               for line in demo_report.headline_lines(h, 10))


def test_the_report_writes_the_headline_from_is_py_results_and_refuses_a_missing_one(synthetic_birds, tmp_path,
                                                                                    capsys):
    keys, crops = demo_report.real_crops(synthetic_birds, 64)
    _fake_samples(tmp_path / "right", keys, crops, ["t"] * len(keys))
    (tmp_path / "m.json").write_text(json.dumps(ONE_PER_IMAGE))
    result = demo_report.main(["--data_dir", str(synthetic_birds), "--samples", str(tmp_path / "right"),
                               "--out", str(tmp_path / "out"), "--metrics_json", str(tmp_path / "m.json")])
    out = capsys.readouterr().out
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert list(written)[0] == "headline" and written["headline"] == result["headline"]
    assert written["headline"]["colour"]["body"]["accuracy"] == 1.0
    assert written["headline"]["not_measured"] == {"bird_diversity": demo_report.headline(
        _parts(), None, [])["not_measured"]["bird_diversity"]}
    assert "FD on the bird network: 33.600" in out and "body (breast/belly)" in out
    assert "swap" not in written and "noise" not in out.replace("noise diversity", "")
    with pytest.raises(SystemExit) as stop:
        demo_report.main(["--data_dir", str(synthetic_birds), "--samples", str(tmp_path / "right"),
                          "--out", str(tmp_path / "out"), "--metrics_json", str(tmp_path / "missing.json")])
    assert stop.value.code == 2 and "missing.json not found" in capsys.readouterr().err
