"""The metrics registry is the only place a metric is named: a metric registered here, and nowhere
else, is an IS.py option with its report line and metrics.json entry, a valid EVAL.METRICS value and
a line of metrics.jsonl in training."""
from __future__ import annotations

import json
from typing import Sequence

import pytest
import torch

import IS
from miscc.config import cfg_from_list
from miscc.errors import SSAGANError
from miscc.metrics import METRICS, EvalContext, MetricSpec, Option, register, training_metrics
from miscc.train.gan import GANTrainer
from tests.helpers import configure, write_sample_folder

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _brightness(batch: torch.Tensor, records: Sequence, ctx: EvalContext) -> torch.Tensor:
    return batch.double().mean(dim=(1, 2, 3)) / 255.0


def _mean_brightness(ctx: EvalContext) -> dict:
    values = ctx.per_image("brightness", _brightness)
    return {"brightness": {"mean": float(values.mean()), "images": len(values)}}


@pytest.fixture
def toy_metric():
    """A toy metric (mean pixel brightness), registered for the test only."""
    spec = register(MetricSpec(
        "brightness", _mean_brightness, ("images", "records"), tag="brightness", in_training=True,
        image_fn=_brightness, asked_by="brightness",
        options=(Option("--brightness", dict(action="store_true", help="mean pixel brightness")),),
        report=lambda e: f"brightness = {e['mean']:.4f} over {e['images']} images"))
    yield spec
    METRICS.pop(spec.name)


def test_a_registered_metric_is_an_is_py_option_with_its_report_line_and_json_entry(tmp_path, toy_metric,
                                                                                      capsys):
    folder = write_sample_folder(tmp_path / "samples", done=True, images=3, planned=3)
    assert IS.main(["--image_dir", str(folder), "--weights", "random", "--workers", "0", "--splits", "1",
                    "--brightness"]) == 0
    out = capsys.readouterr().out
    result = json.loads((folder / "metrics.json").read_text())
    # write_sample_folder's images are uniform red (0, 40, 80) / 255 in the R channel, G = B = 0.
    expected = sum(i * 40 / 255 / 3 for i in range(3)) / 3
    assert result["brightness"] == {"mean": pytest.approx(expected), "images": 3}
    assert f"brightness = {expected:.4f} over 3 images" in out
    # Without its option it is not computed.
    assert IS.main(["--image_dir", str(folder), "--weights", "random", "--workers", "0", "--splits", "1"]) == 0
    assert "brightness" not in json.loads((folder / "metrics.json").read_text())


def test_a_registered_metric_is_a_valid_eval_metric_and_a_line_of_metrics_jsonl(tmp_path, toy_metric,
                                                                               synthetic_birds, damsm_files):
    assert "brightness" in training_metrics()
    configure(tmp_path, synthetic_birds, damsm_files, **{
        "TRAIN.EVAL_INTERVAL": 1, "EVAL.METRICS": "brightness", "EVAL.BEST_METRIC": "brightness",
        "EVAL.FID_NUM_IMAGES": 6, "EVAL.BATCH_SIZE": 4, "PROGRESS": "off"})
    run = GANTrainer("main").train()
    (line,) = [json.loads(text) for text in (run / "metrics.jsonl").read_text().splitlines()]
    assert line["values"] == {"brightness": line["brightness"]["mean"]} and line["brightness"]["images"] == 6
    assert 0.0 < line["brightness"]["mean"] < 1.0
    assert json.loads((run / "best.json").read_text())["metric"] == "brightness"


def test_an_unregistered_or_image_only_name_is_refused_by_the_config():
    for value in ("fid,brightness", "lpips"):  # not registered / registered but not for training
        with pytest.raises(SSAGANError, match="EVAL.METRICS"):
            cfg_from_list(["EVAL.METRICS", value])
    with pytest.raises(ValueError, match="registered already"):
        register(METRICS["fid"])
