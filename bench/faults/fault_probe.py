"""Fault probe: SIGKILL a training run at random moments, resume it, and feed the commands bad inputs.

    python bench/faults/fault_probe.py [--kills 6] [--epochs 3] [--seed 0] [--cases quick|all] [--json OUT]

(a) Kill and resume. A tiny GAN run (synthetic birds, NF 4, 64 px, batch 6, a random DAMSM pair,
    WORKERS 0, PROGRESS off) is trained straight for ``--epochs`` epochs. The same run is then started
    as ``python main.py ...`` and SIGKILLed ``--kills`` times, in turn: the moment a ``.latest.pth*.tmp``
    file (a checkpoint being written) appears, at a randomly chosen save; at a random moment of the
    training; again at a write; at a random moment of the whole process (start-up included). After every kill each ``.pth`` of the run must load with
    ``torch.load(weights_only=True)``; the next start is what the messages tell a user to type
    (``--resume`` when ``latest.pth`` exists, else a plain start, else ``--start_over``). Reported: kills,
    kills that left a temp file (so landed inside a write), corrupt files, temp files left after the
    run finished, and the largest difference between the final netG/netD/latest.pth and the straight run.
(b) Bad inputs. Every case of ``bench/faults/fault_cases*.py`` runs as a real command line. ``clear``: exit
    code 2, exactly one ``error:`` line naming the key/file/value, no traceback, the watched files
    and folders unchanged. ``bad``: a traceback, exit 0 or a hang. ``weak``: anything between. A case
    of input that must be *accepted* (``Plan.accept``) is clear on exit 0 with its check passing.
(c), (d): two starts in one folder, hostile requests to the page (``bench/faults/fault_more.py``).

Every figure is printed; the last line starts with ``summary:``. Exit code 1 if any figure is bad.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402

from bench.common import machine  # noqa: E402
import bench.faults.fault_cases  # noqa: E402,F401 - registers its cases
import bench.faults.fault_cases_runs  # noqa: E402,F401 - registers its cases
import bench.faults.fault_cases_owners  # noqa: E402,F401 - registers its cases
from bench.faults import fault_more  # noqa: E402
from bench.faults.fault_fixture import CASES, ROOT, Fixture, Plan  # noqa: E402

TEMP = re.compile(r"^\..*\.tmp$")
ERROR_LINE = re.compile(r"^(\S+: )?error: ")


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
    straight_s: float = 0.0
    startup_s: float = 0.0
    epoch_s: float = 0.0
    attempts: int = 0
    kills: int = 0
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


# --- (b) bad inputs ------------------------------------------------------------------------------------

def fingerprint(paths: list[Path]) -> dict:
    """Content of every watched path: absent, a file's sha256, or a folder's files and subfolders."""
    def digest(p: Path) -> str:
        return hashlib.sha256(p.read_bytes()).hexdigest()
    out = {}
    for path in paths:
        if path.is_symlink() or path.is_file():
            out[str(path)] = digest(path)
        elif path.is_dir():
            out[str(path)] = {str(p.relative_to(path)): digest(p) if p.is_file() else "dir"
                              for p in sorted(path.rglob("*"))}
        else:
            out[str(path)] = None
    return out


def changes(before: dict, after: dict) -> list[str]:
    found = []
    for path, old in before.items():
        new = after[path]
        if isinstance(old, dict) and isinstance(new, dict):
            found += [f"{path}/{k}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        elif old != new:
            found.append(path)
    return found


@dataclass
class Verdict:
    name: str
    group: str
    verdict: str
    rc: Optional[int]
    why: str
    message: str
    seconds: float


def classify_accepted(rc: Optional[int], output: str, plan: Plan) -> tuple[str, str]:
    """A case that must be accepted: clear on exit 0, no traceback, ``needle`` shown and ``check()`` fine."""
    if rc is None:
        return "bad", "did not finish (hang)"
    if "Traceback" in output:
        return "bad", "traceback"
    if rc != 0:
        return "bad", f"refused (exit {rc})"
    problem = plan.check() if plan.check else None
    if plan.needle not in output:
        problem = "; ".join(filter(None, [problem, f"output lacks {plan.needle!r}"]))
    return ("weak", problem) if problem else ("clear", "")


def classify(rc: Optional[int], output: str, needle: str, changed: list[str]) -> tuple[str, str]:
    """('clear' | 'weak' | 'bad', why) for one case, by the rules of the module doc."""
    if rc is None:
        return "bad", "did not finish (hang)"
    if "Traceback" in output:
        return "bad", "traceback"
    if rc == 0:
        return "bad", "accepted (exit 0)"
    errors = [line for line in output.splitlines() if ERROR_LINE.match(line)]
    problems = []
    if rc != 2:
        problems.append(f"exit {rc}")
    if len(errors) != 1:
        problems.append(f"{len(errors)} 'error:' lines")
    if needle not in output:
        problems.append(f"message lacks {needle!r}")
    if changed:
        problems.append("changed " + ", ".join(changed[:3]) + (" ..." if len(changed) > 3 else ""))
    return ("weak", "; ".join(problems)) if problems else ("clear", "")


def run_cases(fixture: Fixture, which: str, threads: int, timeout: float, only: Optional[str]) -> list[Verdict]:
    verdicts = []
    base = fixture.dir
    for i, case in enumerate(c for c in CASES if which == "all" or c.quick):
        if only and not any(part in case.name for part in only.split(",")):
            continue
        fixture.dir = base / f"case{i:03d}"
        fixture.dir.mkdir(parents=True)
        plan: Plan = case.build(fixture)
        before = fingerprint(plan.watch)
        start = time.monotonic()
        try:
            proc = subprocess.run(plan.argv, cwd=ROOT, env={**child_env(threads), **plan.env},
                                  capture_output=True, text=True, errors="replace", timeout=timeout)
            rc, output = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as e:
            rc, output = None, f"{e.stdout or ''}{e.stderr or ''}"
        seconds = time.monotonic() - start
        verdict, why = classify_accepted(rc, output, plan) if plan.accept else \
            classify(rc, output, plan.needle, changes(before, fingerprint(plan.watch)))
        errors = [line for line in output.splitlines() if ERROR_LINE.match(line)]
        message = errors[0] if errors else (output.strip().splitlines() or [""])[-1]
        verdicts.append(Verdict(case.name, case.group, verdict, rc, why, message, seconds))
        print(f"  {verdict:5} {case.group:18} {case.name[:60]:60} exit {rc} ({seconds:.0f}s)"
              + (f"  <- {why}" if why else ""), flush=True)
        shutil.rmtree(fixture.dir, ignore_errors=True)
    fixture.dir = base
    return verdicts


# --- fixtures and the report -------------------------------------------------------------------------------

def make_inputs(work: Path) -> tuple[Path, Path]:
    """The tiny synthetic set (4 species x 6 images at 64x48, as tests/conftest.py) and a random DAMSM pair."""
    from DAMSM import CNN_ENCODER, RNN_ENCODER
    from datasets import TextDataset
    from miscc.run.checkpoint import save_released
    from tools.birds.make_birds import make_birds
    data = work / "birds"
    make_birds(data, classes=4, per_class=6, seed=0, size=(64, 48))
    n_words = TextDataset(data, "train").n_words  # writes captions.pickle
    torch.manual_seed(0)
    encoders = work / "DAMSMencoders"
    save_released(RNN_ENCODER(n_words, nhidden=256), encoders / "text_encoder200.pth")
    save_released(CNN_ENCODER(256, pretrained=False), encoders / "image_encoder200.pth")
    return data, encoders / "text_encoder200.pth"


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


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kills", type=int, default=6, help="SIGKILLs of the resumed run (default 6)")
    p.add_argument("--epochs", type=int, default=3, help="epochs of the run (default 3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the kill schedule")
    p.add_argument("--workers", type=int, default=0, help="WORKERS of the killed run (default 0)")
    p.add_argument("--cases", choices=("quick", "all"), default="quick", help="bad-input table: one or more "
                   "cases per class (default) or every case")
    p.add_argument("--only", default=None, help="run only the bad-input cases whose name contains one of these comma-separated words")
    p.add_argument("--skip_kills", action="store_true", help="bad inputs only (needs no straight run... "
                   "except for cases that copy it, so it is still trained)")
    p.add_argument("--skip_cases", action="store_true", help="kill and resume only")
    p.add_argument("--skip_race", action="store_true", help="skip (c), two starts in one folder")
    p.add_argument("--skip_page", action="store_true", help="skip (d), hostile requests to the page")
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the commands (default 1)")
    p.add_argument("--timeout", type=float, default=300, help="seconds before a command counts as hung")
    p.add_argument("--work", default=None, help="work folder (default: a temp folder, removed afterwards)")
    p.add_argument("--json", default=None, help="also write every figure to this JSON file")
    args = p.parse_args(argv)

    began = time.monotonic()
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    print(f"fault probe, {stamp}; {machine()}", flush=True)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="fault_probe_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        data, encoder = make_inputs(work)
        problems: list[str] = []
        rep = None
        if args.skip_kills:
            straight = work / "straight" / "out"
            child = Child(gan_argv(data, encoder, straight, args.epochs), child_env(args.threads))
            if child.wait(args.timeout) != 0:
                raise SystemExit(f"the straight run failed:\n{child.text()[-3000:]}")
        else:
            rep = kill_and_resume(work, data, encoder, args.epochs, args.kills, random.Random(args.seed), args.threads, args.timeout, args.workers)
            problems += print_kills(rep, args)
        verdicts: list[Verdict] = []
        if not args.skip_cases:
            print(f"\n(b) bad inputs ({args.cases} table), each a real command line:", flush=True)
            fixture = Fixture(birds=data, text_encoder=encoder, run=work / "straight" / "out" / "run",
                              epochs=args.epochs, dir=work / "cases")
            verdicts = run_cases(fixture, args.cases, args.threads, args.timeout, args.only)
            counts = {v: sum(x.verdict == v for x in verdicts) for v in ("clear", "weak", "bad")}
            print(f"  {len(verdicts)} cases: {counts['clear']} clear, {counts['weak']} weak, {counts['bad']} bad")
            for v in verdicts:
                if v.verdict != "clear":
                    print(f"  {v.verdict}: {v.name}: {v.why}\n    {v.message[:300]}")
            if counts["weak"] or counts["bad"]:
                problems.append(f"{counts['weak']} weak / {counts['bad']} bad inputs")
        race = page = None
        if not args.skip_race:
            print("\n(c) two starts of one training in one folder, 1 s apart:", flush=True)
            race_fixture = Fixture(birds=data, text_encoder=encoder, run=Path(), epochs=args.epochs, dir=work / "race")
            race = fault_more.two_starts(race_fixture, args.epochs, child_env(args.threads), args.timeout)
            for key, value in race.items():
                print(f"  {key}: {value}")
            problems += race["problems"]
        if not args.skip_page:
            print("\n(d) hostile requests to the page (python app.py on the straight run's generator):", flush=True)
            netg = work / "straight" / "out" / "run" / "models" / f"netG_{args.epochs:03d}.pth"
            page_fixture = Fixture(birds=data, text_encoder=encoder, run=Path(), epochs=args.epochs, dir=work / "page")
            page = fault_more.page_requests(page_fixture, netg, child_env(args.threads))
            for row in page["rows"]:
                print(f"  {'good' if row['good'] else 'BAD ':4} {row['status']} {row['seconds']:5.1f}s  {row['request']}"
                      f"  <- {row['answer'][:100]}")
            print(f"  {sum(r['good'] for r in page['rows'])} of {len(page['rows'])} requests answered 2xx/4xx with one "
                  f"line" + ("; " + "; ".join(page["problems"]) if page["problems"] else ""))
            problems += page["problems"]
        minutes = (time.monotonic() - began) / 60
        summary = ("summary: " + (f"{rep.kills} kills ({rep.kills_in_write} inside a write), "
                                  f"{len(rep.corrupt)} corrupt files, {rep.stale_temps_at_end} stale temps, "
                                  f"resume max |diff| {max(rep.diff.values()):.3g}; " if rep else "")
                   + (f"{len(verdicts)} bad inputs: {sum(v.verdict == 'clear' for v in verdicts)} clear, "
                      f"{sum(v.verdict == 'weak' for v in verdicts)} weak, "
                      f"{sum(v.verdict == 'bad' for v in verdicts)} bad; " if verdicts else "")
                   + (f"two starts: {'one refused, folder consistent' if not race['problems'] else 'BAD'}; "
                      if race else "")
                   + (f"page: {sum(r['good'] for r in page['rows'])}/{len(page['rows'])} requests 2xx/4xx; "
                      if page else "")
                   + f"{minutes:.1f} min")
        print(summary)
        if args.json:
            Path(args.json).write_text(json.dumps({
                "date": stamp, "machine": machine(), "args": vars(args),
                "kills": rep.__dict__ if rep else None, "cases": [v.__dict__ for v in verdicts],
                "two_starts": race, "page": page,
                "problems": problems}, indent=1, default=str))
        return 1 if problems else 0
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
