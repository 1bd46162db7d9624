"""PNG files of a sample folder: the compression setting, the atomic writer and the bounded writer pool.

Apart from the sampler so that the page and the benchmarks share the one setting, and so that how a file
reaches the disk (temp file + rename, the pool's back-pressure) is read in one place.
"""
from __future__ import annotations

import os
import zlib
from collections import deque
from concurrent.futures import Executor, Future
from typing import Any, Mapping, Optional, Sequence

import numpy as np
from PIL import Image

from miscc.errors import SSAGANError
from miscc.run.layout import atomic_write
from miscc.sample.protocol import DONE_FILE

# zlib's run-length strategy, designed for PNG's filtered rows: the files decode to the same pixels
# as PIL's default settings, are about as small (20.2 vs 21.5 KiB for a generator's 256 px images,
# equal for photos) and compress 3-4x faster, which sets the sampler's speed when the generator is fast.
PNG_SAVE_OPTIONS: dict = {"compress_type": zlib.Z_RLE}


def save_png_atomic(path: str | os.PathLike, image: Image.Image | np.ndarray,
                    options: Optional[Mapping[str, Any]] = None) -> None:
    """A PNG written to a temp file and renamed into place: a kill or a full disk never leaves a torn or
    empty image behind (IS.py then reports the interrupted folder, not a broken PNG). Not fsynced per
    file (``run_layout.atomic_write``'s ``durable``): that cost 3 ms per image on the development disk."""
    picture = Image.fromarray(image) if isinstance(image, np.ndarray) else image
    kw = PNG_SAVE_OPTIONS if options is None else options
    atomic_write(path, lambda f: picture.save(f, format="PNG", **kw), durable=False,
                 make_folder=False)


def _save_pngs(items: Sequence[tuple[str, np.ndarray]]) -> None:
    for path, array in items:
        try:
            save_png_atomic(path, array)
        except SSAGANError as e:
            cause = e.__cause__
            why = getattr(cause, "strerror", None) or cause or e
            raise SSAGANError(f"could not write {path} ({why}); the sample folder is incomplete (it has no "
                              f"{DONE_FILE}, so IS.py refuses it). Free disk space and sample again.") from cause


class PngWriter:
    """Runs ``_save_pngs`` chunks on an executor with at most ``max_pending`` chunks in flight.

    The bound keeps memory flat when the generator outruns the disk; waiting on the oldest chunk also
    surfaces a failed write at the next submit instead of after the whole run. Threads, not processes
    (docs/SAMPLING.md has the measurements): PIL releases the GIL while it compresses into a file, so
    a thread overlaps the generator whenever a core is free, without pickling every image.
    """

    def __init__(self, executor: Executor, max_pending: int) -> None:
        self.executor = executor
        self.max_pending = max_pending
        self.pending: deque[Future] = deque()

    def submit(self, items: Sequence[tuple[str, np.ndarray]]) -> None:
        while len(self.pending) >= self.max_pending:
            self.pending.popleft().result()
        self.pending.append(self.executor.submit(_save_pngs, items))

    def __enter__(self) -> "PngWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                while self.pending:
                    self.pending.popleft().result()
        finally:
            for f in self.pending:
                f.cancel()
            self.executor.shutdown(wait=True)
