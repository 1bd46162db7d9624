"""Smoke run of ``torchrun --nproc_per_node=2 main.py`` on one device: does multi-process training start,
step, synchronise and write its files there?

    python bench/ddp_smoke.py [--gpu -1] [--nf 8] [--batch 3] [--timeout 120] [--json PATH]

One epoch of main.py on a synthetic bird set (18 train images, ``--batch`` per process), two processes.
With a GPU both processes share it, and the backends are tried in turn until one works: NCCL (which
usually refuses two ranks on one device), then gloo with CUDA tensors; on a CPU, gloo. Every attempt is
recorded with its exit code, time and the end of its output, so that a refusal says why. The run
passes when torchrun exits 0, rank 0 alone reports the run folder, and netG_001.pth / latest.pth exist.

Each process joins the group here, before main.py's own set-up (which then finds it joined), for two
reasons: the backend is chosen here instead of by the device, and on one GPU ``LOCAL_RANK`` 1 has
no ``cuda:1``, so every process is mapped onto the devices there are.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import common

RANK_ENTRY = "--rank_entry"
REPO = Path(__file__).resolve().parents[1]


def rank_entry(backend: str, argv: list[str]) -> None:
    """What each torchrun process runs: join the group with ``backend``, then main.py's entry point."""
    import torch.distributed as dist

    from main import cli_main

    if torch.cuda.is_available():
        os.environ["LOCAL_RANK"] = str(int(os.environ["LOCAL_RANK"]) % torch.cuda.device_count())
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group(backend)
    cli_main("main", argv)


def attempt(backend: str, main_args: list[str], timeout: float) -> dict:
    """One torchrun of two processes with ``backend``; exit code, wall time, checks and output tail."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", __file__,
           RANK_ENTRY, backend, *main_args]
    start = time.perf_counter()
    # torchrun stays in this process group, so that whoever time-boxes this script (gpu_check.py kills
    # its part's group) also stops torchrun and the ranks.
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        proc.terminate()  # torchrun passes SIGTERM on to the ranks and waits for them
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        rc = None
    return {"backend": backend, "rc": rc, "timed_out": rc is None, "wall_s": time.perf_counter() - start,
            "run_folder_lines": out.count("run folder:"), "tail": out[-3000:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nf", type=int, default=8)
    parser.add_argument("--batch", type=int, default=3, help="TRAIN.BATCH_SIZE per process")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per backend attempt")
    common.add_device_args(parser)
    common.add_json_arg(parser)
    args = parser.parse_args()
    device = common.apply_device_args(args)
    backends = ["nccl", "gloo"] if device.type == "cuda" else ["gloo"]

    attempts = []
    with tempfile.TemporaryDirectory() as tmp:
        opts = {**common.write_run_files(Path(tmp), 2 * args.batch, 64, 75), "TRAIN.BATCH_SIZE": args.batch,
                "TRAIN.NF": args.nf, "TRAIN.MAX_EPOCH": 1, "TRAIN.WARMUP_EPOCHS": 0, "TRAIN.GSAVE_INTERVAL": 1,
                "TRAIN.DSAVE_INTERVAL": 1}
        models = Path(opts["OUTPUT_DIR"]) / opts["CONFIG_NAME"] / "models"
        for backend in backends:
            main_args = ["--cfg", "cfg/bird.yml", "--gpu", str(args.gpu if device.type == "cuda" else -1),
                         "--opts", *[str(x) for kv in opts.items() for x in kv]]
            result = attempt(backend, main_args, args.timeout)
            files = {name: (models / name).is_file() for name in ("netG_001.pth", "latest.pth")}
            result["files"] = files
            result["passed"] = result["rc"] == 0 and result["run_folder_lines"] == 1 and all(files.values())
            attempts.append(result)
            status = "passed" if result["passed"] else f"failed (exit {result['rc']})"
            print(f"--- torchrun, 2 processes, {backend} on {device.type}: {status} in {result['wall_s']:.1f} s")
            print(result["tail"][-1500:])
            if result["passed"]:
                break
            for name in files:  # a failed attempt's partial files must not pass the next one
                (models / name).unlink(missing_ok=True)

    worked = next((a["backend"] for a in attempts if a["passed"]), None)
    why_not = None if worked else "; ".join(f"{a['backend']}: " + (a["tail"].strip().splitlines() or ["no output"])[-1]
                                            for a in attempts)
    common.write_json(args.json, {"device": str(device), "backend": worked, "why_not": why_not,
                                  "attempts": [{k: v for k, v in a.items() if k != "tail"} for a in attempts]})
    print(f"\nsummary: torchrun with 2 processes on one {device.type}: "
          + (f"works with {worked}" if worked else f"does not work ({why_not})"))
    if not worked:
        raise SystemExit(1)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == RANK_ENTRY:
        rank_entry(sys.argv[2], sys.argv[3:])
    else:
        main()
