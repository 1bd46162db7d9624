"""What in-training evaluation costs, as a share of the training it interrupts.

    python bench/bench_eval_cost.py [--nf 64] [--size 256] [--damsm_size 299] [--batch 24]
                                    [--train_images 8855] [--eval_images 3000]      # FLOP estimate
    python bench/bench_eval_cost.py --time [--time_nf 8 --time_batch 8 --time_size 64 --time_damsm 75
        --classes 20 --per_class 30 --time_evals "r_precision,colour_accuracy:0 ..."] [--threads N] [--gpu -1]

Estimate (always printed): floating-point operations counted on PyTorch's meta device (no compute,
any size) for one training image (a main.py step: D on real, mismatched and fake pairs, MA-GP with
its double backward, G with the DAMSM term) and for one evaluated image (a generator forward, the
Inception of FID/IS, the DAMSM image encoder of R-precision), then the share of an epoch one
evaluation costs: (eval images x eval FLOPs) / (train images x train FLOPs). It assumes the device
runs both at the same FLOP rate; evaluation is forward-only in large batches, which usually runs
faster, so the share is an upper estimate.

Measured (``--time``, by default the demo's size): one epoch of GANTrainer on a synthetic bird set,
then evaluations of the trained generator through ``TrainingWatch.evaluate`` (the code training runs),
per metric set and image count, in wall time and in this process's CPU time (the share is of CPU
time, which other processes on a shared machine do not inflate).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map
from torch.utils.flop_counter import flop_registry

import common
from DAMSM import CNN_ENCODER
from miscc.train.losses import d_hinge_fake, d_hinge_real, g_hinge, ma_gp
from model import NetD, NetG


class FlopCount(TorchDispatchMode):
    """Counts the FLOPs of every op torch's flop registry knows (convolutions, matrix products)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        count = flop_registry.get(func._overloadpacket)
        if count is not None:
            def shape(x):
                return x.shape if isinstance(x, torch.Tensor) else x
            self.total += count(*tree_map(shape, args), **tree_map(shape, kwargs), out_val=tree_map(shape, out))
        return out


def gflops(fn, batch: int) -> float:
    counter = FlopCount()
    with counter:
        fn()
    return counter.total / batch / 1e9


def flop_estimate(args: argparse.Namespace) -> dict[str, float]:
    """GFLOP per image of a training step and of an evaluation, on the meta device."""
    from miscc.metrics.inception import _fidelity_inception
    b = 2
    with torch.device("meta"):
        g, d = NetG(args.nf, 100, imsize=args.size), NetD(args.nf, imsize=args.size)
        enc = CNN_ENCODER(256, pretrained=False, input_size=args.damsm_size).requires_grad_(False).eval()
        real, sent, noise = torch.randn(b, 3, args.size, args.size), torch.randn(b, 256), torch.randn(b, 100)

    def train_step():
        feats = d(real)
        err_d = d_hinge_real(d.COND_DNET(feats, sent)) + d_hinge_fake(d.COND_DNET(feats[:b - 1], sent[1:])) / 2
        fake, _ = g(noise, sent)
        (err_d + d_hinge_fake(d.COND_DNET(d(fake.detach()), sent)) / 2).backward()
        ma_gp(lambda x, s: d.COND_DNET(d(x), s), real, sent).backward()
        (g_hinge(d.COND_DNET(d(fake), sent)) + 0.05 * enc(fake)[1].sum()).backward()
    train = gflops(train_step, b)
    g.eval()
    with torch.no_grad():
        gen = gflops(lambda: g(noise, sent), b)
        damsm = gflops(lambda: enc(real), b)
    inception = _fidelity_inception().eval()  # its TF1 resize needs real tensors: one tiny CPU pass
    with torch.no_grad():
        incep = gflops(lambda: inception(torch.zeros(1, 3, args.size, args.size, dtype=torch.uint8)), 1)
    return {"train": train, "generator": gen, "inception": incep, "damsm": damsm}


def print_estimate(args: argparse.Namespace) -> float:
    f = flop_estimate(args)
    per_eval = {"FID/IS + R-precision": f["generator"] + f["inception"] + f["damsm"],
                "R-precision only": f["generator"] + f["damsm"]}
    print(f"## Estimate: NF {args.nf}, {args.size} px, DAMSM input {args.damsm_size}, "
          f"{args.train_images} train images per epoch (batch {args.batch}, drop_last), meta-device FLOP count\n")
    print("| per image | GFLOP |\n|---|---:|")
    print(f"| training step (main.py) | {f['train']:.1f} |")
    for name in ("generator", "inception", "damsm"):
        print(f"| evaluation: {name} forward | {f[name]:.1f} |")
    steps = args.train_images // args.batch
    epoch = steps * args.batch * f["train"]
    print("\n| evaluation | images | share of one epoch per evaluation | interval for < 10 % |\n|---|---:|---:|---:|")
    share = 0.0
    for name, per_image in per_eval.items():
        for images in (args.eval_images, args.all_images):
            s = images * per_image / epoch
            share = s if (name.startswith("FID") and images == args.eval_images) else share
            print(f"| {name} | {images} | {100 * s:.1f} % | {max(1, int(-(-s // 0.1)))} |")
    return share


