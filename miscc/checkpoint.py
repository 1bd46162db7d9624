"""Checkpoint files: the released formats (bare state dicts) and atomic writes.

Released formats (REFERENCE §1): ``netG_*.pth`` / ``netD_*.pth`` were saved from DataParallel wrappers
so every key starts with ``module.``; the DAMSM ``text_encoder*.pth`` / ``image_encoder*.pth`` are plain
modules. Loading accepts both forms for every module and is strict; the only tolerated difference is
the BatchNorm ``num_batches_tracked`` counter, which files written before PyTorch 0.4.1 (the 2018 DAMSM
encoders) lack and which has no effect on the computation (momentum is fixed at 0.1).
"""
from __future__ import annotations

import os
import random
import tempfile
from collections import OrderedDict
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from miscc.errors import SSAGANError

PREFIX = "module."
_COUNTER = "num_batches_tracked"


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save to a temp file in the target folder, then rename: a crash never leaves a torn file."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_file(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """Load a .pth safely (``weights_only=True``: no code runs from untrusted files) onto the CPU."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise SSAGANError(f"{what} {path} does not exist. Check the path in your config "
                          "(TRAIN.NET_G / TEXT.DAMSM_NAME) or download the released file (see README).")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise SSAGANError(f"{what} {path} could not be read ({type(e).__name__}: {e}); "
                          "the file is corrupt or not a PyTorch checkpoint.") from e


def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if hasattr(module, "module") and isinstance(module.module, nn.Module) else module


def _strip_prefix(state: Mapping[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
    if state and all(k.startswith(PREFIX) for k in state):
        return OrderedDict((k[len(PREFIX):], v) for k, v in state.items())
    return OrderedDict(state)


# Config key of each entry of a generator variant (NetG.variant(), plus EMA in training states).
VARIANT_KEYS = {"SSACN": "GAN.SSACN", "FUSION": "GAN.FUSION", "CA": "TEXT.CA",
                "EMA": "EMA (TRAIN.EMA_DECAY > 0)"}


def describe_variant(variant: Mapping[str, Any]) -> str:
    return ", ".join(f"{VARIANT_KEYS.get(k, k)}: {v}" for k, v in variant.items())


def variant_mismatch(source: str, saved: Mapping[str, Any], current: Mapping[str, Any]) -> SSAGANError:
    return SSAGANError(
        f"{source} was saved by the generator variant [{describe_variant(saved)}] but this run builds "
        f"[{describe_variant(current)}]. Use the config of the variant that wrote it (cfg/ablation/, "
        "cfg/dfgan_bird.yml, ...; docs/VARIANTS.md) or set those keys to the file's values.")


def _check_variant(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """A module with structural variants (NetG) names both variants instead of listing keys."""
    variant_of = getattr(module, "variant_of", None)
    saved = variant_of(state.keys()) if variant_of is not None else None
    if saved is not None and saved != module.variant():
        raise variant_mismatch(source, saved, module.variant())


def check_state_dict(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> "OrderedDict":
    """Return ``state`` keyed for ``module`` (prefix removed, missing BN counters filled) or raise.

    The error lists every missing and unexpected key and every shape difference, so a user can tell a
    wrong file (e.g. netD given as netG) from a wrong model size (TRAIN.NF) at a glance.
    """
    target = _unwrap(module).state_dict()
    state = _strip_prefix(state)
    missing = [k for k in target if k not in state]
    for k in [k for k in missing if k.endswith(_COUNTER)]:
        state[k] = target[k].clone()
    missing = [k for k in missing if not k.endswith(_COUNTER)]
    unexpected = [k for k in state if k not in target]
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(target[k].shape)}"
              for k in target if k in state and tuple(state[k].shape) != tuple(target[k].shape)]
    if missing or unexpected:
        _check_variant(_unwrap(module), state, source)
    if missing or unexpected or shapes:
        def listing(title, items):
            if not items:
                return ""
            shown = "\n    ".join(items[:20])
            more = f"\n    ... and {len(items) - 20} more" if len(items) > 20 else ""
            return f"\n  {title} ({len(items)}):\n    {shown}{more}"
        raise SSAGANError(
            f"{source} does not match {type(_unwrap(module)).__name__}:"
            + listing("missing keys", missing) + listing("unexpected keys", unexpected)
            + listing("shape mismatches", shapes)
            + "\n  Is it the right kind of file and were the model sizes (TRAIN.NF, TREE.BASE_SIZE, "
              "vocabulary size) the same as when it was saved?")
    return state


def load_into(module: nn.Module, state: Mapping[str, torch.Tensor], source: str = "state dict") -> nn.Module:
    """Strictly load ``state`` (with or without ``module.`` prefix) into ``module`` (wrapped or not)."""
    state = check_state_dict(module, state, source)
    _unwrap(module).load_state_dict(state, strict=True)
    return module


def load_checkpoint(module: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load a released-format file into ``module``; see ``load_into``."""
    state = load_file(path, what=f"{type(_unwrap(module)).__name__} checkpoint")
    if not isinstance(state, Mapping):
        raise SSAGANError(f"{path} holds a {type(state).__name__}, not a state dict.")
    return load_into(module, state, source=os.fspath(path))


def released_state_dict(module: nn.Module, prefix: str = "") -> "OrderedDict[str, torch.Tensor]":
    """The module's state dict as the original saved it (``prefix="module."`` for netG/netD files)."""
    return OrderedDict((prefix + k, v.detach().cpu()) for k, v in _unwrap(module).state_dict().items())


def save_released(module: nn.Module, path: str | os.PathLike, prefix: str = "") -> None:
    """Write ``module`` in the released format, atomically."""
    atomic_save(released_state_dict(module, prefix), path)


def rng_state() -> dict:
    """python/numpy/torch(/cuda) RNG states, in a form ``weights_only`` loading accepts (no numpy arrays)."""
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    """Restore what ``rng_state`` captured, so a resumed run draws what the uninterrupted one would."""
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
