"""Evaluate a folder of generated images: Inception Score, FID and R-precision (no TensorFlow).

    python IS.py --image_dir output/bird_sloss01/samples/netG_550_main --fid_ref data/birds
    python IS.py --image_dir DIR --fid_ref bird_val256_FIDK0.npz --r_precision \
        --text_encoder DAMSMencoders/bird/text_encoder200.pth --captions_pickle data/birds/captions.pickle
    python IS.py --fid_ref data/birds --ref_size 256 --save_stats cub_test256.npz   # reference stats only

The protocol used is printed with every result and stored in the JSON; docs/EVALUATION.md explains
it and how the numbers relate to the paper's. All logic lives in the miscc/metrics package; this
file turns the command line into an ``EvalContext`` and the metrics asked for.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
from torch import nn

from miscc.config import cfg, cfg_from_file
from miscc.errors import SSAGANError
from miscc.config.factory import encoder_spec
from miscc.metrics import METRICS, EvalContext, compute_metrics
from miscc.metrics.images import is_cub_folder, open_image_dir, record_images
from miscc.metrics.inception import INCEPTION_WEIGHTS_FILE, RANDOM_WEIGHTS, InceptionExtractor
from miscc.metrics.reference import DEFAULT_CACHE_DIR, reference_stats
from miscc.metrics.stats import load_stats, save_stats
from miscc.run.layout import atomic_write_json
from miscc.sample.protocol import SAMPLES_FILE, check_complete, count_images

PAPER = "SSA-GAN paper: CUB IS 5.17 ± 0.08, CUB FID 15.61, COCO FID 19.37 (see docs/EVALUATION.md before comparing)"


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--image_dir", help="sampler folder (img/ + samples.jsonl; mask/ is ignored) or any image folder")
    p.add_argument("--image_size", type=int, help="resize generated images to this square size (PIL "
                   "bilinear) first; 128 reproduces the original IS.py. Default: native size")
    p.add_argument("--splits", type=int, default=10, help="splits for IS and R-precision (mean ± std over them)")
    p.add_argument("--batch_size", type=int, default=50)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="image-reading processes")
    p.add_argument("--weights", help=f"Inception weights ({INCEPTION_WEIGHTS_FILE}); default: "
                   "EVAL.INCEPTION_WEIGHTS of --cfg, else the torch hub cache. 'random' = tests only")
    p.add_argument("--cfg", help="YAML config to take EVAL.INCEPTION_WEIGHTS and TEXT.DAMSM_NAME from")
    p.add_argument("--no_inception", action="store_true", help="build no Inception network, so no IS and no "
                   "FID: only the metrics asked for by their options (e.g. --bird_net on the synthetic set, "
                   "where the Inception weights are not at hand and a random Inception means nothing)")
    p.add_argument("--allow_incomplete", action="store_true",
                   help="evaluate a sampler folder without DONE.json (an interrupted run's partial set)")
    p.add_argument("--out", help="JSON result file (default: <image_dir>/metrics.json)")
    p.add_argument("--fid_ref", help="FID reference: stats .npz (mu, sigma), CUB data folder or image folder")
    p.add_argument("--ref_split", default="test", help="split of a CUB data folder used as reference")
    p.add_argument("--ref_size", type=int, help="resize reference images to this (default for CUB: the "
                   "generated size)")
    p.add_argument("--save_stats", help="write the statistics of --fid_ref (or, without it, of --image_dir) here")
    p.add_argument("--cache_dir", default=str(DEFAULT_CACHE_DIR), help="reference statistics cache")
    p.add_argument("--no_cache", action="store_true", help="neither read nor write the statistics cache")
    for spec in METRICS.values():  # each metric's own options (miscc/metrics/registry.py)
        for option in spec.options:
            p.add_argument(option.flag, **option.kwargs)
    return p.parse_args(argv)


def _fail_early(args: argparse.Namespace) -> None:
    for flag, value, low in (("--batch_size", args.batch_size, 1), ("--splits", args.splits, 1),
                             ("--workers", args.workers, 0)):
        if value < low:
            raise SSAGANError(f"{flag} {value}: must be at least {low}.")
    if not args.image_dir and not (args.save_stats and args.fid_ref):
        raise SSAGANError("--image_dir is required (only `--fid_ref X --save_stats OUT.npz` runs without it).")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SSAGANError("--device cuda was asked for but CUDA is not available; use --device cpu.")
    if args.save_stats and not args.save_stats.endswith(".npz"):
        raise SSAGANError(f"--save_stats {args.save_stats}: the file name must end in .npz.")
    if args.save_stats and args.fid_ref and args.fid_ref.endswith(".npz"):
        raise SSAGANError("--save_stats with an .npz --fid_ref would only copy it; give a folder instead.")
    flagged = [f"--{spec.asked_by}" for spec in METRICS.values() if spec.asked_by and spec.options and spec.asked(args)]
    if flagged and not args.image_dir:
        raise SSAGANError(f"{', '.join(flagged)} evaluate{'s' if len(flagged) == 1 else ''} --image_dir; give one.")
    for spec in METRICS.values():
        problem = spec.check(args) if spec.check is not None and spec.asked(args) else None
        if problem:
            raise SSAGANError(problem)
    if args.no_inception:
        inception_options = [flag for flag, value in (("--fid_ref", args.fid_ref), ("--save_stats", args.save_stats))
                             if value]
        if inception_options:
            raise SSAGANError(f"{', '.join(inception_options)} need{'s' if len(inception_options) == 1 else ''} "
                              "the Inception network; drop --no_inception.")
        if not requested_metrics(args):
            raise SSAGANError("--no_inception leaves nothing to compute; ask for a metric (e.g. --bird_net "
                              "DATA_DIR, --r_precision).")
    if args.fid_ref and Path(args.fid_ref).suffix == ".npz":
        load_stats(args.fid_ref)


def requested_metrics(args: argparse.Namespace) -> list[str]:
    """The registry's metrics this command line asks for, in registry order."""
    if not args.image_dir:
        return []
    return [name for name, spec in METRICS.items()
            if spec.asked(args) and not (args.no_inception and "inception" in spec.needs)]


