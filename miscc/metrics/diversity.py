"""LPIPS diversity: how different the images generated from one caption are from each other.

The network is LPIPS(alex, v0.1) of the ``lpips`` package, with its AlexNet trunk loaded from a local
torchvision file instead of a download.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm import tqdm

from miscc.errors import SSAGANError
from miscc.metrics.inception import RANDOM_WEIGHTS
from miscc.metrics.sources import batch_loader
from miscc.sample.protocol import SampleRecord

ALEXNET_WEIGHTS_FILE = "alexnet-owt-7be5be79.pth"
ALEXNET_WEIGHTS_URL = "https://download.pytorch.org/models/" + ALEXNET_WEIGHTS_FILE
# torchvision AlexNet ``features`` index -> the lpips package's slice holding it.
_LPIPS_SLICE = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}


@dataclass
class LpipsNet:
    """The LPIPS network and where its AlexNet trunk came from (for the protocol)."""
    model: nn.Module
    backbone: str


def build_lpips(backbone: Optional[str] = None) -> LpipsNet:
    """LPIPS(alex) of the ``lpips`` package with its AlexNet trunk loaded from a local file.

    The package ships its linear-layer weights but downloads the trunk through torchvision; here the
    trunk is built without download and loaded from ``backbone`` (default: the torch hub cache), or
    left random with ``backbone="random"`` (tests only).
    """
    try:
        import lpips
    except ImportError as e:
        raise SSAGANError("--lpips needs the lpips package: pip install --no-deps 'lpips>=0.1.4,<0.2'.") from e
    from miscc.run.checkpoint import load_file, load_into

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
    return LpipsNet(model.eval(), backbone or "torch hub cache")


class _ImagePairs(Dataset):
    def __init__(self, images: Dataset, pairs: Sequence[tuple[int, int]]) -> None:
        self.images, self.pairs = images, pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self.pairs[i]
        return self.images[a], self.images[b]


@torch.no_grad()
def lpips_diversity(records: Sequence[SampleRecord], images: Dataset, model: nn.Module, *,
                    device: str | torch.device = "cpu", batch_size: int = 50,
                    workers: int = 0) -> tuple[float, float, dict]:
    """Mean LPIPS over all pairs of images generated from the same caption; (mean, std) over captions.

    ``images[i]`` is the uint8 image of ``records[i]``: pairs are read by index, so the images need
    random access (files, not a generator stream).
    """
    if not hasattr(images, "__getitem__"):
        raise SSAGANError("LPIPS diversity reads images in pairs and needs them indexable (e.g. the sample "
                          f"files), not a stream like {type(images).__name__}.")
    by_caption: dict[tuple[str, int], list[int]] = {}
    for i, r in enumerate(records):
        by_caption.setdefault((r.key, r.caption_idx), []).append(i)
    groups = [members for members in by_caption.values() if len(members) > 1]
    pairs = [(a, b) for members in groups for i, a in enumerate(members) for b in members[i + 1:]]
    if not pairs:
        raise SSAGANError("LPIPS diversity compares images of the same caption, but every caption has one "
                          "image: sample several images per caption.")
    device = torch.device(device)
    model = model.to(device)
    dists = []
    for x, y in tqdm(batch_loader(_ImagePairs(images, pairs), batch_size, device, workers), desc="LPIPS",
                     unit="batch", disable=None):
        d = model(x.to(device).float() / 127.5 - 1.0, y.to(device).float() / 127.5 - 1.0)
        dists.append(d.flatten().double().cpu().numpy())
    dists = np.concatenate(dists)
    per_caption, start = [], 0
    for members in groups:
        n = len(members) * (len(members) - 1) // 2
        per_caption.append(dists[start:start + n].mean())
        start += n
    info = {"captions": len(groups), "pairs": len(pairs), "net": "alex (lpips v0.1)"}
    return float(np.mean(per_caption)), float(np.std(per_caption)), info
