"""Evaluation without TensorFlow: IS, FID, R-precision, classifier IS, LPIPS diversity and the bird scores.

Callers use the registry: fill an ``EvalContext`` and compute metrics by name::

    ctx = EvalContext(images=..., records=..., inception=InceptionExtractor(weights), reference=...)
    results = compute_metrics(["inception_score", "fid"], ctx)   # or METRICS["fid"](ctx)

One module per job:

    stats        IS from logits, mean/covariance, RunningMoments, FID from statistics, .npz files
    sources      ImageSource (uint8 batches in order), GeneratedImages (in memory, no files)
    images       image folders, sampler folders, the CUB reference crops
    inception    Inception weights, the network, extract_features
    reference    FID reference statistics with their cache
    rprecision   R-precision with the DAMSM encoders
    classifier   IS with a user-given classifier
    diversity    LPIPS diversity
    colour       body-colour accuracy of the synthetic birds (bird_geometry: their layout);
                 part_colours: crown and wing colour against shuffled captions
    bird_net     the synthetic set's bird feature network (offline stand-in for Inception)
    bird_scores  FD / IS / diversity / mask coverage maths with real-image references;
                 bird_metrics: their per-image functions and results for the registry
    context      EvalContext;  registry: METRICS, MetricSpec, register, compute_metrics: the one
                 place a metric is named (IS.py options and report, in-training use, config values)

``IS.py`` is the command line; docs/EVALUATION.md pins the protocol.
"""
from __future__ import annotations

import importlib
from typing import Any

# Resolved on first use (PEP 562): tools that need one light module (the bird set's writer imports
# bird_geometry and colour) do not pay for the registry's imports, seconds of start-up.
_EXPORTS = {"EvalContext": "context", "METRICS": "registry", "MetricSpec": "registry", "Option": "registry",
            "compute_metrics": "registry", "register": "registry", "training_metrics": "registry",
            "GeneratedImages": "sources", "ImageSource": "sources"}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
