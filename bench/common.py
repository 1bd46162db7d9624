"""Shared pieces of the benchmark scripts: machine description, peak memory, a ready GANTrainer on a
synthetic bird set, and the straightforward per-caption ``words_loss`` the vectorised one replaced.

Every script runs on a CPU-only machine and, unchanged, on a GPU (``--gpu -1`` forces the CPU).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from DAMSM import CNN_ENCODER, RNN_ENCODER  # noqa: E402
from datasets import TextDataset  # noqa: E402
from miscc.run.checkpoint import save_released  # noqa: E402
from miscc.config import cfg, cfg_from_list  # noqa: E402
from miscc.train.losses import func_attention  # noqa: E402
from miscc.run.seeding import seed_everything  # noqa: E402
from tools.birds.make_birds import make_birds  # noqa: E402


def machine() -> str:
    """One line: cores, CPU model, load, torch version and the GPU if any (for RESULTS.md)."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor() or model
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    return (f"{os.cpu_count()} cores ({model}), load average {load}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} intra-op threads{gpu}")


def add_device_args(parser: argparse.ArgumentParser) -> None:
    """--threads and --gpu, the two options every timing script shares."""
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--gpu", type=int, default=0, help="-1 forces the CPU")


def apply_device_args(args: argparse.Namespace) -> torch.device:
    """Set the torch thread count if asked; the GPU ``--gpu`` when there is one, else the CPU."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.gpu >= 0 and torch.cuda.is_available():
        return torch.device("cuda", args.gpu)
    return torch.device("cpu")


def add_json_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", default=None, help="also write the figures of the summary to this JSON file "
                        "(bench/gpu_check.py reads them)")


def write_json(path: Optional[str], figures: dict) -> None:
    """The figures plus what they were measured on (torch, CUDA, device), if ``path`` is given."""
    if not path:
        return
    about = {"machine": machine(), "torch": torch.__version__, "cuda": torch.version.cuda,
             "device_name": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    Path(path).write_text(json.dumps({**about, **figures}, indent=1))


def set_fp32_precision(precision: str) -> None:
    """fp32 matrix products and convolutions: 'ieee' (true fp32) or 'tf32' (TensorFloat-32 on Ampere
    and later; no effect on a CPU). PyTorch's defaults mix the two (TF32 convolutions, fp32 products)."""
    if precision not in ("ieee", "tf32"):
        raise ValueError(f"precision must be 'ieee' or 'tf32', got {precision!r}")
    # The legacy switches on purpose: once the per-backend ``fp32_precision`` settings are used, torch
    # (2.14) refuses to read the legacy ones, which other code still does.
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    """(seconds, result) with the device drained before and after, so queued GPU work is counted."""
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def text_following_generator(nf: int, size: int) -> torch.nn.Module:
    """A random NetG whose gates are open and text MLPs non-zero, so that (unlike a fresh one, a pure
    shortcut chain) every block and mask does its full work: timing a fresh NetG would measure less."""
    from model import NetG
    torch.manual_seed(0)
    netG = NetG(nf, 100, imsize=size)
    with torch.no_grad():
        for name, p in netG.named_parameters():
            if name.endswith("gamma"):
                p.fill_(1.0)
            elif "linear2" in name:
                p.normal_(0, 0.05)
    return netG


def _calibrated_image_encoder(input_size: int) -> CNN_ENCODER:
    """A random Inception whose BN statistics are those of its own (random-image) activations.

    With PyTorch's default statistics (mean 0, var 1) a random trunk's activations grow to ~1e7 and
    overflow fp16; a trained DAMSM encoder's statistics keep them O(1), as these do.
    """
    encoder = CNN_ENCODER(256, pretrained=False, input_size=input_size)
    for m in encoder.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 1.0
    with torch.no_grad():
        encoder.train()(torch.rand(8, 3, input_size, input_size) * 2 - 1)
    for m in encoder.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 0.1
    return encoder.eval()


