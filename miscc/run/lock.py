"""One owner per output folder: training, DAMSM pretraining and sampling lock the folder they write.

Two runs started in one folder would both be accepted by the "folder holds a run" check (neither has
written yet) and then interleave their files. So before a run writes anything it takes a lock:

  * the lock file is ``<parent>/.<folder name>.lock``, *beside* the folder: ``--start_over`` moves the
    run folder aside (a lock inside would move with it), and a refused start must leave a folder that
    did not exist yet absent;
  * the lock is ``fcntl.flock`` on that file. The kernel drops it when the holder dies, however it
    dies (SIGKILL included), so a lock left by a crash is never taken for a live one and nobody has
    to delete anything by hand. The file's JSON (pid, host, start time, command) only serves to name
    the holder in the refusal, and to say that a crashed holder's lock was taken over;
  * a refused start reads the lock file and writes nothing; a start that fails later (a bad
    checkpoint, a refused resume) removes the lock file and the parent folders it created, so every
    folder stays as it was;
  * under torchrun only rank 0 takes the lock and the ranks agree on the outcome (one broadcast), so
    every rank stops, instead of the others waiting forever in their next collective.

On a system without ``fcntl`` (Windows) folders are not locked; docs/RELIABILITY.md says so.
"""
from __future__ import annotations

import datetime
import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from miscc.errors import SSAGANError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

LOCK_SUFFIX = ".lock"


def lock_file_for(folder: str | os.PathLike) -> Path:
    """``a/b/run`` -> ``a/b/.run.lock``."""
    folder = Path(os.path.abspath(folder))
    return folder.parent / f".{folder.name}{LOCK_SUFFIX}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else
    return True


def _read_holder(fd: int) -> dict:
    """The JSON the holder wrote; {} while it is still writing it (or if it is not ours)."""
    for _ in range(20):  # the holder writes right after it locks: give it a moment
        try:
            raw = os.pread(fd, 4096, 0)
        except OSError:
            return {}
        if raw:
            try:
                holder = json.loads(raw.decode("utf-8", "replace"))
                return holder if isinstance(holder, dict) else {}
            except ValueError:
                pass
        time.sleep(0.01)
    return {}


def _describe(holder: dict) -> str:
    if not holder:
        return "another process (it has not written its name yet)"
    text = f"{holder.get('what', 'a run')} by process {holder.get('pid', '?')} on {holder.get('host', '?')}"
    if holder.get("started"):
        text += f", started {holder['started']}"
    if holder.get("command"):
        text += f" ({holder['command']})"
    return text


class FolderLock:
    """The lock of one output folder (module doc); ``acquire`` raises SSAGANError when it is held."""

    def __init__(self, folder: str | os.PathLike, what: str) -> None:
        self.folder = Path(folder)
        self.what = what
        self.path = lock_file_for(folder)
        self.fd: Optional[int] = None
        self.created: list[Path] = []  # parent folders made for the lock file, removed again on release
        self.taken_over: dict = {}     # the previous holder's record when a crashed run left it

    def _make_parent(self) -> None:
        missing = []
        for p in (self.path.parent, *self.path.parent.parents):
            if p.is_dir():
                break
            if p.exists():
                raise SSAGANError(f"the folder {self.folder} cannot be created: {p} is a file; set OUTPUT_DIR / "
                                  "CONFIG_NAME (or --out_dir) to a folder.")
            missing.append(p)
        for p in reversed(missing):
            try:
                p.mkdir()
            except FileExistsError:
                continue  # made by a run starting at the same moment; it is not ours to remove
            except OSError as e:
                self._remove_created()
                raise SSAGANError(f"cannot create {p} for the folder {self.folder} ({e.strerror or e}); check "
                                  "OUTPUT_DIR (or --out_dir) and its permissions.") from e
            self.created.append(p)

    def acquire(self) -> "FolderLock":
        if fcntl is None:
            return self
        self._make_parent()
        for _ in range(50):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            except FileNotFoundError:
                self._make_parent()  # a failed start beside us removed a parent it had made
                continue
            except OSError as e:
                self._remove_created()
                raise SSAGANError(f"cannot create the lock file {self.path} of {self.folder} ({e.strerror or e}); "
                                  "check the folder's permissions.") from e
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                self._remove_created()
                raise SSAGANError(self._refusal(holder)) from None
            # The path may have been unlinked (a holder releasing) between our open and our lock: then
            # we hold a lock on a file nobody else will ever see. Start again on the current file.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            self.fd = fd
            previous = _read_holder_now(fd)
            if previous.get("pid") not in (None, os.getpid()):
                self.taken_over = previous
            self._write_holder()
            return self
        raise SSAGANError(f"could not take the lock {self.path} of {self.folder}: it kept changing; another "
                          "run is starting and stopping there. Try again.")

    def _refusal(self, holder: dict) -> str:
        pid = holder.get("pid")
        gone = (isinstance(pid, int) and holder.get("host") == socket.gethostname() and not _pid_alive(pid))
        hint = (" That process has ended, but a child of it (a DataLoader worker) still holds the lock: wait a "
                "few seconds and start again." if gone else
                " Wait for it to finish (or stop it), or write to another folder (another CONFIG_NAME / "
                "OUTPUT_DIR, or --out_dir): two runs in one folder would mix their files.")
        return (f"{self.folder} is in use: {_describe(holder)} holds its lock {self.path}. Nothing was "
                f"written.{hint}")

    def _write_holder(self) -> None:
        record = {"pid": os.getpid(), "host": socket.gethostname(), "what": self.what,
                  "started": datetime.datetime.now().isoformat(timespec="seconds"),
                  "command": " ".join([os.path.basename(sys.executable), *sys.argv])[:300]}
        data = (json.dumps(record) + "\n").encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)

    def release(self) -> None:
        if self.fd is not None:
            try:
                os.unlink(self.path)  # while still locked: nobody can take it half-removed
            except FileNotFoundError:
                pass
            os.close(self.fd)
            self.fd = None
        self._remove_created()

    def _remove_created(self) -> None:
        for p in reversed(self.created):  # the deepest first; a folder the run filled stays
            try:
                p.rmdir()
            except OSError:
                break
        self.created = []


def _read_holder_now(fd: int) -> dict:
    try:
        raw = os.pread(fd, 4096, 0)
        holder = json.loads(raw.decode("utf-8", "replace")) if raw else {}
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


@contextmanager
def folder_lock(folder: str | os.PathLike, what: str) -> Iterator[Optional[FolderLock]]:
    """Hold the lock of ``folder`` inside the block (rank 0 under torchrun; the ranks agree)."""
    from miscc.run import distributed
    from miscc.run.progress import say

    lock: Optional[FolderLock] = None
    refusal: Optional[str] = None
    if distributed.is_main():
        try:
            lock = FolderLock(folder, what).acquire()
        except SSAGANError as e:
            refusal = str(e)
    if distributed.world_size() > 1:
        import torch.distributed as dist
        box = [refusal]
        dist.broadcast_object_list(box, src=0)
        refusal = box[0]
    if refusal is not None:
        raise SSAGANError(refusal)
    try:
        if lock is not None and lock.taken_over:
            say(f"note: {lock.path} was left by {_describe(lock.taken_over)}, which is no longer running "
                "(killed or crashed); the lock is taken over.")
        yield lock
    finally:
        if lock is not None:
            lock.release()
