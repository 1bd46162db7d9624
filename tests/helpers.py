"""Small builders shared by tests (tiny models and fake DAMSM batches)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from miscc.config import cfg, cfg_from_list
from miscc.seeding import seed_everything

# Facts measured on the original classes (docs/ORIGINAL.md, 'Checkpoints'): every key, shape and dtype
# of the four released modules, and their prefixes, file names and parameter counts.
REFERENCE = Path(__file__).resolve().parent / "data" / "reference"


def reference_state_dict(name: str) -> list[tuple[str, tuple[int, ...], str]]:
    """(key, shape, dtype) rows of a released module, from tests/data/reference/state_dicts."""
    rows = json.loads((REFERENCE / "state_dicts" / name).read_text())
    return [(r["key"], tuple(r["shape"]), r["dtype"]) for r in rows]


def checkpoint_facts() -> dict:
    """tests/data/reference/checkpoint_facts.json: per released module, prefix, counts and file names."""
    return json.loads((REFERENCE / "checkpoint_facts.json").read_text())


def state_dict_rows(module: torch.nn.Module) -> list[tuple[str, tuple[int, ...], str]]:
    return [(k, tuple(v.shape), str(v.dtype).replace("torch.", ""))
            for k, v in module.state_dict().items()]


def configure(tmp_path, data_dir, damsm, **extra):
    opts = {"DATA_DIR": str(data_dir), "OUTPUT_DIR": str(tmp_path / "output"), "CONFIG_NAME": "tiny",
            "TEXT.DAMSM_NAME": str(damsm), "TREE.BASE_SIZE": "64", "TRAIN.NF": "4",
            "TRAIN.BATCH_SIZE": "6", "TRAIN.MAX_EPOCH": "1", "TRAIN.WARMUP_EPOCHS": "0",
            "TRAIN.GSAVE_INTERVAL": "1", "TRAIN.DSAVE_INTERVAL": "1", "WORKERS": "0",
            "TRAIN.DAMSM_INPUT_SIZE": "75", "CUDA": "False"}
    opts.update({k: str(v) for k, v in extra.items()})
    cfg_from_list([x for kv in opts.items() for x in kv])
    seed_everything(cfg.SEED)


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before, module, keys=None):
    after = module.state_dict()
    return {k for k in (keys or before) if not torch.equal(before[k], after[k])}
