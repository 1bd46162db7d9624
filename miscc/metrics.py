"""Evaluation: Inception Score, FID and R-precision without TensorFlow (issue #5).

Three layers, each testable alone:

1. math on feature arrays (``inception_score``, ``compute_stats``, ``RunningMoments``,
   ``fid_from_stats``, ``r_precision``, stats ``.npz`` I/O): NumPy float64, no network;
2. image sets (a sampler output folder, any image folder, CUB test crops) read by a DataLoader as
   uint8 tensors, with the input checks users need (empty folder, mixed sizes, ...);
3. networks: torch-fidelity's TF-ported Inception-v3 (not re-implemented here) for IS/FID, the DAMSM
   encoders for R-precision, ``FIDEvaluator`` for in-memory batches during training.

``IS.py`` is the command line over this module; docs/EVALUATION.md pins the protocol.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from scipy.linalg import lapack
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from miscc.config import cfg

from miscc.errors import SSAGANError

# torch-fidelity's conversion of TF's inception-2015-12-05 graph (the network of the original
# IS.py and of TTUR's FID). The hash fragment in the name is the start of the file's sha256.
INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                         + INCEPTION_WEIGHTS_FILE)
INCEPTION_SHA256_PREFIX = "6726825d"
RANDOM_WEIGHTS = "random"
FEATURE_DIM = 2048
LOGITS_DIM = 1008
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
SAMPLES_FILE = "samples.jsonl"
DEFAULT_CACHE_DIR = Path(os.environ.get("SSAGAN_CACHE_DIR", Path.home() / ".cache" / "ssagan")) / "fid_stats"


# --------------------------------------------------------------------------------------------------
# 1. Math on features
# --------------------------------------------------------------------------------------------------

def _float64(x: Any) -> np.ndarray:
    if torch.is_tensor(x):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _check_splits(n: int, splits: int, what: str) -> None:
    if splits < 1:
        raise SSAGANError(f"{what}: --splits must be at least 1, got {splits}.")
    if n < splits:
        raise SSAGANError(f"{what}: {n} images are fewer than the {splits} splits; "
                          "evaluate more images or lower --splits.")


def _split_bounds(n: int, splits: int) -> list[tuple[int, int]]:
    # In order and without shuffling, like the original IS code: results do not depend on a seed.
    return [(i * n // splits, (i + 1) * n // splits) for i in range(splits)]


def inception_score(preds: np.ndarray | torch.Tensor, splits: int = 10, *,
                    from_logits: bool = True) -> tuple[float, float]:
    """IS = exp(E_x KL(p(y|x) || p(y))) per split; returns (mean, std) over the splits.

    ``preds`` is N x C: logits (``from_logits=True``, the 1008-way unbiased Inception logits) or
    class probabilities. p(y) is the mean prediction of each split.
    """
    p = _float64(preds)
    if p.ndim != 2:
        raise SSAGANError(f"inception_score expects an N x classes array, got shape {p.shape}.")
    _check_splits(len(p), splits, "Inception Score")
    if from_logits:
        shifted = p - p.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    else:
        if (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
            raise SSAGANError("inception_score(from_logits=False) needs rows of probabilities "
                              "(non-negative, summing to 1); pass logits with from_logits=True.")
        with np.errstate(divide="ignore"):
            log_p = np.log(p)
    probs = np.exp(log_p)
    scores = []
    for a, b in _split_bounds(len(p), splits):
        part, log_part = probs[a:b], log_p[a:b]
        with np.errstate(divide="ignore", invalid="ignore"):
            log_marginal = np.log(part.mean(axis=0))
            # Classes a prediction gives no mass contribute 0 (lim p log p = 0), not nan.
            kl = np.where(part > 0, part * (log_part - log_marginal), 0.0).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def compute_stats(feats: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased, N-1) covariance of N x D features, in float64."""
    f = _float64(feats)
    if f.ndim != 2 or len(f) < 2:
        raise SSAGANError(f"FID statistics need at least 2 feature vectors (N x D), got shape {f.shape}.")
    return f.mean(axis=0), np.cov(f, rowvar=False)


class RunningMoments:
    """Mean and covariance accumulated batch by batch, so no N x 2048 array is kept.

    Sums are taken around a shift (the first batch's mean): without it the final
    ``E[xx^T] - mu mu^T`` cancels catastrophically when features share a large offset.
    """

    def __init__(self) -> None:
        self.count = 0
        self._shift: Optional[np.ndarray] = None
        self._sum: Optional[np.ndarray] = None
        self._outer: Optional[np.ndarray] = None

    def update(self, feats: np.ndarray | torch.Tensor) -> None:
        f = _float64(feats)
        if f.ndim != 2 or len(f) == 0:
            raise SSAGANError(f"RunningMoments.update expects a non-empty N x D batch, got {f.shape}.")
        if self._shift is None:
            self._shift = f.mean(axis=0)
            self._sum = np.zeros(f.shape[1])
            self._outer = np.zeros((f.shape[1], f.shape[1]))
        centred = f - self._shift
        self._sum += centred.sum(axis=0)
        self._outer += centred.T @ centred
        self.count += len(f)

    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        if self.count < 2:
            raise SSAGANError(f"FID statistics need at least 2 images, got {self.count}.")
        mean_c = self._sum / self.count
        cov = (self._outer - self.count * np.outer(mean_c, mean_c)) / (self.count - 1)
        return self._shift + mean_c, (cov + cov.T) / 2


