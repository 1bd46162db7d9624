"""Inputs of the in-training evaluation are checked before the first step, a failing evaluation never
costs its epoch, and the best epoch is only chosen among evaluations on the same set (issue 23)."""
from __future__ import annotations

import json

import pytest
import torch

import miscc.watch.evaluation as te
from miscc.config import cfg_from_list
from miscc.errors import SSAGANError
from miscc.train.gan import GANTrainer
from miscc.watch.history import MetricsHistory
from tests.helpers import configure
from tests.test_training_eval import _lines, _run, birds8  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("key, make", [
    ("EVAL.FID_REF", lambda tmp: tmp.joinpath("ref.npz").write_bytes(b"PK\x03\x04 not a zip") and tmp / "ref.npz"),
    ("EVAL.FID_REF", lambda tmp: tmp.joinpath("stats.bin").write_bytes(b"\x00" * 10) and tmp / "stats.bin"),
    ("EVAL.FID_REF", lambda tmp: tmp.joinpath("refs").mkdir() or tmp.joinpath("refs", "a.png").write_bytes(b"no png")
     and tmp / "refs"),
    ("EVAL.INCEPTION_WEIGHTS", lambda tmp: tmp.joinpath("inception.pth").write_bytes(b"garbage") and
     tmp / "inception.pth"),
])
def test_a_broken_evaluation_input_is_refused_before_training_writes_anything(tmp_path, birds8, key, make):
    path = make(tmp_path)
    data, damsm = birds8
    configure(tmp_path, data, damsm, **{"TRAIN.EVAL_INTERVAL": 1, "EVAL.INCEPTION_WEIGHTS": "random",
                                        "EVAL.METRICS": "fid,r_precision", key: str(path)})
    with pytest.raises(SSAGANError, match=f"config key {key} = '{path}'.*checked before training starts"):
        GANTrainer("main").train()
    assert not (tmp_path / "output").exists()


@pytest.mark.slow
def test_a_failed_evaluation_keeps_the_epoch_it_evaluates(tmp_path, birds8, monkeypatch):
    opts = {"TRAIN.EVAL_INTERVAL": 1, "TRAIN.MAX_EPOCH": 2, "EVAL.FID_NUM_IMAGES": 20,
            "EVAL.METRICS": "r_precision", "EVAL.BEST_METRIC": "r_precision"}

    def broken(self, *args, **kwargs):
        raise SSAGANError("the reference broke")
    monkeypatch.setattr(te.TrainingWatch, "_compute", broken)
    with pytest.raises(SSAGANError, match=r"the reference broke Nothing is lost: epoch 1's training is saved"):
        _run(tmp_path, birds8, **opts)
    run = tmp_path / "output" / "tiny"
    assert torch.load(run / "models" / "latest.pth", weights_only=True)["epoch"] == 1
    monkeypatch.undo()
    cfg_from_list(["RESTORE", "True"])
    GANTrainer("main").train()
    assert [line["epoch"] for line in _lines(run)] == [2]


def test_the_best_epoch_is_chosen_among_evaluations_on_the_set_in_use(tmp_path):
    history = MetricsHistory(tmp_path / "metrics.jsonl", "fid")
    for epoch, fid, sha in ((1, 5.0, "old"), (2, 9.0, "new"), (3, 8.0, "new")):
        history.lines.append({"epoch": epoch, "values": {"fid": fid}, "protocol": {"eval_set": {"sha256": sha}}})
    assert history.best()["epoch"] == 1  # no set given: every line (what a reader of the file sees)
    history.eval_set = "new"
    assert history.best()["epoch"] == 3


@pytest.mark.slow
def test_a_resume_on_a_redrawn_evaluation_set_restarts_best_epoch_tracking(tmp_path, birds8, monkeypatch, capsys):
    opts = {"TRAIN.EVAL_INTERVAL": 1, "TRAIN.MAX_EPOCH": 1, "EVAL.FID_NUM_IMAGES": 20,
            "EVAL.METRICS": "r_precision", "EVAL.BEST_METRIC": "r_precision"}
    # No evaluation is ever better than an earlier one: only a restart can name a later epoch.
    monkeypatch.setattr(MetricsHistory, "better", lambda self, a, b: False)
    run = _run(tmp_path, birds8, **opts)
    assert json.loads((run / "best.json").read_text())["epoch"] == 1
    cfg_from_list(["RESTORE", "True", "TRAIN.MAX_EPOCH", "2", "EVAL.FID_NUM_IMAGES", "12"])  # a new set
    GANTrainer("main").train()
    out = capsys.readouterr().out
    assert "best-epoch tracking restarts" in out and "not comparable" in out
    best = json.loads((run / "best.json").read_text())
    assert best["epoch"] == 2 and [line["images"] for line in _lines(run)] == [20, 12]
    # The same set on a later resume: tracking goes on, epoch 2 stays the best.
    cfg_from_list(["TRAIN.MAX_EPOCH", "3"])
    GANTrainer("main").train()
    assert json.loads((run / "best.json").read_text())["epoch"] == 2
