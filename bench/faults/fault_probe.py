"""Fault probe: SIGKILL a training run at random moments, resume it, and feed the commands bad inputs.

    python bench/faults/fault_probe.py [--kills 6] [--epochs 3] [--seed 0] [--cases quick|all] [--json OUT]

(a) Kill and resume (``bench/faults/fault_kills.py``). A tiny GAN run (synthetic birds, NF 4, 64 px, batch 6, a random DAMSM pair,
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
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.common import machine  # noqa: E402
import bench.faults.fault_cases  # noqa: E402,F401 - registers its cases
import bench.faults.fault_cases_runs  # noqa: E402,F401 - registers its cases
import bench.faults.fault_cases_owners  # noqa: E402,F401 - registers its cases
from bench.faults import fault_more  # noqa: E402
from bench.faults.fault_fixture import CASES, ROOT, Fixture, Plan  # noqa: E402
from bench.faults.fault_kills import Child, child_env, gan_argv, kill_and_resume, print_kills  # noqa: E402

ERROR_LINE = re.compile(r"^(\S+: )?error: ")


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


# --- fixtures and the driver ---------------------------------------------------------------------------

def make_inputs(work: Path) -> tuple[Path, Path]:
    """The tests' tiny synthetic set (``tests.helpers.bird_set``) and random DAMSM pair (``random_damsm``)."""
    from datasets import TextDataset
    from tests.helpers import bird_set, random_damsm
    data = bird_set(work / "birds")
    n_words = TextDataset(data, "train").n_words  # writes captions.pickle
    return data, random_damsm(work / "DAMSMencoders", n_words)


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
