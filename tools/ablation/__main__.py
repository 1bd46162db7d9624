"""Command line of the ablation runner (``python -m tools.ablation --help``; docs/ABLATION.md)."""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from miscc.errors import SSAGANError
from miscc.run.layout import atomic_write_json
from miscc.run.lock import FolderLock
from tools.ablation.plan import PLAN_FILE, RUN_RECORD, Plan
from tools.ablation.runner import Children, Schedule, prepare
from tools.ablation.table import ABLATION_MD, write_table
from tools.ablation.variants import DAMSM_CONFIG, FIRST_SEED, QUICK_OPTS, QUICK_VARIANTS, VARIANTS

DEFAULT_DATA = Path("data/birds_demo")  # cfg/demo.yml's DATA_DIR: the quickstart's set is reused
QUICK_DAMSM_OPTS = {"TRAIN.MAX_EPOCH": "2"}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.ablation", description=__doc__)
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=None,
                   help="rows to run (default: all: %(choices)s)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per row (default 3; SEED 100, 101, ...)")
    p.add_argument("--out", type=Path, default=None, help="ablation folder (default output/ablation, "
                                                          "output/ablation_quick with --quick)")
    p.add_argument("--data_dir", type=Path, default=DEFAULT_DATA,
                   help="synthetic bird set, made there if missing (default %(default)s)")
    p.add_argument("--damsm", type=Path, default=None,
                   help="DAMSM text encoder every row uses (default: pretrained once into <out>/damsm)")
    p.add_argument("--jobs", type=int, default=None, help="runs at once (default: the CPU count, at most 2)")
    p.add_argument("--threads", type=int, default=1, help="threads per run (default 1)")
    p.add_argument("--quick", action="store_true",
                   help=f"a pipeline check: {' + '.join(QUICK_VARIANTS)}, one seed, 2 epochs")
    p.add_argument("--only", nargs="+", default=None, metavar="RUN",
                   help="run only these runs (e.g. id1_seed101): one scheduler job each")
    p.add_argument("--prepare_only", action="store_true", help="make the shared inputs, run nothing")
    p.add_argument("--print_commands", action="store_true",
                   help="print one command per run (and the preparing and table commands) for a scheduler")
    p.add_argument("--table", action="store_true", help="only build the table and figures from the run folders")
    p.add_argument("--status_every", type=float, default=60.0, help="seconds between status lines")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[],
                   help="KEY VALUE pairs for every run, after the variant's switches (e.g. TRAIN.MAX_EPOCH 8)")
    return p


def make_plan(args: argparse.Namespace) -> Plan:
    if len(args.opts) % 2:
        raise SSAGANError(f"--opts needs KEY VALUE pairs; got {len(args.opts)} words: {args.opts}")
    opts = {**(QUICK_OPTS if args.quick else {}), **dict(zip(args.opts[::2], args.opts[1::2]))}
    root = args.out or Path("output/ablation_quick" if args.quick else "output/ablation")
    variants = args.variants or list(QUICK_VARIANTS if args.quick else VARIANTS)
    n_seeds = args.seeds or (1 if args.quick else 3)
    if n_seeds < 1:
        raise SSAGANError(f"--seeds {n_seeds}: need at least one seed.")
    damsm_epochs = int(QUICK_DAMSM_OPTS["TRAIN.MAX_EPOCH"]) if args.quick else _damsm_epochs()
    damsm = args.damsm or root / "damsm" / "DAMSM_demo" / "models" / f"text_encoder{damsm_epochs - 1}.pth"
    return Plan(root=root, data_dir=args.data_dir, damsm=damsm, variants=variants,
                seeds=[FIRST_SEED + i for i in range(n_seeds)], opts=opts)


def _damsm_epochs() -> int:
    """TRAIN.MAX_EPOCH of the DAMSM demo config, as the config system resolves it: the pair the rows use
    is its last epoch's."""
    from miscc.config import cfg_from_file, reset_cfg
    reset_cfg()
    return int(cfg_from_file(DAMSM_CONFIG).TRAIN.MAX_EPOCH)


