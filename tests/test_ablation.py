"""The ablation runner: one command runs every row over seeds into one folder, a killed ablation resumes
without redoing finished runs, and the table is built from the run folders alone."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from miscc.metrics.bird_net import build_bird_net
from tools.ablation import table
from tools.ablation.plan import RUN_RECORD
from tools.ablation.variants import VARIANTS
from datasets import TextDataset
from tests.helpers import bird_set, random_damsm

REPO = Path(__file__).resolve().parents[1]
# The demo recipe made small enough for seconds per epoch (the set is large enough for every score), with
# the DAMSM trunk of tests.helpers.random_damsm's pair.
SMALL = ["TRAIN.NF", "4", "TRAIN.BATCH_SIZE", "6", "EVAL.FID_NUM_IMAGES", "12", "EVAL.BATCH_SIZE", "6",
         "TRAIN.DAMSM_TRUNK", "inception"]


@pytest.fixture(scope="module")
def birds(tmp_path_factory) -> Path:
    root = bird_set(tmp_path_factory.mktemp("ablation") / "birds", classes=6, per_class=10, facing="right")
    build_bird_net(root, epochs=5)
    return root


@pytest.fixture(scope="module")
def damsm(birds, tmp_path_factory) -> Path:
    return random_damsm(tmp_path_factory.mktemp("damsm"), TextDataset(birds, "train").n_words)


def _ablation(out: Path, birds: Path, damsm: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "tools.ablation", "--out", str(out), "--data_dir", str(birds), "--damsm", str(damsm),
            "--status_every", "2", *args]


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def _trainings(log: Path) -> int:
    """Training commands the runner started for a run (its log holds every command, '$ ...')."""
    return sum(1 for line in log.read_text().splitlines() if line.startswith("$ ") and "--manualSeed" in line)


@pytest.mark.slow
def test_a_killed_quick_ablation_resumes_without_redoing_runs_and_writes_the_table(birds, damsm, tmp_path):
    out = tmp_path / "abl"
    cmd = _ablation(out, birds, damsm, "--quick", "--jobs", "1", "--opts", *SMALL)
    first, second = out / "runs" / "id0_seed100", out / "runs" / "id1_seed100"
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 600
        while not (second / "models" / "latest.pth").is_file():  # id0 done, id1 past its first epoch
            assert proc.poll() is None and time.time() < deadline, "the ablation ended before it could be killed"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the runner and its training processes, without warning
        proc.wait()
    assert (first / RUN_RECORD).is_file() and not (second / RUN_RECORD).is_file()
    kept = (first / RUN_RECORD).read_bytes(), (first / RUN_RECORD).stat().st_mtime_ns

    proc = _run(cmd)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "not redone: id0_seed100" in proc.stdout and "start id1_seed100 (resume)" in proc.stdout
    assert "epoch 2/2" in proc.stdout  # the progress line of the running run
    assert ((first / RUN_RECORD).read_bytes(), (first / RUN_RECORD).stat().st_mtime_ns) == kept
    assert _trainings(first.parent / "id0_seed100.log") == 1
    assert _trainings(first.parent / "id1_seed100.log") == 2 and "--resume" in (first.parent / "id1_seed100.log").read_text()

    result = json.loads((out / table.ABLATION_JSON).read_text())
    assert list(result["rows"]) == ["id0", "id1"]
    for v, row in result["rows"].items():
        assert row["final"]["epoch"]["mean"] == 2 and row["seeds"] == [100]
        for column in table.COLUMNS:
            assert row["final"][column.key]["mean"] is not None, (v, column.key)
        assert row["cost"]["cpu_seconds_per_step"]["mean"] > 0 and row["cost"]["parameters_G"] > 0
    assert result["rows"]["id1"]["versus"]["final"]["bird_fd"]["judged"] is False  # one seed: no spread to judge
    assert result["rows"]["id0"]["cost"]["parameters_G"] < result["rows"]["id1"]["cost"]["parameters_G"]  # no masks
    refs = result["references"]
    assert refs["bird_fd floor (real halves)"]["mean"] > 0 and refs["mask_coverage uniform mask"]["mean"] > 0
    md = (out / table.ABLATION_MD).read_text()
    assert VARIANTS["id0"].label in md and VARIANTS["id1"].label in md and "shuffled-caption baseline" in md
    assert (out / table.CURVES_PNG).stat().st_size > 0 and (out / table.GRID_PNG).stat().st_size > 0
    for run in (first, second):
        epochs = [json.loads(t)["epoch"] for t in (run / "metrics.jsonl").read_text().splitlines()]
        assert epochs == [1, 2]  # nothing evaluated twice, nothing lost
        line = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
        assert {"crown_colour", "wing_colour", "bird_fd", "mask_coverage"} <= set(line["values"])
        record = json.loads((run / RUN_RECORD).read_text())
        assert record["evaluations"]["final"]["bird_diversity"]["captions"] > 0
        assert (run / "eval" / "grid" / "grid.png").is_file()

    # The table from the run folders alone, somewhere else: the same rows.
    moved = tmp_path / "elsewhere"
    shutil.copytree(out / "runs", moved / "runs")
    proc = _run([sys.executable, "-m", "tools.ablation", "--out", str(moved), "--table"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((moved / table.ABLATION_JSON).read_text())["rows"] == result["rows"]

    # For a scheduler: one command per run, between a preparing and a table command.
    proc = _run(_ablation(out, birds, damsm, "--quick", "--seeds", "2", "--print_commands", "--opts", *SMALL))
    commands = [line for line in proc.stdout.splitlines() if not line.startswith("#")]
    assert len(commands) == 1 + 4 + 1 and "--prepare_only" in commands[0] and "--table" in commands[-1]
    assert all("--threads 1" in c for c in commands)  # a scheduler's job runs as the runner would
    assert sorted(c.split("--only ")[1].split()[0] for c in commands[1:-1]) == \
        ["id0_seed100", "id0_seed101", "id1_seed100", "id1_seed101"]

    # Another recipe in the same folder is refused: its runs would not be comparable.
    proc = _run(_ablation(out, birds, damsm, "--quick", "--opts", *SMALL, "TRAIN.NF", "8"))
    assert proc.returncode == 2 and "other opts" in proc.stderr


def test_a_table_of_a_folder_without_finished_runs_is_refused_and_writes_nothing(tmp_path, capsys):
    from tools.ablation.__main__ import main
    assert main(["--out", str(tmp_path / "typo"), "--table"]) == 2
    assert "holds no finished run" in capsys.readouterr().err and not (tmp_path / "typo").exists()
