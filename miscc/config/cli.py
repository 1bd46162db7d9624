"""Command-line handling shared by every entry point (main.py, main_finetune.py, DAMSM.py).

Flags only override the config when given: argparse defaults are ``None`` so they can never silently
replace a value from the YAML file (a trap of DF-GAN-style scripts).
"""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Callable, Optional, Sequence

from miscc.config import cfg, cfg_from_file, cfg_from_list, validate_for
from miscc.errors import SSAGANError

if TYPE_CHECKING:
    import torch


def base_parser(description: str, default_cfg: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--cfg", dest="cfg_file", default=default_cfg, help="YAML config (default: %(default)s)")
    p.add_argument("--gpu", dest="gpu_id", type=int, default=None, help="CUDA device index; -1 forces the CPU")
    p.add_argument("--data_dir", default=None, help="override DATA_DIR")
    p.add_argument("--manualSeed", type=int, default=None, help="override SEED (0 .. 2^32-1)")
    p.add_argument("--resume", action="store_true", help="continue from the run's latest.pth (= RESTORE True)")
    p.add_argument("--start_over", action="store_true",
                   help="train anew in a run folder that holds a run: the old run is moved aside, not deleted")
    p.add_argument("--progress", choices=("auto", "bar", "log", "off"), default=None,
                   help="progress bars (auto: bar on a terminal, one line every 30 s in a log file)")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[],
                   help="KEY VALUE pairs overriding the config, e.g. --opts TRAIN.BATCH_SIZE 8")
    return p


def _check_gpu(gpu_id: int) -> None:
    """An explicit ``--gpu N`` must name a CUDA device that exists (never a silent fall-back to the CPU)."""
    import torch
    if not torch.cuda.is_available():
        raise SSAGANError(f"--gpu {gpu_id}: CUDA is not available on this machine (torch "
                          f"{torch.__version__}); use --gpu -1 for the CPU.")
    if gpu_id >= torch.cuda.device_count():
        raise SSAGANError(f"--gpu {gpu_id}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                          f"0..{torch.cuda.device_count() - 1}.")


def apply_args(args: argparse.Namespace, entry: str = "gan") -> None:
    """defaults < YAML < flags < --opts; then the original's fixed-seed rule for non-training runs.

    Every value is checked as it is merged (``miscc.config``), so a bad one stops the run here, before
    any data, model or file is touched.
    """
    cfg_from_file(args.cfg_file)
    flags = []
    if args.gpu_id is not None:
        if args.gpu_id < 0:
            cfg.CUDA = False
        else:
            _check_gpu(args.gpu_id)
            flags += ["GPU_ID", str(args.gpu_id)]
    if args.data_dir is not None:
        flags += ["DATA_DIR", args.data_dir]
    if args.manualSeed is not None:
        flags += ["SEED", str(args.manualSeed)]
    if args.resume:
        flags += ["RESTORE", "True"]
    if getattr(args, "progress", None):
        flags += ["PROGRESS", args.progress]
    cfg_from_list(flags, source="command-line flag")
    cfg_from_list(args.opts)
    refuse_contradictions(args)
    if not cfg.TRAIN.FLAG:
        cfg.SEED = 100
    validate_for(entry)


def refuse_contradictions(args: argparse.Namespace) -> None:
    """Flags that ask for opposite things: silently preferring one would do what the user did not ask."""
    if getattr(args, "start_over", False) and cfg.RESTORE:
        resume = "--resume" if args.resume else "RESTORE True (in --cfg or --opts)"
        raise SSAGANError(f"{resume} and --start_over contradict each other: {resume} continues the run in the "
                          "run folder, --start_over moves that run aside and trains anew. Give one of them.")


def run_main(run: Callable[[argparse.Namespace], None], parser: argparse.ArgumentParser,
             argv: Optional[Sequence[str]] = None, entry: str = "gan") -> None:
    """Parse, configure, run; user mistakes end with one readable line and exit code 2."""
    args = parser.parse_args(argv)
    try:
        apply_args(args, entry)
        run(args)
    except SSAGANError as e:
        print(f"error: {user_message(e)}", file=sys.stderr)
        sys.exit(2)


def in_process_group(run: Callable[[torch.device], None]) -> None:
    """Seed, then run ``run(device)`` inside the process group torchrun set up (none without torchrun)."""
    # Imported here, as torch in _check_gpu: a config error or --help answers before torch loads.
    from miscc.run import distributed
    from miscc.run.seeding import seed_everything
    seed_everything(cfg.SEED)
    device = distributed.init_distributed(cfg.CUDA, cfg.GPU_ID)
    try:
        run(device)
    finally:
        distributed.cleanup()


def user_message(error: BaseException) -> str:
    """The message of an ``SSAGANError``, also when a DataLoader worker raised it: torch re-raises it
    in the main process with the worker's whole traceback in the text; the user gets the same one
    paragraph as with WORKERS 0."""
    text = str(error)
    marker = "SSAGANError: "
    if "DataLoader worker process" in text and marker in text:
        return text[text.rindex(marker) + len(marker):].strip()
    return text
