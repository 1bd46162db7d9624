"""Crown and wing colour: registered metrics that separate images drawn for their captions from the same
images matched to other captions, each reported beside its shuffled-caption baseline and chance."""
from __future__ import annotations

import pytest
import torch

from miscc.metrics import EvalContext, GeneratedImages, compute_metrics, training_metrics
from miscc.metrics.bird_net import centre, load_bird_images
from miscc.metrics.part_colours import PART_METRICS
from miscc.sample.protocol import SampleRecord
from tools.birds.make_birds import make_birds

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def real_test_birds(tmp_path_factory):
    """Real test crops of a set with 4 test species (their crowns and wings differ), with their keys."""
    root = tmp_path_factory.mktemp("part_colours") / "birds"
    make_birds(root, classes=8, per_class=6, seed=1, size=(64, 48))
    birds = load_bird_images(root, 64, ("test",))
    return root, centre(birds.crops, 64), list(birds.keys)


def _scores(root, images: torch.Tensor, keys: list[str]) -> dict:
    floats = images.float() / 127.5 - 1.0 + 1e-3  # + a little: the uint8 conversion truncates
    records = [SampleRecord.numbered(i, k, 0, "", (1,), 0) for i, k in enumerate(keys)]
    ctx = EvalContext(images=GeneratedImages(lambda: iter(floats.split(8)), len(images), (64, 64)), records=records,
                      data_dir=str(root), batch_size=8)
    return compute_metrics(list(PART_METRICS), ctx)


def test_real_birds_score_high_and_the_same_birds_under_other_captions_score_at_the_baseline(real_test_birds):
    root, images, keys = real_test_birds
    own = _scores(root, images, keys)
    # Each image matched to a bird of another test species (a shift by one species' worth of images).
    species = [k.split("/")[0] for k in keys]
    shift = species.count(species[0])
    others = keys[shift:] + keys[:shift]
    assert all(a.split("/")[0] != b.split("/")[0] for a, b in zip(keys, others))
    swapped = _scores(root, images, others)
    for name in PART_METRICS:
        entry, wrong = own[name], swapped[name]
        assert entry["accuracy"] == 1.0 and entry["images"] == len(keys)
        assert entry["shuffled_caption_baseline"] < 0.6 and entry["chance"] < 0.6
        # Another species' caption names another crown / wing colour for most images here.
        assert wrong["accuracy"] <= entry["shuffled_caption_baseline"] + 0.1, (name, wrong)


def test_part_colours_are_training_metrics_asked_for_with_the_body_colour():
    from miscc.metrics import METRICS
    for name in PART_METRICS:
        assert name in training_metrics()
        assert METRICS[name].asked_by == METRICS["colour_accuracy"].asked_by
        assert METRICS[name].scalar == "accuracy" and not METRICS[name].lower_is_better


def test_a_data_set_without_part_colours_is_refused_with_the_reason(real_test_birds, tmp_path):
    from miscc.errors import SSAGANError
    _, images, keys = real_test_birds
    with pytest.raises(SSAGANError, match="attributes_test.json"):
        _scores(tmp_path, images[:2], keys[:2])
