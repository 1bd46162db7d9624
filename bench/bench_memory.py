"""Peak memory of one training step (D hinge + MA-GP + G with DAMSM) per configuration.

    python bench/bench_memory.py [--configs 64,24,256,299 64,6,256,299 ...] [--amp none] [--mode main]
                                 [--gpu -1]

Each configuration ``NF,BATCH,SIZE,DAMSM_SIZE`` runs in a fresh Python process (peak RSS only ever grows
within one) that builds the trainer, runs one step and reports: its peak RSS (``ru_maxrss``) after
building and after the step, and on a GPU ``torch.cuda.max_memory_allocated`` of the step. The
released configuration is NF 64, batch 24, 256 px, DAMSM input 299.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import common


def child(nf: int, batch: int, size: int, damsm: int, amp: str, mode: str, gpu: int) -> dict:
    from miscc.train.gan import GANTrainer

    with tempfile.TemporaryDirectory() as tmp:
        common.make_run(Path(tmp), nf, batch, size, damsm, amp, cuda=gpu >= 0, extra={"GPU_ID": max(gpu, 0)})
        trainer = GANTrainer(mode)
        trainer.netG.train()
        trainer.netD.train()
        data = next(iter(trainer.loader))
        built = common.peak_rss_mb()
        device = trainer.device
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        seconds, _ = common.timed(lambda: trainer.step(data.to(device)), device)
        cuda = torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else None
    return {"built_rss": built, "step_rss": common.peak_rss_mb(), "cuda": cuda, "seconds": seconds,
            "device": str(device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=["64,24,256,299"], help="NF,BATCH,SIZE,DAMSM_SIZE ...")
    parser.add_argument("--amp", default="none", choices=("none", "bf16", "fp16"))
    parser.add_argument("--mode", default="main", choices=("main", "finetune"))
    parser.add_argument("--gpu", type=int, default=0, help="-1 forces the CPU")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        nf, batch, size, damsm = map(int, args.child.split(","))
        print(json.dumps(child(nf, batch, size, damsm, args.amp, args.mode, args.gpu)))
        return

    rows = []
    for config in args.configs:
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--child", config, "--amp", args.amp, "--mode", args.mode,
                               "--gpu", str(args.gpu)], capture_output=True, text=True)
        if proc.returncode != 0:
            rows.append((config, None, proc.stderr.strip().splitlines()[-1:] or ["killed"]))
            continue
        rows.append((config, json.loads(proc.stdout.strip().splitlines()[-1]), time.perf_counter() - start))

    print(f"machine: {common.machine()}")
    print(f"{args.mode} step, AMP {args.amp}; one fresh process per configuration\n")
    print("| NF | batch | size | DAMSM input | device | peak RSS after build (MiB) | peak RSS after one step "
          "(MiB) | CUDA max allocated (MiB) | step s |")
    print("|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for config, res, extra in rows:
        nf, batch, size, damsm = config.split(",")
        if res is None:
            print(f"| {nf} | {batch} | {size} | {damsm} | failed: {extra[0]} | | | | |")
            continue
        cuda = f"{res['cuda']:.0f}" if res["cuda"] is not None else "n/a"
        print(f"| {nf} | {batch} | {size} | {damsm} | {res['device']} | {res['built_rss']:.0f} | "
              f"{res['step_rss']:.0f} | {cuda} | {res['seconds']:.1f} |")
    done = [(c, r) for c, r, _ in rows if r is not None]
    if done:
        c, r = max(done, key=lambda cr: cr[1]["step_rss"])
        print(f"\nsummary: largest peak RSS {r['step_rss'] / 1024:.2f} GiB for NF,batch,size,DAMSM = {c} on "
              f"{r['device']}" + (f" (CUDA max allocated {r['cuda'] / 1024:.2f} GiB)" if r["cuda"] else "") + ".")


if __name__ == "__main__":
    main()
