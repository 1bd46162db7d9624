"""DAMSM pretraining: the text and image encoders trained with the word + sentence matching losses.

    python DAMSM.py --cfg cfg/DAMSM/bird.yml [--gpu -1] [--data_dir D] [--manualSeed N] [--resume]
                    [--opts KEY VALUE ...]

Follows AttnGAN's ``pretrain_DAMSM.py`` (REFERENCE §12): both encoders in train mode (text dropout on,
Inception BatchNorm statistics updated although the trunk weights stay frozen); per batch
loss = w0 + w1 + s0 + s1; grad-norm clipping of the text encoder only (TRAIN.RNN_GRAD_CLIP); Adam
(betas 0.5, 0.999) over the text encoder and the trainable image projections, **created anew every
epoch** so its moments restart each epoch (this shaped the released encoders, so it is kept); the lr
starts at TRAIN.ENCODER_LR and is multiplied by 0.98 after every epoch while it is above a tenth of
that. Epochs are 0-based, 0 .. MAX_EPOCH-1; validation on the test split after each epoch.

Outputs under ``OUTPUT_DIR/<CONFIG_NAME>/``: ``models/text_encoder<epoch>.pth`` and
``models/image_encoder<epoch>.pth`` (released format: plain state dicts) whenever
epoch % SNAPSHOT_INTERVAL == 0, ``models/latest_damsm.pth`` (the training state, every epoch),
``tb/`` (TensorBoard) and ``config.yaml``.

Deliberate differences from the original (docs/DAMSM.md explains them):
  * the last epoch's encoders are always written (the original's ``epoch == MAX_EPOCH`` test never
    held, so a run whose length is not a multiple of the interval lost its last epochs);
  * the validation losses are averaged over the batches actually evaluated (the original summed 51
    batches and divided by 50);
  * resuming: ``latest_damsm.pth`` restores weights, lr, epoch and RNG states; a TRAIN.NET_E file
    resumes at its epoch + 1 like the original, but with the lr the schedule has reached by then
    (the original restarted at ENCODER_LR);
  * PyTorch-era fixes (REFERENCE §15.13): ``.item()`` instead of ``loss[0]``, ``Resize``,
    ``clip_grad_norm_``; no CUDA literals; the attention-map images of the original are not drawn.
"""
from __future__ import annotations

import argparse
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from DAMSM import CNN_ENCODER, RNN_ENCODER
from datasets import TextDataset, build_transform, prepare_data
from miscc import distributed
from miscc.checkpoint import (atomic_save, load_file, load_into, released_state_dict, rng_state,
                              save_released, set_rng_state)
from miscc.cli import base_parser, run_dir, run_main
from miscc.config import cfg, cfg_to_dict, save_cfg
from miscc.errors import SSAGANError
from miscc.losses import sent_loss, words_loss
from miscc.utils import (build_image_encoder, build_text_encoder, encode_text, get_device,
                         image_encoder_path, seed_everything)
from sync_batchnorm import convert_sync_batchnorm

ADAM_BETAS = (0.5, 0.999)
LR_DECAY = 0.98
# The original evaluates test batches 0..50 and then stops: a cheap, fixed-cost validation.
VAL_MAX_BATCHES = 51
LATEST = "latest_damsm.pth"
POSTFIX_EVERY = 20  # steps between progress-bar loss updates (each one reads the device)
STATE_FORMAT = "ssagan-damsm-pretrain-1"


@dataclass
class EpochStats:
    """Mean losses of one epoch (word = w0 + w1, sent = s0 + s1); val_* are None without test batches."""
    epoch: int
    lr: float
    train_word: float
    train_sent: float
    val_word: Optional[float]
    val_sent: Optional[float]
    seconds: float

    @property
    def train_total(self) -> float:
        return self.train_word + self.train_sent


