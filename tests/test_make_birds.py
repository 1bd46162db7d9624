"""tools/make_birds.py (the synthetic CUB-layout set) and tools/colour_score.py."""
from __future__ import annotations

import json
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datasets import TextDataset, build_transform, tokenize
from miscc.errors import SSAGANError
from tests.conftest import TINY_BIRDS
from tools.colour_score import (NAMES, PALETTE, body_colour_accuracy, chance_level, dominant_body_colour,
                                from_tanh, is_muted, load_attributes, nearest_colour_name)
from tools.make_birds import make_birds

REPO = Path(__file__).resolve().parents[1]


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


def test_layout_is_what_datasets_reads(synthetic_birds):
    train, test = TextDataset(synthetic_birds, "train"), TextDataset(synthetic_birds, "test")
    assert (len(train), len(test)) == (18, 6)  # 3 train classes, 1 test class, 6 images each
    assert set(train.class_id).isdisjoint(test.class_id)
    for ds in (train, test):
        assert list(ds.class_id) == [int(k.split(".")[0]) for k in ds.filenames]  # 1-based like CUB
        assert all(len(caps) > 0 for caps in ds.captions)
    listed = [row[1] for row in _lines(synthetic_birds / "CUB_200_2011" / "images.txt")]
    assert listed == [f"{k}.jpg" for k in train.filenames + test.filenames]
    assert all((synthetic_birds / "CUB_200_2011" / "images" / f).is_file() for f in listed)
    assert "birds" in synthetic_birds.name


def test_default_class_split_is_three_to_one_and_disjoint(tmp_path):
    counts = make_birds(tmp_path / "birds", classes=20, per_class=1, size=(48, 36))
    assert counts == {"train": 15, "test": 5}
    for split, n in counts.items():
        with open(tmp_path / "birds" / split / "class_info.pickle", "rb") as f:
            assert pickle.load(f) == (list(range(1, 16)) if split == "train" else list(range(16, 21)))
    train_colours = {a["body_colour"] for a in load_attributes(tmp_path / "birds", "train").values()}
    assert train_colours == set(NAMES)  # every body colour is seen in training


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path):
    args = {"classes": 3, "per_class": 2, "size": (48, 40)}
    make_birds(tmp_path / "a", seed=7, **args)
    make_birds(tmp_path / "b", seed=7, **args)
    make_birds(tmp_path / "c", seed=8, **args)
    a, b, c = (_tree_bytes(tmp_path / x) for x in "abc")
    assert a == b
    jpegs = [{v for k, v in tree.items() if k.endswith(".jpg")} for tree in (a, c)]
    assert len(jpegs[0]) == 6 and jpegs[0].isdisjoint(jpegs[1])
    make_birds(tmp_path / "a", seed=7, **args)  # regenerating over its own output is allowed
    assert _tree_bytes(tmp_path / "a") == a


def test_rerun_removes_a_stale_captions_pickle_and_refuses_foreign_folders(tmp_path):
    out = tmp_path / "birds"
    make_birds(out, classes=2, per_class=1, size=(40, 32))
    TextDataset(out, "train")
    assert (out / "captions.pickle").exists()
    make_birds(out, classes=2, per_class=1, seed=1, size=(40, 32))
    assert not (out / "captions.pickle").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep me")
    with pytest.raises(SSAGANError, match="not empty"):
        make_birds(tmp_path / "mine", classes=2, per_class=1)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "keep me"


def test_bounding_boxes_are_cub_style_floats_inside_the_image(synthetic_birds):
    w, h = TINY_BIRDS["size"]
    text = (synthetic_birds / "CUB_200_2011" / "bounding_boxes.txt").read_text()
    rows = text.splitlines()
    assert len(rows) == 24
    for i, row in enumerate(rows, start=1):
        assert re.fullmatch(rf"{i} \d+\.0 \d+\.0 \d+\.0 \d+\.0", row), row
        x, y, bw, bh = map(float, row.split()[1:])
        assert x >= 0 and y >= 0 and bw > 8 and bh > 8 and x + bw <= w and y + bh <= h


def test_bird_is_inside_its_bbox_on_a_muted_background(tmp_path):
    root = tmp_path / "birds"
    make_birds(root, classes=4, per_class=3, size=(96, 72))
    attrs = {**load_attributes(root, "train"), **load_attributes(root, "test")}
    for key, a in attrs.items():
        img = np.asarray(Image.open(root / "CUB_200_2011" / "images" / f"{key}.jpg"))
        x, y, bw, bh = (int(v) for v in a["bbox"])
        outside = np.ones(img.shape[:2], bool)
        outside[max(0, y - 2):y + bh + 2, max(0, x - 2):x + bw + 2] = False
        assert (~is_muted(img[outside])).mean() < 0.01, key  # nothing coloured outside the box
        inside = img[y:y + bh, x:x + bw]
        assert (~is_muted(inside)).mean() > 0.3, key
        assert dominant_body_colour(inside) == a["body_colour"], key


