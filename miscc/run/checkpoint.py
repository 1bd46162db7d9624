"""Loading checkpoint files strictly: the released formats (bare state dicts) and the text-encoder check.

Released formats (docs/ORIGINAL.md, "Checkpoints"): ``netG_*.pth`` / ``netD_*.pth`` were saved from DataParallel wrappers
so every key starts with ``module.``; the DAMSM ``text_encoder*.pth`` / ``image_encoder*.pth`` are plain
modules. Loading accepts both forms for every module and is strict; the only tolerated difference is
the BatchNorm ``num_batches_tracked`` counter, which files written before PyTorch 0.4.1 (the 2018 DAMSM
encoders) lack and which has no effect on the computation (momentum is fixed at 0.1).
"""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any, Mapping, Optional

import torch
from torch import nn

from miscc.errors import SSAGANError
from miscc.run.layout import atomic_save

PREFIX = "module."
_COUNTER = "num_batches_tracked"


def load_file(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """Load a .pth safely (``weights_only=True``: no code runs from untrusted files) onto the CPU."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise SSAGANError(f"{what} {path} is a folder; give the path of the .pth file in it.")
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


def _file_kind(keys: set) -> Optional[str]:
    """What a state dict is, from its keys (without ``module.``)."""
    if "fc.weight" in keys and "block0.gamma" in keys:
        return "netG"
    if any(k.startswith("COND_DNET.") for k in keys):
        return "netD"
    if "encoder.weight" in keys and any(k.startswith("rnn.") for k in keys):
        return "text_encoder"
    if "emb_cnn_code.weight" in keys:
        return "image_encoder"
    return None


_KIND_WORDS = {"netG": "a generator (netG) file", "netD": "a discriminator (netD) file",
               "text_encoder": "a DAMSM text encoder file", "image_encoder": "a DAMSM image encoder file"}


def _blocks(keys) -> int:
    # Counters are ignored: check_state_dict fills missing ones in, which would add the model's blocks.
    return len({k.split(".")[0] for k in keys if k.startswith("block") and not k.endswith(_COUNTER)})


def likely_cause(module: nn.Module, state: Mapping[str, torch.Tensor]) -> str:
    """One sentence on why ``state`` does not fit ``module`` (the key lists follow it), or ''."""
    target = _unwrap(module).state_dict()
    keys, mine = set(state), _file_kind(set(target))
    theirs = _file_kind(keys)
    if theirs is not None and mine is not None and theirs != mine:
        return f"This looks like {_KIND_WORDS[theirs]}, but {_KIND_WORDS[mine]} is expected here."
    if theirs in ("netG", "netD") and _blocks(keys) != _blocks(target):
        return (f"The file has {_blocks(keys)} blocks, the model {_blocks(target)}: it was saved at another image "
                "size (TREE.BASE_SIZE).")
    width_of = {"netG": ("fc.weight", 0, 128), "netD": ("conv_img.weight", 0, 1)}.get(theirs or "")
    if width_of and width_of[0] in keys and width_of[0] in target:
        name, dim, per = width_of
        saved, now = state[name].shape[dim] // per, target[name].shape[dim] // per
        if saved != now:
            return f"The file was saved with TRAIN.NF {saved}, the config says {now}."
    if theirs == "text_encoder" and "encoder.weight" in target and \
            state["encoder.weight"].shape[0] != target["encoder.weight"].shape[0]:
        return (f"The text encoder was trained on {state['encoder.weight'].shape[0]} words, the data has "
                f"{target['encoder.weight'].shape[0]}: another captions.pickle.")
    return ""


def check_state_dict(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> "OrderedDict":
    """Return ``state`` keyed for ``module`` (prefix removed, missing BN counters filled) or raise.

    The error lists every missing and unexpected key and every shape difference, so a user can tell a
    wrong file (e.g. netD given as netG) from a wrong model size (TRAIN.NF) at a glance.
    """
    target = _unwrap(module).state_dict()
    state = _strip_prefix(state)
    cause = likely_cause(module, state)  # before the counters are filled in: they would add blocks
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
            (f"{cause} " if cause else "") + f"{source} does not match {type(_unwrap(module)).__name__}:"
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


VOCAB_META = "vocab_sha256"


def released_state_dict(module: nn.Module, prefix: str = "", vocab: Optional[str] = None) -> "OrderedDict[str, torch.Tensor]":
    """The module's state dict as the original saved it (``prefix="module."`` for netG/netD files).

    ``vocab``: the vocabulary fingerprint of a text encoder, kept in the state dict's ``_metadata``
    (which ``load_state_dict`` ignores), so the file stays loadable by the original code.
    """
    state = OrderedDict((prefix + k, v.detach().cpu()) for k, v in _unwrap(module).state_dict().items())
    if vocab is not None:
        state._metadata = OrderedDict({"": {"version": 1, VOCAB_META: vocab}})  # type: ignore[attr-defined]
    return state


def save_released(module: nn.Module, path: str | os.PathLike, prefix: str = "", vocab: Optional[str] = None) -> None:
    """Write ``module`` in the released format, atomically."""
    atomic_save(released_state_dict(module, prefix, vocab), path)


def recorded_vocab(state: Mapping) -> Optional[str]:
    """The vocabulary fingerprint this project records in text encoders; None in released files."""
    meta = getattr(state, "_metadata", None) or {}
    return meta.get("", {}).get(VOCAB_META)


def check_vocab(dataset_n_words: int, encoder_ntoken: int, captions_path: str | os.PathLike,
                encoder_path: str | os.PathLike) -> None:
    """Refuse a text encoder whose embedding table does not match the data's vocabulary."""
    if dataset_n_words == encoder_ntoken:
        return
    raise SSAGANError(
        f"vocabulary mismatch: {os.fspath(captions_path)} has {dataset_n_words} words but the text "
        f"encoder {os.fspath(encoder_path)} was trained with {encoder_ntoken} (its embedding rows are "
        f"word ids of the captions.pickle it was trained with). Use the captions.pickle released with "
        f"that encoder (AttnGAN metadata: CUB 5450 words, COCO 27297), or pretrain a DAMSM text encoder "
        f"on this data (python DAMSM.py). A captions.pickle rebuilt from text/ numbers words "
        f"differently, so even an equal count does not make a released encoder usable with it.")


def _text_encoder_state(path: str | os.PathLike) -> tuple[Mapping, torch.Tensor]:
    state = load_file(path, what="DAMSM text encoder")
    if not isinstance(state, Mapping):
        raise SSAGANError(f"{os.fspath(path)} holds a {type(state).__name__}, not a text encoder state dict.")
    table = state.get("encoder.weight", state.get(PREFIX + "encoder.weight"))
    if table is None:
        raise SSAGANError(f"{os.fspath(path)} is not a DAMSM text-encoder state dict (no encoder.weight); "
                          "is it an image encoder or a generator file?")
    return state, table


def text_encoder_rows(path: str | os.PathLike) -> int:
    """Vocabulary size a text encoder file was trained with (its embedding rows)."""
    return int(_text_encoder_state(path)[1].shape[0])


def load_text_encoder(encoder: nn.Module, path: str | os.PathLike, n_words: int,
                      captions_path: str | os.PathLike, vocab: Optional[str] = None) -> nn.Module:
    """Load a DAMSM text encoder file into ``encoder``, refusing one trained on another vocabulary.

    The one loader of text encoders (training, sampling, evaluation): the vocabulary is checked before
    the state dict, so a mismatch names both files instead of listing embedding shapes. Files written
    by this project carry the fingerprint of their vocabulary, compared with ``vocab`` (the data's);
    released files carry none, so only the word count can be checked: use the released captions.pickle.
    """
    state, table = _text_encoder_state(path)
    check_vocab(n_words, table.shape[0], captions_path, path)
    recorded = recorded_vocab(state)
    if vocab is not None and recorded is not None and recorded != vocab:
        raise SSAGANError(
            f"vocabulary mismatch: the text encoder {os.fspath(path)} was trained with the vocabulary "
            f"{recorded[:16]}..., but {os.fspath(captions_path)} is {vocab[:16]}... (same {n_words} words, "
            f"other word ids). Use the captions.pickle the encoder was trained with (do not rebuild it from "
            f"text/), or pretrain a text encoder on this data (python DAMSM.py).")
    return load_into(encoder, state, os.fspath(path))