def _psd_factor(s: np.ndarray) -> np.ndarray:
    """F with F F^T = s for a covariance matrix s, F of shape D x rank (pivoted Cholesky).

    LAPACK's default rank tolerance (size x machine eps x largest diagonal) drops the null space of
    rank-deficient covariances (fewer images than dimensions), where rounding noise of ~1e-16 would
    otherwise enter through square roots as a spurious FID of ~1e-3. It also costs O(D rank^2)
    instead of the O(D^3) of an eigendecomposition when the rank is small.
    """
    c, piv, rank, info = lapack.dpstrf((s + s.T) / 2, lower=1, tol=-1)
    if info < 0:
        raise SSAGANError(f"pivoted Cholesky rejected its input (LAPACK info {info}).")
    factor = np.empty((len(s), rank))
    factor[piv - 1] = np.tril(c)[:, :rank]  # undo the pivoting: s = P L L^T P^T
    return factor


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr((sigma1 sigma2)^(1/2)) for covariance matrices, without a matrix square root.

    With sigma_i = F_i F_i^T, the eigenvalues of sigma1 sigma2 equal those of
    (F1^T F2)(F1^T F2)^T, i.e. the squared singular values of the small matrix F1^T F2; the trace is
    their sum. Everything stays real (``scipy.linalg.sqrtm(sigma1 @ sigma2)`` returns complex parts
    and fails on singular products), and no condition number is squared, so tiny but genuine
    eigenvalues keep their contribution.
    """
    f1, f2 = _psd_factor(sigma1), _psd_factor(sigma2)
    if not (f1.shape[1] and f2.shape[1]):
        return 0.0
    return float(np.linalg.svd(f1.T @ f2, compute_uv=False).sum())


def fid_from_stats(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Frechet distance ||mu1-mu2||^2 + tr(s1) + tr(s2) - 2 tr((s1 s2)^(1/2)) between two Gaussians."""
    mu1, mu2, sigma1, sigma2 = (_float64(x) for x in (mu1, mu2, sigma1, sigma2))
    d = mu1.shape[0] if mu1.ndim == 1 else -1
    if not (mu1.ndim == 1 and mu2.shape == (d,) and sigma1.shape == (d, d) and sigma2.shape == (d, d)):
        raise SSAGANError(f"FID statistics do not match: mu {mu1.shape} / {mu2.shape}, sigma "
                          f"{sigma1.shape} / {sigma2.shape} (both sets need D and D x D of one D).")
    if not all(np.isfinite(x).all() for x in (mu1, mu2, sigma1, sigma2)):
        raise SSAGANError("FID statistics contain NaN or inf (broken images or features?).")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2)
                 - 2.0 * trace_sqrt_product(sigma1, sigma2))


def _unit_rows(x: np.ndarray) -> np.ndarray:
    # Same eps as the DAMSM cosine_similarity, so zero vectors give 0 similarity instead of nan.
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8)


def r_precision(img_codes: np.ndarray | torch.Tensor, sent_codes_true: np.ndarray | torch.Tensor,
                sent_codes_pool: np.ndarray | torch.Tensor, *, groups: Optional[Sequence] = None,
                pool_groups: Optional[Sequence] = None, n_mismatch: int = 99, splits: int = 10,
                seed: int = 0) -> tuple[float, float]:
    """R@1 of the AttnGAN/DM-GAN protocol; returns (mean, std) over splits.

    Image i is compared (cosine) with its own caption ``sent_codes_true[i]`` and ``n_mismatch``
    captions drawn with replacement from ``sent_codes_pool``; it scores 1 when its own caption is the
    most similar (ties go to the own caption, as ``argmax == 0`` did). Pool entries whose
    ``pool_groups`` value equals ``groups[i]`` (same image or same class) are never drawn.
    """
    img, true, pool = (_unit_rows(_float64(x)) for x in (img_codes, sent_codes_true, sent_codes_pool))
    n = len(img)
    if img.ndim != 2 or true.shape != img.shape or pool.ndim != 2 or pool.shape[1] != img.shape[1]:
        raise SSAGANError(f"r_precision: shapes do not match (images {img.shape}, true captions "
                          f"{true.shape}, pool {pool.shape}).")
    _check_splits(n, splits, "R-precision")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(pool), size=(n, n_mismatch))
    if groups is not None:
        g, pg = np.asarray(groups), np.asarray(pool_groups)
        if len(g) != n or len(pg) != len(pool):
            raise SSAGANError("r_precision: groups / pool_groups must have one entry per image / pool row.")
        lonely = [x for x in np.unique(g) if (pg == x).all()]
        if lonely:
            raise SSAGANError(f"R-precision: every caption in the pool belongs to group {lonely[0]!r}, "
                              "so there is no mismatched caption to draw; evaluate more images.")
        bad = pg[idx] == g[:, None]
        while bad.any():
            idx[bad] = rng.integers(0, len(pool), size=int(bad.sum()))
            bad = pg[idx] == g[:, None]
    true_sim = (img * true).sum(axis=1)
    hits = np.empty(n, dtype=bool)
    chunk = 256  # n x n_mismatch x D at once would need gigabytes for 30k images
    for a in range(0, n, chunk):
        mis_sim = np.einsum("nd,nkd->nk", img[a:a + chunk], pool[idx[a:a + chunk]])
        hits[a:a + chunk] = true_sim[a:a + chunk] >= mis_sim.max(axis=1)
    scores = [hits[a:b].mean() for a, b in _split_bounds(n, splits)]
    return float(np.mean(scores)), float(np.std(scores))


