"""Every file name of a run and of the released formats, and the one way files are written.

Frozen names (the released code and its users rely on them; docs/ORIGINAL.md):
  * GAN snapshots ``netG_%03d.pth``, ``netD_%03d.pth`` (and here ``netG_ema_%03d.pth``,
    ``text_encoder_%03d.pth`` / ``image_encoder_%03d.pth`` when fine-tuning): epoch after the last ``_``.
  * DAMSM snapshots ``text_encoder%d.pth`` / ``image_encoder%d.pth`` (no underscore, no padding).
  * The image encoder of a DAMSM pair sits beside its text encoder with ``text_encoder`` replaced by
    ``image_encoder`` in the *file name* (never in the folder names).

A run folder ``OUTPUT_DIR/<CONFIG_NAME>/`` holds ``models/`` (snapshots, ``latest*.pth``, best files),
``tb/``, ``images/`` (``epoch_%03d.png``), ``samples/``, ``config.yaml``, ``config_history.yaml``, and the
in-training evaluation's ``metrics.jsonl``, ``best.json``, ``metrics.png`` and ``eval_set.pt``.
"""
from __future__ import annotations

import io
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, BinaryIO, Optional

from miscc.errors import SSAGANError

LATEST_GAN = "latest.pth"
LATEST_DAMSM = "latest_damsm.pth"
CONFIG_FILE = "config.yaml"
CONFIG_HISTORY_FILE = "config_history.yaml"
METRICS_FILE = "metrics.jsonl"
BEST_FILE = "best.json"
METRICS_PLOT_FILE = "metrics.png"
EVAL_SET_FILE = "eval_set.pt"
BEST_TAG = "best"  # netG_best.pth ...: the weights of the best evaluated epoch
TEMP_SUFFIX = ".tmp"

# Component kinds that have a released file; longest first so that "netG_ema" wins over "netG".
GAN_KINDS = ("netG_ema", "text_encoder", "image_encoder", "netG", "netD")
DAMSM_KINDS = ("text_encoder", "image_encoder")


def gan_snapshot_name(kind: str, epoch: int | str) -> str:
    """``netG_550.pth``-style name; ``epoch`` may be a tag such as ``"best"``."""
    if kind not in GAN_KINDS:
        raise ValueError(f"unknown GAN file kind {kind!r}; one of {GAN_KINDS}")
    return f"{kind}_{epoch:03d}.pth" if isinstance(epoch, int) else f"{kind}_{epoch}.pth"


def damsm_snapshot_name(kind: str, epoch: int) -> str:
    """``text_encoder200.pth``-style name of DAMSM pretraining."""
    if kind not in DAMSM_KINDS:
        raise ValueError(f"unknown DAMSM file kind {kind!r}; one of {DAMSM_KINDS}")
    return f"{kind}{epoch}.pth"


def epoch_from_name(path: str | os.PathLike) -> int:
    """Epoch of a GAN snapshot, the original's rule: between the last ``_`` and the last ``.``.

    ``netG_550.pth`` -> 550. A clear error instead of the original's crash on other names.
    """
    name = os.path.basename(os.fspath(path))
    try:
        return int(name[name.rindex("_") + 1: name.rindex(".")])
    except ValueError as e:
        raise SSAGANError(f"cannot read an epoch from {os.fspath(path)}: released generator files are named "
                          "netG_<epoch>.pth (e.g. netG_550.pth).") from e


def damsm_epoch_from_name(path: str | os.PathLike) -> int:
    """Epoch of a DAMSM snapshot ``text_encoder<N>.pth`` (also ``text_encoder_<N>.pth``)."""
    match = re.search(r"text_encoder_?(\d+)\.pth$", Path(path).name)
    if match is None:
        raise SSAGANError(f"cannot read an epoch from {os.fspath(path)}: DAMSM text encoders are named "
                          "text_encoder<epoch>.pth (e.g. text_encoder200.pth), with the matching "
                          "image_encoder<epoch>.pth next to it.")
    return int(match.group(1))


def _kind_of(name: str, kinds: tuple[str, ...]) -> Optional[str]:
    return next((k for k in kinds if name.startswith(k)), None)


def companion(path: str | os.PathLike, kind: str) -> Path:
    """The file of ``kind`` saved together with ``path`` (same folder, same epoch or tag).

    ``.../run_netG/models/netG_550.pth`` -> ``.../run_netG/models/netD_550.pth``: only the file name's
    leading kind changes, so folder names never matter.
    """
    p = Path(path)
    own = _kind_of(p.name, GAN_KINDS)
    if own is None:
        raise SSAGANError(f"{p} is not named like a snapshot ({', '.join(k + '_<epoch>.pth' for k in GAN_KINDS)}); "
                          f"cannot find its {kind} file.")
    return p.with_name(kind + p.name[len(own):])