def next_lr(lr: float, base_lr: float) -> float:
    """The original's end-of-epoch rule: decay by 0.98 while lr is above base_lr / 10."""
    return lr * LR_DECAY if lr > base_lr / 10.0 else lr


def lr_at_epoch(epoch: int, base_lr: float) -> float:
    """lr used during ``epoch`` (0-based) of an uninterrupted run."""
    lr = base_lr
    for _ in range(epoch):
        lr = next_lr(lr, base_lr)
    return lr


def epoch_of_text_encoder(path: str) -> int:
    """Epoch of a pretraining snapshot ``text_encoder<N>.pth`` (also ``text_encoder_<N>.pth``)."""
    match = re.search(r"text_encoder_?(\d+)\.pth$", Path(path).name)
    if match is None:
        raise SSAGANError(f"TRAIN.NET_E = {path!r}: DAMSM pretraining resumes from files named "
                          "text_encoder<epoch>.pth (e.g. text_encoder200.pth), with the matching "
                          "image_encoder<epoch>.pth next to it.")
    return int(match.group(1))


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        out.update(_flat(v, name + ".") if isinstance(v, dict) else {name: v})
    return out


def _loader(dataset: TextDataset, device: torch.device) -> DataLoader:
    # Shuffled with drop_last for train and test alike, as the original: every batch has exactly
    # BATCH_SIZE pairs, so each caption always competes with the same number of images. Under
    # torchrun each rank reads its own share (BATCH_SIZE per rank, reshuffled every epoch).
    sampler = None
    if distributed.world_size() > 1:
        sampler = DistributedSampler(dataset, shuffle=True, seed=cfg.SEED, drop_last=True)
    return DataLoader(dataset, batch_size=cfg.TRAIN.BATCH_SIZE, shuffle=sampler is None, sampler=sampler,
                      drop_last=True, num_workers=cfg.WORKERS, pin_memory=device.type == "cuda")


