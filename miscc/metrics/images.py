"""Image sets on disk: sampler folders, any image folder, and the CUB reference crops.

Files are read as uint8 RGB tensors, with the input checks users need (empty folder, non-image
files, mixed sizes, incomplete CUB folders) raised as one clear error each.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from miscc.errors import SSAGANError
from miscc.metrics.sources import batch_loader
from miscc.sample.protocol import IMAGE_DIR, SAMPLES_FILE, SampleRecord, read_samples

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})


def find_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted); other files are skipped with a warning."""
    folder = Path(folder)
    if not folder.exists():
        raise SSAGANError(f"image folder {folder} does not exist.")
    if not folder.is_dir():
        raise SSAGANError(f"{folder} is not a folder of images.")
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    images = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
    others = [p for p in files if p.suffix.lower() not in IMAGE_EXTENSIONS]
    if not images:
        if others:
            raise SSAGANError(f"{folder} holds no images, only {len(others)} other file(s) such as "
                              f"{others[0].name}; image types read: {', '.join(sorted(IMAGE_EXTENSIONS))}.")
        raise SSAGANError(f"image folder {folder} is empty.")
    if others:
        shown = ", ".join(str(p.relative_to(folder)) for p in others[:3])
        warnings.warn(f"skipping {len(others)} non-image file(s) under {folder}: {shown}"
                      f"{' ...' if len(others) > 3 else ''}", stacklevel=2)
    return images


def image_size(files: Sequence[Path], square: Optional[int] = None) -> tuple[int, int]:
    """(height, width) shared by all ``files``; an error names two files that differ.

    Only headers are read. Mixed sizes are refused rather than resized: a resize policy applied
    behind the user's back would make numbers silently incomparable. ``square``: the --image_size
    the images will be resized to, named in the refusal (it does not lift it).
    """
    first: Optional[tuple[Path, tuple[int, int]]] = None
    for p in files:
        try:
            with Image.open(p) as im:
                size = im.size
        except (UnidentifiedImageError, OSError) as e:
            raise SSAGANError(f"{p} is not a readable image ({type(e).__name__}: {e}).") from e
        if first is None:
            first = (p, size)
        elif size != first[1]:
            why = (f"--image_size {square} resizes a folder of one size (the original IS.py's protocol); it "
                   "does not mix images of several sizes, which would come from different generators or "
                   "protocols. Evaluate one size at a time." if square else
                   "Evaluate one size at a time (the generator's output size); only reference sets are resized, "
                   "with --ref_size.")
            raise SSAGANError(
                f"images differ in size: {first[0]} is {first[1][0]}x{first[1][1]} but {p} is "
                f"{size[0]}x{size[1]} (width x height). {why}")
    assert first is not None
    return first[1][1], first[1][0]


