"""Command-line handling shared by every entry point (main.py, main_finetune.py, DAMSM.py).

Flags only override the config when given: argparse defaults are ``None`` so they can never silently
replace a value from the YAML file (a trap of DF-GAN-style scripts).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

from miscc.config import cfg, cfg_from_file, cfg_from_list
from miscc.errors import SSAGANError


def base_parser(description: str, default_cfg: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--cfg", dest="cfg_file", default=default_cfg, help="YAML config (default: %(default)s)")
    p.add_argument("--gpu", dest="gpu_id", type=int, default=None, help="CUDA device index; -1 forces the CPU")
    p.add_argument("--data_dir", default=None, help="override DATA_DIR")
    p.add_argument("--manualSeed", type=int, default=None, help="override SEED")
    p.add_argument("--resume", action="store_true", help="continue from the run's latest.pth (= RESTORE True)")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[],
                   help="KEY VALUE pairs overriding the config, e.g. --opts TRAIN.BATCH_SIZE 8")
    return p


def apply_args(args: argparse.Namespace) -> None:
    """defaults < YAML < flags < --opts; then the original's fixed-seed rule for non-training runs."""
    cfg_from_file(args.cfg_file)
    if args.gpu_id is not None:
        if args.gpu_id < 0:
            cfg.CUDA = False
        else:
            cfg.GPU_ID = args.gpu_id
    if args.data_dir is not None:
        cfg.DATA_DIR = args.data_dir
    if args.manualSeed is not None:
        cfg.SEED = args.manualSeed
    if args.resume:
        cfg.RESTORE = True
    cfg_from_list(args.opts)
    if not cfg.TRAIN.FLAG:
        cfg.SEED = 100


def run_dir() -> Path:
    """``OUTPUT_DIR/<CONFIG_NAME>``: models/, tb/, samples/ and config.yaml of one run."""
    return Path(cfg.OUTPUT_DIR) / (cfg.CONFIG_NAME or "default")


def run_main(entry: Callable[[argparse.Namespace], None], parser: argparse.ArgumentParser,
             argv: Optional[Sequence[str]] = None) -> None:
    """Parse, configure, run; user mistakes end with one readable line and exit code 2."""
    args = parser.parse_args(argv)
    try:
        apply_args(args)
        entry(args)
    except SSAGANError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
