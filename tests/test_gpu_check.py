"""bench/gpu_check.py, the one command for a GPU session, cannot rot: its dry run (every part for real,
at toy sizes, on the CPU) must finish with every part ok and every figure the GPU report needs; a part
that crashes or hangs is recorded as such and the parts after it still run; the targets are computed
from the figures as the issue states them."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
gpu_check = sys.modules["gpu_check"] = importlib.util.module_from_spec(_spec)  # (dataclasses look it up)
_spec.loader.exec_module(gpu_check)  # standard library only: bench/ need not be on sys.path

PARTS = ["cuda_tests", "train_fp32", "train_bf16", "words_loss", "sampling", "ddp_smoke", "train_tf32",
         "train_bf16_cl", "train_bf16_cl_compile"]
TRAIN_KEYS = {"s_per_step", "images_per_s", "peak_cuda_mib", "flops_per_step", "losses_finite", "batch", "nf",
              "size", "torch", "cuda", "device_name", "machine"}


@pytest.mark.slow
def test_dry_run_runs_every_part_and_reports_every_figure(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), str(tmp_path / "out"), "--dry-run"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    log = (tmp_path / "out" / "gpu_check.log").read_text()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    parts = doc["parts"]
    assert doc["dry_run"] and list(parts) == PARTS
    assert {name: r["status"] for name, r in parts.items()} == dict.fromkeys(PARTS, "ok"), log[-3000:]

    tests = parts["cuda_tests"]["figures"]  # the CUDA tests exist and skip themselves on a CPU
    assert tests["tests"] >= 10 and tests["skipped"] == tests["tests"] and not tests["failed_tests"]
    for name in PARTS[1:3] + PARTS[6:]:
        figures = parts[name]["figures"]
        assert TRAIN_KEYS <= set(figures) and figures["losses_finite"] and figures["s_per_step"] > 0, name
        assert (figures["flops_per_step"] or 0) > 0 or name.endswith("compile"), name
    assert parts["train_bf16_cl_compile"]["figures"]["compile"]
    assert {"loop_ms", "vectorised_ms", "speedup"} <= set(parts["words_loss"]["figures"])
    assert parts["sampling"]["figures"]["same_pixels"] and parts["sampling"]["figures"]["images_per_s"] > 0
    assert parts["ddp_smoke"]["figures"]["backend"] == "gloo"

    summary = doc["summary"]
    assert set(summary["train"]) == {n for n in PARTS if n.startswith("train_")}
    assert all(t["tflops_per_s"] > 0 for t in summary["train"].values())  # compile: the counted FLOPs of fp32
    assert {"bf16_speedup", "words_loss_speedup", "cub_epoch"} <= set(summary["targets"])
    assert summary["targets"]["cub_epoch"]["at_paper_size"] is False
    assert "## Summary" in log and "bf16 step >= 2x the fp32 step" in proc.stdout


def test_a_crash_or_hang_is_recorded_and_the_next_parts_still_run(tmp_path, monkeypatch):
    pid_file = tmp_path / "grandchild.pid"
    # A hang with a grandchild (as torchrun has ranks): the whole process group must go.
    hang = ("import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; "
            f"time.sleep(60)']); open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    write = "import json, sys; json.dump({'speedup': 12.0, 'loop_ms': 12.0, 'vectorised_ms': 1.0}, open(sys.argv[2], 'w'))"
    plan = [gpu_check.Part("words_loss", ["-c", write], 1.0),
            gpu_check.Part("crash", ["-c", "import sys; print('boom'); sys.exit(3)"], 1.0),
            gpu_check.Part("hang", ["-c", hang], 1.0),
            gpu_check.Part("late", ["-c", write], 1.0)]
    monkeypatch.setattr(gpu_check, "plan", lambda dry: plan)
    monkeypatch.setattr(gpu_check, "MIN_PART_S", 0.5)
    start = time.perf_counter()
    assert gpu_check.main([str(tmp_path / "out"), "--budget-s", "8"]) == 1
    assert time.perf_counter() - start < 30
    parts = json.loads((tmp_path / "out" / "gpu_check.json").read_text())["parts"]
    assert [parts[n]["status"] for n in ("words_loss", "crash", "hang", "late")] == ["ok", "failed", "timeout", "ok"]
    assert parts["crash"]["rc"] == 3 and "boom" in parts["crash"]["error_tail"]
    assert parts["words_loss"]["figures"]["speedup"] == 12.0
    grandchild = int(pid_file.read_text())
    time.sleep(0.5)
    try:
        state = Path(f"/proc/{grandchild}/status").read_text()
        assert "\nState:\tZ" in state  # dead, only waiting to be reaped
    except FileNotFoundError:
        pass


def _figures(s_per_step: float, flops=None) -> dict:
    return {"status": "ok", "figures": {"s_per_step": s_per_step, "images_per_s": 24 / s_per_step, "batch": 24,
                                        "nf": 64, "size": 256, "peak_cuda_mib": 1000.0, "flops_per_step": flops,
                                        "losses_finite": True, "device_name": "NVIDIA H200", "torch": "2.x",
                                        "cuda": "13.0", "machine": "m"}}


def test_targets_are_computed_as_the_issue_states_them():
    results = {"train_fp32": _figures(1.0, flops=200e12), "train_bf16": _figures(0.6, flops=200e12),
               "train_bf16_cl_compile": _figures(0.4),
               "words_loss": {"status": "ok", "figures": {"speedup": 9.0}},
               "train_tf32": {"status": "failed", "figures": {}}}
    summary = gpu_check.summarise(results, peak_override=None)
    assert summary["bf16_peak_tflops"] == 989.0  # H200, by name
    compiled = summary["train"]["train_bf16_cl_compile"]
    assert compiled["tflops_per_s"] == pytest.approx(500.0)  # fp32's counted FLOPs at its own speed
    assert compiled["fraction_of_bf16_peak"] == pytest.approx(500 / 989)
    t = summary["targets"]
    assert t["bf16_speedup"]["measured"] == pytest.approx(2.5) and t["bf16_speedup"]["reached"]
    assert t["bf16_speedup"]["plain"] == pytest.approx(1 / 0.6)
    assert t["peak_fraction"]["variant"] == "train_bf16_cl_compile" and t["peak_fraction"]["reached"]
    assert not t["words_loss_speedup"]["reached"]
    assert t["cub_epoch"]["epoch_s"] == pytest.approx(368 * 0.4)  # 8,855 // 24 steps
    assert t["cub_epoch"]["epochs_600_h"] == pytest.approx(368 * 0.4 * 600 / 3600)
    assert "train_tf32" not in summary["train"]
    assert gpu_check.summarise(results, peak_override=312.0)["bf16_peak_tflops"] == 312.0
