"""A refactor changes no number: every user path reproduces the recorded golden run, bit for bit.

``tests/golden_run.py`` trains DAMSM for one epoch, SSA-GAN for two epochs (main) and one (fine-tune),
samples every test caption and evaluates the samples with IS.py, all through the command lines, with
fixed seeds, under ``tests.pinned_numerics``: one thread and kernels that do not depend on the CPU, so the
recorded losses, weights, sample pixels and metric values are the same bits on every x86-64 machine
(AVX2 or AVX-512) with the recorded torch build, and they are compared exactly.

A torch build other than the recorded one rounds differently, and no tolerance can stand in for exact
equality: between two kernel families the same code's losses differ by up to 14 % after two epochs
(measured: the pinned run with ``--pin ATEN_CPU_CAPABILITY=avx2`` against the pinned run; an AVX-512
machine's own kernels against an AVX2 machine's: 4.5 %), as large as a real bug's effect. So on another build the run is still checked for its structure (every loss tag at every step,
every weight file, every sample), and the value comparison is skipped with the reason.
"""
from __future__ import annotations

import json

import pytest

from tests.golden_run import GOLDEN, machine, run

pytestmark = pytest.mark.slow

RUNS = ("damsm", "main", "finetune")


@pytest.fixture(scope="module")
def golden_pair(tmp_path_factory):
    return json.loads(GOLDEN.read_text()), run(tmp_path_factory.mktemp("golden"))


def _values_comparable(want: dict, got: dict) -> None:
    if got["machine"] != want["machine"]:
        pytest.skip(f"golden values were recorded with '{want['machine']}', this machine runs '{got['machine']}': "
                    "another torch build (or a CPU without AVX2) rounds differently, and the structure was checked; "
                    "to compare values, install the recorded torch, or re-record on purpose with "
                    "`python -m tests.golden_run --record` on an unchanged checkout")


def test_losses_of_every_training_path_are_unchanged(golden_pair):
    want, got = golden_pair
    for name in RUNS:
        assert sorted(got[name]["scalars"]) == sorted(want[name]["scalars"]), name
        for tag, points in want[name]["scalars"].items():
            assert [s for s, _ in got[name]["scalars"][tag]] == [s for s, _ in points], (name, tag)
    _values_comparable(want, got)
    for name in RUNS:
        for tag, points in want[name]["scalars"].items():
            assert got[name]["scalars"][tag] == points, (name, tag)


def test_weights_written_by_every_training_path_are_unchanged(golden_pair):
    want, got = golden_pair
    for name in RUNS:
        assert sorted(got[name]["weights"]) == sorted(want[name]["weights"]), name
    _values_comparable(want, got)
    for name in RUNS:
        for file, digest in want[name]["weights"].items():
            assert got[name]["weights"][file] == digest, (name, file)


def test_sample_pixels_and_metrics_are_unchanged(golden_pair):
    want, got = golden_pair
    assert sorted(got["samples"]["png"]) == sorted(want["samples"]["png"])
    assert sorted(got["metrics"]) == sorted(want["metrics"])
    _values_comparable(want, got)
    assert got["samples"] == want["samples"]
    assert got["metrics"] == want["metrics"]
