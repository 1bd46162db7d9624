"""Sampling throughput at 256x256 including PNG writing: the sampler's pipelined writer vs saving in the loop.

    python bench/bench_sampling.py [--nf 64] [--images 48] [--batch 24] [--writers N] [--threads N]
                                   [--rounds 2] [--replay] [--gpu -1] [--json PATH]

Both generate the same images (same noise, captions, generator) and write the same files: the RGB
image and its 256x256 mask as PNG, plus one JSON line per image.
  * baseline: generate a batch, then in the main loop convert each image and save it with PIL (what
    the original ``sampling`` did), so the device idles while PNGs are compressed;
  * pipelined: ``miscc.sample.sampler.generate``: one uint8 conversion per batch, PNGs compressed by
    ``--writers`` threads (PIL releases the GIL in zlib) while the next batch is generated, with
    zlib's run-length strategy (``miscc.sample.png.PNG_SAVE_OPTIONS``: same pixels, about the same size);
  * pipelined, PIL's default zlib settings: the same threads with the baseline's PNG settings, to
    separate what the threads give from what the zlib strategy gives.
The generator is a random NetG with its residual gates and text modulation opened, so images have
texture (a fresh NetG's flat output would compress unrealistically fast). Two more rows split the
baseline: generation alone, and PNG writing alone (single thread). The rounds run interleaved and
the fastest is reported. ``--replay`` replays precomputed outputs instead of running the
generator and the text encoder: the situation of a fast GPU, where only the writing pipeline is left
to time.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import common
import miscc.sample.sampler
from DAMSM import RNN_ENCODER
from miscc.config import cfg
from miscc.sample.protocol import images_to_uint8
from miscc.sample.sampler import Job, caption_tensors, generate
from DAMSM import encode_text

N_WORDS = 60


class Replay(torch.nn.Module):
    """Stands in for a network that costs nothing (a fast GPU): returns precomputed batches in turn.

    Replaces the generator and the text encoder alike (``init_hidden`` is what encode_text asks of
    the latter), so that no torch work competes with the PNG writers for the CPU's cores.
    """

    def __init__(self, outputs: list) -> None:
        super().__init__()
        self.outputs, self.i = outputs, 0

    def init_hidden(self, batch: int) -> None:
        return None

    def forward(self, *inputs):
        out = self.outputs[self.i % len(self.outputs)]
        self.i += 1
        return out


def build(nf: int, images: int, device: torch.device):
    netG = common.text_following_generator(nf, 256)
    text_encoder = RNN_ENCODER(N_WORDS, nhidden=256)
    rng = np.random.RandomState(0)
    jobs = [Job(f"k{i}", i, tuple(int(t) for t in rng.randint(1, N_WORDS, rng.randint(8, 19))), 0)
            for i in range(images)]
    noise = torch.randn(images, 100, generator=torch.Generator().manual_seed(0))
    return netG.to(device).eval(), text_encoder.to(device).eval(), jobs, noise


def captions(batch, device):
    """(padded word ids, lengths) of some jobs on ``device``, as the sampler builds them."""
    return tuple(t.to(device) for t in caption_tensors(batch))


def batches(jobs, noise, netG, text_encoder, device, batch_size):
    """The sampler's generation, batch by batch: (start, jobs, images, last masks) on the device."""
    for start in range(0, len(jobs), batch_size):
        batch = jobs[start:start + batch_size]
        _, sent = encode_text(text_encoder, *captions(batch, device))
        imgs, masks = netG(noise[start:start + len(batch)].to(device), sent)
        yield start, batch, imgs, masks[-1]


@torch.no_grad()
def baseline(jobs, noise, netG, text_encoder, device, batch_size, out: Path, ixtoword, write=True) -> None:
    (out / "img").mkdir(parents=True, exist_ok=True)
    (out / "mask").mkdir(exist_ok=True)
    with open(out / "samples.jsonl", "w") as log:
        for start, batch, imgs, masks in batches(jobs, noise, netG, text_encoder, device, batch_size):
            if not write:
                common.sync(device)
                continue
            for row, job in enumerate(batch):
                name = f"{start + row:06d}.png"
                im = imgs[row].cpu().numpy()
                im = ((im + 1.0) * 127.5).clip(0, 255).astype(np.uint8).transpose(1, 2, 0)
                Image.fromarray(im).save(out / "img" / name)
                mask = (masks[row, 0].clamp(0, 1) * 255).to(torch.uint8).cpu().numpy()
                Image.fromarray(mask).save(out / "mask" / name)
                log.write(json.dumps({"file": f"img/{name}", "key": job.key, "caption_idx": job.caption_idx,
                                      "text": " ".join(ixtoword[t] for t in job.tokens)}) + "\n")


