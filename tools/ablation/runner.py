"""Runs an ablation: the shared inputs once, then every run (two at a time on two cores, one thread
each), each run's training and final evaluation as the user's own commands (main.py, IS.py), so a
run folder is the same whether the runner or a scheduler made it.

Resuming is the default: a finished run (``ablation_run.json``) is never redone, a half-finished one
continues from its ``latest.pth``, a final evaluation that was cut short is redone from its generator.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from miscc.errors import SSAGANError
from miscc.run.layout import atomic_write_json
from tools.ablation.plan import DIVERSITY_NOISES, GRID_NOISES, Plan, Run, load_record, write_captions
from tools.ablation.variants import DAMSM_CONFIG, VARIANTS

Say = Callable[[str], None]
EPOCH_LINE = re.compile(r"^\[(\d+)/(\d+)\]", re.M)
TIME_FILE = "ablation_time.json"  # CPU and wall seconds of a run's finished commands, kept across resumes


def child_env(threads: int) -> dict[str, str]:
    """One thread per run: the demo's models are too narrow for a second one to pay (docs/DEMO.md)."""
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"), "PYTHONUNBUFFERED": "1"}


class Children:
    """The processes the runner started, so that stopping the runner stops them too."""

    def __init__(self) -> None:
        self.procs: set[subprocess.Popen] = set()
        self.lock = threading.Lock()
        self.stopping = False

    def call(self, cmd: Sequence[str], log: Path, env: dict[str, str]) -> tuple[int, float]:
        """Run ``cmd`` with its output appended to ``log``; (exit code, CPU seconds of the child)."""
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"\n$ {' '.join(cmd)}\n")
            out.flush()
            with self.lock:
                if self.stopping:
                    return 130, 0.0
                proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT, env=env)
                self.procs.add(proc)
            try:
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
            finally:
                with self.lock:
                    self.procs.discard(proc)
        return proc.returncode, usage.ru_utime + usage.ru_stime

    def stop(self, threads: Sequence[threading.Thread], grace: float = 30.0) -> None:
        """SIGTERM to every child, ``grace`` seconds for the workers to see them end, then SIGKILL: a
        child left running would hold its run folder's lock against the next start."""
        with self.lock:
            self.stopping = True
            pids = [proc.pid for proc in self.procs]
        for pid in pids:
            _signal(pid, signal.SIGTERM)  # os.kill, not Popen.send_signal: only the worker's wait4 reaps
        deadline = time.time() + grace
        for thread in threads:
            thread.join(max(0.0, deadline - time.time()))
        with self.lock:
            for proc in self.procs:
                _signal(proc.pid, signal.SIGKILL)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def prepare(plan: Plan, children: Children, say: Say, damsm_given: bool, damsm_opts: dict[str, str],
            threads: int) -> None:
    """The data set, its bird network and the DAMSM pair: made once, reused by every run (and by a
    resumed ablation); then the evaluation captions."""
    env, log = child_env(threads), plan.root / "prepare.log"
    data = plan.data_dir
    if not (data / "attributes_test.json").is_file():
        if data.exists() and any(data.iterdir()):
            raise SSAGANError(f"{data} is not a synthetic bird set (no attributes_test.json): the ablation's scores "
                              "(part colours, bird-network FD/IS, mask coverage) need one. Give --data_dir a folder "
                              "made by python -m tools.birds.make_birds, or an empty/new one to make it there.")
        say(f"synthetic birds -> {data}")
        make = ["-m", "tools.birds.make_birds", str(data), "--facing", "right", "--parts", "image"]  # the demo's set
        _check(children.call([plan.python, *make], log, env),
               "making the data set", log)
    if not (data / "bird_net.pt").is_file():
        say(f"bird feature network -> {data / 'bird_net.pt'}")
        _check(children.call([plan.python, "-m", "tools.bird_features", str(data)], log, env), "the bird network", log)
    if not damsm_given and not plan.damsm.is_file():
        say(f"DAMSM pretraining ({DAMSM_CONFIG}) -> {plan.damsm.parent}")
        out = plan.root / "damsm"
        resume = ["--resume"] if (out / "DAMSM_demo" / "models" / "latest_damsm.pth").is_file() else []
        opts = {"OUTPUT_DIR": str(out), "DATA_DIR": str(data), "PROGRESS": "log", **damsm_opts}
        cmd = [plan.python, "DAMSM.py", "--cfg", DAMSM_CONFIG, "--gpu", "-1", *resume,
               "--opts", *[x for kv in opts.items() for x in kv]]
        _check(children.call(cmd, log, env), "DAMSM pretraining", log)
        if not plan.damsm.is_file():
            raise SSAGANError(f"DAMSM pretraining ended without {plan.damsm} (see {log}).")
    elif not plan.damsm.is_file():
        raise SSAGANError(f"--damsm {plan.damsm}: no such text encoder file.")
    write_captions(plan)


def _check(result: tuple[int, float], what: str, log: Path) -> None:
    if result[0] != 0:
        raise SSAGANError(f"{what} failed (exit code {result[0]}); its output is in {log}.")