def damsm_batch_losses(text_encoder: RNN_ENCODER, image_encoder: CNN_ENCODER, batch: Sequence,
                       device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(w0 + w1, s0 + s1) of one collated batch, same-class negatives masked as in the original.

    Under torchrun the losses are those of the global batch (every rank's pairs, gathered), so each
    caption competes with all BATCH_SIZE x world_size images, as in one process with that batch.
    """
    imgs, captions, cap_lens, class_ids, _ = prepare_data(batch, device)
    region_features, cnn_code = image_encoder(imgs[-1])
    words_emb, sent_emb = encode_text(text_encoder, captions, cap_lens)
    region_features, cnn_code = map(distributed.all_gather_batch, (region_features, cnn_code))
    words_emb, sent_emb, cap_lens, class_ids = distributed.all_gather_captions(words_emb, sent_emb, cap_lens,
                                                                               class_ids)
    batch_size = words_emb.size(0)
    labels = torch.arange(batch_size, device=device)
    w0, w1, _ = words_loss(region_features, words_emb, labels, cap_lens, class_ids, batch_size)
    s0, s1 = sent_loss(cnn_code, sent_emb, labels, class_ids, batch_size)
    return w0 + w1, s0 + s1


def train_epoch(loader: DataLoader, text_encoder: RNN_ENCODER, image_encoder: CNN_ENCODER,
                optimizer: torch.optim.Optimizer, device: torch.device, desc: str) -> tuple[float, float]:
    """One pass over ``loader``; returns the mean (word, sentence) loss of its batches."""
    text_encoder.train()
    image_encoder.train()
    # Summed on the device in float64 (the same sums as adding .item()s), read back only every
    # POSTFIX_EVERY steps: no host sync per step.
    sums = torch.zeros(2, dtype=torch.float64, device=device)
    bar = tqdm(loader, desc=desc, leave=False, dynamic_ncols=True,
               disable=distributed.bar_disabled())
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for step, batch in enumerate(bar, 1):
        optimizer.zero_grad(set_to_none=True)
        w_loss, s_loss = damsm_batch_losses(text_encoder, image_encoder, batch, device)
        # x world_size, then averaged: the sum of the ranks' parts, the global batch's gradient
        ((w_loss + s_loss) * distributed.world_size()).backward()
        distributed.all_reduce_grads(params)
        # Only the LSTM is clipped (an exploding-gradient guard); the image projections are not.
        nn.utils.clip_grad_norm_(text_encoder.parameters(), cfg.TRAIN.RNN_GRAD_CLIP)
        optimizer.step()
        sums += torch.stack([w_loss.detach(), s_loss.detach()])
        if step % POSTFIX_EVERY == 0 or step == len(loader):
            word, sent = (sums / step).tolist()
            bar.set_postfix(word=f"{word:.3f}", sent=f"{sent:.3f}")
    word_sum, sent_sum = sums.tolist()
    return word_sum / len(loader), sent_sum / len(loader)


@torch.no_grad()
def evaluate(loader: DataLoader, text_encoder: RNN_ENCODER, image_encoder: CNN_ENCODER,
             device: torch.device) -> tuple[Optional[float], Optional[float]]:
    """Mean (word, sentence) loss over at most VAL_MAX_BATCHES test batches, encoders in eval mode."""
    text_encoder.eval()
    image_encoder.eval()
    word_sum = sent_sum = 0.0
    count = 0
    for batch in loader:
        w_loss, s_loss = damsm_batch_losses(text_encoder, image_encoder, batch, device)
        word_sum += w_loss.item()
        sent_sum += s_loss.item()
        count += 1
        if count == VAL_MAX_BATCHES:
            break
    if count == 0:
        return None, None
    return word_sum / count, sent_sum / count


class _Run:
    """Encoders, data and schedule position of one pretraining run."""

    def __init__(self, device: torch.device):
        transform = build_transform(cfg.TREE.BASE_SIZE, train=True)
        # Data first: a wrong DATA_DIR fails before any model is built or any file is written.
        self.train_set = TextDataset(cfg.DATA_DIR, "train", cfg.TREE.BASE_SIZE, transform)
        self.val_set = TextDataset(cfg.DATA_DIR, "test", cfg.TREE.BASE_SIZE, transform)
        self.train_loader = _loader(self.train_set, device)
        self.val_loader = _loader(self.val_set, device)
        if len(self.train_loader) == 0:
            raise SSAGANError(
                f"the train split of {cfg.DATA_DIR} has {len(self.train_set)} images, fewer than "
                f"TRAIN.BATCH_SIZE = {cfg.TRAIN.BATCH_SIZE} (batches are full, drop_last); lower it "
                f"with --opts TRAIN.BATCH_SIZE N.")
        self.model_dir = run_dir() / "models"
        self.latest = self.model_dir / LATEST
        self.start_epoch = 0
        self.lr = cfg.TRAIN.ENCODER_LR
        if cfg.RESTORE and self.latest.is_file():
            self._restore_latest()
        elif cfg.RESTORE and not cfg.TRAIN.NET_E:
            raise SSAGANError(
                f"RESTORE / --resume: nothing to resume from, {self.latest} does not exist and "
                f"TRAIN.NET_E is empty. Check CONFIG_NAME / OUTPUT_DIR, or start without --resume.")
        elif cfg.TRAIN.NET_E:
            self._start_from_released(cfg.TRAIN.NET_E)
        else:
            if self.latest.is_file():
                _say(f"note: starting from scratch over {self.latest}; --resume continues it")
            self.text_encoder = build_text_encoder(self.train_set.n_words, path="")
            try:
                self.image_encoder = build_image_encoder(path="")
            except SSAGANError as e:
                raise SSAGANError(f"{e}\nWithout those weights, TRAIN.DAMSM_IMAGENET False trains on a "
                                  "random frozen trunk (a demo setting, see docs/DAMSM.md).") from e
        self.text_encoder.to(device)
        self.image_encoder.to(device)
        if distributed.world_size() > 1:
            # The Inception BNs run in train mode: their statistics must be those of the global batch.
            convert_sync_batchnorm(self.image_encoder)
            distributed.broadcast_module(self.text_encoder)
            distributed.broadcast_module(self.image_encoder)

    def _start_from_released(self, net_e: str) -> None:
        epoch = epoch_of_text_encoder(net_e)
        self.text_encoder = build_text_encoder(self.train_set.n_words, path=net_e,
                                               captions_path=self.train_set.captions_path)
        self.image_encoder = build_image_encoder(path=image_encoder_path(net_e))
        self.start_epoch = epoch + 1
        self.lr = lr_at_epoch(self.start_epoch, cfg.TRAIN.ENCODER_LR)
        _say(f"resuming from {net_e} (epoch {epoch}) at epoch {self.start_epoch}, lr {self.lr:.6g}")

    def _restore_latest(self) -> None:
        state = load_file(self.latest, what="DAMSM training state")
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise SSAGANError(f"{self.latest} is not a DAMSM pretraining state written by this code; "
                              "move it away or start without --resume.")
        self.text_encoder = load_into(RNN_ENCODER(self.train_set.n_words, nhidden=cfg.TEXT.EMBEDDING_DIM),
                                      state["text_encoder"], f"{self.latest} (text_encoder)")
        # pretrained=False: the saved trunk replaces every ImageNet weight anyway.
        self.image_encoder = load_into(
            CNN_ENCODER(cfg.TEXT.EMBEDDING_DIM, pretrained=False, input_size=cfg.TRAIN.DAMSM_INPUT_SIZE),
            state["image_encoder"], f"{self.latest} (image_encoder)")
        self.start_epoch = state["epoch"] + 1
        self.lr = state["lr"]
        saved = _flat(state["config"])
        changed = sorted(k for k, v in _flat(cfg_to_dict()).items()
                         if saved.get(k) != v and k not in ("RESTORE", "TRAIN.MAX_EPOCH"))
        if changed:
            _say(f"note: config differs from the interrupted run in: {', '.join(changed)}")
        # Last, so that building the encoders above does not consume the restored random streams.
        set_rng_state(state["rng"])
        _say(f"resuming from {self.latest} at epoch {self.start_epoch}, lr {self.lr:.6g}")

    def params(self) -> list[nn.Parameter]:
        return list(self.text_encoder.parameters()) + [
            p for p in self.image_encoder.parameters() if p.requires_grad]

    def save(self, epoch: int, lr_after: float) -> None:
        if epoch % cfg.TRAIN.SNAPSHOT_INTERVAL == 0 or epoch == cfg.TRAIN.MAX_EPOCH - 1:
            save_released(self.text_encoder, self.model_dir / f"text_encoder{epoch}.pth")
            save_released(self.image_encoder, self.model_dir / f"image_encoder{epoch}.pth")
        atomic_save({
            "format": STATE_FORMAT, "epoch": epoch, "lr": lr_after,
            "text_encoder": released_state_dict(self.text_encoder),
            "image_encoder": released_state_dict(self.image_encoder),
            "rng": rng_state(), "config": cfg_to_dict(),
        }, self.latest)


def _say(message: str) -> None:
    """Print above the progress bars, from the main process only."""
    if distributed.is_main():
        tqdm.write(message)


def _fmt(x: Optional[float]) -> str:
    return "  n/a" if x is None else f"{x:.3f}"


def pretrain() -> list[EpochStats]:
    """Run DAMSM pretraining as the global ``cfg`` describes; returns the stats of the epochs run."""
    from torch.utils.tensorboard import SummaryWriter  # slow import, only needed here

    seed_everything(cfg.SEED)
    device = get_device()
    run = _Run(device)
    main = distributed.is_main()
    out = run_dir()
    if main:
        out.mkdir(parents=True, exist_ok=True)
        save_cfg(out / "config.yaml")
    if run.start_epoch >= cfg.TRAIN.MAX_EPOCH:
        _say(f"nothing to do: epoch {run.start_epoch} >= TRAIN.MAX_EPOCH {cfg.TRAIN.MAX_EPOCH}")
        return []
    if distributed.world_size() > 1:
        # Same models on every rank (broadcast); from here each rank draws its own crops, flips and
        # dropout masks (also after a resume, whose saved RNG state is rank 0's).
        seed_everything(cfg.SEED + distributed.rank() + distributed.world_size() * run.start_epoch)
    if len(run.val_loader) == 0:
        _say(f"note: the test split has fewer than {cfg.TRAIN.BATCH_SIZE} images per process; no validation")
    _say(f"DAMSM pretraining on {device} x {distributed.world_size()} process(es): {len(run.train_set)} train / "
        f"{len(run.val_set)} test images, {run.train_set.n_words} words, epochs "
        f"{run.start_epoch}..{cfg.TRAIN.MAX_EPOCH - 1} -> {run.model_dir}")
    # purge_step drops the scalars an interrupted run logged after its last saved epoch.
    writer = (SummaryWriter(str(out / "tb"), purge_step=run.start_epoch if run.start_epoch else None)
              if main else None)
    history: list[EpochStats] = []
    epochs = tqdm(range(run.start_epoch, cfg.TRAIN.MAX_EPOCH), initial=run.start_epoch,
                  total=cfg.TRAIN.MAX_EPOCH, desc="DAMSM epochs", dynamic_ncols=True,
                  disable=distributed.bar_disabled())
    try:
        for epoch in epochs:
            start = time.perf_counter()
            for loader in (run.train_loader, run.val_loader):
                if isinstance(loader.sampler, DistributedSampler):
                    loader.sampler.set_epoch(epoch)
            optimizer = torch.optim.Adam(run.params(), lr=run.lr, betas=ADAM_BETAS)
            train_w, train_s = train_epoch(run.train_loader, run.text_encoder, run.image_encoder,
                                           optimizer, device, desc=f"epoch {epoch}")
            val_w, val_s = evaluate(run.val_loader, run.text_encoder, run.image_encoder, device)
            stats = EpochStats(epoch, run.lr, train_w, train_s, val_w, val_s, time.perf_counter() - start)
            history.append(stats)
            if not all(math.isfinite(v) for v in (train_w, train_s)):
                raise SSAGANError(f"DAMSM losses became non-finite at epoch {epoch} "
                                  f"(word {train_w}, sentence {train_s}); lower TRAIN.ENCODER_LR.")
            if writer is not None:
                writer.add_scalar("train/word_loss", train_w, epoch)
                writer.add_scalar("train/sent_loss", train_s, epoch)
                if val_w is not None:
                    writer.add_scalar("val/word_loss", val_w, epoch)
                    writer.add_scalar("val/sent_loss", val_s, epoch)
                writer.add_scalar("lr", run.lr, epoch)
                writer.flush()
            _say(f"epoch {epoch:4d} | train word {train_w:.3f} sent {train_s:.3f} | "
                f"val word {_fmt(val_w)} sent {_fmt(val_s)} | lr {run.lr:.6f} | {stats.seconds:.1f}s")
            run.lr = next_lr(run.lr, cfg.TRAIN.ENCODER_LR)
            if main:
                run.save(epoch, run.lr)
    finally:
        epochs.close()
        if writer is not None:
            writer.close()
    return history


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Command-line entry (``python DAMSM.py``)."""
    parser = base_parser("Pretrain the DAMSM text and image encoders (AttnGAN pretrain_DAMSM.py).",
                         "cfg/DAMSM/bird.yml")

    def run(_: argparse.Namespace) -> None:
        distributed.init_distributed(cfg.CUDA, cfg.GPU_ID)
        try:
            pretrain()
        finally:
            distributed.cleanup()

    run_main(run, parser, argv)