def save_stats(path: str | os.PathLike, mu: np.ndarray, sigma: np.ndarray,
               meta: Optional[dict] = None) -> None:
    """Write ``mu``/``sigma`` (+ optional protocol as JSON text in ``meta``) atomically as .npz."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"mu": np.asarray(mu, np.float64), "sigma": np.asarray(sigma, np.float64)}
    if meta is not None:
        arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_stats(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read FID statistics (DF-GAN's ``.npz`` format: arrays ``mu`` and ``sigma``) -> (mu, sigma, meta)."""
    path = Path(path)
    if not path.is_file():
        raise SSAGANError(f"FID statistics file {path} does not exist.")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise SSAGANError(f"{path} is not a readable .npz file ({type(e).__name__}: {e}).") from e
    if "mu" not in arrays or "sigma" not in arrays:
        raise SSAGANError(f"{path} holds the arrays {sorted(arrays)}, but FID statistics need 'mu' and "
                          "'sigma' (DF-GAN's .npz format, also written by IS.py --save_stats).")
    mu, sigma = arrays["mu"].astype(np.float64), arrays["sigma"].astype(np.float64)
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise SSAGANError(f"{path}: mu has shape {mu.shape} and sigma {sigma.shape}; expected (D,) and (D, D).")
    meta = json.loads(str(arrays["meta"])) if "meta" in arrays else {}
    return mu, sigma, meta


# --------------------------------------------------------------------------------------------------
# 2. Image sets
# --------------------------------------------------------------------------------------------------

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


def image_size(files: Sequence[Path]) -> tuple[int, int]:
    """(height, width) shared by all ``files``; an error names two files that differ.

    Only headers are read. Mixed sizes are refused rather than resized: a resize policy applied
    behind the user's back would make numbers silently incomparable.
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
            raise SSAGANError(
                f"images differ in size: {first[0]} is {first[1][0]}x{first[1][1]} but {p} is "
                f"{size[0]}x{size[1]} (width x height). Evaluate one size at a time (the generator's "
                "output size); only reference sets are resized, with --ref_size.")
    assert first is not None
    return first[1][1], first[1][0]


def cub_crop_box(bbox: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """The CUB bounding-box crop of the original loader (REFERENCE §10), as PIL (left, top, right, bottom)."""
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


@dataclass
class ImageSet:
    """A set of images to evaluate and what the protocol must say about it."""
    dataset: ImageFiles
    description: str
    size: tuple[int, int]  # (H, W) as fed to the network
    source_files: list[Path] = field(default_factory=list)  # everything the pixels depend on

    def __len__(self) -> int:
        return len(self.dataset)

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
        shape = image_size(files)  # refuses mixed sizes even when they are resized below
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


@dataclass
class SampleRecord:
    """One line of the sampler's samples.jsonl."""
    file: Path
    key: str
    caption_idx: int
    tokens: list[int]
    text: str = ""


def read_samples(sample_dir: str | os.PathLike) -> list[SampleRecord]:
    """Parse ``sample_dir/samples.jsonl``; every line must name an existing image and non-empty tokens."""
    sample_dir = Path(sample_dir)
    path = sample_dir / SAMPLES_FILE
    if not path.is_file():
        raise SSAGANError(f"{path} does not exist: R-precision needs the captions the images were "
                          "generated from, i.e. a folder written by the sampler.")
    records = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            tokens = [int(t) for t in row["tokens"]]
            rec = SampleRecord(sample_dir / row["file"], str(row["key"]), int(row["caption_idx"]),
                               tokens, str(row.get("text", "")))
        except (ValueError, KeyError, TypeError) as e:
            raise SSAGANError(f"{path}:{n}: not a sample record with file, key, caption_idx and "
                              f"tokens ({type(e).__name__}: {e}).") from e
        if not rec.tokens or min(rec.tokens) < 0:
            raise SSAGANError(f"{path}:{n}: tokens must be a non-empty list of word ids >= 0.")
        if not rec.file.is_file():
            raise SSAGANError(f"{path}:{n}: image {rec.file} does not exist.")
        records.append(rec)
    if not records:
        raise SSAGANError(f"{path} is empty.")
    return records


