"""A bird feature network for the synthetic bird set: the offline stand-in for Inception.

Inception was trained on ImageNet classes that include the birds it later scores; this small CNN is
trained the same way on the synthetic set (``tools/birds/make_birds.py``): on real images of *every* species
of both splits, with the species and the colour of each located part (body, head, wing, tail) as
targets. The generator never sees it. Some real images per species are held out to report how well
it judges real birds (``meta["heldout"]``).

It is built once per data set (``python -m tools.bird_features DATA_DIR``) and cached next to the
data as ``DATA_DIR/bird_net.pt`` with a fingerprint of the data it was trained on (every image's bytes,
boxes, splits and attributes); ``load_bird_net`` refuses a data set whose fingerprint differs.

Input: uint8 RGB [B, 3, H, W], resized (bilinear) to ``meta["size"]`` when H, W differ; real images
are the bbox crops framed like the generator's inputs (``images.cub_crop_box`` + resize + centre crop).
Outputs: a ``FEATURE_DIM`` feature vector per image (the pooled last convolution, for FD and
diversity) and logits per head (``species`` for IS; one head per part over the CUB colour names).
"""
from __future__ import annotations

import hashlib
import os
import pickle
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from miscc.errors import SSAGANError
from datasets import load_bbox
from miscc.metrics.colour import NAMES, SCORED_PARTS, load_attributes
from miscc.metrics.images import cub_crop_box

BIRD_NET_FILE = "bird_net.pt"
BUILD_COMMAND = "python -m tools.bird_features {data_dir}"
FORMAT = 1  # bumped when the file's layout or the network changes: older files are refused
FEATURE_DIM = 64
WIDTHS = (16, 32, 64, FEATURE_DIM)
PART_HEADS = tuple(SCORED_PARTS)  # body, head, wing, tail: their colour over NAMES
LOAD_RATIO = 76 / 64  # the training transform's resize before the crop (datasets.build_transform)


class BirdNet(nn.Module):
    """Four stride-2 convolutions, global average pooling, one linear head per target."""

    def __init__(self, n_species: int, size: int = 64) -> None:
        super().__init__()
        self.size = size
        layers: list[nn.Module] = []
        cin = 3
        for cout in WIDTHS:
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout),
                       nn.ReLU(inplace=True)]
            cin = cout
        self.trunk = nn.Sequential(*layers)
        self.heads = nn.ModuleDict({"species": nn.Linear(FEATURE_DIM, n_species),
                                    **{p: nn.Linear(FEATURE_DIM, len(NAMES)) for p in PART_HEADS}})

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 [B, 3, H, W] (or floats in 0-255) -> the network's input in [-1, 1] at its size."""
        x = batch.float() / 127.5 - 1.0
        if tuple(x.shape[-2:]) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False,
                              antialias=True)
        return x

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        feats = self.trunk(self.prepare(batch)).mean(dim=(2, 3))
        return feats, {name: head(feats) for name, head in self.heads.items()}


# --- the data it is trained on ----------------------------------------------------------------------

@dataclass
class BirdImages:
    """Every real image of a synthetic set: uint8 crops [N, 3, L, L] (L = size * 76/64), labels, split."""
    keys: list[str]
    crops: torch.Tensor
    species: torch.Tensor          # index into ``species_names``
    parts: dict[str, torch.Tensor]  # part -> index into NAMES
    split: list[str]
    species_names: list[str]


def _split_keys(root: Path) -> dict[str, list[str]]:
    out = {}
    for split in ("train", "test"):
        path = root / split / "filenames.pickle"
        if not path.is_file():
            raise SSAGANError(f"{path} is missing: {root} is not a synthetic bird set "
                              "(python -m tools.birds.make_birds DIR writes one).")
        with open(path, "rb") as f:
            out[split] = list(pickle.load(f, encoding="latin1"))
    return out


def _attributes(root: Path, split: str) -> dict:
    try:
        return load_attributes(root, split)
    except FileNotFoundError:
        raise SSAGANError(f"{root / f'attributes_{split}.json'} is missing: the bird feature network needs the "
                          "synthetic bird set's attributes (only tools/birds/make_birds.py writes them).") from None


