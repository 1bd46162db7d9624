"""Fault probe section (a), kill and resume (``bench/faults/fault_probe.py`` runs it; its module doc says
what is measured): a tiny GAN run trained straight, then started as ``python main.py ...`` and SIGKILLed
at checkpoint writes and at random moments, restarted each time as the messages tell a user to.

Also the probe's way of running a command (``Child``, ``child_env``), which every section uses.
"""
from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from bench.faults.fault_fixture import ROOT, Fixture

TEMP = re.compile(r"^\..*\.tmp$")


# --- running a command ---------------------------------------------------------------------------------

class Child:
    """A command whose merged output is read line by line, with the time each line arrived."""

    def __init__(self, argv: list[str], env: dict):
        self.start = time.monotonic()
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, errors="replace")
        self.lines: list[tuple[float, str]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append((time.monotonic() - self.start, line.rstrip("\n")))

    def seen(self, prefix: str) -> Optional[float]:
        return next((t for t, line in list(self.lines) if line.startswith(prefix)), None)

    def wait(self, timeout: Optional[float] = None) -> int:
        rc = self.proc.wait(timeout)
        self.reader.join(5)
        return rc

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)


def child_env(threads: int) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}


# --- (a) kill and resume ---------------------------------------------------------------------------------

def temps(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if TEMP.match(p.name)) if folder.is_dir() else []


def unreadable(folder: Path) -> list[str]:
    """Every .pth under ``folder`` that torch.load(weights_only=True) cannot read."""
    bad = []
    for path in sorted(folder.rglob("*.pth")):
        try:
            torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any failure to load is what is counted
            bad.append(f"{path.name}: {type(e).__name__}")
    return bad


