"""The registry's side of the bird scores (``bird_scores.py``): per-image functions, set-up, results.

``registry.py`` registers ``bird_fd``, ``bird_is``, ``bird_diversity`` and ``mask_coverage`` with the
functions here. Per image, the bird network gives its features and species logits in one row
(``bird_outputs``, shared by FD, IS and diversity: a batch seen twice is computed once), and
``coverage_values`` gives the bird's area share and each stage mask's coverage. The real-image
reference levels come from the data set's test split, computed once per context (``bird_state``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from miscc.errors import SSAGANError
from miscc.metrics.bird_net import FEATURE_DIM, LoadedBirdNet, centre, load_bird_images, load_bird_net, predict
from miscc.metrics.bird_scores import (bird_region, fd_floor, frechet_distance, group_diversity, mask_coverage,
                                       shuffled_is)
from miscc.metrics.colour import load_attributes
from miscc.metrics.context import EvalContext
from miscc.metrics.sources import progress
from miscc.sample.protocol import SampleRecord, masks_to_uint8

STATE = "bird_net"  # ctx.state key of the loaded network and its real-image references


@dataclass
class BirdState:
    loaded: LoadedBirdNet
    real_features: np.ndarray  # of the real test-split images (centre crops), in file order
    real_logits: np.ndarray    # their species logits
    real_species: list[str]
    last: Optional[tuple[torch.Tensor, torch.Tensor]] = None  # (batch, its outputs): one pass per batch


def bird_state(ctx: EvalContext) -> BirdState:
    """The network of ``ctx.data_dir`` and its outputs on the real test images, loaded once per context."""
    if STATE not in ctx.state:
        if not ctx.data_dir:
            raise SSAGANError("the bird metrics need the synthetic bird set they were trained on (data_dir).")
        loaded = load_bird_net(ctx.data_dir, ctx.device)
        size = loaded.meta["size"]
        real = load_bird_images(ctx.data_dir, size, ("test",))
        feats, logits = predict(loaded.net, centre(real.crops, size), ctx.batch_size)
        ctx.state[STATE] = BirdState(loaded, feats.double().numpy(), logits["species"].double().numpy(),
                                     [k.split("/")[0] for k in real.keys])
    return ctx.state[STATE]


def prepare_bird(ctx: EvalContext) -> None:
    bird_state(ctx)


@torch.no_grad()
def bird_outputs(batch: torch.Tensor, records: Sequence[SampleRecord], ctx: EvalContext) -> torch.Tensor:
    """[B, FEATURE_DIM + species] float64: features then species logits of a uint8 batch."""
    state = bird_state(ctx)
    if state.last is not None and state.last[0] is batch:  # the same batch for FD, IS and diversity
        return state.last[1]
    net = state.loaded.net.eval()
    feats, logits = net(batch.to(next(net.parameters()).device))
    out = torch.cat([feats, logits["species"]], dim=1).double()
    state.last = (batch, out)  # holds the batch, so its identity cannot be reused by another
    return out


def _image_outputs(ctx: EvalContext, name: str) -> torch.Tensor:
    """The bird outputs of ``ctx.images`` (FD and IS read the image set, as FID and IS do): the caller's
    ``image_values[name]`` (training), else one pass over the images shared by both metrics."""
    if name in ctx.image_values:
        return ctx.image_values[name]
    key = STATE + ":images"
    if key not in ctx.state:
        bird_state(ctx)
        rows = [bird_outputs(batch, (), ctx).cpu() for batch in
                progress(ctx.images, ctx.batch_size, torch.device(ctx.device), ctx.workers, "bird network")]
        ctx.state[key] = torch.cat(rows)
    return ctx.state[key]


def _network_info(state: BirdState) -> dict:
    meta = state.loaded.meta
    return {"network": str(state.loaded.path), "data_fingerprint": meta["fingerprint"][:16],
            "network_heldout_species_accuracy": meta["heldout"].get("species")}


def bird_fd(ctx: EvalContext) -> dict:
    state = bird_state(ctx)
    feats = _image_outputs(ctx, "bird_fd")[:, :FEATURE_DIM].numpy()
    value = frechet_distance(feats, state.real_features)
    return {"bird_fd": {"fd": value, "floor": fd_floor(state.real_features), "images": len(feats),
                        "real_images": len(state.real_features), **_network_info(state)}}


def bird_is(ctx: EvalContext) -> dict:
    state = bird_state(ctx)
    logits = _image_outputs(ctx, "bird_is")[:, FEATURE_DIM:].numpy()
    splits = min(ctx.splits, len(logits))
    mean, std = shuffled_is(logits, splits)
    ceiling, _ = shuffled_is(state.real_logits, min(splits, len(state.real_logits)))
    return {"bird_is": {"mean": mean, "std": std, "splits": splits, "ceiling": ceiling,
                        "classes": state.real_logits.shape[1], **_network_info(state)}}


def bird_diversity(ctx: EvalContext) -> dict:
    state = bird_state(ctx)
    feats = ctx.per_image("bird_diversity", bird_outputs)[:, :FEATURE_DIM].numpy()
    mean, std, groups = group_diversity(feats, [(r.key, r.caption_idx) for r in ctx.records])
    if not groups:
        raise SSAGANError("bird diversity needs several images per caption (main.py --sample --repeat N, or "
                          "--captions FILE --per_caption N); every caption here has one image.")
    real, _, species = group_diversity(state.real_features, state.real_species)
    return {"bird_diversity": {"mean": mean, "std": std, "captions": groups, "real_one_species": real,
                               "real_species": species, **_network_info(state)}}


# --- mask coverage ------------------------------------------------------------------------------------

def prepare_coverage(ctx: EvalContext) -> None:
    try:
        ctx.state["mask_coverage"] = load_attributes(ctx.data_dir, "test")
    except (OSError, ValueError, TypeError):
        raise SSAGANError(f"{ctx.data_dir} has no attributes_test.json (only the synthetic bird set of "
                          "tools/birds/make_birds.py has one): mask coverage locates the bird with its layout.") from None


def _masks_from_tensors(masks: Sequence[torch.Tensor], size: int) -> np.ndarray:
    """[B, K, S, S] in [0, 1] from the generator's masks, quantised and upsampled (nearest) exactly like
    the sampler's ``stage_mask`` files, so training and IS.py see the same masks."""
    out = []
    for m in masks:
        q = masks_to_uint8(m)[:, None].float()  # the PNG's values (exact in float32)
        out.append(F.interpolate(q, size=(size, size), mode="nearest")[:, 0].double() / 255.0)
    return torch.stack(out, dim=1).cpu().numpy()