def data_fingerprint(data_dir: str | os.PathLike) -> str:
    """sha256 over what the network learns from: splits, boxes, attributes and every image's bytes."""
    root = Path(data_dir)
    h = hashlib.sha256()
    fixed = [root / "CUB_200_2011" / "images.txt", root / "CUB_200_2011" / "bounding_boxes.txt",
             root / "train" / "filenames.pickle", root / "test" / "filenames.pickle",
             root / "attributes_train.json", root / "attributes_test.json"]
    for path in fixed:
        if not path.is_file():
            raise SSAGANError(f"{path} is missing: {root} is not a synthetic bird set "
                              "(python -m tools.birds.make_birds DIR writes one).")
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    for split, keys in _split_keys(root).items():
        for key in keys:  # the images themselves: a regenerated set with other pixels is another set
            h.update(key.encode() + b"\0" + (root / "CUB_200_2011" / "images" / f"{key}.jpg").read_bytes())
    return h.hexdigest()


def crop(path: Path, box: Sequence[float], size: int) -> np.ndarray:
    """uint8 [size, size, 3]: the bbox crop, shorter side resized to ``size``, centre crop."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        im = im.crop(cub_crop_box(box, *im.size))
    w, h = im.size
    scale = size / min(w, h)
    im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
    left, top = (im.size[0] - size) // 2, (im.size[1] - size) // 2
    return np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.uint8)


def load_bird_images(data_dir: str | os.PathLike, size: int = 64, splits: Sequence[str] = ("train", "test")
                     ) -> BirdImages:
    """Every real image of ``splits`` as crops of side size*76/64, in split then file order."""
    root = Path(data_dir)
    keys_of = _split_keys(root)
    boxes = load_bbox(str(root))  # cub_crop_box truncates to ints, as load_bbox does
    big = int(size * LOAD_RATIO)
    keys, crops, split_of, attrs = [], [], [], []
    for split in splits:
        attributes = _attributes(root, split)
        for key in keys_of[split]:
            keys.append(key)
            split_of.append(split)
            attrs.append(attributes[key])
            crops.append(crop(root / "CUB_200_2011" / "images" / f"{key}.jpg", boxes[key], big))
    species_names = sorted({k.split("/")[0] for k in keys_of["train"] + keys_of["test"]})
    index = {s: i for i, s in enumerate(species_names)}
    return BirdImages(keys, torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous(),
                      torch.tensor([index[k.split("/")[0]] for k in keys]),
                      {p: torch.tensor([NAMES.index(a[SCORED_PARTS[p][0]]) for a in attrs]) for p in PART_HEADS},
                      split_of, species_names)


def centre(crops: torch.Tensor, size: int) -> torch.Tensor:
    """The centre ``size`` x ``size`` of crops [N, 3, L, L]: the deterministic framing (IS.py's reference)."""
    off = (crops.shape[-1] - size) // 2
    return crops[..., off:off + size, off:off + size]


def heldout_mask(species: torch.Tensor, fraction: float) -> torch.Tensor:
    """True for the last ``fraction`` (at least one) of each species' images, in file order."""
    held = torch.zeros(len(species), dtype=torch.bool)
    for s in species.unique():
        idx = (species == s).nonzero().flatten()
        n = max(1, round(fraction * len(idx))) if len(idx) > 1 else 0
        if n:
            held[idx[-n:]] = True
    return held


# --- building, saving, loading ---------------------------------------------------------------------

@torch.no_grad()
def predict(net: BirdNet, images: torch.Tensor, batch_size: int = 100) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(features, logits per head) of uint8 images [N, 3, H, W], in eval mode, on the net's device."""
    was = net.training
    net.eval()
    device = next(net.parameters()).device
    feats, logits = [], {k: [] for k in net.heads}
    for a in range(0, len(images), batch_size):
        f, out = net(images[a:a + batch_size].to(device))
        feats.append(f.cpu())
        for k, v in out.items():
            logits[k].append(v.cpu())
    net.train(was)
    return torch.cat(feats), {k: torch.cat(v) for k, v in logits.items()}


def accuracies(net: BirdNet, data: BirdImages, which: torch.Tensor, size: int) -> dict[str, float]:
    """Accuracy of every head on the centre crops of the images ``which`` selects."""
    if not which.any():
        return {}
    _, logits = predict(net, centre(data.crops[which], size))
    targets = {"species": data.species[which], **{p: t[which] for p, t in data.parts.items()}}
    return {k: float((logits[k].argmax(1) == targets[k]).float().mean()) for k in logits}


def train_bird_net(data: BirdImages, size: int = 64, epochs: int = 30, batch_size: int = 32, lr: float = 3e-3,
                   seed: int = 0, holdout: float = 0.2, log: Optional[Callable[[str], None]] = None
                   ) -> tuple[BirdNet, dict]:
    """Train on every image but the held-out ones: random crops of side ``size`` from the larger
    crops and random flips (the generator's training jitter), Adam, cross-entropy summed over heads.
    Returns the network (eval mode) and its held-out / training accuracies."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the layers' initialisation
    net = BirdNet(len(data.species_names), size)
    held = heldout_mask(data.species, holdout)
    train_idx = (~held).nonzero().flatten()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    steps_per_epoch = max(1, -(-len(train_idx) // batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    big = data.crops.shape[-1]
    net.train()
    for epoch in range(epochs):
        order = train_idx[torch.randperm(len(train_idx), generator=gen)]
        total = 0.0
        for a in range(0, len(order), batch_size):
            idx = order[a:a + batch_size]
            dy, dx = torch.randint(0, big - size + 1, (2,), generator=gen).tolist()
            x = data.crops[idx][..., dy:dy + size, dx:dx + size]
            flip = torch.rand(len(idx), generator=gen) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            _, logits = net(x)
            loss = F.cross_entropy(logits["species"], data.species[idx])
            for p in PART_HEADS:
                loss = loss + F.cross_entropy(logits[p], data.parts[p][idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        if log is not None and (epoch + 1) % max(1, epochs // 5) == 0:
            log(f"epoch {epoch + 1}/{epochs}: loss {total / len(order):.4f}")
    net.eval()
    info = {"heldout": accuracies(net, data, held, size), "train": accuracies(net, data, ~held, size),
            "heldout_images": int(held.sum()), "train_images": int((~held).sum())}
    return net, info


def bird_net_path(data_dir: str | os.PathLike) -> Path:
    return Path(data_dir) / BIRD_NET_FILE


def build_bird_net(data_dir: str | os.PathLike, size: int = 64, epochs: int = 30, seed: int = 0,
                   holdout: float = 0.2, log: Optional[Callable[[str], None]] = None) -> tuple[Path, dict]:
    """Train the network on ``data_dir`` and write ``DATA_DIR/bird_net.pt``; returns (path, meta)."""
    start = time.perf_counter()
    fingerprint = data_fingerprint(data_dir)
    data = load_bird_images(data_dir, size)
    net, info = train_bird_net(data, size, epochs, seed=seed, holdout=holdout, log=log)
    meta = {"format": FORMAT, "fingerprint": fingerprint, "size": size, "species": data.species_names,
            "parts": list(PART_HEADS), "colours": list(NAMES), "epochs": epochs, "seed": seed,
            "holdout": holdout, **info, "seconds": round(time.perf_counter() - start, 1)}
    path = bird_net_path(data_dir)
    tmp = path.with_suffix(".tmp")
    torch.save({"state_dict": net.state_dict(), "meta": meta}, tmp)
    os.replace(tmp, path)  # atomic: a killed build leaves no half file under the real name
    return path, meta


@dataclass
class LoadedBirdNet:
    net: BirdNet
    meta: dict
    path: Path


def load_bird_net(data_dir: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedBirdNet:
    """The cached network of ``data_dir``, checked against the data's fingerprint."""
    path = bird_net_path(data_dir)
    fix = BUILD_COMMAND.format(data_dir=data_dir)
    if not path.is_file():
        raise SSAGANError(f"{path} does not exist: build the bird feature network of this data set once "
                          f"with `{fix}` (about a minute on 2 CPU cores).")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        meta, state = saved["meta"], saved["state_dict"]
    except Exception as e:  # a torn or foreign file: the fix is the same
        raise SSAGANError(f"{path} is not a bird feature network file ({type(e).__name__}: {e}); rebuild it "
                          f"with `{fix}`.") from e
    if meta.get("format") != FORMAT:
        raise SSAGANError(f"{path} has format {meta.get('format')}, this code reads format {FORMAT}; rebuild it "
                          f"with `{fix}`.")
    current = data_fingerprint(data_dir)
    if meta["fingerprint"] != current:
        raise SSAGANError(f"{path} was trained on another data set (fingerprint {meta['fingerprint'][:12]}, "
                          f"{data_dir} now has {current[:12]}: regenerated or edited since); rebuild it with "
                          f"`{fix}`.")
    net = BirdNet(len(meta["species"]), meta["size"])
    net.load_state_dict(state)
    return LoadedBirdNet(net.to(device).eval(), meta, path)