def tensors(obj, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor in a nested checkpoint, by path."""
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    out: dict[str, torch.Tensor] = {}
    for k, v in items:
        out.update(tensors(v, f"{prefix}/{k}"))
    return out


def max_abs_diff(a: Path, b: Path) -> float:
    """Largest |a - b| over every tensor of two checkpoints; inf if their tensors differ in names/shapes."""
    ta = tensors(torch.load(a, map_location="cpu", weights_only=True))
    tb = tensors(torch.load(b, map_location="cpu", weights_only=True))
    if ta.keys() != tb.keys() or any(ta[k].shape != tb[k].shape for k in ta):
        return float("inf")
    diffs = [(ta[k].double() - tb[k].double()).abs().max().item() for k in ta if ta[k].numel()]
    return max(diffs, default=0.0)


@dataclass
class KillReport:
    """Section (a)'s figures: the straight run's times, what each kill hit, and how the end compares."""
    straight_s: float = 0.0          # the uninterrupted run, start to end
    startup_s: float = 0.0           # its start-up, before the first epoch
    epoch_s: float = 0.0             # one of its epochs
    attempts: int = 0                # runs started (the first plus every resume)
    kills: int = 0                   # SIGKILLs sent
    kills_in_write: int = 0          # a temp file was still there after the kill
    kills_before_training: int = 0  # before the start line (imports, data, models)
    finished_early: int = 0         # an attempt that finished before its kill came
    start_overs: int = 0
    corrupt: list = field(default_factory=list)
    temps_after_kills: int = 0
    stale_temps_at_end: int = 0
    unexpected: list = field(default_factory=list)  # an attempt that failed by itself
    diff: dict = field(default_factory=dict)
    log: list = field(default_factory=list)


def gan_argv(data: Path, encoder: Path, out: Path, epochs: int, flags: tuple = (), workers: int = 0) -> list[str]:
    f = Fixture(birds=data, text_encoder=encoder, run=Path(), epochs=epochs, dir=out.parent)
    return f.gan("WORKERS", str(workers), flags=flags, epochs=epochs)


def next_flags(run: Path) -> tuple[tuple, str]:
    """What the messages tell a user to type after a crash: --resume, a plain start, or --start_over."""
    models = run / "models"
    if (models / "latest.pth").is_file():
        return ("--resume",), "--resume"
    if models.is_dir() and any(models.glob("*.pth")):
        return ("--start_over",), "--start_over"
    return (), "plain"


# The kinds of kill, in turn: at a latest.pth write, at a random moment of training (after the start
# line), and at a random moment of the whole process (start-up included).
KILL_MODES = ("write", "training", "write", "any")


def latest_temps(models: Path) -> set[str]:
    try:
        return {e.name for e in os.scandir(models) if e.name.startswith(".latest.pth")}
    except FileNotFoundError:
        return set()


def wait_and_kill(child: Child, models: Path, mode: str, delay: float, nth_write: int, deadline: float,
                  old: set[str]) -> bool:
    """SIGKILL ``child`` ``delay`` s after its start (mode any) or its start line (mode training), or at
    its ``nth_write``-th new latest.pth temp file (mode write; ``old`` ones, an earlier kill's, are not
    counted). False if it exited first."""
    seen: set[str] = set()
    while child.proc.poll() is None:
        now = time.monotonic() - child.start
        if now > deadline:
            break
        began = child.seen("GAN training on") if mode == "training" else 0.0
        if mode != "write" and began is not None and now >= began + delay:
            child.proc.kill()
            return True
        if mode == "write":
            seen |= latest_temps(models) - old
            if len(seen) >= nth_write:
                child.proc.kill()
                return True
        time.sleep(0.0005 if mode == "write" else 0.01)
    if child.proc.poll() is None:  # past the deadline: a hang, end it
        child.proc.kill()
        return True
    return False


def kill_and_resume(work: Path, data: Path, encoder: Path, epochs: int, kills: int, rng: random.Random, threads: int, timeout: float, workers: int = 0) -> KillReport:
    rep = KillReport()
    env = child_env(threads)
    straight_out = work / "straight" / "out"
    child = Child(gan_argv(data, encoder, straight_out, epochs, workers=workers), env)
    if child.wait(timeout) != 0:
        raise SystemExit(f"the straight run failed:\n{child.text()[-3000:]}")
    rep.straight_s = time.monotonic() - child.start
    rep.startup_s = child.seen("GAN training on") or 0.0
    rep.epoch_s = max((rep.straight_s - rep.startup_s) / epochs, 0.1)

    out = work / "killed" / "out"
    run = out / "run"
    while rep.kills < kills:
        flags, how = next_flags(run)
        done = torch.load(run / "models" / "latest.pth", weights_only=True)["epoch"] \
            if how == "--resume" else 0
        if done >= epochs:
            rep.finished_early += 1
            break
        remaining = epochs - done
        mode = KILL_MODES[rep.attempts % len(KILL_MODES)]
        span = remaining * rep.epoch_s + (rep.startup_s if mode == "any" else 0.0)
        delay = rng.uniform(0.0, 0.95 * span)
        nth = rng.randint(1, remaining)
        rep.attempts += 1
        rep.start_overs += how == "--start_over"
        old_temps = set(temps(run))
        child = Child(gan_argv(data, encoder, out, epochs, flags, workers), env)
        killed = wait_and_kill(child, run / "models", mode, delay, nth, timeout, latest_temps(run / "models"))
        rc = child.wait(timeout)
        at = time.monotonic() - child.start
        if not killed:
            if rc != 0:
                rep.unexpected.append(f"attempt {rep.attempts} ({how}) exit {rc}: {child.text()[-1500:]}")
                break
            rep.finished_early += 1
            rep.log.append(f"attempt {rep.attempts}: {how}, finished before its kill ({mode})")
            break
        rep.kills += 1
        left = [t for t in temps(run) if t not in old_temps]  # this kill's, not an earlier one's
        before_training = child.seen("GAN training on") is None
        rep.kills_in_write += bool(left)
        rep.kills_before_training += before_training
        rep.temps_after_kills += len(left)
        bad = unreadable(work / "killed")
        rep.corrupt += [f"after kill {rep.kills}: {b}" for b in bad]
        finished = sum(line.startswith("[") for _, line in child.lines)
        where = f"writing {', '.join(t.name for t in left)}" if left else \
            "before training" if before_training else f"in epoch {done + finished + 1}"
        rep.log.append(f"kill {rep.kills}: {how}, {mode}, at {at:.1f}s, {where}")

    # Finish the run as a user would, without kills.
    for _ in range(3):
        flags, how = next_flags(run)
        child = Child(gan_argv(data, encoder, out, epochs, flags, workers), env)
        rc = child.wait(timeout)
        rep.log.append(f"final: {how}, exit {rc}")
        if rc == 0:
            break
        rep.unexpected.append(f"final run ({how}) exit {rc}: {child.text()[-1500:]}")
    rep.stale_temps_at_end = len(temps(run))
    rep.corrupt += [f"at the end: {b}" for b in unreadable(work / "killed")]
    ref = straight_out / "run" / "models"
    for name in (f"netG_{epochs:03d}.pth", f"netD_{epochs:03d}.pth", "latest.pth"):
        mine = run / "models" / name
        rep.diff[name] = max_abs_diff(ref / name, mine) if mine.is_file() else float("inf")
    return rep


def print_kills(rep: KillReport, args: argparse.Namespace) -> list[str]:
    print(f"\n(a) kill and resume: {args.epochs} epochs, {args.kills} SIGKILLs asked, seed {args.seed}, "
          f"WORKERS {args.workers}")
    print(f"  straight run {rep.straight_s:.1f}s (start-up {rep.startup_s:.1f}s, {rep.epoch_s:.1f}s per epoch)")
    for line in rep.log:
        print("  " + line)
    worst = max(rep.diff.values(), default=float("inf"))
    rows = [("kills delivered", rep.kills), ("  of them inside a checkpoint write (temp file left)", rep.kills_in_write),
            ("  of them before training began", rep.kills_before_training),
            ("attempts that finished before their kill", rep.finished_early),
            ("restarts that needed --start_over", rep.start_overs),
            ("temp files left by kills (removed by the next start)", rep.temps_after_kills),
            ("corrupt .pth files (torch.load weights_only)", len(rep.corrupt)),
            ("stale temp files at the end", rep.stale_temps_at_end),
            ("attempts that failed by themselves", len(rep.unexpected))]
    rows += [(f"max |diff| {name} vs straight run", f"{d:.3g}") for name, d in rep.diff.items()]
    for label, value in rows:
        print(f"  {label:58} {value}")
    for line in rep.corrupt + rep.unexpected:
        print("  ! " + line)
    problems = []
    if rep.corrupt:
        problems.append(f"{len(rep.corrupt)} corrupt files")
    if rep.stale_temps_at_end:
        problems.append(f"{rep.stale_temps_at_end} stale temps")
    if rep.unexpected:
        problems.append(f"{len(rep.unexpected)} failed attempts")
    if worst != 0.0:
        problems.append(f"resumed run differs by {worst:.3g}")
    return problems
