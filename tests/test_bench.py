"""Every benchmark script runs end to end at a tiny size and prints its summary line.

No timing is asserted (speed is for bench/RESULTS.md, not for tests). The scripts exit non-zero when
the implementations they time disagree (words_loss vs the loop, the sampler's pixels vs the baseline's,
GANTrainer.step's losses vs the baseline's), so a zero exit here also checks those.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # every benchmark script in a subprocess

CASES = {
    "words_loss": (["bench_words_loss.py", "--batch", "4", "--words", "5", "--regions", "5", "--repeats", "1"],
                   "same loss to"),
    "sampling": (["bench_sampling.py", "--replay", "--nf", "4", "--images", "4", "--batch", "2", "--rounds", "1",
                  "--writers", "1"], "the same pixels"),
    "train_step": (["bench_train_step.py", "--nf", "4", "--batch", "2", "--size", "64", "--damsm_size", "75",
                    "--steps", "1", "--rounds", "1"], "losses agree to"),
    "memory": (["bench_memory.py", "--configs", "4,2,64,75"], "largest peak RSS"),
    "eval_cost": (["bench_eval_cost.py", "--nf", "4", "--size", "64", "--damsm_size", "75", "--time",
                   "--time_nf", "4", "--time_batch", "2", "--classes", "4", "--per_class", "6",
                   "--time_evals", "r_precision,colour_accuracy:10"], "of an epoch"),
    "dataloader": (["bench_dataloader.py", "--size", "64", "--batch_size", "2", "--batches", "2",
                    "--workers", "0"], "images/s"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_benchmark_script_runs_and_prints_its_summary(name, tmp_path):
    args, expected = CASES[name]
    if name != "dataloader":
        args = [*args, "--gpu", "-1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / args[0]), *args[1:]], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    summary = [line for line in proc.stdout.splitlines() if line.startswith("summary:")]
    assert len(summary) == 1, proc.stdout[-2000:]
    assert expected in proc.stdout
