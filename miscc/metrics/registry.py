"""The metrics registry: the one place a metric is named and described.

A ``MetricSpec`` says everything a caller needs to know about one metric: what it reads (EvalContext
fields, per-image inputs or its own per-image function), how it reduces them (``fn``), its scalar,
direction and short tag, whether it runs during training, and its IS.py option(s) and report line.
``IS.py`` builds its command line, its context and its report from the registry; the in-training
evaluation (``miscc/watch/evaluation.py``) its per-image passes, metrics.jsonl values, TensorBoard tags and
best-epoch rule; the config's allowed EVAL.METRICS / EVAL.BEST_METRIC values are the registry's
in-training names. Adding a metric = one module with its maths + one ``register(MetricSpec(...))``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import torch

from miscc.errors import SSAGANError
from miscc.metrics import bird_metrics
from miscc.metrics.classifier import CLASSIFIER_INPUT, ClassifierIS, classifier_logits
from miscc.metrics.colour import body_colour_hits, body_colour_truth, frequency_chance
from miscc.metrics.context import EvalContext
from miscc.metrics.diversity import ALEXNET_WEIGHTS_FILE, build_lpips, lpips_diversity
from miscc.metrics.inception import FEATURE_DIM, sha256_file
from miscc.metrics.part_colours import PART_METRICS, part_colour_entry, part_truth, predicted_colours
from miscc.metrics.rprecision import load_damsm_encoders, samples_r_precision
from miscc.metrics.stats import fid_from_stats, inception_score
from miscc.sample.protocol import SampleRecord

# Per-image inputs that several metrics share, computed once per image by whoever runs the images:
# "pool" / "logits": Inception pool3 features / logits; "codes": DAMSM image codes.
SHARED_INPUTS = ("pool", "logits", "codes")


@dataclass(frozen=True)
class Option:
    """One IS.py command-line option: ``parser.add_argument(flag, **kwargs)``."""
    flag: str
    kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class MetricSpec:
    """One metric. ``fn(ctx)`` returns its result entries (``{key: entry}``), merged into the results."""
    name: str  # EVAL.METRICS / EVAL.BEST_METRIC value and registry key
    fn: Callable[[EvalContext], dict]
    needs: tuple[str, ...] = ()  # EvalContext fields that must be set
    key: str = ""  # its entry in the results (metrics.json, metrics.jsonl); default: name
    tag: str = ""  # short name: TensorBoard eval/<tag>, log lines, plot titles; default: name
    scalar: str = "mean"  # the field of its entry that is logged and compared; "" = the entry is a number
    lower_is_better: bool = False
    in_training: bool = False  # may be listed in EVAL.METRICS
    per_image: tuple[str, ...] = ()  # SHARED_INPUTS it reads (training computes them per generated batch)
    # Its own per-image value: fn(uint8 batch [B,3,H,W], the batch's records, ctx) -> [B]; the training
    # loop runs it on every generated batch, IS.py over the image files (EvalContext.per_image).
    image_fn: Optional[Callable[[torch.Tensor, Sequence[SampleRecord], EvalContext], torch.Tensor]] = None
    # Once before ``image_fn`` runs: load what it needs into ctx.state[name]; SSAGANError = cannot run.
    prepare: Optional[Callable[[EvalContext], None]] = None
    # IS.py: ``asked_by`` is the argument that asks for it ("" = always computed on --image_dir), among
    # ``options`` (added to the parser) or IS.py's own; ``check(args)`` refuses cheaply, before anything
    # loads (an error text or None); ``setup(args, ctx)`` fills the context; ``report(entry)`` is its line.
    asked_by: str = ""
    options: tuple[Option, ...] = ()
    check: Optional[Callable[[Any], Optional[str]]] = None
    setup: Optional[Callable[[Any, EvalContext], None]] = None
    report: Optional[Callable[[dict], str]] = None
    listed: bool = False  # IS.py's metrics.json always holds its key (null when not asked for)
    # The levels its value is read against, as (field of its entry, name), e.g. ("floor", "real-image
    # floor"): drawn as lines in metrics.png.
    references: tuple[tuple[str, str], ...] = ()

    @property
    def result_key(self) -> str:
        return self.key or self.name

    @property
    def short(self) -> str:
        return self.tag or self.name

    def value(self, results: dict) -> Optional[float]:
        """The one number of this metric in ``results`` (logged, plotted, compared), or None."""
        entry = results.get(self.result_key)
        if isinstance(entry, dict):
            entry = entry.get(self.scalar)
        return None if entry is None else float(entry)

    def reference_levels(self, results: dict) -> dict[str, float]:
        """{name: level} of its ``references`` found in ``results`` (its entry as IS.py writes it)."""
        entry = results.get(self.result_key)
        if not isinstance(entry, dict):
            return {}
        return {name: float(entry[field]) for field, name in self.references if entry.get(field) is not None}

    def better(self, a: float, b: float) -> bool:
        return a < b if self.lower_is_better else a > b

    def asked(self, args: Any) -> bool:
        return not self.asked_by or bool(getattr(args, self.asked_by, None))

    def __call__(self, ctx: EvalContext) -> dict:
        missing = [f for f in self.needs if getattr(ctx, f) is None]
        if missing:
            raise SSAGANError(f"metric {self.name!r} needs EvalContext.{', EvalContext.'.join(missing)}; "
                              "set it before computing this metric.")
        if self.prepare is not None and self.name not in ctx.state and self.name not in ctx.image_values:
            self.prepare(ctx)
        return self.fn(ctx)


METRICS: dict[str, MetricSpec] = {}


def register(spec: MetricSpec) -> MetricSpec:
    """Add ``spec`` to the registry (after the ones there: IS.py reports in registry order)."""
    if spec.name in METRICS:
        raise ValueError(f"metric {spec.name!r} is registered already")
    unknown = set(spec.per_image) - set(SHARED_INPUTS)
    if unknown:
        raise ValueError(f"metric {spec.name!r}: unknown per-image input(s) {sorted(unknown)}; shared are "
                         f"{SHARED_INPUTS} (or give image_fn)")
    METRICS[spec.name] = spec
    return spec


def training_metrics() -> tuple[str, ...]:
    """The names EVAL.METRICS may list."""
    return tuple(name for name, spec in METRICS.items() if spec.in_training)


def compute_metrics(names: Iterable[str], ctx: EvalContext) -> dict:
    """The results of the metrics ``names``, in that order, merged into one dict."""
    names = list(names)
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise SSAGANError(f"unknown metric {unknown[0]!r}; the registry has {sorted(METRICS)}.")
    result: dict = {}
    for name in names:
        result.update(METRICS[name](ctx))
    return result


def _runtime(ctx: EvalContext) -> dict:
    return {"batch_size": ctx.batch_size, "device": ctx.device, "workers": ctx.workers}


# --- Inception Score and FID (miscc/metrics/stats.py, inception.py) --------------------------------

def _inception_score(ctx: EvalContext) -> dict:
    mean, std = inception_score(ctx.features().logits, ctx.splits)
    return {"inception_score": {"mean": mean, "std": std, "splits": ctx.splits}}


def _fid(ctx: EvalContext) -> dict:
    feats, ref = ctx.features(), ctx.reference
    mu, sigma = feats.moments.stats()
    value = fid_from_stats(mu, sigma, ref.mu, ref.sigma)
    if feats.count < FEATURE_DIM:
        ctx.notes.append(f"FID from {feats.count} < {FEATURE_DIM} images is biased upwards; the usual "
                         "protocol uses ~30k images")
    ref_res, size = ref.protocol.get("resolution"), list(ctx.images.size)
    if ref_res and ref_res != size:
        ctx.notes.append(f"reference resolution {ref_res} differs from the generated {size}; pass "
                         f"--ref_size {size[0]}")
    return {"fid": value}


register(MetricSpec(
    "inception_score", _inception_score, ("images", "inception"), tag="IS", in_training=True,
    per_image=("pool", "logits"), listed=True,
    report=lambda e: f"IS  = {e['mean']:.4f} ± {e['std']:.4f}"))
register(MetricSpec(
    "fid", _fid, ("images", "inception", "reference"), tag="FID", scalar="", lower_is_better=True,
    in_training=True, per_image=("pool",), asked_by="fid_ref", listed=True,
    report=lambda value: f"FID = {value:.4f}"))


# --- R-precision (miscc/metrics/rprecision.py) ---------------------------------------------------

def _r_precision(ctx: EvalContext) -> dict:
    mean, std, info = samples_r_precision(ctx.records, ctx.paired_images(), ctx.encoders, splits=ctx.splits,
                                          seed=ctx.seed, codes=ctx.damsm_codes, **_runtime(ctx))
    return {"r_precision": {"mean": mean, "std": std, **info, "text_encoder": ctx.encoders.text_path,
                            "image_encoder": ctx.encoders.image_path}}


def _r_precision_setup(args: Any, ctx: EvalContext) -> None:
    ctx.seed = args.seed
    ctx.encoders = load_damsm_encoders(args.text_encoder, args.image_encoder, args.captions_pickle,
                                       spec=args.encoder_spec)


register(MetricSpec(
    "r_precision", _r_precision, ("images", "records", "encoders"), tag="R_precision", in_training=True,
    per_image=("codes",), asked_by="r_precision", listed=True, setup=_r_precision_setup,
    check=lambda args: None if args.text_encoder else
    "--r_precision needs --text_encoder PATH (or --cfg with TEXT.DAMSM_NAME).",
    options=(Option("--r_precision", dict(action="store_true", help="R-precision with the DAMSM encoders")),
             Option("--text_encoder", dict(help="DAMSM text encoder (default: TEXT.DAMSM_NAME of --cfg)")),
             Option("--image_encoder", dict(help="DAMSM image encoder (default: text_encoder -> image_encoder)")),
             Option("--captions_pickle", dict(help="captions.pickle, checked against the encoder's vocabulary "
                                                   "size")),
             Option("--seed", dict(type=int, default=0, help="seed of the mismatched-caption draw"))),
    report=lambda r: f"R-precision = {r['mean']:.4f} ± {r['std']:.4f} (R@1, 1 true vs {r['mismatched']} "
                     "mismatched captions)"))


# --- body colour of the synthetic birds (miscc/metrics/colour.py) --------------------------------

def _colour_prepare(ctx: EvalContext) -> None:
    try:
        ctx.state["colour_accuracy"] = body_colour_truth(ctx.data_dir, [r.key for r in ctx.records])
    except (OSError, ValueError, KeyError, TypeError):
        raise SSAGANError(f"{ctx.data_dir} has no attributes_test.json with each test image's body_colour "
                          "(only the synthetic bird set of tools/birds/make_birds.py has one).") from None


def _colour_hits(batch: torch.Tensor, records: Sequence[SampleRecord], ctx: EvalContext) -> torch.Tensor:
    rgb = batch.permute(0, 2, 3, 1).cpu().numpy()
    hits = body_colour_hits(rgb, [r.key for r in records], ctx.state["colour_accuracy"])
    return torch.tensor(hits, dtype=torch.float64)


def _colour_accuracy(ctx: EvalContext) -> dict:
    hits = ctx.per_image("colour_accuracy", _colour_hits)
    truth = ctx.state.get("colour_accuracy") or body_colour_truth(ctx.data_dir, [r.key for r in ctx.records])
    return {"colour_accuracy": {"accuracy": float(hits.mean()), "images": len(hits),
                                "chance": frequency_chance([truth.attributes[r.key]["body_colour"]
                                                            for r in ctx.records])}}


register(MetricSpec(
    "colour_accuracy", _colour_accuracy, ("images", "records", "data_dir"), scalar="accuracy", in_training=True,
    references=(("chance", "chance"),),
    image_fn=_colour_hits, prepare=_colour_prepare, asked_by="colour_accuracy",
    options=(Option("--colour_accuracy", dict(metavar="DATA_DIR", help="body-colour accuracy against the "
                    "synthetic bird set (tools/birds/make_birds.py) whose test captions made the samples")),),
    setup=lambda args, ctx: setattr(ctx, "data_dir", args.colour_accuracy),
    report=lambda c: f"colour accuracy (body) = {c['accuracy']:.4f} (chance {c['chance']:.4f}, "
                     f"{c['images']} images)"))


def _part_prepare(name: str, ctx: EvalContext) -> None:
    try:
        ctx.state[name] = part_truth(ctx.data_dir, PART_METRICS[name])
    except (OSError, ValueError, KeyError, TypeError):
        raise SSAGANError(f"{ctx.data_dir} has no attributes_test.json with each test image's part colours "
                          "(only the synthetic bird set of tools/birds/make_birds.py has one).") from None


def _part_values(name: str) -> Callable[[torch.Tensor, Sequence[SampleRecord], EvalContext], torch.Tensor]:
    def values(batch: torch.Tensor, records: Sequence[SampleRecord], ctx: EvalContext) -> torch.Tensor:
        rgb = batch.permute(0, 2, 3, 1).cpu().numpy()
        return torch.tensor(predicted_colours(rgb, [r.key for r in records], ctx.state[name]), dtype=torch.float64)
    return values


def _part_metric(name: str) -> Callable[[EvalContext], dict]:
    def metric(ctx: EvalContext) -> dict:
        predicted = ctx.per_image(name, _part_values(name))
        if name not in ctx.state:
            _part_prepare(name, ctx)
        return {name: part_colour_entry(predicted.tolist(), [r.key for r in ctx.records], ctx.state[name])}
    return metric


# Crown and wing: asked for by --colour_accuracy DATA_DIR (the body metric's option), reported beside it.
for _name in PART_METRICS:
    register(MetricSpec(
        _name, _part_metric(_name), ("images", "records", "data_dir"), scalar="accuracy", in_training=True,
        references=(("shuffled_caption_baseline", "shuffled captions"), ("chance", "chance")),
        image_fn=_part_values(_name), prepare=lambda ctx, n=_name: _part_prepare(n, ctx), asked_by="colour_accuracy",
        setup=lambda args, ctx: setattr(ctx, "data_dir", args.colour_accuracy),
        report=lambda c, n=_name: f"colour accuracy ({n.split('_')[0]}) = {c['accuracy']:.4f} (shuffled "
                                  f"captions {c['shuffled_caption_baseline']:.4f}, chance {c['chance']:.4f}, "
                                  f"{c['images']} images)"))


# --- IS with a user's classifier, LPIPS diversity (classifier.py, diversity.py) -------------------

def _classifier_is(ctx: EvalContext) -> dict:
    mean, std = inception_score(classifier_logits(ctx.images, ctx.classifier, **_runtime(ctx)), ctx.splits)
    path = ctx.classifier.path
    return {"inception_score_classifier": {
        "mean": mean, "std": std, "splits": ctx.splits, "classes": ctx.classifier.classes,
        "classifier": path, "classifier_sha256": sha256_file(path), "input": CLASSIFIER_INPUT}}


def _lpips(ctx: EvalContext) -> dict:
    mean, std, info = lpips_diversity(ctx.records, ctx.paired_images(), ctx.lpips.model, **_runtime(ctx))
    return {"lpips_diversity": {"mean": mean, "std": std, **info, "backbone": ctx.lpips.backbone}}


register(MetricSpec(
    "classifier_is", _classifier_is, ("images", "classifier"), key="inception_score_classifier",
    asked_by="is_classifier",
    options=(Option("--is_classifier", dict(help="also IS with this Inception-v3 classifier state dict "
                                                 "(torchvision layout, e.g. fine-tuned on CUB)")),),
    setup=lambda args, ctx: setattr(ctx, "classifier", ClassifierIS(args.is_classifier)),
    report=lambda c: f"IS (classifier {Path(c['classifier']).name}, {c['classes']} classes) = "
                     f"{c['mean']:.4f} ± {c['std']:.4f}"))
register(MetricSpec(
    "lpips", _lpips, ("images", "records", "lpips"), key="lpips_diversity", asked_by="lpips",
    options=(Option("--lpips", dict(action="store_true", help="LPIPS diversity between images of the same "
                                                              "caption")),
             Option("--lpips_backbone", dict(help=f"AlexNet weights for LPIPS ({ALEXNET_WEIGHTS_FILE}; default: "
                                                  "the torch hub cache; 'random' = tests only)"))),
    setup=lambda args, ctx: setattr(ctx, "lpips", build_lpips(args.lpips_backbone)),
    report=lambda d: f"LPIPS diversity = {d['mean']:.4f} ± {d['std']:.4f} ({d['pairs']} pairs, "
                     f"{d['captions']} captions)"))


# --- scores on the synthetic set's bird feature network, mask coverage (bird_metrics.py) ----------

def _bird_setup(args: Any, ctx: EvalContext) -> None:
    ctx.data_dir = args.bird_net


def _coverage_setup(args: Any, ctx: EvalContext) -> None:
    ctx.data_dir = args.mask_coverage
    ctx.state["mask_coverage_dir"] = args.image_dir


register(MetricSpec(
    "bird_fd", bird_metrics.bird_fd, ("images", "data_dir"), tag="FD_birds", scalar="fd", lower_is_better=True,
    references=(("floor", "real-image floor"),),
    in_training=True, image_fn=bird_metrics.bird_outputs, prepare=bird_metrics.prepare_bird, asked_by="bird_net",
    options=(Option("--bird_net", dict(metavar="DATA_DIR", help="FD and IS on the bird feature network of this "
                    "synthetic bird set (python -m tools.bird_features DATA_DIR builds it)")),),
    check=bird_metrics.same_data_dir, setup=_bird_setup,
    report=lambda e: f"FD (bird network) = {e['fd']:.4f} (real-image floor {e['floor']:.4f}: two halves of the "
                     f"{e['real_images']} real test images)"))
register(MetricSpec(
    "bird_is", bird_metrics.bird_is, ("images", "data_dir"), tag="IS_birds", in_training=True,
    references=(("ceiling", "real-image ceiling"),),
    image_fn=bird_metrics.bird_outputs, prepare=bird_metrics.prepare_bird, asked_by="bird_net",
    setup=_bird_setup,
    report=lambda e: f"IS (bird network, {e['classes']} species) = {e['mean']:.4f} ± {e['std']:.4f} (real test "
                     f"images: {e['ceiling']:.4f})"))
register(MetricSpec(
    "bird_diversity", bird_metrics.bird_diversity, ("images", "records", "data_dir"), tag="diversity_birds",
    image_fn=bird_metrics.bird_outputs, prepare=bird_metrics.prepare_bird, asked_by="bird_diversity",
    options=(Option("--bird_diversity", dict(action="store_true", help="mean feature distance (bird network) "
                    "between the images of one caption; needs --bird_net")),),
    check=lambda args: None if args.bird_net else "--bird_diversity needs --bird_net DATA_DIR.",
    setup=_bird_setup,
    report=lambda e: f"diversity (bird network) = {e['mean']:.4f} ± {e['std']:.4f} over {e['captions']} captions "
                     f"(real images of one species: {e['real_one_species']:.4f})"))
register(MetricSpec(
    "mask_coverage", bird_metrics.coverage, ("images", "records", "data_dir"), tag="mask_coverage",
    references=(("uniform", "uniform mask"),),
    in_training=True, image_fn=bird_metrics.coverage_values, prepare=bird_metrics.prepare_coverage,
    asked_by="mask_coverage",
    options=(Option("--mask_coverage", dict(metavar="DATA_DIR", help="share of each stage mask on the bird, "
                    "located with the synthetic bird set's layout (samples with --masks all)")),),
    check=bird_metrics.same_data_dir, setup=_coverage_setup,
    report=lambda c: "mask coverage per stage = " + ", ".join(f"{v:.3f}" for v in c["stages"])
                     + f" (uniform mask {c['uniform']:.3f}, perfect 1; {c['images']} images)"))
