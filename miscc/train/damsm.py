"""DAMSM pretraining: the text and image encoders trained with the word + sentence matching losses.

    python DAMSM.py --cfg cfg/DAMSM/bird.yml [--gpu -1] [--data_dir D] [--manualSeed N] [--resume]
                    [--opts KEY VALUE ...]

Follows AttnGAN's ``pretrain_DAMSM.py`` (docs/ORIGINAL.md, "DAMSM pretraining"): both encoders in train mode (text dropout on,
Inception BatchNorm statistics updated although the trunk weights stay frozen); per batch
loss = w0 + w1 + s0 + s1; grad-norm clipping of the text encoder only (TRAIN.RNN_GRAD_CLIP); Adam
(betas 0.5, 0.999) over the text encoder and the trainable image projections, **created anew every
epoch** so its moments restart each epoch (this shaped the released encoders, so it is kept); the lr
starts at TRAIN.ENCODER_LR and is multiplied by 0.98 after every epoch while it is above a tenth of
that. Epochs are 0-based, 0 .. MAX_EPOCH-1; validation on the test split after each epoch.

Outputs under ``OUTPUT_DIR/<CONFIG_NAME>/``: ``models/text_encoder<epoch>.pth`` and
``models/image_encoder<epoch>.pth`` (released format: plain state dicts) whenever
epoch % SNAPSHOT_INTERVAL == 0, ``models/latest_damsm.pth`` (the training state, every epoch),
``tb/`` (TensorBoard) and ``config.yaml``. The loop, run folder and resume chain are the shared skeleton's
(``miscc/train/loop.py``).

Deliberate differences from the original (docs/DAMSM.md explains them):
  * the last epoch's encoders are always written (the original's ``epoch == MAX_EPOCH`` test never
    held, so a run whose length is not a multiple of the interval lost its last epochs);
  * the validation losses are averaged over the batches actually evaluated (the original summed 51
    batches and divided by 50);
  * resuming: ``latest_damsm.pth`` restores weights, lr, epoch and RNG states; a TRAIN.NET_E file
    resumes at its epoch + 1 like the original, but with the lr the schedule has reached by then
    (the original restarted at ENCODER_LR);
  * PyTorch-era fixes (docs/ORIGINAL.md): ``.item()`` instead of ``loss[0]``, ``Resize``,
    ``clip_grad_norm_``; no CUDA literals; the attention-map images of the original are not drawn.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from DAMSM import CNN_ENCODER, RNN_ENCODER, encode_text
from datasets import Batch, build_transform
from miscc.run import data_identity, distributed
from miscc.run.checkpoint import load_checkpoint, load_text_encoder, save_released
from miscc.config import cfg
from miscc.errors import SSAGANError
from miscc.run.encoders import image_encoder
from miscc.config.factory import (build_dataset, build_image_encoder, build_text_encoder, damsm_smoothing, encoder_spec,
                           get_device, loop_options, run_layout)
from miscc.train.losses import DAMSMSmoothing, DAMSMTerms, damsm_terms
from miscc.run.progress import say
from miscc.run.seeding import seed_everything
from miscc.run.layout import LATEST_DAMSM, damsm_epoch_from_name, image_encoder_beside
from miscc.train.loop import Component, TrainLoop

ADAM_BETAS = (0.5, 0.999)
LR_DECAY = 0.98
# The original evaluates test batches 0..50 and then stops: a cheap, fixed-cost validation.
VAL_MAX_BATCHES = 51
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


def damsm_batch_losses(text_encoder: RNN_ENCODER, image_encoder: CNN_ENCODER, batch: Batch,
                       smoothing: DAMSMSmoothing = DAMSMSmoothing()) -> DAMSMTerms:
    """(w0 + w1, s0 + s1) of one batch on the encoders' device, same-class negatives masked as in the
    original; under torchrun those of the global batch (``losses.damsm_terms``)."""
    region_features, cnn_code = image_encoder(batch.imgs[-1])
    words_emb, sent_emb = encode_text(text_encoder, batch.captions, batch.cap_lens)
    return damsm_terms(region_features, cnn_code, words_emb, sent_emb, batch.cap_lens, batch.class_ids, smoothing)


@torch.no_grad()
def evaluate(loader: DataLoader, text_encoder: RNN_ENCODER, image_encoder: CNN_ENCODER,
             device: torch.device, smoothing: DAMSMSmoothing = DAMSMSmoothing()
             ) -> tuple[Optional[float], Optional[float]]:
    """Mean (word, sentence) loss over at most VAL_MAX_BATCHES test batches, encoders in eval mode."""
    text_encoder.eval()
    image_encoder.eval()
    word_sum = sent_sum = 0.0
    count = 0
    for batch in loader:
        w_loss, s_loss = damsm_batch_losses(text_encoder, image_encoder, batch.to(device), smoothing)
        word_sum += w_loss.item()
        sent_sum += s_loss.item()
        count += 1
        if count == VAL_MAX_BATCHES:
            break
    if count == 0:
        return None, None
    return word_sum / count, sent_sum / count


class DAMSMTrainer(TrainLoop):
    """Encoders, data and lr schedule of one pretraining run; ``train()`` runs it."""

    LATEST = LATEST_DAMSM
    WHAT = "DAMSM pretraining"
    FROZEN_KEYS = ("TEXT.EMBEDDING_DIM", "RNN_TYPE", "TRAIN.DAMSM_INPUT_SIZE", "DATASET_NAME",
                   "TRAIN.DAMSM_IMAGENET", "TRAIN.DAMSM_TRUNK")
    RELEASED_KEY = "TRAIN.NET_E"

    def __init__(self, device: torch.device, start_over: bool = False):
        super().__init__(device, run_layout(), loop_options(), start_over)
        transform = build_transform(cfg.TREE.BASE_SIZE, train=True, flip=cfg.TRAIN.RANDOM_FLIP)
        # Data first: a wrong DATA_DIR fails before any model is built or any file is written.
        self.train_set = build_dataset("train", transform)
        self.val_set = build_dataset("test", transform)
        self.loader = self.make_loader(self.train_set)
        self.val_loader = self.make_loader(self.val_set)
        if len(self.loader) == 0:
            raise SSAGANError(
                f"the train split of {cfg.DATA_DIR} has {len(self.train_set)} images, fewer than "
                f"TRAIN.BATCH_SIZE = {cfg.TRAIN.BATCH_SIZE} (batches are full, drop_last); lower it "
                f"with --opts TRAIN.BATCH_SIZE N.")
        self.smoothing = damsm_smoothing()
        self.lr = cfg.TRAIN.ENCODER_LR
        self.history: list[EpochStats] = []
        self.text_encoder = build_text_encoder(self.train_set.n_words, path="")
        resuming = self.options.restore and self.latest.is_file()
        try:
            # A resumed or released start replaces every trunk weight: no ImageNet file needed then.
            self.image_encoder = image_encoder(encoder_spec()) if resuming or cfg.TRAIN.NET_E \
                else build_image_encoder(path="")
        except SSAGANError as e:
            raise SSAGANError(f"{e}\nWithout those weights, TRAIN.DAMSM_IMAGENET False trains on a "
                              "random frozen trunk (a demo setting, see docs/DAMSM.md).") from e
        self.text_encoder.to(device)
        self.image_encoder.to(device)
        rule = lambda epoch: epoch % cfg.TRAIN.SNAPSHOT_INTERVAL == 0 or epoch == cfg.TRAIN.MAX_EPOCH - 1  # noqa: E731
        self.components = [Component("text_encoder", self.text_encoder, "text_encoder", "", rule, "broadcast"),
                           # The Inception BNs run in train mode: statistics of the global batch.
                           Component("image_encoder", self.image_encoder, "image_encoder", "", rule,
                                     "syncbn+broadcast")]

    def first_epoch(self) -> int:
        return 0

    def last_epoch(self) -> int:
        return self.options.max_epoch - 1

    def describe(self) -> str:
        extra = "" if len(self.val_loader) else (f"; note: the test split has fewer than {cfg.TRAIN.BATCH_SIZE} "
                                                 "images per process, no validation")
        return (f"{len(self.train_set)} train / {len(self.val_set)} test images, {self.train_set.n_words} words"
                + extra)

    # --- state ---------------------------------------------------------------------------------
    def state_extra(self) -> dict:
        return {"format": STATE_FORMAT, "lr": self.lr, "vocab": self.train_set.vocab_fingerprint,
                data_identity.STATE_KEY: self._data_identity()}

    def _data_identity(self) -> dict:
        return data_identity.split_identity(self.train_set.filenames, self.train_set.data_dir)

    def load_state_extra(self, state: dict, path: str) -> None:
        if state.get("format") != STATE_FORMAT:
            raise SSAGANError(f"{path} is not a DAMSM pretraining state written by this code; "
                              "move it away or start over with --start_over.")
        self.train_set.check_fingerprint(state.get("vocab"), path)
        data_identity.check_identity(state.get(data_identity.STATE_KEY), self._data_identity(), path)
        self.lr = state["lr"]

    def apply_changes(self, changes: dict[str, list]) -> None:
        if "TRAIN.ENCODER_LR" in changes:  # continue on the new schedule where the run stands
            self.lr = lr_at_epoch(self.start_epoch, cfg.TRAIN.ENCODER_LR)

    def save_released(self, component: Component, epoch: int) -> None:
        vocab = self.train_set.vocab_fingerprint if component.released == "text_encoder" else None
        save_released(component.module, self.layout.damsm_snapshot(component.released, epoch), vocab=vocab)

    def released_start(self) -> str:
        return cfg.TRAIN.NET_E

    def start_from_released(self, net_e: str) -> None:
        epoch = damsm_epoch_from_name(net_e)
        load_text_encoder(self.text_encoder, net_e, self.train_set.n_words, self.train_set.captions_path,
                          self.train_set.vocab_fingerprint)
        load_checkpoint(self.image_encoder, image_encoder_beside(net_e))
        self.start_epoch = epoch + 1
        self.lr = lr_at_epoch(self.start_epoch, cfg.TRAIN.ENCODER_LR)
        self.start_note = f"starts from {net_e} (epoch {epoch}) at epoch {self.start_epoch}, lr {self.lr:.6g}"

    # --- one epoch -----------------------------------------------------------------------------
    def params(self) -> list[nn.Parameter]:
        return list(self.text_encoder.parameters()) + [
            p for p in self.image_encoder.parameters() if p.requires_grad]

    def begin_epoch(self, epoch: int) -> None:
        self._epoch_start = time.perf_counter()
        if isinstance(self.val_loader.sampler, DistributedSampler):
            self.val_loader.sampler.set_epoch(epoch)
        # A new Adam every epoch, as the original: its moments restart each epoch.
        self.optimizer = torch.optim.Adam(self.params(), lr=self.lr, betas=ADAM_BETAS)
        self.text_encoder.train()
        self.image_encoder.train()

    def step(self, batch: Batch) -> dict[str, torch.Tensor]:
        self.optimizer.zero_grad(set_to_none=True)
        w_loss, s_loss = damsm_batch_losses(self.text_encoder, self.image_encoder, batch, self.smoothing)
        # x world_size, then averaged: the sum of the ranks' parts, the global batch's gradient
        ((w_loss + s_loss) * distributed.world_size()).backward()
        distributed.all_reduce_grads(self.params())
        # Only the LSTM is clipped (an exploding-gradient guard); the image projections are not.
        nn.utils.clip_grad_norm_(self.text_encoder.parameters(), cfg.TRAIN.RNN_GRAD_CLIP)
        self.optimizer.step()
        self.step_count += 1
        # Summed on the device in float64 (the same sums as adding .item()s): no host sync per step.
        return {"word": w_loss.detach().double(), "sent": s_loss.detach().double()}

    def after_step(self, bar, sums: dict, n: int) -> None:
        if n % POSTFIX_EVERY == 0 or n == len(self.loader):
            bar.set_postfix(word=f"{float(sums['word']) / n:.3f}", sent=f"{float(sums['sent']) / n:.3f}")

    def end_epoch(self, epoch: int, means: dict[str, float], seconds: float, writer) -> None:
        train_w, train_s = means["word"], means["sent"]
        val_w, val_s = evaluate(self.val_loader, self.text_encoder, self.image_encoder, self.device, self.smoothing)
        stats = EpochStats(epoch, self.lr, train_w, train_s, val_w, val_s, time.perf_counter() - self._epoch_start)
        self.history.append(stats)
        if not all(math.isfinite(v) for v in (train_w, train_s)):
            raise SSAGANError(f"DAMSM losses became non-finite at epoch {epoch} "
                              f"(word {train_w}, sentence {train_s}); lower TRAIN.ENCODER_LR.")
        if writer is not None:
            writer.add_scalar("train/word_loss", train_w, epoch)
            writer.add_scalar("train/sent_loss", train_s, epoch)
            if val_w is not None:
                writer.add_scalar("val/word_loss", val_w, epoch)
                writer.add_scalar("val/sent_loss", val_s, epoch)
            writer.add_scalar("lr", self.lr, epoch)
            writer.flush()
        say(f"epoch {epoch:4d} | train word {train_w:.3f} sent {train_s:.3f} | "
            f"val word {_fmt(val_w)} sent {_fmt(val_s)} | lr {self.lr:.6f} | {stats.seconds:.1f}s")
        self.lr = next_lr(self.lr, cfg.TRAIN.ENCODER_LR)


def _fmt(x: Optional[float]) -> str:
    return "  n/a" if x is None else f"{x:.3f}"


def pretrain(device: Optional[torch.device] = None, start_over: bool = False) -> list[EpochStats]:
    """Run DAMSM pretraining as the global ``cfg`` describes; returns the stats of the epochs run."""
    seed_everything(cfg.SEED)
    trainer = DAMSMTrainer(device or get_device(), start_over)
    trainer.train()
    return trainer.history