def open_image_dir(path: str | os.PathLike,
                   square: Optional[int] = None) -> tuple[ImageSet, Optional[list[SampleRecord]]]:
    """A sampler folder (``img/`` + ``samples.jsonl``; ``mask/`` is ignored) or any image folder."""
    path = Path(path)
    if (path / "img").is_dir():
        images = folder_image_set(path / "img", square=square)
        records = read_samples(path) if (path / SAMPLES_FILE).is_file() else None
        if records is not None and len(records) != len(images):
            warnings.warn(f"{path / SAMPLES_FILE} lists {len(records)} images but {path / 'img'} holds "
                          f"{len(images)}: an interrupted or mixed sampling run? IS/FID use img/, "
                          "R-precision and LPIPS the listed images.", stacklevel=2)
        return images, records
    return folder_image_set(path, square=square), None


# --------------------------------------------------------------------------------------------------
# 3. Networks and feature extraction
# --------------------------------------------------------------------------------------------------

def default_weights_location() -> Path:
    """Where torch-fidelity itself would download the weights (the torch hub cache)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILE


def resolve_inception_weights(weights: Optional[str]) -> str:
    """``weights`` if given (a path, or ``random`` for tests), else the hub-cache file, else an error."""
    if weights == RANDOM_WEIGHTS:
        return weights
    howto = (f"IS and FID need torch-fidelity's TF-ported Inception weights {INCEPTION_WEIGHTS_FILE} "
             f"(about 96 MB). Download {INCEPTION_WEIGHTS_URL} on a machine with internet, then either "
             f"put it at {default_weights_location()} or pass --weights PATH (config key "
             "EVAL.INCEPTION_WEIGHTS). '--weights random' exists for tests only; its numbers mean nothing.")
    if weights:
        if not Path(weights).is_file():
            raise SSAGANError(f"Inception weights file {weights} does not exist. {howto}")
        return str(weights)
    if default_weights_location().is_file():
        return str(default_weights_location())
    raise SSAGANError(f"no Inception weights found. {howto}")


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fidelity_inception() -> nn.Module:
    """torch-fidelity's Inception-v3 with its own weight loading skipped.

    Its constructor insists on loading weights (downloading when given no path, and unpickling with
    weights_only=False); here weights are loaded afterwards with weights_only=True and a strict key
    check, or replaced by a seeded random init for tests.
    """
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class _Unloaded(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):
            return None

    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    return _Unloaded("inception-v3-compat", ["2048", "logits_unbiased"],
                     feature_extractor_weights_path=empty)


def _random_init(net: nn.Module, seed: int = 0) -> None:
    # PyTorch's default init makes the 2048-d pool features of this deep network ~1e-8 (every layer
    # shrinks the signal); He init keeps them O(1) so that tests see non-degenerate numbers.
    gen = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu", generator=gen)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def library_version() -> str:
    import torch_fidelity
    return f"torch-fidelity {torch_fidelity.__version__}"


class InceptionExtractor(nn.Module):
    """The TF-compatible Inception-v3: uint8 images [B,3,H,W] -> (pool3 [B,2048], logits [B,1008]).

    The library resizes to 299x299 with TF1-exact bilinear interpolation and scales by (x-128)/128;
    the logits are the 1008-way logits without the fc bias ("logits_unbiased"), as TF's IS used them.
    """

    def __init__(self, weights: Optional[str] = None) -> None:
        super().__init__()
        self.weights = resolve_inception_weights(weights)
        self.net = _fidelity_inception()
        if self.weights == RANDOM_WEIGHTS:
            _random_init(self.net)
            self.sha256 = RANDOM_WEIGHTS
        else:
            try:
                state = torch.load(self.weights, map_location="cpu", weights_only=True)
            except Exception as e:
                raise SSAGANError(f"Inception weights {self.weights} could not be read "
                                  f"({type(e).__name__}: {e}).") from e
            expected = set(self.net.state_dict())
            got = set(state) if isinstance(state, dict) else set()
            if got != expected:
                raise SSAGANError(
                    f"{self.weights} is not torch-fidelity's {INCEPTION_WEIGHTS_FILE}: "
                    f"{len(expected - got)} keys missing (e.g. {sorted(expected - got)[:2]}), "
                    f"{len(got - expected)} unexpected (e.g. {sorted(got - expected)[:2]}).")
            nn.Module.load_state_dict(self.net, state, strict=True)
            self.sha256 = sha256_file(self.weights)
            if not self.sha256.startswith(INCEPTION_SHA256_PREFIX):
                warnings.warn(f"{self.weights} has sha256 {self.sha256[:16]}..., not the "
                              f"{INCEPTION_SHA256_PREFIX}... of {INCEPTION_WEIGHTS_FILE}: its numbers are "
                              "not comparable with published ones.", stacklevel=2)
        self.net.requires_grad_(False)
        self.eval()

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(images)

    def train(self, mode: bool = True) -> "InceptionExtractor":
        # Always eval: a training loop calling .train() on its modules must not switch BN to batch stats.
        return super().train(False)

    def protocol(self) -> dict:
        return {"weights": os.path.basename(self.weights), "weights_path": self.weights,
                "weights_sha256": self.sha256, "library": library_version(),
                "resize": "TF1-compatible bilinear to 299x299 inside torch-fidelity, then (x-128)/128",
                "fid_features": "pool3, 2048-d", "is_logits": "logits_unbiased, 1008-way"}


def images_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float -> uint8 by truncation, exactly as the PNG files of the sampler are written
    (REFERENCE §9), so in-memory and file-based FID see the same pixels."""
    return ((images.detach() + 1) * 127.5).clamp(0, 255).to(torch.uint8)


