"""One full SSA-GAN training step (D hinge + MA-GP + G with DAMSM): ``GANTrainer.step`` vs a baseline.

    python bench/bench_train_step.py [--nf 8] [--batch 6] [--size 64] [--damsm_size 75] [--amp none]
                                     [--mode main] [--steps 3] [--rounds 2] [--threads N] [--gpu -1]
                                     [--precision ieee|tf32] [--channels_last] [--compile] [--no_baseline]
                                     [--flops] [--json PATH]

The baseline is the same step computed the straightforward way: the DAMSM word loss as the original's
per-caption loop (``bench/common.py``) and every loss read back to the host after each step (``.item()``,
as a plain logging loop does). Each implementation runs ``--steps`` consecutive steps on one fixed
batch from the same starting state (models, optimisers, RNG), so their losses must agree step by step
(up to float rounding of the two words_loss orders); ``--rounds`` repeats both, interleaved, and the
fastest round is reported (other processes on a shared machine only ever add time). The first step
of each round is a warm-up and is not timed. Peak memory: this process's peak RSS, and on a GPU
``torch.cuda.max_memory_allocated`` per implementation.

``--precision``, ``--channels_last`` and ``--compile`` select the step's variant (fp32 products in
IEEE or TF32 arithmetic, TRAIN.CHANNELS_LAST, TRAIN.COMPILE); ``--no_baseline`` times
GANTrainer.step alone. ``--flops`` counts the arithmetic of one step (forward, backward and MA-GP's
double backward) with torch's FLOP counter before the timed rounds, and reports the rate reached.
"""
from __future__ import annotations

import argparse
import copy
import functools
import math
import statistics
import tempfile
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

import common
import miscc.train.losses
from miscc.train.gan import GANTrainer


def snapshot(trainer: GANTrainer) -> dict:
    modules = {"netG": trainer.netG, "netD": trainer.netD, "text": trainer.text_encoder,
               "image": trainer.image_encoder}
    optims = {"optG": trainer.optG, "optD": trainer.optD}
    if trainer.optE is not None:
        optims["optE"] = trainer.optE
    return {"modules": {k: copy.deepcopy(m.state_dict()) for k, m in modules.items()},
            "optims": {k: copy.deepcopy(o.state_dict()) for k, o in optims.items()},
            "rng": torch.get_rng_state(), "cuda_rng": torch.cuda.get_rng_state_all()}


def restore(trainer: GANTrainer, state: dict) -> None:
    modules = {"netG": trainer.netG, "netD": trainer.netD, "text": trainer.text_encoder,
               "image": trainer.image_encoder}
    for k, m in modules.items():
        m.load_state_dict(state["modules"][k])
    for k, o in state["optims"].items():
        getattr(trainer, k).load_state_dict(copy.deepcopy(o))
    torch.set_rng_state(state["rng"])
    if state["cuda_rng"]:
        torch.cuda.set_rng_state_all(state["cuda_rng"])


def baseline_step(trainer: GANTrainer, data) -> dict:
    original = miscc.train.losses.words_loss
    miscc.train.losses.words_loss = common.loop_words_loss  # damsm_terms looks it up at call time
    try:
        return {k: v.item() for k, v in trainer.step(data).items()}
    finally:
        miscc.train.losses.words_loss = original


def run(trainer: GANTrainer, step, data, steps: int) -> tuple[list[float], list[dict], float]:
    """(seconds of the timed steps, losses of every step, peak CUDA MiB or 0)."""
    device = trainer.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, losses = [], []
    for i in range(steps + 1):
        t, stats = common.timed(lambda: step(data.to(device)), device)  # moved as the loop moves it
        losses.append({k: float(v) for k, v in stats.items()})
        if i:
            times.append(t)
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else 0.0
    return times, losses, peak


class _GlobalOnly:
    """Stands in for FlopCounterMode's per-module tracker, whose backward hooks fail under
    ``autograd.grad`` (MA-GP's input gradients): every FLOP is then counted under 'Global' alone."""
    parents = {"Global"}

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


