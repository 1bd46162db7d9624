"""The evaluation context: everything a metric of the registry may read, in one object.

IS.py fills it from files (a sampler folder, records from samples.jsonl); a training loop fills it
with ``GeneratedImages`` and the records it generated from. The metrics cannot tell the difference,
which is what makes the two give the same numbers for the same images.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch

from miscc.metrics.classifier import ClassifierIS
from miscc.metrics.diversity import LpipsNet
from miscc.metrics.images import ImageSet
from miscc.metrics.inception import Features, InceptionExtractor, extract_features
from miscc.metrics.reference import ReferenceStats
from miscc.metrics.rprecision import DamsmEncoders
from miscc.metrics.sources import GeneratedImages, ImageSource, progress
from miscc.sample.protocol import SampleRecord


@dataclass
class EvalContext:
    """Inputs and options of one evaluation; a metric reads the fields its ``MetricSpec.needs`` names.

    ``images`` feed IS, FID and classifier IS; ``records`` say which caption made each image, and
    ``record_images`` are the images in record order (R-precision, LPIPS; default: ``images``, which
    is right whenever the records list exactly those images). Inception features are extracted on
    first use and shared by every metric that needs them. Metrics append protocol caveats to
    ``notes``.

    ``inception_features`` / ``damsm_codes`` / ``image_values``: the Inception features of ``images``,
    the DAMSM image codes and a metric's own per-image values (by metric name) of the record images,
    when the caller computed them itself (a training loop that shards the images over processes and
    gathers the per-image results); the metrics then read these instead of running the networks, and
    compute exactly what they compute from the images.
    """
    images: Optional[Union[ImageSet, GeneratedImages]] = None
    records: Optional[Sequence[SampleRecord]] = None
    record_images: Optional[ImageSource] = None
    inception: Optional[InceptionExtractor] = None
    reference: Optional[ReferenceStats] = None
    encoders: Optional[DamsmEncoders] = None
    classifier: Optional[ClassifierIS] = None
    lpips: Optional[LpipsNet] = None
    splits: int = 10
    seed: int = 0  # of R-precision's mismatched-caption draw
    batch_size: int = 50
    device: Union[str, torch.device] = "cpu"
    workers: int = 0
    inception_features: Optional[Features] = None
    damsm_codes: Optional[np.ndarray] = None
    data_dir: Optional[str] = None  # the data set the records' keys come from (e.g. its attributes)
    # The generator's masks ([B, 1, r, r] per stage) of the batch a per-image function is measuring,
    # when the caller generated it (training); IS.py reads the sampler's mask files instead.
    stage_masks: Optional[Sequence[torch.Tensor]] = None
    image_values: dict[str, torch.Tensor] = field(default_factory=dict)
    state: dict = field(default_factory=dict)  # what a metric's ``prepare`` loaded, by metric name
    notes: list[str] = field(default_factory=list)
    _features: Optional[Features] = field(default=None, init=False, repr=False)

    def features(self) -> Features:
        """Inception pool3 moments and logits of ``images``, extracted once."""
        if self._features is None and self.inception_features is not None:
            self._features = self.inception_features
        if self._features is None:
            self._features = extract_features(self.images, self.inception, batch_size=self.batch_size,
                                              device=self.device, workers=self.workers, desc="generated")
        return self._features

    def paired_images(self) -> ImageSource:
        """The image of each record, in record order."""
        return self.images if self.record_images is None else self.record_images

    def per_image(self, name: str, fn: Callable[[torch.Tensor, Sequence[SampleRecord], "EvalContext"], torch.Tensor]
                  ) -> torch.Tensor:
        """``fn``'s float64 value of every record image, in record order: the caller's ``image_values[name]``
        if given, else ``fn(uint8 batch, the batch's records, self)`` over ``paired_images()``."""
        if name not in self.image_values:
            values, start = [], 0
            for batch in progress(self.paired_images(), self.batch_size, torch.device(self.device), self.workers,
                                  name):
                values.append(fn(batch, self.records[start:start + len(batch)], self).double().cpu())
                start += len(batch)
            self.image_values[name] = torch.cat(values)
        return self.image_values[name]
