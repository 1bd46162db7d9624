"""tools/text_probe.py: the linear probe of sentence embeddings -> part colours."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from datasets import TextDataset
from DAMSM import RNN_ENCODER
from miscc.run.checkpoint import save_released
from tools.birds.make_birds import make_birds
from tools.text_probe import main, probe_accuracy

COLOURS = ("red", "blue", "yellow", "black")


def _features(labels: list[str], informative: bool, rng: np.random.RandomState) -> np.ndarray:
    """32-d features: a noisy one-hot of the colour when ``informative``, else noise alone."""
    x = rng.normal(0, 0.3, (len(labels), 32))
    if informative:
        x[np.arange(len(labels)), [COLOURS.index(c) for c in labels]] += 1.0
    return x


def test_the_probe_reads_a_colour_the_features_carry_and_only_chance_from_noise():
    rng = np.random.RandomState(0)
    train = [COLOURS[i % 4] for i in range(400)]
    test = [COLOURS[i % 4] for i in range(3, 203)]
    groups = [f"img{i // 10}" for i in range(400)]  # 10 captions per image, as in the bird sets
    good, _ = probe_accuracy(_features(train, True, rng), train, groups, _features(test, True, rng), test)
    noise, _ = probe_accuracy(_features(train, False, rng), train, groups, _features(test, False, rng), test)
    assert good > 0.95
    assert abs(noise - 0.25) < 0.1
    # A test colour no training caption has cannot be named: it counts as wrong, never as a crash.
    unseen, _ = probe_accuracy(_features(train, True, rng), train, groups, _features(test, True, rng),
                               ["green"] * len(test))
    assert unseen == 0.0


@pytest.fixture(scope="module")
def probe_set(tmp_path_factory) -> tuple[Path, Path]:
    """A small set with crown and wing drawn per image, its captions.pickle, and a random text encoder."""
    root = tmp_path_factory.mktemp("probe") / "birds"
    make_birds(root, classes=8, per_class=6, size=(64, 48), parts="image")
    n_words = len(TextDataset(root, "train", 64).ixtoword)  # builds captions.pickle
    torch.manual_seed(1)
    encoder = root.parent / "text_encoder0.pth"
    save_released(RNN_ENCODER(n_words, nhidden=256), encoder)
    return root, encoder


def test_command_line_reports_each_part_beside_a_random_encoder_chance_and_unseen_colours(probe_set, tmp_path,
                                                                                       capsys):
    root, encoder = probe_set
    out = tmp_path / "probe.json"
    assert main(["--cfg", "cfg/demo.yml", "--data_dir", str(root), "--text_encoder", str(encoder),
                 "--out", str(out), "--opts", "TRAIN.DAMSM_TRUNK", "small"]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert set(result["parts"]) == {"body", "head", "wing"}
    assert result["captions"] == {"train": 360, "test": 120}
    for part, r in result["parts"].items():
        assert 0 <= r["accuracy"] <= 1 and 0 <= r["random_encoder"] <= 1
        assert r["unseen"] == 0.0  # drawn per image: every test colour is a training colour
        assert f"| {part} ({r['attribute']}) | {r['accuracy']:.3f} |" in printed
    assert "linear probe of sentence embeddings" in printed


def test_command_line_names_a_missing_encoder_or_captions_pickle(tmp_path, capsys):
    root = tmp_path / "birds"
    make_birds(root, classes=2, per_class=1, size=(48, 40))
    assert main(["--data_dir", str(root), "--text_encoder", str(tmp_path / "none.pth")]) == 2
    assert "none.pth' does not exist" in capsys.readouterr().err
    encoder = tmp_path / "enc.pth"
    save_released(RNN_ENCODER(10, nhidden=256), encoder)
    assert main(["--data_dir", str(root), "--text_encoder", str(encoder)]) == 2
    assert "captions.pickle does not exist" in capsys.readouterr().err
    assert main(["--data_dir", str(tmp_path), "--text_encoder", str(encoder)]) == 2  # no attributes: not ours
    assert "is not a synthetic bird set (no attributes_train.json)" in capsys.readouterr().err