def _masks_from_files(records: Sequence[SampleRecord], folder: Path, size: int) -> np.ndarray:
    rows = []
    for r in records:
        names = dict(r.extra).get("stage_masks") or ([r.mask] if r.mask else None)
        if not names:
            raise SSAGANError(f"{folder}: image {r.file} has no mask; sample with --masks all (every stage) or "
                              "--masks last.")
        stages = []
        for name in names:
            with Image.open(folder / name) as im:
                grey = im.convert("L")
                if grey.size != (size, size):
                    grey = grey.resize((size, size), Image.NEAREST)
                stages.append(np.asarray(grey, dtype=np.float64) / 255.0)
        rows.append(np.stack(stages))
    if len({len(r) for r in rows}) > 1:
        raise SSAGANError(f"{folder}: the images have masks of different numbers of stages.")
    return np.stack(rows)


def coverage_values(batch: torch.Tensor, records: Sequence[SampleRecord], ctx: EvalContext) -> torch.Tensor:
    """[B, 1 + K] float64: the located bird's area share, then each stage mask's coverage."""
    size = batch.shape[-1]
    if ctx.stage_masks is not None:
        masks = _masks_from_tensors(ctx.stage_masks, size)
    else:
        masks = _masks_from_files(records, Path(ctx.state["mask_coverage_dir"]), size)
    rgb = batch.permute(0, 2, 3, 1).cpu().numpy()
    attributes = ctx.state["mask_coverage"]
    rows = []
    for image, record, stage_masks in zip(rgb, records, masks):
        region = bird_region(image, attributes[record.key])
        rows.append(np.concatenate([[region.mean()], mask_coverage(stage_masks, region)]))
    return torch.tensor(np.stack(rows), dtype=torch.float64)


def coverage(ctx: EvalContext) -> dict:
    values = ctx.per_image("mask_coverage", coverage_values).numpy()
    uniform = float(values[:, 0].mean())
    stages = [float(v) for v in np.nanmean(values[:, 1:], axis=0)]
    lift = [(s - uniform) / (1 - uniform) if uniform < 1 else float("nan") for s in stages]
    return {"mask_coverage": {"mean": float(np.mean(stages)), "stages": stages, "uniform": uniform,
                              "perfect": 1.0, "lift": lift, "images": len(values)}}


def same_data_dir(args: Any) -> Optional[str]:
    """IS.py: the options naming a synthetic bird set must name the same one (the context has one)."""
    given = {flag: getattr(args, flag, None) for flag in ("colour_accuracy", "bird_net", "mask_coverage")}
    named = {v for v in given.values() if v}
    if len(named) > 1:
        return ("--colour_accuracy, --bird_net and --mask_coverage name different data sets ("
                + ", ".join(f"--{k} {v}" for k, v in given.items() if v) + "); evaluate one at a time.")
    return None
