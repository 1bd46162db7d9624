"""Watching quality while the GAN trains (docs/EVALUATION.md, "During training").

``TrainingWatch`` is called by the trainer at the end of every epoch:
  * every epoch, the epoch grid of the fixed display set (``miscc/watch/eval_set.py``): the same captions and
    noise in every epoch, with the masks of every stage -> ``images/epoch_XXX.png`` and TensorBoard;
  * every ``interval`` epochs and at the last, an evaluation: the evaluation set is generated in
    memory, sharded over the processes, and each batch goes once through Inception (FID, IS), the
    run's DAMSM image encoder (R-precision) and each metric's own per-image function (the body colour
    of the synthetic birds), as the metrics registry says; the per-image results are gathered on rank 0
    and the metrics computed by the registry of ``miscc.metrics`` (the code IS.py runs), so the values
    equal IS.py's on the same images.
    Rank 0 appends a line to ``metrics.jsonl``, logs ``eval/*`` scalars, redraws ``metrics.png``
    and tracks the best epoch; the trainer writes ``netG_best.pth`` (...) and ``best.json`` once the
    epoch's training state is saved, so a best file never holds an epoch a resume would redo.
Resume (``start``): lines of epochs that will be trained again are dropped, so every epoch appears
once; a best epoch whose files were not written before an interruption is written from the loaded state.
"""
from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import torch
from torch import nn

from datasets import TextDataset
from miscc.run import distributed
from miscc.config import best_metric_problem
from miscc.errors import SSAGANError
from miscc.watch.display import epoch_grid, metrics_plot
from miscc.watch.inputs import check_eval_inputs
from miscc.watch.eval_set import EvalSet, load_or_draw
from miscc.watch.history import MetricsHistory, needing, reference_series, scalar_values
from miscc.metrics import METRICS, EvalContext, GeneratedImages, MetricSpec, compute_metrics
from miscc.metrics.images import is_cub_folder
from miscc.metrics.inception import FEATURE_DIM, LOGITS_DIM, RANDOM_WEIGHTS, Features, InceptionExtractor
from miscc.metrics.reference import ReferenceStats, reference_stats
from miscc.metrics.rprecision import DamsmEncoders, image_codes
from miscc.metrics.stats import RunningMoments
from miscc.run.progress import progress, say
from miscc.run.layout import EVAL_SET_FILE, RunLayout
from miscc.sample.protocol import SampleRecord, images_to_uint8, masks_to_uint8
from miscc.sample.sampler import Job
from miscc.sample.sampler import generate_images as generate  # the sampler's in-memory generator

RANDOM_NOTE = "RANDOM Inception weights: IS and FID are meaningless (for tests and demos only)"
BEST_KINDS = ("netG", "netG_ema", "text_encoder", "image_encoder")  # the released files kept as *_best.pth


@dataclass(frozen=True)
class EvalSettings:
    """The EVAL.* keys and TRAIN.EVAL_INTERVAL, as plain values (docs/CONFIG.md)."""
    interval: int
    metrics: tuple[str, ...]
    best_metric: str
    num_images: int
    batch_size: int
    display_captions: int
    display_noises: int
    inception_weights: str
    fid_ref: str
    data_dir: str
    seed: int
    cache_dir: Optional[Path]
    progress: str = "auto"
    splits: int = 10

    def check(self) -> None:
        """Refuse, before training, what would only fail at the first evaluation."""
        if self.interval <= 0:
            return
        problem = best_metric_problem(self.metrics, self.best_metric)
        if problem:
            raise SSAGANError(problem)
        for key, value in (("EVAL.INCEPTION_WEIGHTS", self.inception_weights), ("EVAL.FID_REF", self.fid_ref)):
            if value and value != RANDOM_WEIGHTS and not Path(value).exists():
                raise SSAGANError(f"config key {key} = {value!r}: no such file or folder. Fix the path, or "
                                  f"set it to '' (docs/EVALUATION.md, \"During training\").")

    def due(self, epoch: int, last_epoch: int) -> bool:
        return self.interval > 0 and (epoch % self.interval == 0 or epoch == last_epoch)


@dataclass
class EvalModels:
    """What is evaluated: the generator (EMA when on) and the DAMSM encoders it is conditioned on."""
    generator: nn.Module
    generator_name: str
    text_encoder: nn.Module
    image_encoder: nn.Module
    text_source: str
    image_source: str


@contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout, BN running statistics, no random draws) inside; every submodule's own
    mode restored after, whatever it was (fine-tuning keeps encoders in train mode)."""
    saved = [(m, m.training) for module in modules for m in module.modules()]
    for module in modules:
        module.eval()
    try:
        yield
    finally:
        for m, flag in saved:
            m.training = flag


def shard(n: int, rank: int, world: int) -> tuple[int, int]:
    """[start, end) of the contiguous share of ``n`` items that process ``rank`` evaluates."""
    return rank * n // world, (rank + 1) * n // world


def gather_rows(rows: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
    """Every rank's ``rows`` (``counts[r]`` on rank r) concatenated in rank order; padded to one
    length for the collective, since ``all_gather`` needs equal shapes."""
    if distributed.world_size() == 1:
        return rows
    longest = max(counts)
    padded = torch.cat([rows, rows.new_zeros(longest - len(rows), *rows.shape[1:])])
    parts = distributed.all_gather_batch(padded).split(longest)
    return torch.cat([part[:count] for part, count in zip(parts, counts)])


class TrainingWatch:
    """Epoch grids and periodic evaluation of one GAN run (module doc). Every rank calls every method."""

    def __init__(self, settings: EvalSettings, layout: RunLayout, device: torch.device, image_size: int,
                 test_dataset: Callable[[], TextDataset]) -> None:
        settings.check()
        check_eval_inputs(settings.interval, settings.metrics, settings.inception_weights, settings.fid_ref,
                          image_size, RANDOM_WEIGHTS)
        self.settings = settings
        self.layout = layout
        self.device = device
        self.image_size = image_size
        self.test_dataset = test_dataset
        self.history = MetricsHistory(layout.metrics, settings.best_metric)
        self.pending_best: Optional[dict] = None
        self.eval_set: Optional[EvalSet] = None
        self._said: set[str] = set()
        self._networks_ready = False
        self.inception: Optional[InceptionExtractor] = None
        self.reference: Optional[ReferenceStats] = None
        self.measure_ctx: Optional[EvalContext] = None  # what the metrics' own per-image functions read
        self.own: list[MetricSpec] = []  # the asked metrics with their own per-image function, ready to run

    def say_once(self, message: str) -> None:
        if message not in self._said:
            self._said.add(message)
            say(message)

    # --- start and resume ----------------------------------------------------------------------
    def start(self, start_epoch: int) -> Optional[dict]:
        """Load or draw the set; on rank 0 drop ``metrics.jsonl`` lines of epochs to be redone. Returns
        the best record the trainer must write now from the loaded state (see module doc), or None."""
        s = self.settings
        self.dataset = self.test_dataset()
        self.eval_set, drawn, note = load_or_draw(self.layout.eval_set, self.dataset,
                                                  s.num_images if s.interval else None, s.display_captions,
                                                  s.display_noises, s.seed)
        self.real = self._real_crops(self.eval_set.display)
        if not distributed.is_main():
            return None
        if drawn:
            self.eval_set.save(self.layout.eval_set)
        if note:
            say(f"note: {note}")
        dropped = self.history.resume(start_epoch)
        if dropped:
            say(f"{self.layout.metrics}: dropped {dropped} line(s) of epochs >= {start_epoch}, evaluated again "
                "after the resume")
        self.history.eval_set = self.eval_set.fingerprint()
        best = self.history.best() if s.best_metric != "none" else None
        recorded = json.loads(self.layout.best.read_text()) if self.layout.best.is_file() else None
        if recorded is not None and self._recorded_on_other_set(recorded):
            say(f"note: best-epoch tracking restarts: {self.layout.best} (epoch {recorded.get('epoch')}, "
                f"{recorded.get('metric')} {recorded.get('value')}) was measured on another evaluation set than "
                f"{self.layout.eval_set}; the first evaluation on this set replaces it and its netG_best files "
                "(copy them now to keep them).")
            return None
        if recorded is not None and recorded.get("metric") != s.best_metric:
            say(f"note: {self.layout.best} keeps the best epoch by {recorded.get('metric')}; EVAL.BEST_METRIC is now "
                f"{s.best_metric}: it is replaced at the next evaluation that is the best by {s.best_metric}.")
            return None
        if best is None or (recorded is not None and recorded.get("epoch") == best["epoch"]):
            return None
        if best["epoch"] == start_epoch - 1:  # evaluated and saved, but killed before its best files
            return self._best_record(best)
        say(f"warning: {self.layout.best} does not name the best epoch of {self.layout.metrics} "
            f"({best['epoch']}); it is rewritten at the next better evaluation.")
        return None

    def _recorded_on_other_set(self, recorded: dict) -> bool:
        """Whether best.json's epoch was evaluated on another set than the one in use now."""
        line = next((x for x in self.history.lines if x.get("epoch") == recorded.get("epoch")), None)
        return line is not None and self.history.measured_on_other_set(line)

    def _real_crops(self, jobs: Sequence[Job]) -> Optional[np.ndarray]:
        """The test images the display captions describe, framed as the generator's inputs."""
        try:
            crops = [self.dataset[job.caption_idx][0][0] for job in jobs]
        except (SSAGANError, OSError):
            return None  # the grid is still useful without them
        return images_to_uint8(torch.stack(crops)).permute(0, 2, 3, 1).numpy()

    # --- every epoch ---------------------------------------------------------------------------
    def end_epoch(self, epoch: int, last_epoch: int, step: int, epoch_seconds: float, writer,
                  models: EvalModels) -> None:
        if distributed.is_main():
            self.draw_epoch_grid(epoch, writer, models)
        if self.settings.due(epoch, last_epoch):
            self.evaluate(epoch, step, epoch_seconds, writer, models)

    def draw_epoch_grid(self, epoch: int, writer, models: EvalModels) -> None:
        es = self.eval_set
        n_noise = len(es.display_noise)
        jobs = [job for job in es.display for _ in range(n_noise)]
        noise = es.display_noise.repeat(len(es.display), 1)
        with eval_mode(models.generator, models.text_encoder):
            images, masks = generate(models.generator, models.text_encoder, jobs, noise, self.device)
        shape = (len(es.display), n_noise)
        rgb = images_to_uint8(images).permute(0, 2, 3, 1).cpu().numpy().reshape(*shape, *images.shape[2:], 3)
        stages = [masks_to_uint8(m).cpu().numpy().reshape(*shape, *m.shape[2:])
                  for m in masks]
        grid = epoch_grid(es.texts(self.dataset.ixtoword, es.display), self.real, rgb, stages,
                          f"epoch {epoch}: {models.generator_name}, the fixed captions and noise of {EVAL_SET_FILE}")
        grid.save(self.layout.epoch_grid(epoch))
        if writer is not None:
            writer.add_image("epoch_grid", np.asarray(grid), epoch, dataformats="HWC")

    # --- evaluation ----------------------------------------------------------------------------
    def _prepare_networks(self, models: EvalModels) -> None:
        """Once per run: Inception (every rank), reference statistics (rank 0), what the metrics' own
        per-image functions read (``MetricSpec.prepare``, e.g. the synthetic birds' colours)."""
        if self._networks_ready:
            return
        self._networks_ready = True
        s = self.settings
        with_inception = needing("inception", s.metrics)
        if with_inception:
            try:
                self.inception = InceptionExtractor(s.inception_weights or None).to(self.device)
            except SSAGANError as e:
                if s.inception_weights:
                    raise
                every = [METRICS[n].short for n in METRICS if METRICS[n].in_training and "inception" in METRICS[n].needs]
                self.say_once(f"in-training evaluation: {' and '.join(every)} are skipped, training continues with "
                              f"{', '.join(sorted(set(s.metrics) - set(with_inception))) or 'no metric'}. {e}")
        with_reference = needing("reference", s.metrics)
        if with_reference and self.inception is not None and distributed.is_main():
            ref = s.fid_ref or (s.data_dir if is_cub_folder(s.data_dir) else "")
            if ref:
                self.reference = reference_stats(ref, self.inception, split="test", size=self.image_size,
                                                  cache_dir=s.cache_dir, batch_size=s.batch_size, device=self.device)
            else:
                self.say_once(f"in-training evaluation: {', '.join(METRICS[n].short for n in with_reference)} is "
                              f"skipped: DATA_DIR {s.data_dir} is not in the CUB layout, so set EVAL.FID_REF to "
                              "reference statistics (python IS.py --fid_ref FOLDER --ref_size N --save_stats "
                              "ref.npz).")
        self.measure_ctx = EvalContext(records=self._records(), data_dir=s.data_dir, device=self.device)
        for name in s.metrics:
            spec = METRICS[name]
            if spec.image_fn is None:
                continue
            try:
                if spec.prepare is not None:
                    spec.prepare(self.measure_ctx)
                self.own.append(spec)
            except SSAGANError as e:
                self.say_once(f"in-training evaluation: {name} is skipped: {e}")

    def _records(self) -> list[SampleRecord]:
        """The eval set's jobs as the sampler records them (caption text and tokens per image)."""
        es = self.eval_set
        return [SampleRecord.numbered(i, job.key, job.caption_idx, text, job.tokens, 0)
                for i, (job, text) in enumerate(zip(es.jobs, es.texts(self.dataset.ixtoword, es.jobs)))]

    @torch.no_grad()
    def _measure(self, models: EvalModels, jobs: Sequence[Job], noise: torch.Tensor,
                 records: Sequence[SampleRecord]) -> dict[str, torch.Tensor]:
        """Per-image results of this rank's share, from one generator pass over it: the shared inputs
        the asked metrics read, and each one's own per-image values (under its name)."""
        inputs = {i for name in self.settings.metrics for i in METRICS[name].per_image}
        bs, device = self.settings.batch_size, self.device
        parts: dict[str, list[torch.Tensor]] = {}
        empty = {"pool": (FEATURE_DIM,), "logits": (LOGITS_DIM,), "codes": (models.image_encoder.nef,)}
        if self.inception is not None:
            parts["pool"] = []
            if "logits" in inputs:
                parts["logits"] = []
        if "codes" in inputs:
            parts["codes"] = []
        for spec in self.own:
            parts[spec.name] = []
        starts = progress(range(0, len(jobs), bs), "evaluation", self.settings.progress, leave=False)
        for a in starts:
            images, masks = generate(models.generator, models.text_encoder, jobs[a:a + bs], noise[a:a + bs], device)
            batch = images_to_uint8(images)  # the pixels the sampler's PNG files hold
            self.measure_ctx.stage_masks = masks  # for per-image functions that read the masks
            if "pool" in parts:
                pool, logits = self.inception(batch)
                parts["pool"].append(pool.double())
                if "logits" in parts:
                    parts["logits"].append(logits.float())
            if "codes" in parts:
                parts["codes"].append(image_codes(models.image_encoder, batch).double())
            for spec in self.own:
                values = spec.image_fn(batch, records[a:a + bs], self.measure_ctx)
                parts[spec.name].append(values.to(dtype=torch.float64, device=device))
        starts.close()
        return {k: torch.cat(v) if v else torch.empty(0, *empty.get(k, ()), dtype=torch.float64, device=device)
                for k, v in parts.items()}

    def evaluate(self, epoch: int, step: int, epoch_seconds: float, writer, models: EvalModels) -> None:
        start = time.perf_counter()
        es = self.eval_set
        self._prepare_networks(models)
        n, world = len(es.jobs), distributed.world_size()
        counts = [b - a for a, b in (shard(n, r, world) for r in range(world))]
        a, b = shard(n, distributed.rank(), world)
        with eval_mode(models.generator, models.text_encoder, models.image_encoder):
            parts = self._measure(models, es.jobs[a:b], es.noise[a:b], self.measure_ctx.records[a:b])
            gathered = {k: gather_rows(v, counts).cpu() for k, v in parts.items()}
            if not distributed.is_main():
                return
            results, notes = self._compute(gathered, models)
        seconds = time.perf_counter() - start
        self._record(epoch, step, seconds, epoch_seconds, results, notes, models, writer)

    def _compute(self, parts: dict[str, torch.Tensor], models: EvalModels) -> tuple[dict, list[str]]:
        """The metrics of the gathered per-image results, through the registry (rank 0)."""
        s, es = self.settings, self.eval_set
        n = len(es.jobs)
        features = None
        if "pool" in parts:
            moments = RunningMoments()
            for a in range(0, n, s.batch_size):  # the chunks extract_features would feed
                moments.update(parts["pool"][a:a + s.batch_size])
            features = Features(moments, parts["logits"].numpy() if "logits" in parts else None)

        def never() -> Iterator[torch.Tensor]:
            raise SSAGANError("in-training evaluation: the metrics must use the gathered results")
            yield  # pragma: no cover
        ctx = EvalContext(images=GeneratedImages(never, n, (self.image_size,) * 2), records=self.measure_ctx.records,
                          inception=self.inception, reference=self.reference,
                          encoders=DamsmEncoders(models.text_encoder, models.image_encoder, models.text_source,
                                                 models.image_source),
                          splits=min(s.splits, n), batch_size=s.batch_size, device=self.device,
                          inception_features=features,
                          damsm_codes=parts["codes"].numpy() if "codes" in parts else None,
                          data_dir=s.data_dir, state=self.measure_ctx.state,
                          image_values={spec.name: parts[spec.name] for spec in self.own})
        if self.inception is not None and self.inception.sha256 == RANDOM_WEIGHTS:
            ctx.notes.append(RANDOM_NOTE)
        results: dict = {}
        for name in s.metrics:
            spec = METRICS[name]
            if (spec.image_fn is not None and name not in ctx.image_values) or \
                    ("inception" in spec.needs and features is None) or ("reference" in spec.needs and self.reference is None):
                continue  # said once when the networks were prepared
            try:
                results.update(compute_metrics([name], ctx))
            except SSAGANError as e:
                self.say_once(f"in-training evaluation: {name} is skipped: {e}")
        return results, ctx.notes

    def _record(self, epoch: int, step: int, seconds: float, epoch_seconds: float, results: dict,
                notes: list[str], models: EvalModels, writer) -> None:
        s, es = self.settings, self.eval_set
        values = scalar_values(results, s.metrics)
        random = self.inception is not None and self.inception.sha256 == RANDOM_WEIGHTS
        inception_based = set(needing("inception", list(METRICS)))
        protocol = {"generator": models.generator_name, "resolution": [self.image_size] * 2,
                    "images": len(es.jobs), "batch_size": s.batch_size, "splits": min(s.splits, len(es.jobs)),
                    "processes": distributed.world_size(),
                    "eval_set": {"file": EVAL_SET_FILE, "sha256": es.fingerprint(), "seed": s.seed,
                                 "selection": es.meta.get("selection")},
                    "inception": self.inception.protocol() if self.inception is not None else None,
                    "reference": self.reference.protocol if self.reference is not None else None,
                    "text_encoder": models.text_source, "image_encoder": models.image_source, "notes": notes}
        line = {"epoch": epoch, "step": step, "images": len(es.jobs), "wall_time": time.time(),
                "eval_seconds": round(seconds, 3), "epoch_seconds": round(epoch_seconds, 3), "values": values,
                **({"meaningless": sorted(inception_based & set(values))} if random else {}),
                **results, "protocol": protocol}
        self.history.append(line)
        suffix = "_random_inception"
        if writer is not None:
            for name, value in values.items():
                tag = METRICS[name].short + (suffix if random and name in inception_based else "")
                writer.add_scalar(f"eval/{tag}", value, epoch)
            writer.add_scalar("eval/seconds", seconds, epoch)
        self._plot(random)
        shown = " | ".join(f"{METRICS[k].short} {v:.4f}" + (" [random Inception: meaningless]" if random and k in
                                                             inception_based else "") for k, v in values.items())
        share = f", {100 * seconds / epoch_seconds:.1f}% of the epoch's {epoch_seconds:.1f} s" if epoch_seconds else ""
        say(f"[eval {epoch}] {shown or 'no metric computed'} ({len(es.jobs)} images, {seconds:.1f} s{share})")
        best = self.history.best() if s.best_metric != "none" else None
        if s.best_metric != "none" and s.best_metric not in values:
            self.say_once(f"in-training evaluation: no best epoch is kept: EVAL.BEST_METRIC {s.best_metric} was "
                          "not computed (see the message above)")
        elif best is line:
            self.pending_best = self._best_record(line)
            say(f"[eval {epoch}] best {s.best_metric} so far: {values[s.best_metric]:.4f}")

    def _plot(self, random: bool) -> None:
        lines = self.history.lines
        order = [*self.settings.metrics, *(name for name in METRICS if name not in self.settings.metrics)]
        series = {name: [line["values"].get(name) for line in lines] for name in order
                  if any(name in line["values"] for line in lines)}
        titles = {name: METRICS[name].short + (" (lower is better)" if METRICS[name].lower_is_better else "")
                  + (" - RANDOM Inception weights: meaningless" if random and "inception" in METRICS[name].needs
                     else "")
                  for name in series}
        best = self.history.best() if self.settings.best_metric != "none" else None
        image = metrics_plot([line["epoch"] for line in lines], series, titles,
                             (self.settings.best_metric, best["epoch"]) if best else None,
                             reference_series(lines, list(series)))
        image.save(self.layout.metrics_plot)

    def _best_record(self, line: dict) -> dict:
        metric = self.settings.best_metric
        record = {"metric": metric, "lower_is_better": METRICS[metric].lower_is_better, "value": line["values"][metric],
                  "epoch": line["epoch"], "step": line["step"], "values": line["values"],
                  "generator": line["protocol"]["generator"]}
        if metric in line.get("meaningless", []):
            record["note"] = RANDOM_NOTE
        return record

    def take_pending_best(self) -> Optional[dict]:
        record, self.pending_best = self.pending_best, None
        return record

    def report(self) -> None:
        """The best epoch, at the end of training (rank 0)."""
        if self.layout.best.is_file() and distributed.is_main():
            best = json.loads(self.layout.best.read_text())
            say(f"best epoch by {best['metric']}: {best['epoch']} ({best['value']:.4f}"
                f"{'; ' + best['note'] if 'note' in best else ''}): {', '.join(best['files'])} in "
                f"{self.layout.models}")