@dataclass
class Features:
    moments: RunningMoments
    logits: Optional[np.ndarray]

    @property
    def count(self) -> int:
        return self.moments.count


def _loader(dataset: Dataset, batch_size: int, device: torch.device, workers: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                      pin_memory=device.type == "cuda")


@torch.no_grad()
def extract_features(images: ImageSet | Dataset, model: InceptionExtractor, *, batch_size: int = 50,
                     device: str | torch.device = "cpu", workers: int = 0, keep_logits: bool = True,
                     desc: str = "Inception") -> Features:
    """Pool3 moments (and the logits if asked) of every image, batch by batch."""
    device = torch.device(device)
    dataset = images.dataset if isinstance(images, ImageSet) else images
    model = model.to(device)
    moments, logits = RunningMoments(), []
    for batch in tqdm(_loader(dataset, batch_size, device, workers), desc=desc, unit="batch",
                      disable=None):
        pool, logit = model(batch.to(device, non_blocking=True))
        moments.update(pool.double().cpu())
        if keep_logits:
            logits.append(logit.cpu().numpy())
    return Features(moments, np.concatenate(logits) if keep_logits else None)


class FIDEvaluator:
    """FID of in-memory generated batches against fixed reference statistics (for the training loop).

    ``evaluator(batches)`` (or ``reset`` / ``update`` / ``compute``) takes image tensors in [-1, 1]
    on any device; they are quantised like the saved PNGs, fed through Inception in chunks of
    ``batch_size``, and only running moments are kept.
    """

    def __init__(self, ref_stats: str | os.PathLike | tuple[np.ndarray, np.ndarray],
                 weights: Optional[str] = None, device: str | torch.device = "cpu",
                 batch_size: int = 50, model: Optional[InceptionExtractor] = None) -> None:
        if isinstance(ref_stats, (str, os.PathLike)):
            self.ref_mu, self.ref_sigma, _ = load_stats(ref_stats)
        else:
            self.ref_mu, self.ref_sigma = (_float64(x) for x in ref_stats)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.model = (model or InceptionExtractor(weights)).to(self.device)
        self.reset()

    def reset(self) -> None:
        self.moments = RunningMoments()

    @torch.no_grad()
    def update(self, images: torch.Tensor) -> None:
        if images.dim() != 4 or images.shape[1] != 3:
            raise SSAGANError(f"FIDEvaluator expects images [B, 3, H, W] in [-1, 1], got {tuple(images.shape)}.")
        for chunk in images.split(self.batch_size):
            pool, _ = self.model(images_to_uint8(chunk.to(self.device)))
            self.moments.update(pool.double().cpu())

    def compute(self) -> float:
        mu, sigma = self.moments.stats()
        return fid_from_stats(mu, sigma, self.ref_mu, self.ref_sigma)

    def __call__(self, batches: Iterable[torch.Tensor]) -> float:
        self.reset()
        for images in batches:
            self.update(images)
        return self.compute()


# --------------------------------------------------------------------------------------------------
# Reference statistics (npz, CUB folder, image folder) with a cache
# --------------------------------------------------------------------------------------------------

@dataclass
class ReferenceStats:
    mu: np.ndarray
    sigma: np.ndarray
    protocol: dict


