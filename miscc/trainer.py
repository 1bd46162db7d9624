"""The SSA-GAN training loop, shared by ``main.py`` and ``main_finetune.py``.

Two modes, one step function (REFERENCE §7-8):
  * ``main``: DAMSM text and image encoders frozen (eval mode); generator loss weight 0.05 on DAMSM.
  * ``finetune``: both encoders in train mode with their own Adam (lr 4e-5, betas (0, 0.9)), updated
    by a DAMSM step on the *real* images inside every iteration; generator DAMSM weight 0.1.

Per iteration, in the released order: D on real/mismatched pairs, G forward, [encoder step], D on
fakes, D step #1 (hinge), D step #2 (MA-GP on real matched pairs), G step (hinge + DAMSM on fakes).

Outputs go to ``OUTPUT_DIR/<CONFIG_NAME>/``: ``models/`` (released-format ``netG_%03d.pth`` ...
and ``latest.pth``, the full training state), ``tb/`` (TensorBoard), ``images/`` (per-epoch grids)
and ``config.yaml`` (the resolved config).
"""
from __future__ import annotations

import argparse
import copy
import os
import time
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch.utils.data import DataLoader, DistributedSampler
from torchvision.utils import make_grid, save_image
from tqdm import tqdm

from datasets import TextDataset, build_transform, prepare_data
from miscc import distributed
from miscc.checkpoint import (atomic_save, load_checkpoint, load_file, load_into, rng_state, save_released,
                              set_rng_state, variant_mismatch)
from miscc.cli import base_parser, run_dir, run_main
from miscc.config import cfg, cfg_to_dict, save_cfg
from miscc.errors import SSAGANError
from miscc.losses import DAMSM_loss, d_hinge_fake, d_hinge_real, g_hinge, kl_divergence, ma_gp
from miscc.utils import (NOISE_DIM, build_discriminator, build_generator, build_image_encoder,
                         build_text_encoder, encode_text, epoch_from_name, get_device, seed_everything,
                         update_ema)
from sync_batchnorm import convert_sync_batchnorm

# Released DAMSM weight in the generator loss, by entry point (TRAIN.DAMSM_WEIGHT < 0 selects it).
RELEASED_DAMSM_WEIGHT = {"main": 0.05, "finetune": 0.1}
GAN_BETAS = (0.0, 0.9)
# The variant of training states written before states recorded one: only the released one existed.
RELEASED_VARIANT = {"SSACN": True, "FUSION": "ssacn", "CA": False, "EMA": False}
LATEST = "latest.pth"