@torch.no_grad()
def png_only(arrays: list[np.ndarray], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for i, a in enumerate(arrays):
        Image.fromarray(a).save(out / f"{i:06d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nf", type=int, default=64, help="TRAIN.NF of the generator (released: 64)")
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--writers", type=int, default=os.cpu_count(), help="PNG writer threads (cfg.WORKERS)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--replay", action="store_true",
                        help="replay precomputed generator and text-encoder outputs: only the writing pipeline is timed")
    common.add_device_args(parser)
    common.add_json_arg(parser)
    args = parser.parse_args()
    device = common.apply_device_args(args)
    cfg.WORKERS = args.writers
    netG, text_encoder, jobs, noise = build(args.nf, args.images, device)
    ixtoword = {i: f"w{i}" for i in range(N_WORDS)}
    if args.replay:
        with torch.no_grad():
            texts = [encode_text(text_encoder, *captions(jobs[start:start + args.batch], device))
                     for start in range(0, len(jobs), args.batch)]
            netG = Replay([(imgs, [masks]) for *_, imgs, masks in
                           batches(jobs, noise, netG, text_encoder, device, args.batch)])
            text_encoder = Replay(texts)
    with torch.no_grad():
        first = next(batches(jobs, noise, netG, text_encoder, device, args.batch))
    sample = images_to_uint8(first[2]).permute(0, 2, 3, 1).cpu().numpy()
    masks = (first[3][:, 0].clamp(0, 1) * 255).to(torch.uint8).cpu().numpy()
    pngs = [a for pair in zip(sample, masks) for a in pair]  # what one batch writes, image + mask

    def pipelined(out: Path) -> None:
        (out / "img").mkdir(parents=True)
        (out / "mask").mkdir()
        generate(jobs, noise, netG, text_encoder, device, args.batch, out, ixtoword)

    def pipelined_pil_defaults(out: Path) -> None:
        saved = miscc.sample.png.PNG_SAVE_OPTIONS
        miscc.sample.png.PNG_SAVE_OPTIONS = {}
        try:
            pipelined(out)
        finally:
            miscc.sample.png.PNG_SAVE_OPTIONS = saved

    impls = {
        "baseline: generate a batch, then PIL-save each image in the loop":
            lambda out: baseline(jobs, noise, netG, text_encoder, device, args.batch, out, ixtoword),
        f"pipelined: miscc.sample.sampler.generate, {args.writers} writer thread(s)": pipelined,
        f"pipelined, PIL's default zlib settings ({args.writers} writer thread(s))": pipelined_pil_defaults,
        "(part of baseline) generation only": lambda out: baseline(jobs, noise, netG, text_encoder, device,
                                                                   args.batch, out, ixtoword, write=False),
    }
    best: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for i, (name, fn) in enumerate(impls.items()):
                t, _ = common.timed(lambda: fn(Path(tmp) / f"r{r}_{i}"), device)
                best[name] = min(best.get(name, t), t)
            reps = max(1, len(jobs) // len(sample))
            t, _ = common.timed(lambda: [png_only(pngs, Path(tmp) / f"png{r}_{k}") for k in range(reps)], device)
            best["(part of baseline) PNG writing only, 1 thread"] = min(
                best.get("(part of baseline) PNG writing only, 1 thread", t), t * len(jobs) / (reps * len(sample)))
        files = list((Path(tmp) / "r0_0" / "img").iterdir())
        kib = sum(f.stat().st_size for f in files) / len(files) / 1024
        files1 = list((Path(tmp) / "r0_1" / "img").iterdir())
        kib1 = sum(f.stat().st_size for f in files1) / len(files1) / 1024
        same = all(np.array_equal(np.asarray(Image.open(f)), np.asarray(Image.open(Path(tmp) / "r0_0" / "img" / f.name)))
                   for f in files1)

    print(f"machine: {common.machine()}; device {device}")
    what = "replayed generator and text-encoder outputs (generation costs nothing)" if args.replay else f"NetG NF {args.nf}"
    print(f"{args.images} images at 256x256 (+ masks), {what}, batch {args.batch}, best of "
          f"{args.rounds} rounds; image PNG {kib:.1f} KiB with PIL's defaults, {kib1:.1f} KiB as the sampler writes "
          f"them; {'the same' if same else 'DIFFERENT'} pixels\n")
    print("| implementation | s | images/s | vs baseline |")
    print("|---|---:|---:|---:|")
    base = next(iter(best.values()))
    for name, t in best.items():
        print(f"| {name} | {t:.2f} | {args.images / t:.1f} | {base / t:.2f}x |")
    names = list(best)
    print(f"\nsummary: pipelined sampler {args.images / best[names[1]]:.1f} images/s vs baseline "
          f"{args.images / base:.1f} images/s ({base / best[names[1]]:.2f}x; threads alone: "
          f"{base / best[names[2]]:.2f}x) with {what} on {device.type}; generation alone "
          f"{args.images / best[names[3]]:.1f} images/s, PNG writing alone {args.images / best[names[4]]:.1f} "
          f"images/s per thread.")
    common.write_json(args.json, {
        "nf": args.nf, "images": args.images, "batch": args.batch, "writers": args.writers, "replay": args.replay,
        "device": str(device), "images_per_s": args.images / best[names[1]], "baseline_images_per_s": args.images / base,
        "generation_images_per_s": args.images / best[names[3]],
        "png_images_per_s_per_thread": args.images / best[names[4]], "same_pixels": same})
    if not same:
        raise SystemExit("the pipelined sampler wrote different pixels from the baseline: the timings above "
                         "compare different outputs.")


if __name__ == "__main__":
    main()
