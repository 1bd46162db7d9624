"""SSA-GAN training, shared by ``main.py`` and ``main_finetune.py``: the algorithm of one iteration.

Two modes, one step function (docs/ORIGINAL.md, "Training"):
  * ``main``: DAMSM text and image encoders frozen (eval mode); generator loss weight 0.05 on DAMSM.
  * ``finetune``: both encoders in train mode with their own Adam (lr 4e-5, betas (0, 0.9)), updated
    by a DAMSM step on the *real* images inside every iteration; generator DAMSM weight 0.1.

Per iteration, in the released order: D on real/mismatched pairs, G forward, [encoder step], D on
fakes, D step #1 (hinge), D step #2 (MA-GP on real matched pairs), G step (hinge + DAMSM on fakes).
The loop, the run folder, resuming and saving are the shared skeleton's (``miscc/train/loop.py``);
optional parts (EMA generator, fine-tuned encoders) are components of that skeleton.

Outputs go to ``OUTPUT_DIR/<CONFIG_NAME>/`` (``miscc/run/layout.py``): ``models/`` (released-format
``netG_%03d.pth`` ... and ``latest.pth``, the full training state), ``tb/``, ``images/``, ``config.yaml``.
The epoch grids and the evaluation every TRAIN.EVAL_INTERVAL epochs (``metrics.jsonl``, ``best.json``,
``netG_best.pth``) are ``miscc/watch/evaluation.py``'s.
"""
from __future__ import annotations

import copy
from typing import Optional

import torch

from DAMSM import encode_text
from datasets import Batch, build_transform
from miscc.run import data_identity, distributed
from miscc.run.checkpoint import load_checkpoint, load_text_encoder, save_released, variant_mismatch
from miscc.config import cfg
from miscc.errors import SSAGANError
from miscc.config.factory import (NOISE_DIM, build_dataset, build_discriminator, build_generator, build_image_encoder,
                           build_text_encoder, damsm_smoothing, get_device, loop_options, run_layout)
from miscc.train.losses import d_hinge_fake, d_hinge_real, damsm_terms, g_hinge, kl_divergence, ma_gp
from miscc.run.progress import say
from miscc.metrics.reference import DEFAULT_CACHE_DIR
from miscc.run.layout import BEST_TAG, LATEST_GAN, atomic_write_json, companion, epoch_from_name, image_encoder_beside
from miscc.train.loop import Component, TrainLoop
from miscc.train.precision import DiscriminatorPasses, autocast
from miscc.watch.evaluation import BEST_KINDS, EvalModels, EvalSettings, TrainingWatch
from model import residual_gates

# Released DAMSM weight in the generator loss, by entry point (TRAIN.DAMSM_WEIGHT < 0 selects it).
RELEASED_DAMSM_WEIGHT = {"main": 0.05, "finetune": 0.1}
GAN_BETAS = (0.0, 0.9)

# The variant of training states written before states recorded one: only the released one existed.
RELEASED_VARIANT = {"SSACN": True, "FUSION": "ssacn", "CA": False, "EMA": False}
# Optimiser -> the learning-rate key it follows (applied again when a resume changes it).
LR_KEYS = {"G": "GENERATOR_LR", "D": "DISCRIMINATOR_LR", "E": "FINETUNE_ENCODER_LR"}
# Optimiser -> the key of its residual gates' own learning rate (group 1 when > 0; docs/CONFIG.md).
GATE_LR_KEYS = {"G": "GENERATOR_GATE_LR", "D": "DISCRIMINATOR_GATE_LR"}


