"""Open the files the in-training evaluation will read, at start-up, before the first step.

The evaluation builds Inception and the FID reference lazily, at its first epoch. A broken file found
there costs the epoch that was just trained (and, on a long run, hours) for a mistake that was
visible before training began. So every input the evaluation will read is opened here, once, when
the trainer is built: the Inception weights (``EVAL.INCEPTION_WEIGHTS``) and the FID reference
(``EVAL.FID_REF``: statistics, a CUB data folder or an image folder). A folder's statistics are not
computed here (a pass of Inception over thousands of images); its file list and first image are read.
The Inception network built for the check is built under ``torch.random.fork_rng``, so checking
never moves the training's random streams: a run checks and trains exactly as it trained before.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

from miscc.errors import SSAGANError

_INCEPTION_METRICS = frozenset({"fid", "inception_score"})


def _key_error(key: str, value: str, problem: str) -> SSAGANError:
    return SSAGANError(f"config key {key} = {value!r}: {problem} It is read by the in-training evaluation, so "
                       "it is checked before training starts. Fix the file, or set the key to '' "
                       "(docs/EVALUATION.md, \"During training\").")


def check_inception_weights(weights: str) -> None:
    """Load the weights into a throw-away Inception, as the first evaluation will."""
    import torch

    from miscc.metrics.inception import InceptionExtractor
    try:
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the first evaluation warns again, where it matters
            InceptionExtractor(weights)
    except SSAGANError as e:
        lines = str(e).splitlines()  # torch's unpickling errors run over many lines: the first says it
        raise _key_error("EVAL.INCEPTION_WEIGHTS", weights, lines[0] + (" ...)." if len(lines) > 1 else "")) from e
    except OSError as e:
        raise _key_error("EVAL.INCEPTION_WEIGHTS", weights, f"cannot be read ({e.strerror or e}).") from e


def check_fid_reference(ref: str, image_size: int) -> None:
    """Statistics are loaded; a folder's image list is built and its first image opened."""
    from PIL import Image, UnidentifiedImageError

    from miscc.metrics.images import cub_image_set, find_images, is_cub_folder
    from miscc.metrics.stats import load_stats
    path = Path(ref)
    try:
        if path.suffix == ".npz" or path.is_file():
            load_stats(path)
            return
        files = cub_image_set(path, "test", image_size).source_files if is_cub_folder(path) else find_images(path)
        first = next((p for p in files if p.suffix.lower() not in (".txt", ".pickle")), None)
        if first is not None:
            with Image.open(first) as im:
                im.verify()
    except SSAGANError as e:
        raise _key_error("EVAL.FID_REF", ref, str(e)) from e
    except (UnidentifiedImageError, OSError, SyntaxError) as e:  # PIL's verify raises SyntaxError too
        raise _key_error("EVAL.FID_REF", ref, f"cannot be read ({getattr(e, 'strerror', None) or e}).") from e


def check_eval_inputs(interval: int, metrics: Sequence[str], inception_weights: str, fid_ref: str,
                      image_size: int, random_weights: str) -> None:
    """Every file the evaluation of a run with these settings will read (none when it is off)."""
    if interval <= 0:
        return
    wanted = set(metrics)
    if _INCEPTION_METRICS & wanted and inception_weights and inception_weights != random_weights:
        check_inception_weights(inception_weights)
    if "fid" in wanted and fid_ref:
        check_fid_reference(fid_ref, image_size)