def write_run_files(tmp: Path, batch: int, size: int, damsm_size: int) -> dict:
    """Write a synthetic bird set (>= ``batch`` train images) and random DAMSM files; return the
    config entries (key: value) that point a run at them."""
    data = tmp / "birds"
    per_class = max(6, -(-batch // 3))  # 3 of the 4 classes are train classes
    make_birds(data, classes=4, per_class=per_class, seed=0, size=(max(64, size), max(48, size * 3 // 4)))
    n_words = TextDataset(data, "train").n_words
    torch.manual_seed(0)
    save_released(RNN_ENCODER(n_words, nhidden=256), tmp / "text_encoder200.pth")
    save_released(_calibrated_image_encoder(damsm_size), tmp / "image_encoder200.pth")
    return {"DATA_DIR": str(data), "OUTPUT_DIR": str(tmp / "output"), "CONFIG_NAME": "bench",
            "TEXT.DAMSM_NAME": str(tmp / "text_encoder200.pth"), "TREE.BASE_SIZE": size,
            "TRAIN.BATCH_SIZE": batch, "WORKERS": 0, "TRAIN.DAMSM_INPUT_SIZE": damsm_size}


def make_run(tmp: Path, nf: int, batch: int, size: int, damsm_size: int, amp: str = "none",
             cuda: bool = True, extra: Optional[dict] = None) -> None:
    """``write_run_files`` and set ``cfg`` to train on them."""
    opts = {**write_run_files(tmp, batch, size, damsm_size), "TRAIN.NF": nf, "TRAIN.AMP": amp, "CUDA": cuda,
            **(extra or {})}
    cfg_from_list([str(x) for kv in opts.items() for x in kv])
    seed_everything(cfg.SEED)


def _cosine(x1: torch.Tensor, x2: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """The original's cosine over dim 1, written out here so that the reference loop does not share
    ``miscc.train.losses.cosine_similarity`` with the implementation it checks."""
    return (x1 * x2).sum(1) / (x1.norm(2, dim=1) * x2.norm(2, dim=1)).clamp(min=eps)


def loop_words_loss(img_features: torch.Tensor, words_emb: torch.Tensor, labels: torch.Tensor,
                    cap_lens: torch.Tensor, class_ids, batch_size: int, gamma1: float = 5.0,
                    gamma2: float = 5.0, gamma3: float = 10.0):
    """The original algorithm, one caption at a time against every image (the baseline).

    For caption i: its first L_i words, repeated for all B images, attend over each image's regions;
    the per-image score is ln sum_t exp(gamma2 * cos(word_t, attended_t)). Same return as words_loss.
    """
    g1, g2, g3 = float(gamma1), float(gamma2), float(gamma3)
    columns, att_maps = [], []
    ids = None if class_ids is None else np.asarray(class_ids)
    for i in range(batch_size):
        n = int(cap_lens[i])
        words = words_emb[i, :, :n].unsqueeze(0).repeat(batch_size, 1, 1)  # B x D x L_i
        attended, attn = func_attention(words, img_features, g1)
        att_maps.append(attn[i].unsqueeze(0).contiguous())
        words = words.transpose(1, 2).reshape(batch_size * n, -1)
        attended = attended.transpose(1, 2).reshape(batch_size * n, -1)
        sims = _cosine(words, attended).view(batch_size, n)
        columns.append(torch.log(torch.exp(sims * g2).sum(dim=1, keepdim=True)))
    scores = torch.cat(columns, 1) * g3  # rows: images, columns: captions
    if ids is not None:
        same = torch.from_numpy((ids[:, None] == ids[None, :]) & ~np.eye(batch_size, dtype=bool))
        scores = scores.masked_fill(same.to(scores.device), float("-inf"))
    return F.cross_entropy(scores, labels), F.cross_entropy(scores.t(), labels), att_maps
