"""The metrics registry: name -> function of an ``EvalContext`` returning JSON-able results.

A metric returns a dict of result entries (``{"fid": 17.2}``), merged into the caller's results;
IS.py writes them to metrics.json, a training loop can log them. Adding a metric = one function
here and one ``MetricSpec`` line; callers select metrics by name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from miscc.errors import SSAGANError
from miscc.metrics.classifier import CLASSIFIER_INPUT, classifier_logits
from miscc.metrics.context import EvalContext
from miscc.metrics.diversity import lpips_diversity
from miscc.metrics.inception import FEATURE_DIM, sha256_file
from miscc.metrics.rprecision import samples_r_precision
from miscc.metrics.stats import fid_from_stats, inception_score


@dataclass(frozen=True)
class MetricSpec:
    name: str
    fn: Callable[[EvalContext], dict]
    needs: tuple[str, ...]  # EvalContext fields that must not be None

    def __call__(self, ctx: EvalContext) -> dict:
        missing = [f for f in self.needs if getattr(ctx, f) is None]
        if missing:
            raise SSAGANError(f"metric {self.name!r} needs EvalContext.{', EvalContext.'.join(missing)}; "
                              "set it before computing this metric.")
        return self.fn(ctx)


def _runtime(ctx: EvalContext) -> dict:
    return {"batch_size": ctx.batch_size, "device": ctx.device, "workers": ctx.workers}


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


def _r_precision(ctx: EvalContext) -> dict:
    mean, std, info = samples_r_precision(ctx.records, ctx.paired_images(), ctx.encoders, splits=ctx.splits,
                                          seed=ctx.seed, codes=ctx.damsm_codes, **_runtime(ctx))
    return {"r_precision": {"mean": mean, "std": std, **info, "text_encoder": ctx.encoders.text_path,
                            "image_encoder": ctx.encoders.image_path}}


def _classifier_is(ctx: EvalContext) -> dict:
    mean, std = inception_score(classifier_logits(ctx.images, ctx.classifier, **_runtime(ctx)), ctx.splits)
    path = ctx.classifier.path
    return {"inception_score_classifier": {
        "mean": mean, "std": std, "splits": ctx.splits, "classes": ctx.classifier.classes,
        "classifier": path, "classifier_sha256": sha256_file(path), "input": CLASSIFIER_INPUT}}


def _lpips(ctx: EvalContext) -> dict:
    mean, std, info = lpips_diversity(ctx.records, ctx.paired_images(), ctx.lpips.model, **_runtime(ctx))
    return {"lpips_diversity": {"mean": mean, "std": std, **info, "backbone": ctx.lpips.backbone}}


METRICS: dict[str, MetricSpec] = {spec.name: spec for spec in (
    MetricSpec("inception_score", _inception_score, ("images", "inception")),
    MetricSpec("fid", _fid, ("images", "inception", "reference")),
    MetricSpec("r_precision", _r_precision, ("images", "records", "encoders")),
    MetricSpec("classifier_is", _classifier_is, ("images", "classifier")),
    MetricSpec("lpips", _lpips, ("images", "records", "lpips")),
)}


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
