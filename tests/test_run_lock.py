"""One owner per output folder (miscc/run/lock.py): refusal, stale locks, and two real starts at once."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from miscc.errors import SSAGANError
from miscc.run.lock import FolderLock, folder_lock, lock_file_for
from tests.helpers import tiny_opts

REPO = Path(__file__).resolve().parents[1]


def test_a_held_folder_is_refused_naming_folder_and_holder_and_nothing_is_left(tmp_path):
    run = tmp_path / "out" / "deep" / "run"
    with folder_lock(run, "GAN training") as lock:
        assert lock.path == lock_file_for(run) == tmp_path / "out" / "deep" / ".run.lock"
        with pytest.raises(SSAGANError) as err:
            FolderLock(run, "sampling").acquire()
        message = str(err.value)
        assert str(run) in message and f"process {os.getpid()}" in message and "GAN training" in message
        assert "Nothing was written" in message
    # Released: the lock file and the parents made for it are gone, the folder never existed.
    assert not (tmp_path / "out").exists()


def test_a_lock_left_by_a_killed_holder_is_taken_over(tmp_path):
    run = tmp_path / "run"
    code = ("import sys, time; sys.path.insert(0, %r); from miscc.run.lock import FolderLock; "
            "FolderLock(%r, 'GAN training').acquire(); print('locked', flush=True); time.sleep(60)") % (str(REPO), str(run))
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(SSAGANError, match=f"process {holder.pid}"):
            FolderLock(run, "GAN training").acquire()
    finally:
        holder.kill()
        holder.wait()
    assert lock_file_for(run).is_file()  # SIGKILL: the file stays, the kernel dropped the lock
    lock = FolderLock(run, "GAN training").acquire()
    try:
        assert lock.taken_over["pid"] == holder.pid
    finally:
        lock.release()
    assert not lock_file_for(run).exists()


def _gan_command(data: Path, encoder: Path, out: Path, seed: int, epochs: int) -> list[str]:
    return [sys.executable, str(REPO / "main.py"), "--cfg", str(REPO / "cfg" / "bird.yml"), "--gpu", "-1",
            "--data_dir", str(data), "--manualSeed", str(seed), "--opts",
            *tiny_opts(**{"OUTPUT_DIR": out, "CONFIG_NAME": "run", "TEXT.DAMSM_NAME": encoder, "TRAIN.MAX_EPOCH": epochs,
                          "PROGRESS": "off"})]


@pytest.mark.slow
def test_two_trainings_started_together_in_one_folder_one_is_refused(tmp_path, synthetic_birds, damsm_files):
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    seeds = (11, 22)  # different seeds: the files of the two runs would differ
    procs = [subprocess.Popen(_gan_command(synthetic_birds, damsm_files, out, seed, 2), cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in seeds]
    results = [p.communicate(timeout=600) for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 2], results
    winner = codes.index(0)
    loser_err = results[1 - winner][1]
    errors = [line for line in loser_err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in loser_err, loser_err
    # Started together, the second one finds the folder locked (or, on a very slow machine, the run
    # the first one finished); either way it names the folder and wrote nothing.
    assert str(out / "run") in errors[0]
    assert "is in use" in errors[0] or "already holds" in errors[0]
    if "is in use" in errors[0]:
        assert f"process {procs[winner].pid}" in errors[0]
    # The folder holds the winner's run only: its seed in config.yaml, latest.pth and every epoch.
    run = out / "run"
    seed = seeds[winner]
    assert yaml.safe_load((run / "config.yaml").read_text())["SEED"] == seed
    latest = torch.load(run / "models" / "latest.pth", weights_only=True)
    assert latest["config"]["SEED"] == seed and latest["epoch"] == 2
    assert sorted(p.name for p in (run / "models").glob("netG_*.pth")) == ["netG_001.pth", "netG_002.pth"]
    assert not (run / "config_history.yaml").exists()
    assert len(list((run / "tb").iterdir())) == 1  # one TensorBoard event file: one writer
    assert not lock_file_for(run).exists() and sorted(p.name for p in out.iterdir()) == ["run"]


@pytest.mark.slow
def test_torchrun_ranks_agree_on_a_refusal(tmp_path, synthetic_birds, damsm_files):
    out = tmp_path / "out"
    cmd = _gan_command(synthetic_birds, damsm_files, out, 1, 1)
    cmd[1:2] = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", cmd[1]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with folder_lock(out / "run", "GAN training"):
        start = time.monotonic()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and time.monotonic() - start < 300
    assert "is in use" in proc.stderr and f"process {os.getpid()}" in proc.stderr, proc.stderr[-3000:]
    # Every rank stopped with the one line (rank 0 refused, the other learned it from the broadcast)
    # instead of waiting in its first collective until torchrun's timeout.
    assert sum(line.startswith("error:") and "is in use" in line for line in proc.stderr.splitlines()) == 2
    assert not out.exists()  # the lock file and the folders made for it are gone, no run folder was made
