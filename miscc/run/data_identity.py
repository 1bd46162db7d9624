"""What a training state records of the data it was trained on, beyond the vocabulary: the file list.

A resume refused another vocabulary (``TextDataset.check_fingerprint``) and another DATASET_NAME, but
a resume on another image folder with the same name and words (48 images one day, 450 the next) was
accepted, although the run then trains on other data. The identity recorded here is the train
split's image keys (``TextDataset.filenames``, e.g. ``002.Laysan_Albatross/Laysan_..._0002_1027``):
their count and the sha256 of the keys in order. Keys, not paths: a data folder that moved (another
DATA_DIR, another disk) holds the same images and resumes. States written before this was recorded
carry no identity and are resumed as before.
"""
from __future__ import annotations

import hashlib
from typing import Optional, Sequence

from miscc.errors import SSAGANError

STATE_KEY = "data"


def split_identity(filenames: Sequence[str], data_dir: str) -> dict:
    """The record kept in a training state (``data_dir`` only to name it in a refusal)."""
    digest = hashlib.sha256("\n".join(filenames).encode("utf-8")).hexdigest()
    return {"train_images": len(filenames), "train_files_sha256": digest, "data_dir": str(data_dir)}


def check_identity(saved: Optional[dict], now: dict, path: str) -> None:
    """Refuse a resume of ``path`` on another train split than the one it was trained on."""
    if not saved or saved.get("train_files_sha256") in (None, now["train_files_sha256"]):
        return
    same_count = saved.get("train_images") == now["train_images"]
    raise SSAGANError(
        f"{path} was trained on another data set: {saved.get('train_images')} train images of "
        f"{saved.get('data_dir')} (file list {str(saved.get('train_files_sha256'))[:12]}), DATA_DIR "
        f"{now['data_dir']} has {now['train_images']} ({now['train_files_sha256'][:12]})"
        + (", the same number of other files" if same_count else "") + ". A run trains on one data set: "
        "point DATA_DIR (--data_dir) back at it, or train a new run on this data under another CONFIG_NAME.")
