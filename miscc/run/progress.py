"""Progress reporting for long loops: bars on a terminal, plain periodic lines in a log file.

``PROGRESS`` (config) / ``--progress``: ``auto`` (a bar on a terminal, one line every
``LOG_EVERY_S`` seconds otherwise), ``bar``, ``log`` or ``off``. Only the main process reports.
"""
from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator, Optional, TypeVar

from tqdm import tqdm

from miscc.run import distributed

T = TypeVar("T")
MODES = ("auto", "bar", "log", "off")
LOG_EVERY_S = 30.0


def _resolve(mode: str) -> str:
    if not distributed.is_main():
        return "off"
    if mode == "auto":
        return "bar" if sys.stderr.isatty() else "log"
    return mode


class _LogLines:
    """An iterable wrapper that prints ``desc: i/n (x it/s)`` at most every LOG_EVERY_S seconds, one
    full line each time, so a log file gets readable lines instead of carriage-return bar frames."""

    def __init__(self, iterable: Iterable[T], desc: str, total: Optional[int], initial: int):
        self.iterable, self.desc, self.total, self.n = iterable, desc, total, initial
        self.postfix = ""

    def __iter__(self) -> Iterator[T]:
        start = last = time.monotonic()
        done = 0
        for item in self.iterable:
            yield item
            self.n += 1
            done += 1
            now = time.monotonic()
            if now - last >= LOG_EVERY_S:
                last = now
                self.write(f"{self.desc}: {self.n}/{self.total or '?'} ({done / (now - start):.2f} it/s){self.postfix}")

    def set_postfix(self, **values: str) -> None:
        self.postfix = " " + " ".join(f"{k}={v}" for k, v in values.items())

    @staticmethod
    def write(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


class _Silent(_LogLines):
    def __iter__(self) -> Iterator[T]:
        yield from self.iterable


def progress(iterable: Iterable[T], desc: str, mode: str = "auto", total: Optional[int] = None,
             initial: int = 0, leave: bool = True):
    """Wrap ``iterable`` for progress reporting (see module doc); supports ``set_postfix``/``close``."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    mode = _resolve(mode)
    if mode == "bar":
        return tqdm(iterable, desc=desc, total=total, initial=initial, leave=leave, dynamic_ncols=True)
    if mode == "log":
        return _LogLines(iterable, desc, total, initial)
    return _Silent(iterable, desc, total, initial)


def say(message: str) -> None:
    """A message from the main process that does not tear a progress bar."""
    if distributed.is_main():
        tqdm.write(message)
