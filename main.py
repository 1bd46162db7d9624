"""Train SSA-GAN from scratch with the DAMSM encoders frozen, or sample (B_VALIDATION / --sample).

    python main.py --cfg cfg/bird.yml [--gpu -1] [--resume] [--opts KEY VALUE ...]
    python main.py --cfg cfg/bird.yml --sample --opts TRAIN.NET_G models/netG_590.pth

The command line of ``main.py`` and ``main_finetune.py`` (one call each); training is
``miscc.train.gan.GANTrainer``, sampling ``miscc.sample.sampler.sample``.
"""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

import torch

from miscc.config import cfg
from miscc.config.cli import base_parser, in_process_group, run_main
from miscc.run import distributed


def cli_main(mode: str, argv: Optional[Sequence[str]] = None) -> None:
    """Entry point of main.py / main_finetune.py: train, or sample when B_VALIDATION / --sample."""
    description = {"main": "Train SSA-GAN with frozen DAMSM encoders (or sample with --sample).",
                   "finetune": "Fine-tune SSA-GAN together with the DAMSM encoders (or sample)."}[mode]
    parser = base_parser(description, default_cfg="cfg/bird.yml")
    parser.add_argument("--sample", action="store_true", help="sample instead of training (= B_VALIDATION True)")
    parser.add_argument("--captions", default=None, help="text file, one caption per line, to generate from")
    parser.add_argument("--repeat", type=int, default=1, help="passes over the test captions when sampling")
    parser.add_argument("--caption_mode", choices=("every", "random"), default="every",
                        help="every test caption once (default) or one random caption per image (original)")
    parser.add_argument("--per_caption", type=int, default=4, help="samples per user caption")
    parser.add_argument("--unknown", choices=("drop", "error"), default="drop",
                        help="--captions words outside the vocabulary: drop them with a warning (default; "
                             "a line with no known word is skipped) or refuse the file")
    parser.add_argument("--masks", choices=("last", "all", "none"), default="last",
                        help="masks written: the last stage (default), every stage (upsampled to the image "
                             "size, raw sizes in samples.jsonl), or none")
    parser.add_argument("--same_noise", action="store_true",
                        help="--captions: every line gets the same --per_caption noise vectors, so rows of the "
                             "grid differ only by their text")
    parser.add_argument("--out_dir", default=None,
                        help="sample folder (default OUTPUT_DIR/<CONFIG_NAME>/samples/<netG stem>_<mode>)")

    def run(args: argparse.Namespace) -> None:
        def work(device: torch.device) -> None:
            if args.sample or args.captions or cfg.B_VALIDATION:
                from miscc.sample.sampler import sample  # sampling needs none of training's modules
                out = sample(mode=mode, captions_file=args.captions, repeat=args.repeat,
                             caption_mode=args.caption_mode, per_caption=args.per_caption,
                             out_dir=args.out_dir, unknown=args.unknown, masks=args.masks,
                             same_noise=args.same_noise)
                if distributed.is_main():
                    print(f"samples written to {out}")
            else:
                from miscc.train.gan import GANTrainer
                out = GANTrainer(mode, device, start_over=args.start_over).train()
                if distributed.is_main():
                    print(f"run folder: {out}")
        in_process_group(work)

    run_main(run, parser, argv)


if __name__ == "__main__":
    cli_main("main")