def check_plan_file(plan: Plan) -> None:
    """A folder keeps one recipe: rows or seeds may be added later, the data, encoders and options not."""
    path = plan.root / PLAN_FILE
    mine = plan.to_json()
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        changed = [k for k in ("data_dir", "damsm", "opts", "base_config") if old.get(k) != mine[k]]
        if changed:
            raise SSAGANError(f"{plan.root} holds an ablation made with other {', '.join(changed)} ("
                              + "; ".join(f"{k}: {old.get(k)} -> {mine[k]}" for k in changed)
                              + "). Its runs would not be comparable: use another --out.")
        mine["variants"] = list(dict.fromkeys([*old.get("variants", []), *mine["variants"]]))
        mine["seeds"] = sorted({*old.get("seeds", []), *mine["seeds"]})
    plan.root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, mine)


def print_commands(args: argparse.Namespace, plan: Plan) -> None:
    base = [sys.executable, "-m", "tools.ablation", "--out", str(plan.root), "--data_dir", str(plan.data_dir),
            "--variants", *plan.variants, "--seeds", str(len(plan.seeds)), "--jobs", "1", "--threads", str(args.threads),
            *(["--damsm", str(args.damsm)] if args.damsm else []), *(["--quick"] if args.quick else [])]
    tail = ["--opts", *args.opts] if args.opts else []
    print("# 1. once, before the runs:")
    print(shlex.join([*base, "--prepare_only", *tail]))
    print("# 2. one job per run (any order, any machine that sees these folders):")
    for run in plan.runs():
        print(shlex.join([*base, "--only", run.name, *tail]))
    print("# 3. when they are done:")
    print(shlex.join([*base, "--table", *tail]))


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops like Ctrl-C: the children are stopped, the runs resume next time


def check_figures() -> None:
    """Before hours of runs, not after: the table's figures need matplotlib."""
    if importlib.util.find_spec("matplotlib") is None:
        raise SSAGANError("the ablation's figures need matplotlib: pip install -r requirements-ablation.txt")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(argv)
    say = lambda m: print(f"[{time.strftime('%H:%M:%S')}] {m}", flush=True)  # noqa: E731
    try:
        plan = make_plan(args)
        if not args.print_commands and not args.prepare_only and not args.only:
            check_figures()
        if args.print_commands:
            print_commands(args, plan)
            return 0
        if args.table:
            if not any((plan.root / "runs").glob(f"*/{RUN_RECORD}")):
                raise SSAGANError(f"{plan.root / 'runs'} holds no finished run (*/{RUN_RECORD}); give --out the "
                                  "ablation folder whose runs/ the table is built from.")
            write_table(plan.root)
            print((plan.root / ABLATION_MD).read_text(encoding="utf-8"))
            return 0
        runs = plan.runs()
        if args.only:
            unknown = sorted(set(args.only) - {r.name for r in runs})
            if unknown:
                raise SSAGANError(f"--only {' '.join(unknown)}: not a run of this plan ({', '.join(r.name for r in runs)}).")
            runs = [r for r in runs if r.name in args.only]
        # Scheduler jobs (--only) share the folder, each training run locking its own run folder.
        lock = None if args.only else FolderLock(plan.root, "ablation").acquire()
        signal.signal(signal.SIGTERM, _stop)
        try:
            check_plan_file(plan)
            start = time.time()
            prepare(plan, Children(), say, args.damsm is not None, QUICK_DAMSM_OPTS if args.quick else {},
                    args.threads)
            if args.prepare_only:
                return 0
            done = [r for r in runs if r.state() == "done"]
            pending = [r for r in runs if r.state() != "done"]
            if done:
                say(f"{len(done)} run(s) finished earlier, not redone: {', '.join(r.name for r in done)}")
            jobs = max(1, min(args.jobs or min(2, os.cpu_count() or 1), len(pending) or 1))
            say(f"{len(pending)} run(s) to do, {jobs} at a time, {args.threads} thread(s) each -> {plan.runs_dir}")
            results = Schedule(plan, pending, jobs, args.threads, say, args.status_every).run()
            failed = sorted(n for n, r in results.items() if r.get("status") != "done")
            say(f"runs took {(time.time() - start) / 60:.1f} min")
            if not args.only:
                write_table(plan.root)
                say(f"table: {plan.root / ABLATION_MD}")
            if failed:
                say(f"{len(failed)} run(s) failed: {', '.join(failed)}; run the same command again to retry them.")
                return 1
            return 0
        finally:
            if lock is not None:
                lock.release()
    except SSAGANError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stopped; run the same command again to resume (finished runs are kept).", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
