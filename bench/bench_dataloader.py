"""Data-loading throughput (images/s) of TextDataset + DataLoader at the training transform.

    python bench/bench_dataloader.py [--data_dir DIR] [--size 256] [--workers 0 1 2] [--batches 20]

Without --data_dir it writes a synthetic bird set with CUB-like 500x375 JPEGs to a temporary folder
(``tools.birds.make_birds``), so the decode + bbox crop + resize + crop cost resembles real CUB. The first
batch of each loader is timed separately (worker start-up) and excluded from the throughput.

With 0 workers the loading runs in the main process, whose tensor ops (ToTensor, Normalize, collate)
use torch's intra-op threads; on a small or busy machine those threads spin against each other, so
that row is measured twice: with torch's default thread count and with one thread.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datasets import TextDataset, build_transform, prepare_data  # noqa: E402
from tools.birds.make_birds import make_birds  # noqa: E402


def measure(ds: TextDataset, workers: int, batch_size: int, batches: int) -> tuple[float, float]:
    """(seconds to the first batch, images/s over the following ``batches`` batches)."""
    sampler = torch.utils.data.RandomSampler(ds, replacement=True, num_samples=batch_size * (batches + 1),
                                             generator=torch.Generator().manual_seed(0))
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, sampler=sampler, drop_last=True,
                                         num_workers=workers)
    start = time.perf_counter()
    it = iter(loader)
    prepare_data(next(it))
    first = time.perf_counter() - start
    start = time.perf_counter()
    n = 0
    for batch in it:
        n += len(prepare_data(batch)[4])
    return first, n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", default="", help="an AttnGAN-layout data set (default: synthetic)")
    parser.add_argument("--split", default="train", choices=("train", "test"))
    parser.add_argument("--size", type=int, default=256, help="TREE.BASE_SIZE to load at")
    parser.add_argument("--batch_size", type=int, default=24)
    parser.add_argument("--batches", type=int, default=20, help="timed batches per setting")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir
        if not data_dir:
            data_dir = os.path.join(tmp, "birds")
            start = time.perf_counter()
            make_birds(data_dir, classes=20, per_class=30, seed=0, size=(500, 375))
            print(f"synthetic set: 600 images at 500x375 written in {time.perf_counter() - start:.1f}s")
        ds = TextDataset(data_dir, args.split, args.size, transform=build_transform(args.size))
        print(f"data: {data_dir} ({args.split}, {len(ds)} images), {args.size}x{args.size}, batch "
              f"{args.batch_size}, {args.batches} timed batches, {os.cpu_count()} CPU cores, "
              f"torch {torch.__version__}\n")
        print("| workers | main-process torch threads | first batch (s) | images/s |")
        print("|---:|---:|---:|---:|")
        default_threads = torch.get_num_threads()
        settings = [(w, default_threads) for w in args.workers]
        if 0 in args.workers and default_threads > 1:
            settings.insert(args.workers.index(0) + 1, (0, 1))
        results = {}
        for w, threads in settings:
            torch.set_num_threads(threads)
            first, rate = measure(ds, w, args.batch_size, args.batches)
            results[(w, threads)] = rate
            print(f"| {w} | {threads} | {first:.2f} | {rate:.1f} |")
        torch.set_num_threads(default_threads)
        best = max(results, key=results.get)
        print(f"\nsummary: best {results[best]:.1f} images/s at {args.size}px with {best[0]} worker(s) "
              f"({best[1]} main-process thread(s)); one {args.batch_size}-image batch every "
              f"{args.batch_size / results[best] * 1000:.0f} ms.")

if __name__ == "__main__":
    main()