def cub_crop_box(bbox: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """The CUB bounding-box crop of the original loader (docs/ORIGINAL.md, "Data"), as PIL (left, top, right, bottom)."""
    x, y, w, h = (int(v) for v in bbox)
    r = int(0.75 * max(w, h))
    cx, cy = int((2 * x + w) / 2), int((2 * y + h) / 2)
    return max(0, cx - r), max(0, cy - r), min(width, cx + r), min(height, cy + r)


def reference_transform(size: int) -> Callable[[Image.Image], Image.Image]:
    """Deterministic twin of the training transform: Resize(size*76/64) then a centre (not random) crop."""
    from torchvision import transforms
    return transforms.Compose([transforms.Resize(int(size * 76 / 64)), transforms.CenterCrop(size)])


class ImageFiles(Dataset):
    """Images as uint8 tensors [3, H, W] (RGB: CUB has greyscale JPEGs), optionally cropped/resized.

    ``size``: ``reference_transform``; ``square``: plain bilinear resize to square x square, what the
    original IS.py did with ``scipy.misc.imresize`` (a PIL bilinear resize) before its Inception.
    """

    def __init__(self, files: Sequence[Path], boxes: Optional[Sequence[Sequence[float]]] = None,
                 size: Optional[int] = None, square: Optional[int] = None) -> None:
        self.files = list(files)
        self.boxes = boxes
        self.transform = reference_transform(size) if size else None
        self.square = square

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        try:
            with Image.open(self.files[i]) as im:
                im = im.convert("RGB")
        except (UnidentifiedImageError, OSError) as e:
            raise SSAGANError(f"{self.files[i]} is not a readable image ({type(e).__name__}: {e}).") from e
        if self.boxes is not None:
            im = im.crop(cub_crop_box(self.boxes[i], *im.size))
        if self.transform is not None:
            im = self.transform(im)
        if self.square:
            im = im.resize((self.square, self.square), Image.BILINEAR)
        return torch.from_numpy(np.array(im, dtype=np.uint8)).permute(2, 0, 1)

    def batches(self, batch_size: int, device: torch.device, workers: int = 0) -> Iterable[torch.Tensor]:
        return batch_loader(self, batch_size, device, workers)


@dataclass
class ImageSet:
    """A set of images to evaluate and what the protocol must say about it."""
    dataset: ImageFiles
    description: str
    size: tuple[int, int]  # (H, W) as fed to the network
    source_files: list[Path] = field(default_factory=list)  # everything the pixels depend on

    def __len__(self) -> int:
        return len(self.dataset)

    def batches(self, batch_size: int, device: torch.device, workers: int = 0) -> Iterable[torch.Tensor]:
        return self.dataset.batches(batch_size, device, workers)

    def fingerprint(self, settings: dict) -> str:
        """Cache key: paths, sizes and mtimes of every source file plus the settings."""
        h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
        for p in self.source_files:
            st = p.stat()
            h.update(f"{p.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()


def folder_image_set(folder: str | os.PathLike, size: Optional[int] = None,
                     square: Optional[int] = None) -> ImageSet:
    """All images under ``folder``, as they are, or with ``size`` / ``square`` (see ``ImageFiles``)."""
    files = find_images(folder)
    if size:
        shape = (size, size)
        how = f", resized to {int(size * 76 / 64)} (shorter side) and centre-cropped to {size}x{size}"
    else:
        shape = image_size(files, square)  # refuses mixed sizes even when they are resized below
        how = ""
    if square:
        shape = (square, square)
        how += f", resized (PIL bilinear) to {square}x{square}"
    return ImageSet(ImageFiles(files, size=size, square=square), f"{len(files)} images in {folder}{how}",
                    shape, files)


def cub_image_set(data_dir: str | os.PathLike, split: str, size: int) -> ImageSet:
    """Real CUB images of ``split`` processed like the generator's inputs: bbox crop, resize, centre crop.

    Self-contained (reads CUB_200_2011/images.txt, bounding_boxes.txt and <split>/filenames.pickle)
    so that evaluation does not depend on the training data pipeline.
    """
    root = Path(data_dir)
    cub = root / "CUB_200_2011"
    names_file, boxes_file = cub / "images.txt", cub / "bounding_boxes.txt"
    keys_file = root / split / "filenames.pickle"
    for f in (names_file, boxes_file, keys_file):
        if not f.is_file():
            raise SSAGANError(f"{f} is missing: --fid_ref {root} is not a complete CUB data folder "
                              "(see data/README.md for the layout).")
    names = [line.split() for line in names_file.read_text().splitlines() if line.strip()]
    boxes = [line.split() for line in boxes_file.read_text().splitlines() if line.strip()]
    if len(names) != len(boxes):
        raise SSAGANError(f"{names_file} has {len(names)} rows but {boxes_file} has {len(boxes)}.")
    # Row i of one file belongs to row i of the other, as in the original loader.
    bbox_of = {n[1][:-len(".jpg")] if n[1].endswith(".jpg") else n[1]: [float(v) for v in b[1:5]]
               for n, b in zip(names, boxes)}
    with open(keys_file, "rb") as f:
        keys = pickle.load(f, encoding="latin1")
    missing = [k for k in keys if k not in bbox_of]
    if missing:
        raise SSAGANError(f"{keys_file} names {len(missing)} image(s) absent from {names_file}, "
                          f"e.g. {missing[0]}.")
    files = [cub / "images" / f"{k}.jpg" for k in keys]
    absent = [p for p in files if not p.is_file()]
    if absent:
        raise SSAGANError(f"{len(absent)} CUB image(s) of split {split!r} are missing, e.g. {absent[0]}.")
    dataset = ImageFiles(files, boxes=[bbox_of[k] for k in keys], size=size)
    desc = (f"CUB {split} split of {root}: {len(files)} images, bbox crop, resized to "
            f"{int(size * 76 / 64)} (shorter side) and centre-cropped to {size}x{size}")
    return ImageSet(dataset, desc, (size, size), [names_file, boxes_file, keys_file] + files)


def is_cub_folder(path: str | os.PathLike) -> bool:
    return (Path(path) / "CUB_200_2011" / "images.txt").is_file()


def open_image_dir(path: str | os.PathLike,
                   square: Optional[int] = None) -> tuple[ImageSet, Optional[list[SampleRecord]]]:
    """A sampler folder (``img/`` + ``samples.jsonl``; ``mask/`` is ignored) or any image folder."""
    path = Path(path)
    if (path / IMAGE_DIR).is_dir():
        images = folder_image_set(path / IMAGE_DIR, square=square)
        records = read_samples(path) if (path / SAMPLES_FILE).is_file() else None
        if records is not None and len(records) != len(images):
            warnings.warn(f"{path / SAMPLES_FILE} lists {len(records)} images but {path / IMAGE_DIR} holds "
                          f"{len(images)}: an interrupted or mixed sampling run? IS/FID use {IMAGE_DIR}/, "
                          "R-precision and LPIPS the listed images.", stacklevel=2)
        return images, records
    return folder_image_set(path, square=square), None


def record_images(sample_dir: str | os.PathLike, records: Sequence[SampleRecord]) -> ImageFiles:
    """The images ``records`` name, in record order: what R-precision and LPIPS pair with captions."""
    return ImageFiles([Path(sample_dir) / r.file for r in records])