def gated_param_groups(net: torch.nn.Module, gate_lr: float) -> list:
    """Adam parameter groups: one group, as released, when ``gate_lr`` is 0; otherwise the blocks'
    residual gates (``model.residual_gates``) in a second group with their own learning rate."""
    if gate_lr <= 0:
        return list(net.parameters())
    gates = residual_gates(net)
    gate_ids = {id(p) for p in gates}
    return [{"params": [p for p in net.parameters() if id(p) not in gate_ids]},
            {"params": gates, "lr": gate_lr}]


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema = decay * ema + (1 - decay) * model for parameters; buffers (BN statistics) are copied,
    since averaging running statistics of different weights would describe neither."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def eval_settings() -> EvalSettings:
    """TRAIN.EVAL_INTERVAL and the EVAL.* keys (docs/EVALUATION.md, "During training")."""
    e = cfg.EVAL
    return EvalSettings(cfg.TRAIN.EVAL_INTERVAL, tuple(m.strip() for m in e.METRICS.split(",")), e.BEST_METRIC,
                        e.FID_NUM_IMAGES, e.BATCH_SIZE, e.DISPLAY_CAPTIONS, e.DISPLAY_NOISES, e.INCEPTION_WEIGHTS,
                        e.FID_REF, cfg.DATA_DIR, cfg.SEED, DEFAULT_CACHE_DIR, cfg.PROGRESS)