def count_flops(trainer: GANTrainer, data) -> int:
    """FLOPs of one ``trainer.step`` (matrix products and convolutions, forward and backward), counted
    by torch's dispatcher-level FLOP counter: what the step asks of the device, not an estimate."""
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _GlobalOnly()
    with counter:
        trainer.step(data.to(trainer.device))
    return counter.get_total_flops()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nf", type=int, default=8, help="TRAIN.NF (released: 64)")
    parser.add_argument("--batch", type=int, default=6, help="TRAIN.BATCH_SIZE (released: 24)")
    parser.add_argument("--size", type=int, default=64, choices=(64, 128, 256), help="TREE.BASE_SIZE")
    parser.add_argument("--damsm_size", type=int, default=75, help="TRAIN.DAMSM_INPUT_SIZE (released: 299)")
    parser.add_argument("--amp", default="none", choices=("none", "bf16", "fp16"))
    parser.add_argument("--mode", default="main", choices=("main", "finetune"))
    parser.add_argument("--steps", type=int, default=3, help="timed steps per round (after 1 warm-up step)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--precision", default=None, choices=("ieee", "tf32"),
                        help="fp32 products and convolutions (default: torch's defaults)")
    parser.add_argument("--channels_last", action="store_true", help="TRAIN.CHANNELS_LAST True")
    parser.add_argument("--compile", action="store_true", help="TRAIN.COMPILE True")
    parser.add_argument("--compile_backend", default="inductor",
                        help="torch.compile backend ('eager': graph capture only, for quick CPU checks)")
    parser.add_argument("--no_baseline", action="store_true", help="time GANTrainer.step alone")
    parser.add_argument("--flops", action="store_true", help="count one step's FLOPs (torch's FLOP counter)")
    common.add_device_args(parser)
    common.add_json_arg(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    common.apply_device_args(args)
    if args.precision:
        common.set_fp32_precision(args.precision)
    if args.compile_backend != "inductor":
        # The trainer calls torch.compile itself; the backend is a benchmark-only choice.
        torch.compile = functools.partial(torch.compile, backend=args.compile_backend)
    variant = {"TRAIN.CHANNELS_LAST": args.channels_last, "TRAIN.COMPILE": args.compile}

    flops = None
    with tempfile.TemporaryDirectory() as tmp:
        common.make_run(Path(tmp), args.nf, args.batch, args.size, args.damsm_size, args.amp,
                        cuda=args.gpu >= 0, extra={"GPU_ID": max(args.gpu, 0), **variant})
        trainer = GANTrainer(args.mode)
        trainer.netG.train()
        trainer.netD.train()
        data = next(iter(trainer.loader))
        start = snapshot(trainer)
        if args.flops:
            try:
                flops = count_flops(trainer, data)
            except (RuntimeError, AttributeError) as e:  # a torch whose counter cannot follow MA-GP
                print(f"FLOP counting failed ({e}); continuing without it")
        impls = {"baseline: per-caption words_loss + .item() per step": lambda d: baseline_step(trainer, d),
                 "GANTrainer.step": trainer.step}
        if args.no_baseline:
            del impls[next(iter(impls))]
        best: dict = {}
        for _ in range(args.rounds):
            for name, step in impls.items():
                restore(trainer, start)
                times, losses, peak = run(trainer, step, data, args.steps)
                if name not in best or statistics.median(times) < statistics.median(best[name][0]):
                    best[name] = (times, losses, peak)

    device = trainer.device
    switches = ", ".join(f"{k} {v}" for k, v in (("precision", args.precision), ("channels_last", args.channels_last),
                                                  ("compile", args.compile)) if v)
    print(f"machine: {common.machine()}; device {device}")
    print(f"{args.mode} step: NF {args.nf}, batch {args.batch}, {args.size}x{args.size}, DAMSM input "
          f"{args.damsm_size}, AMP {args.amp}{', ' + switches if switches else ''}; best of {args.rounds} rounds "
          f"of {args.steps} timed steps\n")
    print("| implementation | s/step (median) | images/s | speed-up | peak CUDA MiB |")
    print("|---|---:|---:|---:|---:|")
    first_s = statistics.median(next(iter(best.values()))[0])
    for name, (times, _, peak) in best.items():
        s = statistics.median(times)
        mem = f"{peak:.0f}" if peak else "n/a"
        print(f"| {name} | {s:.3f} | {args.batch / s:.1f} | {first_s / s:.2f}x | {mem} |")
    print(f"\npeak RSS of this process (all implementations): {common.peak_rss_mb():.0f} MiB")

    ours_t, ours_l, ours_peak = best["GANTrainer.step"]
    ours_s = statistics.median(ours_t)
    keys = list(ours_l[0])
    print("\n| step | " + " | ".join(k.split("/")[-1] for k in keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for i, losses in enumerate(ours_l):
        print(f"| {i} | " + " | ".join(f"{losses[k]:.5f}" for k in keys) + " |")
    if flops is not None:
        print(f"\nFLOPs of one step (torch.utils.flop_counter): {flops / 1e9:.1f} GFLOP, "
              f"{flops / ours_s / 1e12:.3f} TFLOP/s at {ours_s:.3f} s/step")
    common.write_json(args.json, {
        "mode": args.mode, "nf": args.nf, "batch": args.batch, "size": args.size, "damsm_size": args.damsm_size,
        "amp": args.amp, "precision": args.precision, "channels_last": args.channels_last, "compile": args.compile,
        "device": str(device), "s_per_step": ours_s, "images_per_s": args.batch / ours_s,
        "peak_cuda_mib": ours_peak or None, "flops_per_step": flops,
        "losses_finite": all(math.isfinite(v) for losses in ours_l for v in losses.values()),
        "last_losses": ours_l[-1]})
    if args.no_baseline:
        print(f"\nsummary: GANTrainer.step {ours_s:.3f} s/step, {args.batch / ours_s:.1f} images/s at NF {args.nf}, "
              f"batch {args.batch}, {args.size}px, {device.type}, AMP {args.amp}{', ' + switches if switches else ''}.")
        return

    base_t, base_l, _ = best["baseline: per-caption words_loss + .item() per step"]
    base_s = statistics.median(base_t)
    worst = 0.0
    for a, b in zip(ours_l, base_l):
        worst = max([worst] + [abs(a[k] - b[k]) / max(1.0, abs(b[k])) for k in keys])
    print(f"\nlosses above are GANTrainer.step's; largest relative difference to the baseline over all "
          f"{len(ours_l)} steps and terms: {worst:.1e}")
    print(f"\nsummary: GANTrainer.step {ours_s:.3f} s/step vs baseline {base_s:.3f} s/step "
          f"({base_s / ours_s:.2f}x) at NF {args.nf}, batch {args.batch}, {args.size}px, "
          f"{device.type}, AMP {args.amp}; losses agree to {worst:.0e}.")
    if args.amp == "none" and worst > 1e-3:
        raise SystemExit(f"GANTrainer.step and the baseline disagree: relative loss difference {worst:.1e} "
                         "> 1e-3 in fp32, so the speed-up above compares different computations.")


if __name__ == "__main__":
    main()
