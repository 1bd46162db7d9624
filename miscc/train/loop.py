"""The skeleton shared by GAN training and DAMSM pretraining; subclasses hold the algorithm only.

What the skeleton owns, once for both trainers:
  * the run folder: a folder that already holds a training state is never overwritten by a new run
    (``--resume`` continues it, ``--start_over`` moves it aside to ``<name>.old-<time>``); temp files a
    killed writer left are removed; ``config.yaml`` is the resolved config and ``config_history.yaml``
    records what a resume changed, at which epoch;
  * components (``Component``): every module with its training-state key, its released file and save
    rule; saving, loading, resuming and the multi-process setup iterate over them;
  * the data loader with the distributed sampler, the per-rank reseed, the resume chain (training
    state -> released files -> fresh), TensorBoard, progress and the epoch loop.
The skeleton reads no configuration: a trainer hands it the run layout and ``LoopOptions``, built once
from the config (``miscc/config/factory.py``).
The resume rules (docs/RELIABILITY.md): keys in ``FROZEN_KEYS`` may not change (refused, naming the
saved and the new value); learning rates are applied to the optimisers; other changes are applied
and recorded.
"""
from __future__ import annotations

import copy
import datetime
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from datasets import Batch, collate_batch
from miscc.run import distributed
from miscc.run.checkpoint import load_file, load_into, released_state_dict
from miscc.config import flatten, save_cfg
from miscc.errors import SSAGANError
from miscc.run.progress import progress, say
from miscc.run.layout import RunLayout, atomic_save, atomic_write_text, remove_stale_temps
from miscc.run.lock import folder_lock
from miscc.run.seeding import rng_state, seed_everything, set_rng_state

# Keys that only say where and how fast a run goes: changing them on resume is not even recorded.
UNRECORDED_KEYS = frozenset({"RESTORE", "B_VALIDATION", "GPU_ID", "CUDA", "WORKERS", "PROGRESS"})


@dataclass(frozen=True)
class LoopOptions:
    """What the skeleton takes from the configuration, read once when a trainer is built.

    ``config`` is the whole resolved config as a plain nested dict: it is what ``config.yaml`` and every
    training state record, and what a resume compares with the saved one. Never changed once built.
    """
    max_epoch: int  # TRAIN.MAX_EPOCH
    batch_size: int  # TRAIN.BATCH_SIZE, per process
    workers: int  # WORKERS
    seed: int  # SEED: the distributed sampler's shared permutation and the per-rank reseed
    restore: bool  # RESTORE (--resume)
    progress: str  # PROGRESS
    config: dict[str, Any]


@dataclass
class Component:
    """A module of a trainer and how it is kept.

    ``name``: its key in the training state; ``released``: the kind of its released file (``netG``,
    ``text_encoder``...) or None; ``prefix``: ``module.`` for the files the original saved from
    DataParallel; ``saved_at``: the epochs at which its released file is written; ``sync``: how the
    processes agree on it (``ddp``: wrapped for training, ``broadcast``: weights sent from rank 0 and
    gradients averaged by the trainer, ``syncbn+broadcast``: BatchNorm over the global batch too,
    ``follow``: a copy that follows another component, e.g. the EMA generator).
    """
    name: str
    module: nn.Module
    released: Optional[str] = None
    prefix: str = ""
    saved_at: Callable[[int], bool] = field(default=lambda epoch: False)
    sync: str = "broadcast"