def reference_stats(ref: str | os.PathLike, model: InceptionExtractor, *, split: str = "test",
                    size: Optional[int] = None, cache_dir: Optional[str | os.PathLike] = DEFAULT_CACHE_DIR,
                    batch_size: int = 50, device: str | torch.device = "cpu",
                    workers: int = 0) -> ReferenceStats:
    """Statistics of the reference set ``ref``: a stats ``.npz``, a CUB data folder or an image folder.

    Folder statistics are cached under ``cache_dir`` (None: no cache) keyed by every source file's
    path/size/mtime and the settings, so a changed file or setting recomputes them.
    """
    ref = Path(ref)
    if ref.suffix == ".npz" or ref.is_file():
        mu, sigma, meta = load_stats(ref)
        return ReferenceStats(mu, sigma, {"reference": str(ref), "kind": "precomputed statistics",
                                          "stats_protocol": meta})
    if is_cub_folder(ref):
        if not size:
            raise SSAGANError("a CUB reference needs --ref_size (the generator's output size, e.g. 256).")
        images = cub_image_set(ref, split, size)
    else:
        # A sampler folder as reference (model vs model): its images, never its masks.
        images = folder_image_set(ref / "img" if (ref / "img").is_dir() else ref, size)
    protocol = {"reference": str(ref), "kind": "images", "description": images.description,
                "images": len(images), "resolution": list(images.size)}
    settings = {"split": split, "size": size, "weights_sha256": model.sha256, "library": library_version()}
    cache_file = Path(cache_dir) / f"{images.fingerprint(settings)}.npz" if cache_dir else None
    if cache_file is not None and cache_file.is_file():
        mu, sigma, _ = load_stats(cache_file)
        return ReferenceStats(mu, sigma, {**protocol, "cache": str(cache_file)})
    feats = extract_features(images, model, batch_size=batch_size, device=device, workers=workers,
                             keep_logits=False, desc="reference")
    mu, sigma = feats.moments.stats()
    if cache_file is not None:
        save_stats(cache_file, mu, sigma, {**protocol, **settings})
        protocol = {**protocol, "cache": str(cache_file)}
    return ReferenceStats(mu, sigma, protocol)


# --------------------------------------------------------------------------------------------------
# R-precision with the DAMSM encoders
# --------------------------------------------------------------------------------------------------

def image_encoder_path(text_encoder_path: str | os.PathLike) -> Path:
    """The image encoder beside a text encoder: ``text_encoder`` -> ``image_encoder`` in the file name."""
    p = Path(text_encoder_path)
    if "text_encoder" not in p.name:
        raise SSAGANError(f"cannot derive the image encoder from {p}: its name has no 'text_encoder'; "
                          "pass --image_encoder PATH.")
    return p.with_name(p.name.replace("text_encoder", "image_encoder"))


def vocabulary_size(captions_pickle: str | os.PathLike) -> int:
    """n_words = len(ixtoword) of an AttnGAN captions.pickle ([train, test, ixtoword, wordtoix])."""
    path = Path(captions_pickle)
    if not path.is_file():
        raise SSAGANError(f"captions pickle {path} does not exist.")
    with open(path, "rb") as f:
        try:
            data = pickle.load(f, encoding="latin1")
        except Exception as e:
            raise SSAGANError(f"{path} is not a readable captions.pickle ({type(e).__name__}: {e}).") from e
    if not (isinstance(data, (list, tuple)) and len(data) == 4):
        raise SSAGANError(f"{path} is not an AttnGAN captions.pickle [train, test, ixtoword, wordtoix].")
    return len(data[2])


def load_damsm_encoders(text_encoder: str | os.PathLike, image_encoder: Optional[str | os.PathLike] = None,
                        captions_pickle: Optional[str | os.PathLike] = None,
                        nef: int = 256) -> tuple[nn.Module, nn.Module]:
    """Text and image DAMSM encoders from their released files, in eval mode on the CPU.

    The vocabulary size comes from the text encoder's embedding matrix; a given ``captions_pickle``
    must agree with it (a different vocabulary would map word ids to the wrong embeddings).
    """
    from DAMSM import CNN_ENCODER, RNN_ENCODER
    from miscc.checkpoint import load_checkpoint, load_file, load_into

    text_state = load_file(text_encoder, what="DAMSM text encoder")
    if not isinstance(text_state, dict) or "encoder.weight" not in text_state:
        raise SSAGANError(f"{text_encoder} is not a DAMSM text-encoder state dict (no encoder.weight).")
    n_words = int(text_state["encoder.weight"].shape[0])
    if captions_pickle is not None and vocabulary_size(captions_pickle) != n_words:
        raise SSAGANError(f"{captions_pickle} has {vocabulary_size(captions_pickle)} words but the text "
                          f"encoder {text_encoder} was trained with {n_words}: use the captions.pickle of "
                          "the dataset the encoder belongs to.")
    text = RNN_ENCODER(n_words, nhidden=nef)
    load_into(text, text_state, source=os.fspath(text_encoder))
    # The encoder's input resize is part of what it was trained with (--cfg gives it).
    image = CNN_ENCODER(nef, pretrained=False, input_size=cfg.TRAIN.DAMSM_INPUT_SIZE)
    load_checkpoint(image, image_encoder or image_encoder_path(text_encoder))
    return text.eval(), image.eval()


