"""Small builders shared by tests (tiny models and fake DAMSM batches)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


def reference_state_dict(name: str) -> list[tuple[str, tuple[int, ...], str]]:
    """(key, shape, dtype) rows of a released module, from ../shared/reference/state_dicts."""
    rows = json.loads((REFERENCE / "state_dicts" / name).read_text())
    return [(r["key"], tuple(r["shape"]), r["dtype"]) for r in rows]


def state_dict_rows(module: torch.nn.Module) -> list[tuple[str, tuple[int, ...], str]]:
    return [(k, tuple(v.shape), str(v.dtype).replace("torch.", ""))
            for k, v in module.state_dict().items()]
