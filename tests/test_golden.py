"""A refactor changes no number: every user path reproduces the recorded golden run.

``tests/golden_run.py`` trains DAMSM for one epoch, SSA-GAN for two epochs (main) and one (fine-tune),
samples every test caption and evaluates the samples with IS.py, all through the command lines, on one
CPU thread with fixed seeds. On the machine kind the file was recorded on (same torch build and CPU
kernel family) losses, weights, PNG bytes and metric values must be identical; elsewhere float kernels
may round differently, so values are compared to 1e-5 and files are not compared byte for byte.
"""
from __future__ import annotations

import json

import pytest

from tests.golden_run import GOLDEN, machine, run

pytestmark = pytest.mark.slow  # the whole pipeline through its command lines: minutes


@pytest.fixture(scope="module")
def golden_pair(tmp_path_factory):
    return json.loads(GOLDEN.read_text()), run(tmp_path_factory.mktemp("golden"))


def _close(a: float, b: float, exact: bool) -> bool:
    return a == b if exact else abs(a - b) <= 1e-5 * max(1.0, abs(a), abs(b))


def test_losses_of_every_training_path_are_unchanged(golden_pair):
    want, got = golden_pair
    exact = want["machine"] == machine()
    for run_name in ("damsm", "main", "finetune"):
        assert sorted(got[run_name]["scalars"]) == sorted(want[run_name]["scalars"]), run_name
        for tag, points in want[run_name]["scalars"].items():
            mine = got[run_name]["scalars"][tag]
            assert [s for s, _ in mine] == [s for s, _ in points], (run_name, tag)
            assert all(_close(a, b, exact) for (_, a), (_, b) in zip(points, mine)), (run_name, tag, mine)


def test_weights_written_by_every_training_path_are_unchanged(golden_pair):
    want, got = golden_pair
    exact = want["machine"] == machine()
    for run_name in ("damsm", "main", "finetune"):
        assert sorted(got[run_name]["weights"]) == sorted(want[run_name]["weights"]), run_name
        for name, digest in want[run_name]["weights"].items():
            if exact:
                assert got[run_name]["weights"][name]["sha256"] == digest["sha256"], (run_name, name)
            assert _close(got[run_name]["weights"][name]["abs_sum"], digest["abs_sum"], exact), (run_name, name)


def test_sample_files_and_metrics_are_unchanged(golden_pair):
    want, got = golden_pair
    exact = want["machine"] == machine()
    assert sorted(got["samples"]["png"]) == sorted(want["samples"]["png"])
    if exact:
        assert got["samples"] == want["samples"]
    for name, value in want["metrics"].items():
        assert _close(got["metrics"][name], value, exact), (name, got["metrics"][name], value)