class GANTrainer:
    """Builds data, models and optimisers from ``cfg`` and runs ``train()``.

    ``mode`` is ``"main"`` or ``"finetune"``; ``device`` defaults to ``get_device()``.
    """

    def __init__(self, mode: str = "main", device: Optional[torch.device] = None):
        if mode not in RELEASED_DAMSM_WEIGHT:
            raise ValueError(f"mode must be one of {list(RELEASED_DAMSM_WEIGHT)}, got {mode!r}")
        self.mode = mode
        self.finetune = mode == "finetune"
        self.device = device or get_device()
        self.out = run_dir()
        self.models_dir = self.out / "models"
        weight = cfg.TRAIN.DAMSM_WEIGHT
        self.damsm_weight = RELEASED_DAMSM_WEIGHT[mode] if weight < 0 else weight

        self.dataset = TextDataset(cfg.DATA_DIR, "train", cfg.TREE.BASE_SIZE,
                                   transform=build_transform(cfg.TREE.BASE_SIZE, train=True))
        world = distributed.world_size()
        if len(self.dataset) < cfg.TRAIN.BATCH_SIZE * world:
            raise SSAGANError(f"the train split of {cfg.DATA_DIR} has {len(self.dataset)} images, fewer "
                              f"than TRAIN.BATCH_SIZE {cfg.TRAIN.BATCH_SIZE} x {world} process(es); the last "
                              "partial batch is dropped (as in the original), so no step would run. Lower "
                              "the batch size.")
        workers = cfg.WORKERS
        # Several processes: each reads its own 1/world of a shared per-epoch permutation (set_epoch);
        # TRAIN.BATCH_SIZE is per process. One process keeps the plain shuffled loader (same draws).
        self.sampler = DistributedSampler(self.dataset, shuffle=True, seed=cfg.SEED, drop_last=True) \
            if world > 1 else None
        self.loader = DataLoader(self.dataset, batch_size=cfg.TRAIN.BATCH_SIZE, shuffle=self.sampler is None,
                                 sampler=self.sampler, drop_last=True, num_workers=workers,
                                 persistent_workers=workers > 0, pin_memory=self.device.type == "cuda")

        self.text_encoder = build_text_encoder(self.dataset.n_words,
                                               captions_path=self.dataset.captions_path).to(self.device)
        self.image_encoder = build_image_encoder().to(self.device)
        self.netG = build_generator().to(self.device)
        self.ema_decay = cfg.TRAIN.EMA_DECAY
        if not 0.0 <= self.ema_decay < 1.0:
            raise SSAGANError(f"TRAIN.EMA_DECAY must be in [0, 1) (0 = off, e.g. 0.999), "
                              f"got {self.ema_decay}.")
        # Averaged weights for sampling: a frozen copy in eval mode that no optimiser sees.
        self.netG_ema = copy.deepcopy(self.netG).eval().requires_grad_(False) if self.ema_decay > 0 else None
        self.variant = {**self.netG.variant(), "EMA": self.netG_ema is not None}
        self.netD = build_discriminator().to(self.device)
        self.optG = torch.optim.Adam(self.netG.parameters(), lr=cfg.TRAIN.GENERATOR_LR, betas=GAN_BETAS)
        self.optD = torch.optim.Adam(self.netD.parameters(), lr=cfg.TRAIN.DISCRIMINATOR_LR, betas=GAN_BETAS)
        if self.finetune:
            # Fine-tuning keeps the encoders in train mode for the whole run (text dropout active,
            # Inception BN on batch statistics); only the image encoder's projections are trainable.
            self.text_encoder.train()
            self.image_encoder.train()
            params = list(self.text_encoder.parameters()) + \
                [p for p in self.image_encoder.parameters() if p.requires_grad]
            self.optE = torch.optim.Adam(params, lr=cfg.TRAIN.FINETUNE_ENCODER_LR, betas=GAN_BETAS)
            self.e_params = params
        else:
            for enc in (self.text_encoder, self.image_encoder):
                enc.requires_grad_(False)
                enc.eval()
            self.optE = None
        self.d_params = list(self.netD.parameters())
        self._setup_parallel_and_precision()
        self.start_epoch = 1
        self.step_count = 0

    def _setup_parallel_and_precision(self) -> None:
        """Multi-process wrapping, mixed precision, memory format and compilation (docs/SCALING.md).

        ``self.netG`` / ``self.netD`` stay the bare modules (checkpoints, logging, sampling use them);
        the step runs G through ``self.g_train`` and the D trunk through ``self.d_trunk``.
        """
        cuda = self.device.type == "cuda"
        if cuda:
            torch.backends.cudnn.benchmark = True  # fixed input sizes; the original set it too
        if cfg.TRAIN.CHANNELS_LAST:
            for module in (self.netG, self.netD, self.image_encoder):
                module.to(memory_format=torch.channels_last)
        self.g_train = self.netG
        self.d_trunk = self.netD
        if distributed.world_size() > 1:
            # Global batch statistics, as the original's BN under DataParallel; the fine-tuned image
            # encoder runs its Inception BNs in train mode, so they are synchronized too.
            convert_sync_batchnorm(self.netG)
            if self.finetune:
                convert_sync_batchnorm(self.image_encoder)
                distributed.broadcast_module(self.text_encoder)
                distributed.broadcast_module(self.image_encoder)
            distributed.broadcast_module(self.netD)
            # One G forward and one plain backward per iteration: what DDP supports.
            self.g_train = distributed.DistributedDataParallel(
                self.netG, device_ids=[self.device.index] if cuda else None)
        if cfg.TRAIN.COMPILE:
            self.g_train = torch.compile(self.g_train)
            self.d_trunk = torch.compile(self.netD)
        self.amp_dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[cfg.TRAIN.AMP]
        # One scaler per optimizer, updated after every step (D steps twice per iteration, and a
        # GradScaler allows one step per optimizer between updates). The MA-GP graph is fp32 under fp16
        # (see gp_logits): scaling it by a power of two and unscaling its gradients is exact.
        self.scalers = {name: torch.amp.GradScaler(self.device.type, enabled=cfg.TRAIN.AMP == "fp16")
                        for name in ("D", "G", "E")}

    # --- checkpoints ---------------------------------------------------------------------------
    def state_dict(self, epoch: int) -> dict:
        state = {
            "mode": self.mode, "epoch": epoch, "step": self.step_count, "config": cfg_to_dict(),
            "netG": self.netG.state_dict(), "netD": self.netD.state_dict(),
            "optG": self.optG.state_dict(), "optD": self.optD.state_dict(), "rng": rng_state(),
            "variant": self.variant,
        }
        if self.netG_ema is not None:
            state["netG_ema"] = self.netG_ema.state_dict()
        if self.finetune:
            state.update(text_encoder=self.text_encoder.state_dict(),
                         image_encoder=self.image_encoder.state_dict(), optE=self.optE.state_dict())
        if cfg.TRAIN.AMP == "fp16":  # so that a resume does not restart the loss scales at 2^16
            state["scalers"] = {name: s.state_dict() for name, s in self.scalers.items()}
        return state

    def load_training_state(self, path: Path) -> None:
        state = load_file(path, what="training state")
        if state.get("mode") != self.mode:
            raise SSAGANError(f"{path} was written by a '{state.get('mode')}' run, this is a '{self.mode}' "
                              f"run; use the matching entry point or another CONFIG_NAME.")
        saved = state.get("variant", RELEASED_VARIANT)
        if saved != self.variant:
            raise variant_mismatch(str(path), saved, self.variant)
        load_into(self.netG, state["netG"], f"{path}[netG]")
        if self.netG_ema is not None:
            load_into(self.netG_ema, state["netG_ema"], f"{path}[netG_ema]")
        load_into(self.netD, state["netD"], f"{path}[netD]")
        self.optG.load_state_dict(state["optG"])
        self.optD.load_state_dict(state["optD"])
        if self.finetune:
            load_into(self.text_encoder, state["text_encoder"], f"{path}[text_encoder]")
            load_into(self.image_encoder, state["image_encoder"], f"{path}[image_encoder]")
            self.optE.load_state_dict(state["optE"])
        for name, scaler_state in state.get("scalers", {}).items():
            if self.scalers[name].is_enabled():
                self.scalers[name].load_state_dict(scaler_state)
        set_rng_state(state["rng"])
        self.start_epoch = state["epoch"] + 1
        self.step_count = state["step"]

    def load_released(self, net_g: str) -> None:
        """Start from released files: netG (+ netD, + fine-tuned encoders when present); fresh optimisers."""
        load_checkpoint(self.netG, net_g)
        companions = [("netD", self.netD, True)]
        if self.netG_ema is not None:  # the average restarts from netG unless its own file is beside it
            self.netG_ema.load_state_dict(self.netG.state_dict())
            companions.append(("netG_ema", self.netG_ema, False))
        if self.finetune:
            companions += [("text_encoder", self.text_encoder, False), ("image_encoder", self.image_encoder, False)]
        for name, module, warn in companions:
            path = net_g.replace("netG", name)
            if os.path.isfile(path):
                load_checkpoint(module, path)
            elif warn:
                print(f"note: {path} not found; {name} starts from scratch.")
        self.start_epoch = epoch_from_name(net_g) + 1

    def restore(self) -> None:
        latest = self.models_dir / LATEST
        if cfg.RESTORE and latest.is_file():
            self.load_training_state(latest)
        elif cfg.TRAIN.NET_G:
            self.load_released(cfg.TRAIN.NET_G)
        elif cfg.RESTORE:
            raise SSAGANError(f"RESTORE is True but there is no {latest} and TRAIN.NET_G is empty: "
                              "nothing to resume from. Train without --resume, or set TRAIN.NET_G.")

    def save(self, epoch: int) -> None:
        if not distributed.is_main():
            return
        tr = cfg.TRAIN
        if epoch >= tr.WARMUP_EPOCHS and epoch % tr.GSAVE_INTERVAL == 0:
            save_released(self.netG, self.models_dir / f"netG_{epoch:03d}.pth", prefix="module.")
            if self.netG_ema is not None:
                save_released(self.netG_ema, self.models_dir / f"netG_ema_{epoch:03d}.pth", prefix="module.")
            if self.finetune:  # encoders travel with the generator they condition
                save_released(self.text_encoder, self.models_dir / f"text_encoder_{epoch:03d}.pth")
                save_released(self.image_encoder, self.models_dir / f"image_encoder_{epoch:03d}.pth")
        if epoch >= tr.WARMUP_EPOCHS and epoch % tr.DSAVE_INTERVAL == 0:
            save_released(self.netD, self.models_dir / f"netD_{epoch:03d}.pth", prefix="module.")
        atomic_save(self.state_dict(epoch), self.models_dir / LATEST)

    # --- one iteration -------------------------------------------------------------------------
    # Forwards run under autocast when TRAIN.AMP is set and hand back fp32 tensors, so that every loss
    # is computed in fp32; with AMP off ``.float()`` returns the tensor itself (bit-identical path).
    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def d_features(self, imgs: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            return self.d_trunk(imgs)

    def d_cond(self, features: torch.Tensor, sent: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            return self.netD.COND_DNET(features, sent).float()

    def d_logits(self, imgs: torch.Tensor, sent: torch.Tensor) -> torch.Tensor:
        return self.d_cond(self.d_features(imgs), sent)

    def gp_logits(self, imgs: torch.Tensor, sent: torch.Tensor) -> torch.Tensor:
        """D logits of the MA-GP pass: eager trunk (compiled graphs have no double backward), in fp32
        under fp16 AMP and in bf16 under bf16 AMP.

        fp16 input gradients underflow unless the logits are loss-scaled, and a scaled penalty turns
        inf on every step where the scale overflows (skipped step, inf in the logs); bf16 has fp32's
        range and needs no scale.
        """
        bf16 = self.amp_dtype == torch.bfloat16
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
            return self.netD.COND_DNET(self.netD(imgs), sent).float()

    def generate(self, noise: torch.Tensor, sent: torch.Tensor):
        with self.autocast():
            fake, masks = self.g_train(noise, sent)
        return fake.float(), [m.float() for m in masks]

    def encode_images(self, imgs: torch.Tensor):
        with self.autocast():
            regions, code = self.image_encoder(imgs)
        return regions.float(), code.float()

    def damsm(self, imgs: torch.Tensor, words: torch.Tensor, sent: torch.Tensor, cap_lens: torch.Tensor,
              class_ids) -> torch.Tensor:
        """DAMSM loss of ``imgs`` against the captions, over the global batch under torchrun.

        Every caption competes with every image of all ranks, as in one process with the whole batch.
        The value is the global loss times world_size(): each rank back-propagates through its own
        images and captions only, and the mean over ranks (DDP, ``all_reduce_grads``) of those parts
        times world_size() is their sum, the global loss's gradient. 1x in one process.
        """
        words, sent, cap_lens, class_ids = distributed.all_gather_captions(words, sent, cap_lens, class_ids)
        labels = torch.arange(words.size(0), device=self.device)

        def encode(x: torch.Tensor):
            return tuple(distributed.all_gather_batch(t) for t in self.encode_images(x))
        loss = DAMSM_loss(encode, imgs, labels, words, sent, labels, cap_lens, class_ids)
        return loss * distributed.world_size()

    def update(self, opt: torch.optim.Optimizer, loss: torch.Tensor, scaler: str,
               params: Optional[list] = None) -> None:
        """zero_grad, backward, step (through GradScaler ``scaler``, a no-op wrapper without fp16).

        ``params``: average their gradients over ranks before the step, for modules that DDP does not
        wrap (``distributed.all_reduce_grads`` says why); DDP averages G's gradients in backward.
        """
        opt.zero_grad(set_to_none=True)
        self.scalers[scaler].scale(loss).backward()
        if params is not None:
            distributed.all_reduce_grads(params)
        self.scalers[scaler].step(opt)
        self.scalers[scaler].update()

    def step(self, data) -> dict:
        imgs, captions, cap_lens, class_ids, _ = prepare_data(data, self.device)
        real = imgs[0]
        batch = real.size(0)
        if self.finetune:
            words, sent = encode_text(self.text_encoder, captions, cap_lens)
            words_de, sent_de = words.detach(), sent.detach()
        else:
            with torch.no_grad():
                words_de, sent_de = encode_text(self.text_encoder, captions, cap_lens)

        feats_real = self.d_features(real)
        err_real = d_hinge_real(self.d_cond(feats_real, sent_de))
        # Mismatch: real image i with the sentence of item i+1 of the length-sorted batch.
        err_mis = d_hinge_fake(self.d_cond(feats_real[: batch - 1], sent_de[1:batch]))

        noise = torch.randn(batch, NOISE_DIM).to(self.device)
        fake, masks = self.generate(noise, sent_de)

        stats = {}
        if self.finetune:
            err_enc = self.damsm(real, words, sent, cap_lens, class_ids)
            self.update(self.optE, err_enc, "E", self.e_params)
            stats["errE/DAMSM_real"] = err_enc.detach() / distributed.world_size()

        err_fake = d_hinge_fake(self.d_logits(fake.detach(), sent_de))
        err_d = err_real + (err_fake + err_mis) / 2.0
        self.update(self.optD, err_d, "D", self.d_params)

        gp = ma_gp(self.gp_logits, real, sent_de)
        self.update(self.optD, gp, "D", self.d_params)

        err_g = g_hinge(self.d_logits(fake, sent_de))
        err_g_total = err_g
        g_terms = {}
        if self.damsm_weight > 0:  # 0 (no-DAMSM ablation, DF-GAN): not even the image-encoder pass
            damsm = self.damsm(fake, words_de, sent_de, cap_lens, class_ids)
            err_g_total = err_g_total + self.damsm_weight * damsm
            g_terms["errG/DAMSM"] = damsm.detach() / distributed.world_size()
        if self.netG.ca_net is not None:
            # The bare module recomputes the (mu, logvar) of the G forward: same values, same gradients.
            kl = kl_divergence(*self.netG.ca_net.encode(sent_de))
            err_g_total = err_g_total + cfg.TRAIN.KL_WEIGHT * kl
            g_terms["errG/KL"] = kl.detach()
        self.update(self.optG, err_g_total, "G")
        if self.netG_ema is not None:
            update_ema(self.netG_ema, self.netG, self.ema_decay)
        self.step_count += 1

        stats.update({"errD/d_loss": err_d.detach(), "errD/real": err_real.detach(),
                      "errD/mismatch": err_mis.detach(), "errD/fake": err_fake.detach(),
                      "errD/MAGP": gp.detach(), "errG/g_loss": err_g.detach(),
                      **g_terms, "errG/total": err_g_total.detach()})
        self._last = (real.detach(), fake.detach(), [m.detach() for m in masks])
        return stats

    # --- logging -------------------------------------------------------------------------------
    def log_images(self, writer, epoch: int) -> None:
        real, fake, masks = self._last
        n = min(16, real.size(0))
        grids = {"images/real": make_grid(real[:n], nrow=4, normalize=True, value_range=(-1, 1)),
                 "images/fake": make_grid(fake[:n], nrow=4, normalize=True, value_range=(-1, 1))}
        size = fake.shape[-2:]
        for mask in masks:
            up = torch.nn.functional.interpolate(mask[:n], size=size, mode="nearest")
            grids[f"masks/{mask.shape[-1]}x{mask.shape[-1]}"] = make_grid(up, nrow=4, value_range=(0, 1))
        for tag, grid in grids.items():
            writer.add_image(tag, grid, epoch)
        overview = torch.cat([grids["images/real"], grids["images/fake"],
                              grids[f"masks/{size[-1]}x{size[-1]}"]], dim=2)
        save_image(overview, self.out / "images" / f"epoch_{epoch:03d}.png")

    # --- the loop ------------------------------------------------------------------------------
    def train(self) -> Path:
        """Run epochs ``start_epoch .. TRAIN.MAX_EPOCH`` (1-based); return the run folder."""
        self.restore()
        if distributed.world_size() > 1:
            # The shared seed built identical models on every rank; from here each rank draws its own
            # noise and captions (also after a resume, whose saved RNG state is rank 0's).
            seed_everything(cfg.SEED + distributed.rank() + distributed.world_size() * self.start_epoch)
        main = distributed.is_main()
        writer = None
        if main:
            from torch.utils.tensorboard import SummaryWriter
            for sub in ("models", "images", "tb"):
                (self.out / sub).mkdir(parents=True, exist_ok=True)
            save_cfg(self.out / "config.yaml")
            writer = SummaryWriter(str(self.out / "tb"))
        self.netG.train()
        self.netD.train()
        epochs = range(self.start_epoch, cfg.TRAIN.MAX_EPOCH + 1)
        for epoch in tqdm(epochs, desc="epochs", disable=not main, dynamic_ncols=True):
            start = time.time()
            sums: dict = {}
            n = 0
            if self.sampler is not None:
                self.sampler.set_epoch(epoch)  # a new shared permutation each epoch
            for data in tqdm(self.loader, desc=f"epoch {epoch}", leave=False, disable=not main,
                             dynamic_ncols=True):
                for k, v in self.step(data).items():
                    sums[k] = sums.get(k, 0.0) + v  # stays on the device: no sync per step
                n += 1
            means = {k: float(v) / n for k, v in distributed.mean_over_ranks(sums).items()}
            if main:
                for k, v in means.items():
                    writer.add_scalar(k, v, epoch)
                self.log_images(writer, epoch)
                writer.flush()
                tqdm.write(f"[{epoch}/{cfg.TRAIN.MAX_EPOCH}] " + " ".join(
                    f"{k.split('/')[-1]} {v:.3f}" for k, v in means.items()) + f" ({time.time() - start:.1f}s)")
            self.save(epoch)
        if writer is not None:
            writer.close()
        return self.out


def cli_main(mode: str, argv: Optional[Sequence[str]] = None) -> None:
    """Entry point of main.py / main_finetune.py: train, or sample when B_VALIDATION / --sample."""
    description = {"main": "Train SSA-GAN with frozen DAMSM encoders (or sample with --sample).",
                   "finetune": "Fine-tune SSA-GAN together with the DAMSM encoders (or sample)."}[mode]
    parser = base_parser(description, default_cfg="cfg/bird.yml")
    parser.add_argument("--sample", action="store_true", help="sample instead of training (= B_VALIDATION True)")
    parser.add_argument("--captions", default=None, help="text file, one caption per line, to generate from")
    parser.add_argument("--repeat", type=int, default=1, help="passes over the test captions when sampling")
    parser.add_argument("--caption_mode", choices=("every", "random"), default="every",
                        help="every test caption once (default) or one random caption per image (original)")
    parser.add_argument("--per_caption", type=int, default=4, help="samples per user caption")
    parser.add_argument("--unknown", choices=("drop", "error"), default="drop",
                        help="--captions words outside the vocabulary: drop them with a warning (default; "
                             "a line with no known word is skipped) or refuse the file")
    parser.add_argument("--masks", choices=("last", "all", "none"), default="last",
                        help="masks written: the last stage (default), every stage (upsampled to the image "
                             "size, raw sizes in samples.jsonl), or none")
    parser.add_argument("--same_noise", action="store_true",
                        help="--captions: every line gets the same --per_caption noise vectors, so rows of the "
                             "grid differ only by their text")
    parser.add_argument("--out_dir", default=None,
                        help="sample folder (default OUTPUT_DIR/<CONFIG_NAME>/samples/<netG stem>_<mode>)")

    def run(args: argparse.Namespace) -> None:
        seed_everything(cfg.SEED)
        device = distributed.init_distributed(cfg.CUDA, cfg.GPU_ID)
        try:
            if args.sample or args.captions or cfg.B_VALIDATION:
                from miscc.sampler import sample
                out = sample(mode=mode, captions_file=args.captions, repeat=args.repeat,
                             caption_mode=args.caption_mode, per_caption=args.per_caption,
                             out_dir=args.out_dir, unknown=args.unknown, masks=args.masks,
                             same_noise=args.same_noise)
                if distributed.is_main():
                    print(f"samples written to {out}")
            else:
                out = GANTrainer(mode, device).train()
                if distributed.is_main():
                    print(f"run folder: {out}")
        finally:
            distributed.cleanup()

    run_main(run, parser, argv)