class TrainLoop:
    """Subclasses set ``LATEST``/``WHAT``/``FROZEN_KEYS`` and implement the hooks below."""

    LATEST = "latest.pth"
    WHAT = "training"
    FROZEN_KEYS: tuple[str, ...] = ()
    RELEASED_KEY = ""  # the config key of released files to start from (TRAIN.NET_G / TRAIN.NET_E)

    def __init__(self, device: torch.device, layout: RunLayout, options: LoopOptions, start_over: bool = False):
        self.device = device
        self.layout = layout
        self.options = options
        self.start_over = start_over
        self.components: list[Component] = []
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.start_epoch = self.first_epoch()
        self.step_count = 0
        self.start_note = "starts fresh"
        self.config_changes: dict[str, list] = {}

    # --- hooks ---------------------------------------------------------------------------------
    def first_epoch(self) -> int:
        return 1

    def last_epoch(self) -> int:
        return self.options.max_epoch

    def released_start(self) -> str:
        """Path of released files to start from (TRAIN.NET_G / TRAIN.NET_E), '' for none."""
        return ""

    def start_from_released(self, path: str) -> None:
        raise NotImplementedError

    def begin_epoch(self, epoch: int) -> None:
        pass

    def step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One iteration on ``batch``: length-sorted by the loader's ``collate_batch``, already on the device."""
        raise NotImplementedError

    def end_epoch(self, epoch: int, means: dict[str, float], seconds: float, writer) -> None:
        pass

    def state_extra(self) -> dict:
        return {}

    def load_state_extra(self, state: dict, path: str) -> None:
        pass

    def apply_changes(self, changes: dict[str, list]) -> None:
        """Apply config changes of a resume that the loaded state would otherwise override."""

    def describe(self) -> str:
        return ""

    # --- data ----------------------------------------------------------------------------------
    def make_loader(self, dataset: Dataset) -> DataLoader:
        """Shuffled, full batches (drop_last, as the original). Several processes: each reads its own
        1/world of a shared per-epoch permutation (``set_epoch``), BATCH_SIZE per process."""
        o = self.options
        sampler = DistributedSampler(dataset, shuffle=True, seed=o.seed, drop_last=True) \
            if distributed.world_size() > 1 else None
        return DataLoader(dataset, batch_size=o.batch_size, shuffle=sampler is None, sampler=sampler,
                          drop_last=True, num_workers=o.workers, collate_fn=collate_batch,
                          pin_memory=self.device.type == "cuda")

    def setup_processes(self) -> None:
        """Several processes: identical starting weights everywhere, global BatchNorm statistics."""
        if distributed.world_size() <= 1:
            return
        from sync_batchnorm import convert_sync_batchnorm
        for c in self.components:
            if c.sync in ("ddp", "syncbn+broadcast"):
                convert_sync_batchnorm(c.module)
            if c.sync in ("broadcast", "syncbn+broadcast"):
                distributed.broadcast_module(c.module)

    # --- state ---------------------------------------------------------------------------------
    @property
    def latest(self):
        return self.layout.latest(self.LATEST)

    def training_state(self, epoch: int) -> dict:
        state = {"epoch": epoch, "step": self.step_count, "config": copy.deepcopy(self.options.config),
                 "rng": rng_state(),
                 **{c.name: released_state_dict(c.module) for c in self.components},
                 **{f"opt{name}": opt.state_dict() for name, opt in self.optimizers.items()}}
        state.update(self.state_extra())
        return state

    def load_training_state(self, path) -> None:
        state = load_file(path, what=f"{self.WHAT} state")
        if not isinstance(state, dict) or "epoch" not in state:
            raise SSAGANError(f"{path} is not a {self.WHAT} state written by this code; move it away, or "
                              "start over with --start_over (the old run is kept beside the new one).")
        # The config first: a changed model size must be named as such, not as a list of shapes.
        self.config_changes = self._check_config(state.get("config", {}), str(path))
        self.load_state_extra(state, str(path))
        for c in self.components:
            load_into(c.module, state[c.name], f"{path}[{c.name}]")
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state[f"opt{name}"])
        self.start_epoch = state["epoch"] + 1
        self.apply_changes(self.config_changes)
        # Last, so that building modules above does not consume the restored random streams.
        set_rng_state(state["rng"])
        self.step_count = state.get("step", 0)
        self.start_note = f"resumes {path} at epoch {self.start_epoch}"

    def _check_config(self, saved_cfg: dict, path: str) -> dict[str, list]:
        saved, now = flatten(saved_cfg), flatten(self.options.config)
        frozen = [f"{k}: saved {saved[k]!r}, now {now[k]!r}" for k in self.FROZEN_KEYS
                  if k in saved and saved[k] != now.get(k)]
        if frozen:
            raise SSAGANError(f"{path} cannot be resumed with this config; these keys may not change within a "
                              f"run:\n  " + "\n  ".join(frozen) + "\nSet them back, or train a new run under another "
                              "CONFIG_NAME / OUTPUT_DIR (docs/RELIABILITY.md lists what may change).")
        return {k: [saved[k], v] for k, v in now.items()
                if k in saved and saved[k] != v and k not in UNRECORDED_KEYS}

    def restore(self) -> None:
        """Training state (RESTORE) -> released files (TRAIN.NET_G / NET_E) -> fresh."""
        released = self.released_start()
        if self.options.restore and self.latest.is_file():
            self.load_training_state(self.latest)
        elif self.options.restore and not released:
            if self.holds_training_state():
                raise SSAGANError(f"--resume / RESTORE: nothing to resume from. {self.snapshots_only()}")
            raise SSAGANError(f"--resume / RESTORE: nothing to resume from, {self.latest} does not exist "
                              "(and no released file is set). Check CONFIG_NAME / OUTPUT_DIR, or start without "
                              "--resume.")
        elif released:
            self.start_from_released(released)

    def save(self, epoch: int) -> None:
        if not distributed.is_main():
            return
        for c in self.components:
            if c.released is not None and c.saved_at(epoch):
                self.save_released(c, epoch)
        atomic_save(self.training_state(epoch), self.latest)

    def save_released(self, component: Component, epoch: int) -> None:
        raise NotImplementedError

    # --- the run folder ------------------------------------------------------------------------
    def holds_training_state(self) -> bool:
        models = self.layout.models
        return self.latest.is_file() or (models.is_dir() and any(models.glob("*.pth")))

    def snapshots_only(self) -> str:
        """What to do with a run folder that holds snapshots but no training state (a run killed while
        writing its first one): --resume cannot continue it, so that advice must not be given."""
        names = sorted(p.name for p in self.layout.models.glob("*.pth"))
        from_snapshot = (f", or continue from one of them with --resume --opts {self.RELEASED_KEY} "
                         f"{self.layout.models}/<file> (fresh optimisers)") if self.RELEASED_KEY else ""
        return (f"{self.layout.models} holds snapshots ({', '.join(names[:4])}{' ...' if len(names) > 4 else ''}) "
                f"but no {self.latest.name}, the training state a resume needs (the run stopped before writing "
                f"its first one, or it was removed). Start the run again with --start_over (the folder is moved "
                f"aside, not deleted){from_snapshot}, or train under another CONFIG_NAME / OUTPUT_DIR.")

    def check_run_folder(self) -> None:
        """Refuse to train over another run's state unless resuming or starting over; writes nothing, so
        a refused start (or one whose files then fail to load) leaves every folder as it was."""
        if not distributed.is_main():
            return
        root = self.layout.root
        blocker = next((p for p in (root, *root.parents) if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise SSAGANError(f"the run folder {root} cannot be created: {blocker} is a file; set OUTPUT_DIR / "
                              "CONFIG_NAME to a folder.")
        if self.options.restore or self.start_over or not self.holds_training_state():
            return
        if not self.latest.is_file():
            raise SSAGANError(f"{root} already holds a {self.WHAT} run. Nothing was changed. " + self.snapshots_only())
        raise SSAGANError(
            f"{root} already holds a {self.WHAT} run ({self.latest.name} in {self.layout.models}). Nothing was "
            f"changed. Continue it with --resume, train a new run with another CONFIG_NAME or OUTPUT_DIR (--opts "
            f"CONFIG_NAME new_name), or start over with --start_over (the old run is moved aside, not deleted).")

    def prepare_run_folder(self) -> None:
        """Once the start has loaded: move an old run aside (--start_over), create the folders and remove
        temp files that a killed write left."""
        if not distributed.is_main():
            return
        root = self.layout.root
        if not self.options.restore and self.start_over and self.holds_training_state():
            stamp = f"{root.name}.old-{datetime.datetime.now():%Y%m%d-%H%M%S}"
            aside = root.with_name(stamp)
            n = 1
            while aside.exists():  # two start-overs within a second: never move one run into another
                aside, n = root.with_name(f"{stamp}-{n}"), n + 1
            shutil.move(str(root), str(aside))
            say(f"--start_over: the previous run was moved to {aside}")
        try:
            for sub in (self.layout.models, self.layout.tb, self.layout.images):
                sub.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SSAGANError(f"cannot create the run folder {root} ({e.strerror or e}); check OUTPUT_DIR and "
                              "its permissions.") from e
        for stale in remove_stale_temps(self.layout.models):
            say(f"removed {stale.name}, left by a write that was interrupted")

    def record_config(self) -> None:
        if not distributed.is_main():
            return
        save_cfg(self.layout.config, self.options.config)
        if self.config_changes:
            history = self.layout.config_history
            entry = yaml.safe_dump([{"epoch": self.start_epoch, "changed": self.config_changes}], sort_keys=False)
            old = history.read_text() if history.is_file() else ""
            atomic_write_text(history, old + entry)
            say("config changes applied from epoch {}: {}".format(self.start_epoch, ", ".join(
                f"{k} {a!r} -> {b!r}" for k, (a, b) in self.config_changes.items())))

    # --- the loop ------------------------------------------------------------------------------
    def train(self):
        """Run the epochs under the run folder's lock (``miscc/run/lock.py``); return the run folder."""
        with folder_lock(self.layout.root, self.WHAT):
            return self._train()

    def _train(self):
        self.check_run_folder()
        self.restore()  # before anything is written: files that fail to load leave no trace
        self.prepare_run_folder()
        main = distributed.is_main()
        last = self.last_epoch()
        say(f"{self.WHAT} on {self.device} x {distributed.world_size()} process(es); {self.describe()}; "
            f"{self.start_note}; epochs {self.start_epoch}..{last} -> {self.layout.root}")
        if self.start_epoch > last:
            say(f"nothing to do: the run has finished epoch {self.start_epoch - 1} and TRAIN.MAX_EPOCH is "
                f"{self.options.max_epoch}; raise TRAIN.MAX_EPOCH (with --resume) to train further.")
            return self.layout.root
        if distributed.world_size() > 1:
            # The shared seed built identical models on every rank; from here each rank draws its own
            # noise, crops and dropout (also after a resume, whose saved RNG state is rank 0's).
            seed_everything(self.options.seed + distributed.rank() + distributed.world_size() * self.start_epoch)
        self.record_config()
        writer = None
        if main:
            from torch.utils.tensorboard import SummaryWriter  # slow import, main process only
            # purge_step drops what an interrupted run logged after its last saved epoch.
            resumed = self.start_epoch > self.first_epoch()
            writer = SummaryWriter(str(self.layout.tb), purge_step=self.start_epoch if resumed else None)
        epochs = progress(range(self.start_epoch, last + 1), f"{self.WHAT} epochs", self.options.progress,
                          total=last + 1 - self.first_epoch(), initial=self.start_epoch - self.first_epoch())
        try:
            for epoch in epochs:
                start = time.perf_counter()
                sampler = getattr(self.loader, "sampler", None)
                if isinstance(sampler, DistributedSampler):
                    sampler.set_epoch(epoch)  # a new shared permutation each epoch
                self.begin_epoch(epoch)
                means = self.run_epoch(epoch)
                self.end_epoch(epoch, means, time.perf_counter() - start, writer)
                self.save(epoch)
        finally:
            epochs.close()
            if writer is not None:
                writer.close()
        return self.layout.root

    def run_epoch(self, epoch: int) -> dict[str, float]:
        """Steps over the loader; the mean of every statistic over the epoch's steps and all ranks."""
        sums: dict = {}
        n = 0
        bar = progress(self.loader, f"epoch {epoch}", self.options.progress, leave=False)
        for batch in bar:
            for k, v in self.step(batch.to(self.device)).items():
                sums[k] = sums.get(k, 0.0) + v  # stays on the device: no sync per step
            n += 1
            self.after_step(bar, sums, n)
        bar.close()
        return {k: float(v) / n for k, v in distributed.mean_over_ranks(sums).items()}

    def after_step(self, bar, sums: dict, n: int) -> None:
        pass