def time_demo(args: argparse.Namespace, device: torch.device) -> None:
    import miscc.watch.evaluation as te
    from DAMSM import RNN_ENCODER
    from datasets import TextDataset
    from miscc.run.checkpoint import save_released
    from miscc.config import cfg, cfg_from_list
    from miscc.run.seeding import seed_everything
    from miscc.train.gan import GANTrainer, eval_settings
    from tools.birds.make_birds import make_birds

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "birds"
        make_birds(data, classes=args.classes, per_class=args.per_class, seed=0)
        torch.manual_seed(0)
        save_released(RNN_ENCODER(TextDataset(data, "train").n_words, nhidden=256), tmp / "text_encoder200.pth")
        save_released(common._calibrated_image_encoder(args.time_damsm), tmp / "image_encoder200.pth")
        opts = {"DATA_DIR": data, "OUTPUT_DIR": tmp / "output", "CONFIG_NAME": "bench", "TEXT.DAMSM_NAME":
                tmp / "text_encoder200.pth", "TREE.BASE_SIZE": args.time_size, "TRAIN.NF": args.time_nf,
                "TRAIN.BATCH_SIZE": args.time_batch, "WORKERS": 0, "TRAIN.DAMSM_INPUT_SIZE": args.time_damsm,
                "TRAIN.DAMSM_WEIGHT": 0.0, "TRAIN.MAX_EPOCH": 1, "TRAIN.WARMUP_EPOCHS": 1000, "PROGRESS": "off",
                "CUDA": device.type == "cuda"}
        cfg_from_list([str(x) for kv in opts.items() for x in kv])
        seed_everything(cfg.SEED)
        trainer = GANTrainer("main", device)
        epoch_wall, epoch_cpu = cpu_timed(trainer.train, device)
        print(f"\n## Measured: NF {args.time_nf}, batch {args.time_batch}, {args.time_size} px, DAMSM input "
              f"{args.time_damsm}, DAMSM weight 0 (cfg/demo.yml's), {len(trainer.dataset)} train images: one epoch "
              f"(with its grid) {epoch_wall:.1f} s, {epoch_cpu:.1f} s of CPU time; {common.machine()}\n")
        print("| metrics | images | evaluation s | CPU s | share of the epoch (CPU time) |\n|---|---:|---:|---:|---:|")
        for spec in args.time_evals.split():
            metrics, images = spec.rsplit(":", 1)
            settings = te.EvalSettings(**{**eval_settings().__dict__, "interval": 1, "best_metric": "none",
                                          "metrics": tuple(metrics.split(",")), "num_images": int(images),
                                          "inception_weights": "random", "cache_dir": tmp / "cache"})
            watch = te.TrainingWatch(settings, trainer.layout, device, args.time_size, trainer.watch.test_dataset)
            watch.start(2)
            watch._prepare_networks(trainer.eval_models())  # once per run: Inception, reference statistics
            wall, cpu = cpu_timed(lambda: watch.evaluate(1, 0, 0.0, None, trainer.eval_models()), device)
            n = len(watch.eval_set.jobs)
            print(f"| {metrics} | {n} | {wall:.1f} | {cpu:.1f} | {100 * cpu / epoch_cpu:.1f} % |")


def cpu_timed(fn, device: torch.device) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process): on a shared machine the CPU time is what the work
    itself cost, the wall time also what other processes took from it."""
    common.sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    common.sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nf", type=int, default=64)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--damsm_size", type=int, default=299)
    p.add_argument("--batch", type=int, default=24)
    p.add_argument("--train_images", type=int, default=8855, help="CUB: 8,855")
    p.add_argument("--eval_images", type=int, default=3000, help="EVAL.FID_NUM_IMAGES")
    p.add_argument("--all_images", type=int, default=29330, help="every test caption (CUB: 29,330)")
    p.add_argument("--time", action="store_true", help="also time an epoch and evaluations on this machine")
    p.add_argument("--time_nf", type=int, default=8)
    p.add_argument("--time_batch", type=int, default=8)
    p.add_argument("--time_size", type=int, default=64)
    p.add_argument("--time_damsm", type=int, default=75)
    p.add_argument("--classes", type=int, default=20)
    p.add_argument("--per_class", type=int, default=30)
    p.add_argument("--time_evals", default="r_precision,colour_accuracy:150 r_precision,colour_accuracy:0 "
                   "fid,r_precision,colour_accuracy:150", help="METRICS:IMAGES evaluations to time (0: every caption)")
    common.add_device_args(p)
    args = p.parse_args()
    device = common.apply_device_args(args)
    share = print_estimate(args)
    if args.time:
        time_demo(args, device)
    print(f"summary: one evaluation of {args.eval_images} images (FID/IS + R-precision) costs about "
          f"{100 * share:.1f} % of an epoch of {args.train_images} images (NF {args.nf}, {args.size} px, "
          "FLOP estimate)")


if __name__ == "__main__":
    main()