def test_captions_name_the_attributes_and_some_exceed_the_cap(synthetic_birds):
    long_files = 0
    for split in ("train", "test"):
        for key, a in load_attributes(synthetic_birds, split).items():
            lines = (synthetic_birds / "text" / f"{key}.txt").read_text().splitlines()
            assert len(lines) == 10
            tokens = [tokenize(line) for line in lines]
            assert all(a["body_colour"] in t for t in tokens)  # every caption names the body colour
            assert any(a["wing_colour"] in t for t in tokens) and any(a["beak_colour"] in t for t in tokens)
            long_files += any(len(t) > 18 for t in tokens)
            colours = {w for t in tokens for w in t if w in PALETTE}
            named = {a["body_colour"], a["wing_colour"], a["head_colour"], a["beak_colour"], "black"}
            assert colours <= named  # "black" is the eye
    assert long_files == 24


def test_attribute_files_describe_every_image(synthetic_birds):
    rows = {r[0]: r for r in _lines(synthetic_birds / "CUB_200_2011" / "bounding_boxes.txt")}
    ids = {r[1][:-4]: r[0] for r in _lines(synthetic_birds / "CUB_200_2011" / "images.txt")}
    for split in ("train", "test"):
        with open(synthetic_birds / split / "filenames.pickle", "rb") as f:
            names = pickle.load(f)
        attrs = json.loads((synthetic_birds / f"attributes_{split}.json").read_text())
        assert sorted(attrs) == sorted(names)
        for key, a in attrs.items():
            colours = {a[k] for k in ("body_colour", "wing_colour", "head_colour", "beak_colour")}
            assert colours <= set(PALETTE)
            assert a["body_colour"] != a["wing_colour"]
            assert a["size"] in ("small", "medium", "large") and a["shape"] in ("round", "slim")
            assert a["class_id"] == int(key.split(".")[0])
            assert a["bbox"] == [float(v) for v in rows[ids[key]][1:]]


def test_command_line(tmp_path):
    out = tmp_path / "birds_cli"
    run = subprocess.run([sys.executable, "-m", "tools.make_birds", str(out), "--classes", "2",
                          "--per-class", "1", "--size", "48", "40"], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "wrote 1 train + 1 test images" in run.stdout
    assert Image.open(next((out / "CUB_200_2011" / "images").rglob("*.jpg"))).size == (48, 40)
    bad = subprocess.run([sys.executable, "-m", "tools.make_birds", str(out), "--classes", "1"],
                         cwd=REPO, capture_output=True, text=True)
    assert bad.returncode == 2 and "--classes must be >= 2" in bad.stderr


# --- colour_score -------------------------------------------------------------------------------

def test_palette_names_and_chance_level():
    assert all(nearest_colour_name(rgb) == name for name, rgb in PALETTE.items())
    assert nearest_colour_name((200, 60, 50)) == "red" and nearest_colour_name((20, 20, 60)) == "black"
    assert chance_level(["red", "red", "blue", "blue"]) == 0.5
    assert chance_level(list(NAMES)) == pytest.approx(1 / len(NAMES))
    assert not is_muted(np.array(list(PALETTE.values()))).any()
    with pytest.raises(ValueError, match="unknown colour"):
        body_colour_accuracy(np.zeros((1, 8, 8, 3), np.uint8), ["teal"])


@pytest.fixture(scope="module")
def all_colour_birds(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("colours") / "birds"
    make_birds(root, classes=8, per_class=5, seed=3, size=(96, 72))  # 8 classes: every body colour
    return root


@pytest.mark.parametrize("train", [True, False])
def test_real_crops_score_high_and_shuffled_labels_score_chance(all_colour_birds, train):
    imgs, colours = [], []
    torch.manual_seed(0)
    for split in ("train", "test"):
        ds = TextDataset(all_colour_birds, split, transform=build_transform(64, train=train))
        attrs = load_attributes(all_colour_birds, split)
        imgs += [ds[i][0][0] for i in range(len(ds))]
        colours += [attrs[k]["body_colour"] for k in ds.filenames]
    pixels = from_tanh(torch.stack(imgs))
    assert pixels.shape == (40, 64, 64, 3) and pixels.dtype == np.uint8
    assert set(colours) == set(NAMES)
    assert body_colour_accuracy(pixels, colours) > 0.9
    rng = np.random.RandomState(0)
    shuffled = np.mean([body_colour_accuracy(pixels, list(rng.permutation(colours))) for _ in range(20)])
    assert abs(shuffled - chance_level(colours)) < 0.08


def test_flat_images_fall_back_to_the_mean_colour_and_from_tanh_clamps():
    assert dominant_body_colour(np.full((16, 16, 3), 128, np.uint8)) in NAMES  # all muted: no vote
    assert dominant_body_colour(np.full((16, 16, 3), PALETTE["green"], np.uint8)) == "green"
    assert from_tanh(torch.tensor([[[[-1.0]], [[0.0]], [[1.5]]]])).tolist() == [[[[0, 127, 255]]]]