def run(args: argparse.Namespace,
        make_inception: Callable[[Optional[str]], nn.Module] = InceptionExtractor) -> dict:
    """Evaluate as ``args`` say; ``make_inception(weights)`` builds the Inception network."""
    if args.cfg:
        cfg_from_file(args.cfg)
        args.weights = args.weights or cfg.EVAL.INCEPTION_WEIGHTS or None
        args.text_encoder = args.text_encoder or cfg.TEXT.DAMSM_NAME
    _fail_early(args)
    # Everything cheap that can fail is checked before the networks are built.
    args.encoder_spec = encoder_spec()  # the DAMSM encoders' shape (RNN_TYPE...) of --cfg or the defaults
    ctx = EvalContext(splits=args.splits, batch_size=args.batch_size, device=args.device, workers=args.workers)
    asked = [METRICS[name] for name in requested_metrics(args)]
    if args.image_dir:
        if not args.allow_incomplete:
            # Before any image is opened: the last image of a cut run is what would fail to open, and
            # "interrupted run" is the cause to report, not that image.
            check_complete(args.image_dir, count_images(args.image_dir))
        ctx.images, ctx.records = open_image_dir(args.image_dir, square=args.image_size)
        if len(ctx.images) < args.splits:
            raise SSAGANError(f"{args.image_dir} has {len(ctx.images)} images, fewer than "
                              f"--splits {args.splits}.")
        for spec in asked:
            if "records" in spec.needs and ctx.records is None:
                raise SSAGANError(f"--{spec.asked_by} needs {Path(args.image_dir) / SAMPLES_FILE} (written by "
                                  "the sampler) to know each image's caption.")
        if ctx.records is not None:
            ctx.record_images = record_images(args.image_dir, ctx.records)
    for spec in asked:  # what each metric reads, loaded before the Inception network is built
        if spec.setup is not None:
            spec.setup(args, ctx)
        if spec.prepare is not None:
            spec.prepare(ctx)
    model = ctx.inception = None if args.no_inception else make_inception(args.weights)

    if model is not None and model.sha256 == RANDOM_WEIGHTS:
        ctx.notes.append("RANDOM Inception weights: for testing only, the numbers mean nothing")
    if model is not None:  # the paper's numbers are Inception's
        ctx.notes.append(PAPER)  # metrics add their caveats after these
    protocol: dict = {"inception": model.protocol() if model is not None else None, "device": args.device,
                      "batch_size": args.batch_size, "notes": ctx.notes}
    result: dict = {"protocol": protocol, **{spec.result_key: None for spec in METRICS.values() if spec.listed}}
    images = ctx.images
    if images is not None:
        protocol.update(image_dir=str(args.image_dir), images=len(images), resolution=list(images.size),
                        splits=args.splits, image_set=images.description)
    if args.fid_ref:
        size = args.ref_size
        if size is None and images is not None and is_cub_folder(args.fid_ref):
            size = images.size[0]  # the CUB crops are resized to the generator's output size
        ctx.reference = reference_stats(args.fid_ref, model, split=args.ref_split, size=size,
                                        cache_dir=None if args.no_cache else args.cache_dir,
                                        batch_size=args.batch_size, device=args.device, workers=args.workers)
        protocol["reference"] = ctx.reference.protocol
    if args.save_stats:
        if ctx.reference is not None:
            ref = ctx.reference
            save_stats(args.save_stats, ref.mu, ref.sigma, {**ref.protocol, **model.protocol()})
        else:
            mu, sigma = ctx.features().moments.stats()
            save_stats(args.save_stats, mu, sigma,
                       {"description": images.description, "images": len(images), **model.protocol()})
        result["saved_stats"] = args.save_stats
    result.update(compute_metrics([spec.name for spec in asked], ctx))
    return result


def report(result: dict) -> str:
    p = result["protocol"]
    inc = p["inception"]
    lines = [f"Inception: {inc['weights']} (sha256 {inc['weights_sha256'][:16]}), {inc['library']}, "
             f"{inc['resize']}" if inc is not None else "Inception: not used (--no_inception): no IS, no FID"]
    if "images" in p:
        lines.append(f"generated: {p['image_set']} ({p['resolution'][0]}x{p['resolution'][1]}), "
                     f"{p['splits']} splits")
    if "reference" in p:
        ref = p["reference"]
        lines.append(f"reference: {ref.get('description') or ref['reference']}"
                     + (f" [cached {ref['cache']}]" if "cache" in ref else ""))
    lines += [f"note: {n}" for n in p["notes"]]
    for spec in METRICS.values():
        if result.get(spec.result_key) is not None and spec.report is not None:
            lines.append(spec.report(result[spec.result_key]))
    if "saved_stats" in result:
        lines.append(f"statistics written to {result['saved_stats']}")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None, *,
         make_inception: Callable[[Optional[str]], nn.Module] = InceptionExtractor) -> int:
    args = parse_args(argv)
    try:
        result = run(args, make_inception)
    except SSAGANError as e:
        print(f"IS.py: error: {e}", file=sys.stderr)
        return 2
    print(report(result))
    out = args.out or (Path(args.image_dir) / "metrics.json" if args.image_dir else None)
    if out:
        atomic_write_json(out, result)
        print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