def image_encoder_beside(text_encoder: str | os.PathLike) -> Path:
    """The image encoder of a DAMSM pair: ``text_encoder`` -> ``image_encoder`` in the file name."""
    p = Path(text_encoder)
    if "text_encoder" not in p.name:
        raise SSAGANError(f"cannot derive the image encoder from {p}: its file name has no 'text_encoder'; "
                          "name the pair text_encoder<N>.pth / image_encoder<N>.pth or pass the image encoder "
                          "path explicitly.")
    return p.with_name(p.name.replace("text_encoder", "image_encoder", 1))


def newest_snapshot(models: Path, kind: str) -> Optional[Path]:
    """The newest ``<kind>_<epoch>.pth`` in ``models`` (tags such as ``_best`` and other kinds skipped)."""
    prefix = kind + "_"
    found = [(int(p.stem[len(prefix):]), p) for p in models.glob(f"{prefix}*.pth")
             if p.stem[len(prefix):].isdigit()]
    return max(found)[1] if found else None


@dataclass(frozen=True)
class RunLayout:
    """The folders and files of one run, ``OUTPUT_DIR/<CONFIG_NAME>/``."""
    root: Path

    @classmethod
    def of(cls, output_dir: str, config_name: str) -> "RunLayout":
        return cls(Path(output_dir) / (config_name or "default"))

    def _in_root(name: str) -> property:  # type: ignore[misc]  # used in the class body only
        return property(lambda self: self.root / name, doc=f"``<run>/{name}``")

    models = _in_root("models")
    tb = _in_root("tb")
    images = _in_root("images")
    samples = _in_root("samples")
    config = _in_root(CONFIG_FILE)
    config_history = _in_root(CONFIG_HISTORY_FILE)
    metrics = _in_root(METRICS_FILE)
    best = _in_root(BEST_FILE)
    metrics_plot = _in_root(METRICS_PLOT_FILE)
    eval_set = _in_root(EVAL_SET_FILE)
    del _in_root

    def epoch_grid(self, epoch: int) -> Path:
        return self.images / f"epoch_{epoch:03d}.png"

    def latest(self, name: str = LATEST_GAN) -> Path:
        return self.models / name

    def gan_snapshot(self, kind: str, epoch: int | str) -> Path:
        return self.models / gan_snapshot_name(kind, epoch)

    def damsm_snapshot(self, kind: str, epoch: int) -> Path:
        return self.models / damsm_snapshot_name(kind, epoch)


# --- writing ---------------------------------------------------------------------------------------

def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None], *, durable: bool = True,
                 make_folder: bool = True) -> None:
    """Write through ``write(file)`` to a temp file beside ``path``, fsync, then rename over it.

    A crash or a full disk never leaves a torn ``path``: either the old file or the new one exists. A
    failed write removes its temp file and raises one ``SSAGANError`` saying the previous file is intact.
    ``durable=False`` skips the fsync: the rename still means a killed process never leaves a torn file,
    only a power cut may (for many small files, e.g. the sampler's PNGs, whose run ends with a fsynced
    DONE.json). ``make_folder=False``: a missing folder is an error instead of being created.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if make_folder:
        os.makedirs(folder, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path), suffix=TEMP_SUFFIX)
    except OSError as e:
        raise SSAGANError(f"could not write {path} ({e.strerror or e}); no file was written. Check that the "
                          "folder exists and its permissions, and free disk space.") from e
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        _remove_quietly(tmp)
        kept = "the previous version is intact" if os.path.exists(path) else "no file was written"
        raise SSAGANError(f"could not write {path} ({e.strerror or e}); {kept}. Free disk space or check "
                          "the folder's permissions, then run again (--resume continues a training run).") from e
    except BaseException:
        _remove_quietly(tmp)
        raise


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through ``atomic_write``."""
    import torch

    def write(f: BinaryIO) -> None:
        buffer = io.BytesIO()  # serialise first: a pickling error must not cost the old file
        torch.save(obj, buffer)
        f.write(buffer.getbuffer())
    atomic_write(path, write)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete temp files a killed writer left in ``folder`` (``.<name>*.tmp``); return them."""
    stale = [p for p in folder.glob(".*" + TEMP_SUFFIX) if p.is_file()] if folder.is_dir() else []
    for p in stale:
        _remove_quietly(str(p))
    return stale
