"""What the bad-input cases of ``bench/faults/fault_probe.py`` are made of, and the registry they join.

A case builds its inputs in a fresh folder and returns the command, the paths that must not change
and the words the error must contain (naming the key, file or value). ``quick`` cases form the
default table (one or more per class of mistake); ``--cases all`` adds the rest. The cases live in
``bench/faults/fault_cases.py`` (values, command lines, data, checkpoints, encoders) and
``bench/faults/fault_cases_runs.py`` (run folders, resuming, sampling, evaluation, DAMSM pretraining).
"""
from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from tests.helpers import tiny_opts

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Fixture:
    """What every case may start from: shared read-only inputs and its own empty folder ``dir``."""
    birds: Path          # tiny synthetic CUB set with its captions.pickle
    text_encoder: Path   # random DAMSM pair in the released format, sized for ``birds``
    run: Path            # a finished run folder (OUTPUT_DIR/run) trained on them
    epochs: int          # the run's TRAIN.MAX_EPOCH
    dir: Path = Path()

    @property
    def out(self) -> Path:
        return self.dir / "out"

    def gan(self, *opts: str, flags: tuple = (), script: str = "main.py", data: Path | None = None,
            epochs: int = 1, name: str = "run", encoder: Path | None = None) -> list[str]:
        """A tiny GAN command line (the tests' ``tests.helpers.TINY``, no progress output) with ``opts``
        appended to --opts."""
        return [sys.executable, str(ROOT / script), "--cfg", str(ROOT / "cfg" / "bird.yml"), "--gpu", "-1",
                "--data_dir", str(data or self.birds), *flags, "--opts",
                *tiny_opts(**{"OUTPUT_DIR": self.out, "CONFIG_NAME": name, "TEXT.DAMSM_NAME": encoder or self.text_encoder,
                              "TRAIN.MAX_EPOCH": epochs, "PROGRESS": "off"}), *opts]

    def resume(self, *opts: str, **kw) -> list[str]:
        """Continue the copied run one epoch further, with ``opts`` changed."""
        return self.gan(*opts, flags=("--resume", *kw.pop("flags", ())), epochs=self.epochs + 1, **kw)

    def copy_run(self) -> Path:
        """The finished run, copied to ``out/run`` (so a case may damage its copy)."""
        dest = self.out / "run"
        shutil.copytree(self.run, dest)
        return dest

    def copy_birds(self) -> Path:
        dest = self.dir / "birds"
        shutil.copytree(self.birds, dest)
        return dest

    def netg(self) -> Path:
        return self.run / "models" / f"netG_{self.epochs:03d}.pth"

    def netd(self) -> Path:
        return self.run / "models" / f"netD_{self.epochs:03d}.pth"

    def write(self, name: str, text: str | bytes) -> Path:
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return path

    def is_py(self, *args: str) -> list[str]:
        return [sys.executable, str(ROOT / "IS.py"), "--weights", "random", "--workers", "0", "--device", "cpu",
                *args]


@dataclass
class Plan:
    argv: list[str]
    watch: list[Path]   # must be byte-identical (or still absent) afterwards
    needle: str         # the error must contain this (the key / file / value named)
    env: dict = field(default_factory=dict)
    # A case of input that must be *accepted* (e.g. a captions file with one over-long line): clear
    # when the command exits 0 without a traceback, its output holds ``needle`` and ``check()``
    # (run afterwards) returns no problem; ``watch`` is not compared.
    accept: bool = False
    check: Optional[Callable[[], Optional[str]]] = None


@dataclass
class Case:
    name: str
    group: str
    build: Callable[[Fixture], Plan]
    quick: bool = False


CASES: list[Case] = []


def case(group: str, quick: bool = False):
    def register(fn: Callable[[Fixture], Plan]) -> Callable[[Fixture], Plan]:
        CASES.append(Case(fn.__doc__.strip(), group, fn, quick))
        return fn
    return register


def bad_opt(key: str, value: str, needle: str, quick: bool = False, group: str = "config value") -> None:
    """A case: one --opts value that must be refused before anything is written."""
    def build(f: Fixture) -> Plan:
        return Plan(f.gan(key, value), [f.out], needle)
    CASES.append(Case(f"{key} {value}", group, build, quick))