def _times(run: Run) -> dict:
    try:
        return json.loads((run.folder / TIME_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def _add_time(run: Run, key: str, cpu: float, wall: float) -> None:
    times = _times(run)
    entry = times.setdefault(key, {"cpu_seconds": 0.0, "wall_seconds": 0.0})
    entry["cpu_seconds"] += cpu
    entry["wall_seconds"] += wall
    atomic_write_json(run.folder / TIME_FILE, times)


def execute(run: Run, children: Children, threads: int, grid: bool) -> dict:
    """Train (or resume) one run, evaluate its final and best generators, write its record."""
    env = child_env(threads)

    def timed(key: str, cmd: list[str]) -> int:
        start = time.time()
        rc, cpu = children.call(cmd, run.log, env)
        if run.folder.is_dir():
            _add_time(run, key, cpu, time.time() - start)
        return rc

    if timed("train", run.train_command()) != 0:
        return {"status": "failed", "step": "train"}
    captions = run.plan.captions_dir
    evaluations = {}
    for which in ("final", "best"):
        generator = run.generator_file(which)
        if generator is None:
            continue
        samples = run.folder / "eval" / f"{which}_diversity"
        result = samples.with_suffix(".json")
        if not result.is_file():
            if samples.exists():  # cut short: the runner's own derived files, redone from the generator
                shutil.rmtree(samples)
            if timed("evaluate", run.sample_command(generator, captions / "diversity.txt", DIVERSITY_NOISES,
                                                    samples)) != 0 or \
                    timed("evaluate", run.diversity_command(samples, result)) != 0:
                return {"status": "failed", "step": f"{which} evaluation"}
        entry = json.loads(result.read_text(encoding="utf-8"))["bird_diversity"]
        evaluations[which] = {"generator": generator.name, "bird_diversity": entry}
    if grid and (generator := run.generator_file("final")) is not None:
        folder = run.folder / "eval" / "grid"
        if not (folder / "grid.png").is_file():
            if folder.exists():
                shutil.rmtree(folder)
            if timed("evaluate", run.sample_command(generator, captions / "grid.txt", GRID_NOISES, folder,
                                                    same_noise=True)) != 0:
                return {"status": "failed", "step": "grid"}
    record = {"variant": run.variant, "seed": run.seed, "label": VARIANTS[run.variant].label,
              "entry": VARIANTS[run.variant].entry, "opts": run.opts(), "evaluations": evaluations,
              "times": _times(run), "status": "done"}
    atomic_write_json(run.record, record)
    return record


def epoch_of(run: Run) -> Optional[tuple[int, int]]:
    """(epoch, of) from the newest ``[epoch/max]`` line of the run's log, or None before the first."""
    try:
        text = run.log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    found = EPOCH_LINE.findall(text)
    return (int(found[-1][0]), int(found[-1][1])) if found else None


class Schedule:
    """Runs ``pending`` with ``jobs`` at a time; prints a line per started/finished run and, every
    ``every`` seconds, what is running and an estimate of the time left."""

    def __init__(self, plan: Plan, pending: list[Run], jobs: int, threads: int, say: Say, every: float = 60.0):
        self.plan, self.pending, self.jobs, self.threads, self.say, self.every = plan, pending, jobs, threads, say, every
        self.children = Children()
        self.running: dict[str, tuple[Run, threading.Thread, float]] = {}
        self.results: dict[str, dict] = {}
        self.durations: dict[str, list[float]] = {}
        for run in plan.runs():  # finished runs of earlier sessions inform the estimate
            record = load_record(run.folder)
            if record:
                self.durations.setdefault(run.variant, []).append(
                    sum(t["wall_seconds"] for t in record.get("times", {}).values()))

    def _start(self, run: Run) -> None:
        grid = run.seed == self.plan.seeds[0]

        def work() -> None:
            try:
                self.results[run.name] = execute(run, self.children, self.threads, grid)
            except Exception as e:  # noqa: BLE001 - one failing run must not stop the others
                self.results[run.name] = {"status": "failed", "step": f"runner: {e!r}"}
        thread = threading.Thread(target=work, name=run.name, daemon=True)
        self.running[run.name] = (run, thread, time.time())
        self.say(f"start {run.name} ({run.state()}) -> {run.folder}")
        thread.start()

    def estimate(self, now: float) -> Optional[float]:
        known = [d for ds in self.durations.values() for d in ds]
        if not known:
            return None
        mean = sum(known) / len(known)

        def cost(variant: str) -> float:
            ds = self.durations.get(variant)
            return sum(ds) / len(ds) if ds else mean
        left = sum(cost(r.variant) for r in self.pending)
        for run, _, started in self.running.values():
            left += max(0.0, cost(run.variant) - (now - started))
        return left / self.jobs

    def status_line(self, now: float) -> str:
        parts = []
        for run, _, started in self.running.values():
            e = epoch_of(run)
            parts.append(f"{run.name} " + (f"epoch {e[0]}/{e[1]}" if e else "starting") + f" {(now - started) / 60:.1f} min")
        results = list(self.results.values())  # worker threads add to the dict meanwhile
        done = sum(1 for r in results if r.get("status") == "done")
        failed = len(results) - done
        left = self.estimate(now)
        eta = f"~{left / 60:.0f} min left" if left is not None else "time left known after the first run"
        return (f"running: {', '.join(parts) or '-'} | finished {done}, failed {failed}, waiting {len(self.pending)} "
                f"| {eta}")

    def run(self) -> dict[str, dict]:
        last = 0.0
        try:
            while self.pending or self.running:
                while self.pending and len(self.running) < self.jobs:
                    self._start(self.pending.pop(0))
                time.sleep(0.5)
                for name, (run, thread, started) in list(self.running.items()):
                    if not thread.is_alive():
                        del self.running[name]
                        result = self.results.get(name, {"status": "failed", "step": "unknown"})
                        took = time.time() - started
                        if result.get("status") == "done":
                            self.durations.setdefault(run.variant, []).append(took)
                            self.say(f"done  {name} in {took / 60:.1f} min")
                        else:
                            self.say(f"FAILED {name} at {result.get('step')}; its log: {run.log}")
                now = time.time()
                if now - last >= self.every and self.running:
                    self.say(self.status_line(now))
                    last = now
        except BaseException:
            self.children.stop([thread for _, thread, _ in self.running.values()])
            raise
        return self.results

