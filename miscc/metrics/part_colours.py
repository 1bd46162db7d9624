"""Crown and wing colour of generated synthetic birds, each read against its shuffled-caption baseline.

Body colour (``colour_accuracy``) is what a short run learns first; the paper's claim is about *where*
the text acts, so the smaller parts are scored too. In a synthetic set made with ``--parts species`` (the
default) a part's colour is tied to its species (each crown or wing colour belongs to few species), so an
image-blind generator that only follows the body colour already scores above the frequency chance on
them; with ``--parts image`` (the demo's set) they vary per image. Either way, the baseline that says
whether the *caption* is followed is the same predictions matched to shuffled captions
(``colour.shuffled_baseline``), reported beside every accuracy.
"""
from __future__ import annotations

import os
from typing import Any, NamedTuple, Sequence

import numpy as np

from miscc.metrics.colour import (SCORED_PARTS, accuracy, candidate_colours, frequency_chance, load_attributes,
                                  score_parts, shuffled_baseline)

# metric name -> the scorer's part (the synthetic set's ``head_colour`` is the crown and nape)
PART_METRICS: dict[str, str] = {"crown_colour": "head", "wing_colour": "wing"}


class PartTruth(NamedTuple):
    """Each test key's attributes, the part scored and the colours it is chosen among (every colour the
    part takes in the test split: an image is scored against all of them, not only its own)."""
    attributes: dict[str, dict[str, Any]]
    part: str
    candidates: tuple[str, ...]

    @property
    def attribute(self) -> str:
        return SCORED_PARTS[self.part][0]


def part_truth(data_dir: str | os.PathLike, part: str) -> PartTruth:
    """The test split's ground truth for ``part``; KeyError when an image has no colour for it."""
    attributes = load_attributes(data_dir, "test")
    attribute = SCORED_PARTS[part][0]
    if not all(attribute in a for a in attributes.values()):
        raise KeyError(attribute)
    return PartTruth(attributes, part, candidate_colours(list(attributes.values()), (part,))[part])


def predicted_colours(images_uint8: np.ndarray, keys: Sequence[str], truth: PartTruth) -> list[int]:
    """Index into ``truth.candidates`` of the colour the scorer reads on each image's part [N, S, S, 3]."""
    records = [truth.attributes[k] for k in keys]
    names = score_parts(np.asarray(images_uint8), records, {truth.part: truth.candidates}, (truth.part,))[truth.part]
    return [truth.candidates.index(n) for n in names]


def part_colour_entry(predicted: Sequence[int], keys: Sequence[str], truth: PartTruth) -> dict:
    """Accuracy of the predicted colour indices with its two references: the frequency chance (an
    image-blind guesser) and the shuffled-caption baseline (these images, random captions)."""
    names = [truth.candidates[int(i)] for i in predicted]
    expected = [truth.attributes[k][truth.attribute] for k in keys]
    return {"accuracy": accuracy(names, expected), "shuffled_caption_baseline": shuffled_baseline(names, expected),
            "chance": frequency_chance(expected), "part": truth.attribute, "images": len(names)}