class GANTrainer(TrainLoop):
    """Builds data, models and optimisers from ``cfg``; ``train()`` runs the epochs.

    ``mode`` is ``"main"`` or ``"finetune"``; ``device`` defaults to ``get_device()``.
    """

    LATEST = LATEST_GAN
    WHAT = "GAN training"
    # The generator variant (GAN.SSACN, GAN.FUSION, TEXT.CA, EMA on/off) is checked as a whole by
    # ``load_state_extra``; the vocabulary by its fingerprint.
    FROZEN_KEYS = ("TRAIN.NF", "TREE.BASE_SIZE", "DATASET_NAME", "TEXT.EMBEDDING_DIM", "TEXT.DAMSM_NAME", "RNN_TYPE",
                   "TRAIN.DAMSM_INPUT_SIZE", "TRAIN.DAMSM_TRUNK")
    RELEASED_KEY = "TRAIN.NET_G"

    def __init__(self, mode: str = "main", device: Optional[torch.device] = None, start_over: bool = False):
        if mode not in RELEASED_DAMSM_WEIGHT:
            raise ValueError(f"mode must be one of {list(RELEASED_DAMSM_WEIGHT)}, got {mode!r}")
        super().__init__(device or get_device(), run_layout(), loop_options(), start_over)
        self.mode = mode
        self.finetune = mode == "finetune"
        weight = cfg.TRAIN.DAMSM_WEIGHT
        self.damsm_weight = RELEASED_DAMSM_WEIGHT[mode] if weight < 0 else weight
        self.smoothing = damsm_smoothing()
        self.kl_weight = cfg.TRAIN.KL_WEIGHT
        self.ema_decay = cfg.TRAIN.EMA_DECAY

        transform = build_transform(cfg.TREE.BASE_SIZE, train=True, flip=cfg.TRAIN.RANDOM_FLIP)
        self.dataset = build_dataset("train", transform=transform)
        world = distributed.world_size()
        if len(self.dataset) < cfg.TRAIN.BATCH_SIZE * world:
            raise SSAGANError(f"the train split of {cfg.DATA_DIR} has {len(self.dataset)} images, fewer "
                              f"than TRAIN.BATCH_SIZE {cfg.TRAIN.BATCH_SIZE} x {world} process(es); the last "
                              "partial batch is dropped (as in the original), so no step would run. Lower "
                              "the batch size.")
        # Fresh workers every epoch (as the original): their seeds are drawn from the main random state
        # at the epoch's start, which latest.pth restores, so a resumed run crops and flips as an
        # uninterrupted one; persistent workers would carry streams that no checkpoint holds.
        self.loader = self.make_loader(self.dataset)

        self.text_encoder = build_text_encoder(self.dataset.n_words, captions_path=self.dataset.captions_path,
                                               vocab=self.dataset.vocab_fingerprint).to(self.device)
        self.image_encoder = build_image_encoder().to(self.device)
        self.netG = build_generator().to(self.device)
        # Averaged weights for sampling: a frozen copy in eval mode that no optimiser sees.
        self.netG_ema = copy.deepcopy(self.netG).eval().requires_grad_(False) if self.ema_decay > 0 else None
        self.variant = {**self.netG.variant(), "EMA": self.netG_ema is not None}
        self.netD = build_discriminator().to(self.device)
        self.optimizers["G"] = torch.optim.Adam(gated_param_groups(self.netG, cfg.TRAIN.GENERATOR_GATE_LR),
                                                lr=cfg.TRAIN.GENERATOR_LR, betas=GAN_BETAS)
        self.optimizers["D"] = torch.optim.Adam(gated_param_groups(self.netD, cfg.TRAIN.DISCRIMINATOR_GATE_LR),
                                                lr=cfg.TRAIN.DISCRIMINATOR_LR, betas=GAN_BETAS)
        tr = cfg.TRAIN
        g_rule = lambda epoch: epoch >= tr.WARMUP_EPOCHS and epoch % tr.GSAVE_INTERVAL == 0  # noqa: E731
        d_rule = lambda epoch: epoch >= tr.WARMUP_EPOCHS and epoch % tr.DSAVE_INTERVAL == 0  # noqa: E731
        self.components = [Component("netG", self.netG, "netG", "module.", g_rule, "ddp"),
                           Component("netD", self.netD, "netD", "module.", d_rule, "broadcast")]
        if self.netG_ema is not None:
            self.components.append(Component("netG_ema", self.netG_ema, "netG_ema", "module.", g_rule, "follow"))
        if self.finetune:
            # Fine-tuning keeps the encoders in train mode for the whole run (text dropout active,
            # Inception BN on batch statistics); only the image encoder's projections are trainable.
            # The encoders travel with the generator they condition: saved at G's epochs.
            self.text_encoder.train()
            self.image_encoder.train()
            self.e_params = list(self.text_encoder.parameters()) + \
                [p for p in self.image_encoder.parameters() if p.requires_grad]
            self.optimizers["E"] = torch.optim.Adam(self.e_params, lr=cfg.TRAIN.FINETUNE_ENCODER_LR, betas=GAN_BETAS)
            self.components += [Component("text_encoder", self.text_encoder, "text_encoder", "", g_rule, "broadcast"),
                                Component("image_encoder", self.image_encoder, "image_encoder", "", g_rule,
                                          "syncbn+broadcast")]
        else:
            for enc in (self.text_encoder, self.image_encoder):
                enc.requires_grad_(False)
                enc.eval()
        self.optG, self.optD, self.optE = (self.optimizers.get(k) for k in "GDE")
        self.d_params = list(self.netD.parameters())
        self.setup_processes()
        self._setup_parallel_and_precision()
        size = cfg.TREE.BASE_SIZE
        self.watch = TrainingWatch(eval_settings(), self.layout, self.device, size, lambda: build_dataset(
            "test", transform=build_transform(size, train=False), every_caption=True))

    def describe(self) -> str:
        return (f"mode {self.mode}, {len(self.dataset)} train images of {self.dataset.data_dir}, vocabulary "
                f"{self.dataset.n_words} words ({self.dataset.vocab_fingerprint[:12]})")

    def _setup_parallel_and_precision(self) -> None:
        """DDP wrapping of G, mixed precision, memory format and compilation (docs/SCALING.md).

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
            # One G forward and one plain backward per iteration: what DDP supports.
            self.g_train = distributed.DistributedDataParallel(
                self.netG, device_ids=[self.device.index] if cuda else None)
        if cfg.TRAIN.COMPILE:
            self.g_train = torch.compile(self.g_train)
            self.d_trunk = torch.compile(self.netD)
        self.amp_dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[cfg.TRAIN.AMP]
        self.d = DiscriminatorPasses(self.netD, self.d_trunk, self.device.type, self.amp_dtype)
        # One scaler per optimizer, updated after every step (D steps twice per iteration, and a
        # GradScaler allows one step per optimizer between updates). The MA-GP graph is fp32 under fp16
        # (see DiscriminatorPasses.gp_logits): scaling it by a power of two and unscaling its gradients is exact.
        self.scalers = {name: torch.amp.GradScaler(self.device.type, enabled=cfg.TRAIN.AMP == "fp16")
                        for name in ("D", "G", "E")}

    # --- checkpoints ---------------------------------------------------------------------------
    def state_extra(self) -> dict:
        extra = {"mode": self.mode, "variant": self.variant, "vocab": self.dataset.vocab_fingerprint,
                 data_identity.STATE_KEY: self.data_identity()}
        if cfg.TRAIN.AMP == "fp16":  # so that a resume does not restart the loss scales at 2^16
            extra["scalers"] = {name: s.state_dict() for name, s in self.scalers.items()}
        return extra

    def load_state_extra(self, state: dict, path: str) -> None:
        if state.get("mode") != self.mode:
            raise SSAGANError(f"{path} was written by a '{state.get('mode')}' run, this is a '{self.mode}' "
                              f"run; use the matching entry point or another CONFIG_NAME.")
        saved = state.get("variant", RELEASED_VARIANT)
        if saved != self.variant:
            raise variant_mismatch(path, saved, self.variant)
        self.dataset.check_fingerprint(state.get("vocab"), path)
        data_identity.check_identity(state.get(data_identity.STATE_KEY), self.data_identity(), path)
        for name, key in GATE_LR_KEYS.items():
            saved_groups = len(state.get(f"opt{name}", {}).get("param_groups", [None]))
            if saved_groups != len(self.optimizers[name].param_groups):
                said = "on" if saved_groups > 1 else "off (0)"
                raise SSAGANError(f"{path} was trained with TRAIN.{key} {said}, this config turns it "
                                  f"{'off (0)' if saved_groups > 1 else 'on'}: the saved Adam state has "
                                  f"{saved_groups} parameter group(s). Set it back (a new value > 0 is fine "
                                  "when it was on), or train a new run under another CONFIG_NAME.")
        for name, scaler_state in state.get("scalers", {}).items():
            if self.scalers[name].is_enabled():
                self.scalers[name].load_state_dict(scaler_state)

    def data_identity(self) -> dict:
        return data_identity.split_identity(self.dataset.filenames, self.dataset.data_dir)

    def apply_changes(self, changes: dict[str, list]) -> None:
        for name, opt in self.optimizers.items():
            # Group 0 holds the network (all of it, as released); group 1 its gates when they have their own lr.
            if f"TRAIN.{LR_KEYS[name]}" in changes:
                opt.param_groups[0]["lr"] = cfg.TRAIN[LR_KEYS[name]]
            if name in GATE_LR_KEYS and f"TRAIN.{GATE_LR_KEYS[name]}" in changes:
                opt.param_groups[1]["lr"] = cfg.TRAIN[GATE_LR_KEYS[name]]

    def save_released(self, component: Component, epoch: int) -> None:
        vocab = self.dataset.vocab_fingerprint if component.released == "text_encoder" else None
        save_released(component.module, self.layout.gan_snapshot(component.released, epoch), component.prefix,
                      vocab=vocab)

    def released_start(self) -> str:
        return cfg.TRAIN.NET_G

    def start_from_released(self, net_g: str) -> None:
        """Start from released files: netG (+ netD, EMA, encoders beside it); fresh optimisers."""
        epoch = epoch_from_name(net_g)
        pair = [companion(net_g, kind) for kind in ("text_encoder", "image_encoder")]
        if self.finetune and pair[0].is_file() != pair[1].is_file():  # before loading: the likely cause first
            raise SSAGANError(f"{pair[0]} and {pair[1]} come as a pair: one is missing. Put both fine-tuned "
                              "encoders beside the generator, or neither (then the encoders start from "
                              "TEXT.DAMSM_NAME).")
        load_checkpoint(self.netG, net_g)
        loaded = ["netG"]
        for c in (c for c in self.components if c.module is not self.netG):
            path = companion(net_g, c.released)
            if c.name == "netG_ema" and not path.is_file():
                c.module.load_state_dict(self.netG.state_dict())  # the average restarts from netG
            elif c.name == "text_encoder" and path.is_file():
                load_text_encoder(c.module, path, self.dataset.n_words, self.dataset.captions_path,
                                  self.dataset.vocab_fingerprint)
                loaded.append(c.name)
            elif path.is_file():
                load_checkpoint(c.module, path)
                loaded.append(c.name)
            elif c.name == "netD":
                say(f"note: {path} not found; netD starts from scratch.")
        if self.finetune and "text_encoder" not in loaded:
            say(f"note: no fine-tuned encoders beside {net_g} (a generator trained by main.py): the encoders "
                f"start from TEXT.DAMSM_NAME = {cfg.TEXT.DAMSM_NAME}, as the released main_finetune.py did.")
        self.start_epoch = epoch + 1
        self.start_note = f"starts from {net_g} ({', '.join(loaded)}) at epoch {self.start_epoch}"

    # --- one iteration -------------------------------------------------------------------------
    def autocast(self) -> torch.autocast:
        return autocast(self.device.type, self.amp_dtype)

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
        """LAMBDA-weighted DAMSM loss of ``imgs`` against the captions, over the global batch under torchrun.

        The value is the global loss times world_size(): each rank back-propagates through its own
        images and captions only, and the mean over ranks (DDP, ``all_reduce_grads``) of those parts
        times world_size() is their sum, the global loss's gradient. 1x in one process.
        """
        terms = damsm_terms(*self.encode_images(imgs), words, sent, cap_lens, class_ids, self.smoothing)
        return terms.weighted(self.smoothing.lambda_) * distributed.world_size()

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

    def step(self, data: Batch) -> dict:
        real, cap_lens, class_ids = data.imgs[0], data.cap_lens, data.class_ids
        batch = real.size(0)
        if self.finetune:
            words, sent = encode_text(self.text_encoder, data.captions, cap_lens)
            words_de, sent_de = words.detach(), sent.detach()
        else:
            with torch.no_grad():
                words_de, sent_de = encode_text(self.text_encoder, data.captions, cap_lens)

        feats_real = self.d.features(real)
        err_real = d_hinge_real(self.d.cond(feats_real, sent_de))
        # Mismatch: real image i with the sentence of item i+1 of the length-sorted batch.
        err_mis = d_hinge_fake(self.d.cond(feats_real[: batch - 1], sent_de[1:batch]))

        noise = torch.randn(batch, NOISE_DIM).to(self.device)
        fake, _ = self.generate(noise, sent_de)

        stats = {}
        if self.finetune:
            err_enc = self.damsm(real, words, sent, cap_lens, class_ids)
            self.update(self.optE, err_enc, "E", self.e_params)
            stats["errE/DAMSM_real"] = err_enc.detach() / distributed.world_size()

        err_fake = d_hinge_fake(self.d.logits(fake.detach(), sent_de))
        err_d = err_real + (err_fake + err_mis) / 2.0
        self.update(self.optD, err_d, "D", self.d_params)

        gp = ma_gp(self.d.gp_logits, real, sent_de)
        self.update(self.optD, gp, "D", self.d_params)

        err_g = g_hinge(self.d.logits(fake, sent_de))
        err_g_total = err_g
        g_terms = {}
        if self.damsm_weight > 0:  # 0 (no-DAMSM ablation, DF-GAN): not even the image-encoder pass
            damsm = self.damsm(fake, words_de, sent_de, cap_lens, class_ids)
            err_g_total = err_g_total + self.damsm_weight * damsm
            g_terms["errG/DAMSM"] = damsm.detach() / distributed.world_size()
        if self.netG.ca_net is not None:
            # The bare module recomputes the (mu, logvar) of the G forward: same values, same gradients.
            kl = kl_divergence(*self.netG.ca_net.encode(sent_de))
            err_g_total = err_g_total + self.kl_weight * kl
            g_terms["errG/KL"] = kl.detach()
        self.update(self.optG, err_g_total, "G")
        if self.netG_ema is not None:
            update_ema(self.netG_ema, self.netG, self.ema_decay)
        self.step_count += 1

        stats.update({"errD/d_loss": err_d.detach(), "errD/real": err_real.detach(),
                      "errD/mismatch": err_mis.detach(), "errD/fake": err_fake.detach(),
                      "errD/MAGP": gp.detach(), "errG/g_loss": err_g.detach(),
                      **g_terms, "errG/total": err_g_total.detach()})
        return stats

    # --- the end of an epoch: logging, the epoch grid, evaluation, the best epoch -----------------
    def begin_epoch(self, epoch: int) -> None:
        if epoch == self.start_epoch:  # after restore(): the run folder and the loaded state are final
            record = self.watch.start(self.start_epoch)
            if record is not None:
                self.write_best(record)
        self.netG.train()
        self.netD.train()

    def end_epoch(self, epoch: int, means: dict[str, float], seconds: float, writer) -> None:
        if writer is not None:
            for k, v in means.items():
                writer.add_scalar(k, v, epoch)
            say(f"[{epoch}/{self.options.max_epoch}] " + " ".join(
                f"{k.split('/')[-1]} {v:.3f}" for k, v in means.items()) + f" ({seconds:.1f}s)")
        try:
            self.watch.end_epoch(epoch, self.last_epoch(), self.step_count, seconds, writer, self.eval_models())
        except (SSAGANError, OSError, RuntimeError) as e:  # user input, disk, device (e.g. out of memory)
            raise self.keep_epoch_after_failed_watch(epoch, e)
        if writer is not None:
            writer.flush()

    def keep_epoch_after_failed_watch(self, epoch: int, error: Exception) -> Exception:
        """The epoch grid or evaluation of a trained epoch failed: save the epoch first (latest.pth and its
        snapshots), so the failure costs the evaluation, never the training; return what to raise."""
        self.save(epoch)
        kept = (f"epoch {epoch}'s training is saved ({self.latest}): after fixing this, --resume continues at "
                f"epoch {epoch + 1} (epoch {epoch} keeps no evaluation)")
        if isinstance(error, SSAGANError):
            return SSAGANError(f"{error} Nothing is lost: {kept}.")
        say(f"the epoch grid / evaluation of epoch {epoch} failed; {kept}.")
        return error

    def eval_models(self) -> EvalModels:
        """The generator that is sampled (EMA when on) and the encoders it is conditioned on."""
        if self.finetune:
            source = f"fine-tuned in this run ({self.layout.models})"
            text, image = source, source
        else:
            text, image = cfg.TEXT.DAMSM_NAME, str(image_encoder_beside(cfg.TEXT.DAMSM_NAME))
        ema = self.netG_ema is not None
        return EvalModels(self.netG_ema if ema else self.netG, "netG_ema" if ema else "netG", self.text_encoder,
                          self.image_encoder, text, image)

    def save(self, epoch: int) -> None:
        super().save(epoch)
        # A new best epoch's files follow its training state: a resume never redoes an epoch whose
        # weights are kept as the best (miscc/watch/evaluation.py).
        record = self.watch.take_pending_best()
        if record is not None:
            self.write_best(record)

    def write_best(self, record: dict) -> None:
        """``netG_best.pth`` (+ EMA, + fine-tuned encoders) in the released format, then best.json."""
        if not distributed.is_main():
            return
        kept = [c for c in self.components if c.released in BEST_KINDS]
        for c in kept:
            self.save_released(c, BEST_TAG)
        atomic_write_json(self.layout.best, {**record, "files": [self.layout.gan_snapshot(c.released, BEST_TAG).name
                                                                  for c in kept]})

    def train(self):
        root = super().train()
        self.watch.report()
        return root
