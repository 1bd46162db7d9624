"""The sample folder protocol: what the sampler writes and what every reader of such a folder reads.

    <out_dir>/img/000000.png ...   RGB at the generator's resolution (``images_to_uint8``)
    <out_dir>/mask/000000.png ...  the last-stage mask, greyscale (not with --masks none)
    <out_dir>/stage_mask/000000_s0.png ...  every stage's mask upsampled to the image (--masks all)
    <out_dir>/samples.jsonl        one ``SampleRecord`` per image, in image order
    <out_dir>/grid.png             user captions only
    <out_dir>/PLANNED.json         written first: how many images the run will write
    <out_dir>/DONE.json            written last (a folder without it is an interrupted run)
    <out_dir>/metrics.json         IS.py's result (removed when the folder is sampled again)

The names, the record's fields and the pixel conversion are a frozen surface: IS.py, the demo report
and users' scripts read folders written by earlier versions, and in-memory evaluation must see the
pixels the PNG files hold. docs/SAMPLING.md describes the folder for users.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, TextIO

import torch

from miscc.errors import SSAGANError

SAMPLES_FILE = "samples.jsonl"
DONE_FILE = "DONE.json"
PLAN_FILE = "PLANNED.json"
METRICS_JSON = "metrics.json"
GRID_FILE = "grid.png"
IMAGE_DIR = "img"
MASK_DIR = "mask"
STAGE_DIR = "stage_mask"


def image_file(index: int) -> str:
    """Image ``index`` relative to the folder; zero-padded so that names sort in image order."""
    return f"{IMAGE_DIR}/{index:06d}.png"


def mask_file(index: int) -> str:
    return f"{MASK_DIR}/{index:06d}.png"


def stage_mask_file(index: int, stage: int) -> str:
    """Stage ``stage`` (0 = the first, 4 x 4) of image ``index``, upsampled for viewing."""
    return f"{STAGE_DIR}/{index:06d}_s{stage}.png"


def images_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float -> uint8 by truncation, as the original wrote its PNGs; every in-memory
    evaluation uses this too, so it sees exactly the pixels of the files."""
    return ((images.detach() + 1) * 127.5).clamp(0, 255).to(torch.uint8)


def masks_to_uint8(masks: torch.Tensor) -> torch.Tensor:
    """A stage's masks [B, 1, r, r] in [0, 1] -> uint8 [B, r, r] (white = where the text acts), as the
    sampler writes them."""
    return (masks.detach().clamp(0, 1) * 255).to(torch.uint8)[:, 0]


@dataclass(frozen=True)
class SampleRecord:
    """One line of samples.jsonl: which caption (as the text encoder read it) made which image."""
    file: str  # relative to the folder, e.g. img/000000.png
    mask: Optional[str]
    key: str  # dataset image key (CUB: class folder/name), or '<captions file>:<line>'
    caption_idx: int
    text: str
    tokens: tuple[int, ...]
    repeat: int  # sampling pass (dataset captions) or sample number (user captions)
    # Optional fields, written after the others: stage_masks / stage_mask_sizes (--masks all), and
    # dropped / marked (user captions: words left out and the sentence with them marked).
    extra: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def numbered(cls, index: int, key: str, caption_idx: int, text: str, tokens: Iterable[int],
                 repeat: int) -> "SampleRecord":
        """The record of image ``index`` of a folder, with the protocol's file names."""
        return cls(image_file(index), mask_file(index), key, caption_idx, text, tuple(tokens), repeat)

    def to_json(self) -> str:
        row = {"file": self.file, "mask": self.mask, "key": self.key, "caption_idx": self.caption_idx,
               "text": self.text, "tokens": list(self.tokens), "repeat": self.repeat, **dict(self.extra)}
        if self.mask is None:
            del row["mask"]
        return json.dumps(row)

    @classmethod
    def from_json(cls, line: str) -> "SampleRecord":
        """Parse one line; raises ValueError, KeyError or TypeError on a malformed one.

        ``mask``, ``text`` and ``repeat`` are optional so that hand-written records (file, key,
        caption_idx, tokens) can be evaluated too.
        """
        row = json.loads(line)
        mask = row.get("mask")
        extra = tuple((k, v) for k, v in row.items() if k not in _CORE_FIELDS)
        return cls(str(row["file"]), None if mask is None else str(mask), str(row["key"]),
                   int(row["caption_idx"]), str(row.get("text", "")), tuple(int(t) for t in row["tokens"]),
                   int(row.get("repeat", 0)), extra)


_CORE_FIELDS = ("file", "mask", "key", "caption_idx", "text", "tokens", "repeat")


def write_records(stream: TextIO, records: Iterable[SampleRecord]) -> None:
    stream.write("".join(r.to_json() + "\n" for r in records))


def read_samples(sample_dir: str | os.PathLike) -> list[SampleRecord]:
    """Parse ``sample_dir/samples.jsonl``; every line must name an existing image and non-empty tokens."""
    sample_dir = Path(sample_dir)
    path = sample_dir / SAMPLES_FILE
    if not path.is_file():
        raise SSAGANError(f"{path} does not exist: pass a folder written by the sampler (main.py --sample), "
                          "whose records say which caption made each image.")
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = SampleRecord.from_json(line)
        except (ValueError, KeyError, TypeError) as e:
            raise SSAGANError(f"{path}:{n}: not a sample record with file, key, caption_idx and "
                              f"tokens ({type(e).__name__}: {e}).") from e
        if not rec.tokens or min(rec.tokens) < 0:
            raise SSAGANError(f"{path}:{n}: tokens must be a non-empty list of word ids >= 0.")
        if not (sample_dir / rec.file).is_file():
            raise SSAGANError(f"{path}:{n}: image {sample_dir / rec.file} does not exist.")
        records.append(rec)
    if not records:
        raise SSAGANError(f"{path} is empty.")
    return records


def count_images(sample_dir: str | os.PathLike) -> int:
    """Images in a sampler folder's img/, by name only (temp files of an interrupted write excluded)."""
    folder = Path(sample_dir) / IMAGE_DIR
    return sum(1 for p in folder.glob("*.png") if not p.name.startswith(".")) if folder.is_dir() else 0


def check_complete(sample_dir: str | os.PathLike, found: int) -> None:
    """Refuse a sampler folder whose run did not finish (no DONE.json): its images are a partial set."""
    folder = Path(sample_dir)
    sampler_folder = (folder / SAMPLES_FILE).is_file() or (folder / PLAN_FILE).is_file()  # PLANNED.json: a
    if not sampler_folder or (folder / DONE_FILE).is_file():  # torchrun run cut before its records were merged
        return
    planned = "an unknown number of"
    if (folder / PLAN_FILE).is_file():
        try:
            planned = str(json.loads((folder / PLAN_FILE).read_text())["count"])
        except (ValueError, KeyError):
            pass
    raise SSAGANError(f"{folder} is an interrupted sampling run: it has {found} images of {planned} planned and "
                      f"no {DONE_FILE}. Sample again (the folder is rewritten), or pass --allow_incomplete to "
                      "evaluate the partial set anyway.")