@torch.no_grad()
def encode_sentences(text_encoder: nn.Module, token_lists: Sequence[Sequence[int]],
                     device: str | torch.device = "cpu", batch_size: int = 100) -> np.ndarray:
    """Sentence embeddings [N, nef] of token-id lists (each batch sorted by length, longest first)."""
    device = torch.device(device)
    n_words = text_encoder.encoder.num_embeddings
    too_big = [max(t) for t in token_lists if max(t) >= n_words]
    if too_big:
        raise SSAGANError(f"word id {too_big[0]} is outside the text encoder's vocabulary of {n_words} "
                          "words: the samples were made with another vocabulary.")
    text_encoder = text_encoder.to(device).eval()
    out = []
    for a in range(0, len(token_lists), batch_size):
        chunk = token_lists[a:a + batch_size]
        lens = torch.tensor([len(t) for t in chunk])
        order = torch.argsort(lens, descending=True)
        caps = torch.zeros(len(chunk), int(lens.max()), dtype=torch.long)
        for row, i in enumerate(order.tolist()):
            caps[row, :lens[i]] = torch.tensor(chunk[i])
        _, sent = text_encoder(caps.to(device), lens[order].to(device), text_encoder.init_hidden(len(chunk)))
        unsorted = torch.empty_like(sent)
        unsorted[order.to(device)] = sent
        out.append(unsorted.double().cpu().numpy())
    return np.concatenate(out)


@torch.no_grad()
def encode_images(image_encoder: nn.Module, dataset: Dataset, device: str | torch.device = "cpu",
                  batch_size: int = 50, workers: int = 0) -> np.ndarray:
    """DAMSM global image codes [N, nef] of uint8 images (mapped back to the generator's [-1, 1])."""
    device = torch.device(device)
    image_encoder = image_encoder.to(device).eval()
    out = []
    for batch in tqdm(_loader(dataset, batch_size, device, workers), desc="DAMSM images", unit="batch",
                      disable=None):
        x = batch.to(device).float() / 127.5 - 1.0
        out.append(image_encoder(x)[1].double().cpu().numpy())
    return np.concatenate(out)


_CUB_CLASS = re.compile(r"^(\d{3}\.[^/]+)/")


def caption_group(key: str) -> str:
    """Mismatched captions must not come from this group: the CUB class folder of a CUB key
    (``002.Laysan_Albatross/...``, as DM-GAN excluded the same class), else the key itself (COCO
    images, user caption lines): never another caption of the same image."""
    match = _CUB_CLASS.match(key)
    return match.group(1) if match else key


def samples_r_precision(records: Sequence[SampleRecord], text_encoder: nn.Module, image_encoder: nn.Module,
                        *, n_mismatch: int = 99, splits: int = 10, seed: int = 0,
                        device: str | torch.device = "cpu", batch_size: int = 50,
                        workers: int = 0) -> tuple[float, float, dict]:
    """R-precision of the sampler's images; the mismatch pool is every distinct caption of the set."""
    _check_splits(len(records), splits, "R-precision")
    pool_index: dict[tuple[str, int], int] = {}
    pool_tokens: list[list[int]] = []
    for r in records:
        if (r.key, r.caption_idx) not in pool_index:
            pool_index[(r.key, r.caption_idx)] = len(pool_tokens)
            pool_tokens.append(r.tokens)
    pool = encode_sentences(text_encoder, pool_tokens, device)
    true = pool[[pool_index[(r.key, r.caption_idx)] for r in records]]
    codes = encode_images(image_encoder, ImageFiles([r.file for r in records]), device, batch_size, workers)
    groups = [caption_group(r.key) for r in records]
    pool_groups = [caption_group(k) for k, _ in pool_index]
    mean, std = r_precision(codes, true, pool, groups=groups, pool_groups=pool_groups,
                            n_mismatch=n_mismatch, splits=splits, seed=seed)
    info = {"images": len(records), "distinct_captions": len(pool_tokens), "mismatched": n_mismatch,
            "splits": splits, "seed": seed,
            "mismatch_rule": "drawn with replacement from the other captions of the set, never from "
                             "the same CUB class (key prefix) or, without a class, the same image"}
    return mean, std, info


# --------------------------------------------------------------------------------------------------
# Optional: IS with a fine-tuned classifier, LPIPS diversity
# --------------------------------------------------------------------------------------------------

class ClassifierIS(nn.Module):
    """An Inception-v3 classifier given as a torchvision-layout state dict (e.g. fine-tuned on CUB).

    uint8 images -> bilinear 299x299 -> [-1, 1] (the TF-slim input convention of StackGAN's CUB
    model) -> class logits. The number of classes is read from ``fc.weight``.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__()
        from torchvision.models import Inception3

        from miscc.checkpoint import load_file, load_into

        state = load_file(path, what="IS classifier")
        if not isinstance(state, dict) or "fc.weight" not in state:
            raise SSAGANError(f"{path} is not an Inception-v3 state dict (torchvision layout, with fc.weight).")
        self.path, self.classes = str(path), int(state["fc.weight"].shape[0])
        self.net = Inception3(num_classes=self.classes, init_weights=False,
                              aux_logits=any(k.startswith("AuxLogits.") for k in state))
        load_into(self.net, state, source=str(path))
        self.net.requires_grad_(False)
        self.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = nn.functional.interpolate(images.float(), size=(299, 299), mode="bilinear", align_corners=False)
        return self.net(x / 127.5 - 1.0)


@torch.no_grad()
def classifier_logits(images: ImageSet | Dataset, model: ClassifierIS, *, batch_size: int = 50,
                      device: str | torch.device = "cpu", workers: int = 0) -> np.ndarray:
    device = torch.device(device)
    dataset = images.dataset if isinstance(images, ImageSet) else images
    model = model.to(device)
    return np.concatenate([model(batch.to(device)).double().cpu().numpy()
                           for batch in tqdm(_loader(dataset, batch_size, device, workers),
                                             desc="classifier", unit="batch", disable=None)])


ALEXNET_WEIGHTS_FILE = "alexnet-owt-7be5be79.pth"
ALEXNET_WEIGHTS_URL = "https://download.pytorch.org/models/" + ALEXNET_WEIGHTS_FILE
# torchvision AlexNet ``features`` index -> the lpips package's slice holding it.
_LPIPS_SLICE = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}


def build_lpips(backbone: Optional[str] = None) -> nn.Module:
    """LPIPS(alex) of the ``lpips`` package with its AlexNet trunk loaded from a local file.

    The package ships its linear-layer weights but downloads the trunk through torchvision; here the
    trunk is built without download and loaded from ``backbone`` (default: the torch hub cache), or
    left random with ``backbone="random"`` (tests only).
    """
    try:
        import lpips
    except ImportError as e:
        raise SSAGANError("--lpips needs the lpips package: pip install --no-deps 'lpips>=0.1.4,<0.2'.") from e
    from miscc.checkpoint import load_file, load_into

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lpips passes torchvision's deprecated `pretrained=` argument
        model = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False)
    if backbone != RANDOM_WEIGHTS:
        path = Path(backbone) if backbone else Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_WEIGHTS_FILE
        if not path.is_file():
            raise SSAGANError(f"LPIPS needs torchvision's AlexNet weights {ALEXNET_WEIGHTS_FILE}: download "
                              f"{ALEXNET_WEIGHTS_URL} and put it at {path} (or pass --lpips_backbone PATH).")
        state = load_file(path, what="AlexNet weights")
        trunk = {}
        for k, v in state.items():
            part, index, name = k.split(".")
            if part == "features" and int(index) in _LPIPS_SLICE:
                trunk[f"slice{_LPIPS_SLICE[int(index)]}.{index}.{name}"] = v
        load_into(model.net, trunk, source=str(path))
    return model.eval()


class _ImagePairs(Dataset):
    def __init__(self, pairs: Sequence[tuple[Path, Path]]) -> None:
        self.first, self.second = ImageFiles([a for a, _ in pairs]), ImageFiles([b for _, b in pairs])

    def __len__(self) -> int:
        return len(self.first)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.first[i], self.second[i]


@torch.no_grad()
def lpips_diversity(records: Sequence[SampleRecord], model: nn.Module, *, device: str | torch.device = "cpu",
                    batch_size: int = 50, workers: int = 0) -> tuple[float, float, dict]:
    """Mean LPIPS over all pairs of images generated from the same caption; (mean, std) over captions."""
    by_caption: dict[tuple[str, int], list[Path]] = {}
    for r in records:
        by_caption.setdefault((r.key, r.caption_idx), []).append(r.file)
    groups = [files for files in by_caption.values() if len(files) > 1]
    pairs = [(a, b) for files in groups for i, a in enumerate(files) for b in files[i + 1:]]
    if not pairs:
        raise SSAGANError("LPIPS diversity compares images of the same caption, but every caption has one "
                          "image: sample several images per caption.")
    device = torch.device(device)
    model = model.to(device)
    dists = []
    for x, y in tqdm(_loader(_ImagePairs(pairs), batch_size, device, workers), desc="LPIPS", unit="batch",
                     disable=None):
        d = model(x.to(device).float() / 127.5 - 1.0, y.to(device).float() / 127.5 - 1.0)
        dists.append(d.flatten().double().cpu().numpy())
    dists = np.concatenate(dists)
    per_caption, start = [], 0
    for files in groups:
        n = len(files) * (len(files) - 1) // 2
        per_caption.append(dists[start:start + n].mean())
        start += n
    info = {"captions": len(groups), "pairs": len(pairs), "net": "alex (lpips v0.1)"}
    return float(np.mean(per_caption)), float(np.std(per_caption)), info
