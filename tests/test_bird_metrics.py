"""The bird feature network and the scores on it: built once per data set, deterministic, refusing
another data set; FD, IS, diversity and mask coverage each separate good inputs from bad ones, and
reach IS.py and the in-training evaluation through the registry."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import IS
from miscc.errors import SSAGANError
from miscc.watch.eval_set import EvalSet
from miscc.config.factory import build_dataset
from miscc.sample.sampler import generate, load_models
from miscc.train.gan import GANTrainer
from miscc.metrics import EvalContext, GeneratedImages, compute_metrics
from miscc.metrics.bird_net import BIRD_NET_FILE, build_bird_net, centre, load_bird_images, load_bird_net
from miscc.metrics.bird_scores import bird_region, fd_floor, frechet_distance, group_diversity, mask_coverage
from miscc.metrics.colour import is_muted, load_attributes
from tests.helpers import bird_set, configure
from tools import bird_features

pytestmark = pytest.mark.usefixtures("one_torch_thread")
EPOCHS = 40
# Larger than tests.helpers.TINY_BIRDS (whose test split is one species of 6 images, too few for a
# floor of FD between halves): 6 species x 10 images, 2 test species; still ~1 s to write.
SMALL_BIRDS = {"classes": 6, "per_class": 10}


@pytest.fixture(scope="module")
def birds(tmp_path_factory):
    """A small synthetic set with its bird network, built by the command line tool."""
    root = tmp_path_factory.mktemp("bird_net") / "birds"
    bird_set(root, **SMALL_BIRDS)
    assert bird_features.main([str(root), "--epochs", str(EPOCHS)]) == 0
    return root


def _as_generated(images: torch.Tensor) -> GeneratedImages:
    """uint8 images [N, 3, S, S] as an in-memory image source (what a training loop hands the metrics)."""
    floats = images.float() / 127.5 - 1.0 + 1e-3  # + a little: images_to_uint8 truncates
    return GeneratedImages(lambda: iter(floats.split(8)), len(images), tuple(images.shape[-2:]))


def _real(root, split="test", size=64) -> torch.Tensor:
    return centre(load_bird_images(root, size, (split,)).crops, size)


def _noise(n: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_the_network_is_deterministic_and_judges_held_out_real_birds(birds, tmp_path):
    saved = torch.load(birds / BIRD_NET_FILE, weights_only=True)
    meta = saved["meta"]
    assert meta["heldout_images"] == 12 and meta["train_images"] == 48  # 2 of 10 per species held out
    assert set(meta["heldout"]) == {"species", "body", "head", "wing", "tail"}
    # Same data, same seed: the same weights, bit for bit.
    copy = tmp_path / "birds"
    shutil.copytree(birds, copy)
    build_bird_net(copy, epochs=EPOCHS)
    again = torch.load(copy / BIRD_NET_FILE, weights_only=True)
    assert all(torch.equal(saved["state_dict"][k], again["state_dict"][k]) for k in saved["state_dict"])
    assert again["meta"]["fingerprint"] == meta["fingerprint"]


def test_a_missing_network_or_a_changed_data_set_is_refused_with_the_fix(birds, tmp_path):
    copy = tmp_path / "birds"
    shutil.copytree(birds, copy)
    load_bird_net(copy)  # the copy is the same data: accepted
    image = next((copy / "CUB_200_2011" / "images").rglob("*.jpg"))
    Image.new("RGB", (64, 48), (0, 0, 0)).save(image)
    with pytest.raises(SSAGANError, match=rf"{BIRD_NET_FILE} was trained on another data set.*"
                                          rf"python -m tools.bird_features {copy}"):
        load_bird_net(copy)
    (copy / BIRD_NET_FILE).unlink()
    with pytest.raises(SSAGANError, match=rf"{BIRD_NET_FILE} does not exist.*python -m tools.bird_features"):
        load_bird_net(copy)
    # The command on a folder that is not a synthetic bird set: one line, exit code 2.
    assert bird_features.main([str(tmp_path / "nothing")]) == 2


def test_fd_and_is_separate_real_birds_from_noise(birds):
    every_species = torch.cat([_real(birds, "train"), _real(birds, "test")])

    def scores(images):
        ctx = EvalContext(images=_as_generated(images), data_dir=str(birds), splits=2, batch_size=8)
        return compute_metrics(["bird_fd", "bird_is"], ctx)

    real, noise = scores(_real(birds)), scores(_noise(20))
    assert real["bird_fd"]["fd"] < 1e-6  # the real test images themselves
    assert noise["bird_fd"]["fd"] > 10 * real["bird_fd"]["floor"] > 0
    assert real["bird_fd"]["floor"] == pytest.approx(fd_floor(_features(birds, _real(birds))))
    # IS: real birds of every species are told apart (high), noise is not.
    assert scores(every_species)["bird_is"]["mean"] > noise["bird_is"]["mean"] + 0.5
    assert real["bird_is"]["ceiling"] == pytest.approx(real["bird_is"]["mean"])


def _features(root, images: torch.Tensor) -> np.ndarray:
    net = load_bird_net(root).net
    with torch.no_grad():
        return net(images)[0].double().numpy()


def test_frechet_distance_is_zero_for_the_same_features_and_grows_with_a_shift():
    f = np.random.default_rng(0).normal(size=(50, 4))
    assert frechet_distance(f, f) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(f, f + 1.0) == pytest.approx(4.0, rel=1e-6)  # ||shift||^2, same covariance


def test_diversity_of_distinct_birds_exceeds_that_of_copies(birds):
    real = _real(birds, "train")[:6]  # one species
    feats = _features(birds, real)
    distinct, _, groups = group_diversity(feats, [0, 0, 0, 1, 1, 1])
    copies, _, _ = group_diversity(_features(birds, real[[0, 0, 0, 3, 3, 3]]), [0, 0, 0, 1, 1, 1])
    assert groups == 2 and distinct > 0 and copies == pytest.approx(0.0, abs=1e-6)
    assert group_diversity(feats, range(6))[2] == 0  # one image per caption: nothing to compare


def test_mask_coverage_separates_a_bird_shaped_mask_from_a_uniform_one(birds):
    attributes = load_attributes(birds, "test")
    keys = sorted(attributes)
    images = _real(birds).permute(0, 2, 3, 1).numpy()
    for image, key in zip(images, keys):
        region = bird_region(image, attributes[key])
        # A bird-shaped mask found without the layout: the pixels that are not background-coloured.
        bird_shaped = (~is_muted(image)).astype(np.float64)
        uniform, background = np.ones_like(bird_shaped), 1.0 - bird_shaped
        cov = mask_coverage(np.stack([bird_shaped, uniform, background, region]), region)
        assert cov[1] == pytest.approx(region.mean())  # uniform: the bird's area share
        assert cov[3] == pytest.approx(1.0)  # perfect
        assert cov[0] > 0.7 > cov[1] + 0.2 and cov[2] < cov[1]


def _sample_folder(root, folder, images: torch.Tensor, keys, per_key: int = 1):
    """A sampler-style folder: the images, one stage-mask file per image (the bird, found by colour),
    and records naming each image's test key; ``per_key`` consecutive images share a caption."""
    (folder / "img").mkdir(parents=True)
    (folder / "stage_mask").mkdir()
    rows = []
    for i, image in enumerate(images.permute(0, 2, 3, 1).numpy()):
        Image.fromarray(image).save(folder / "img" / f"{i:06d}.png")
        mask = ((~is_muted(image)) * 255).astype(np.uint8)
        Image.fromarray(mask).save(folder / "stage_mask" / f"{i:06d}_s0.png")
        Image.fromarray(np.full_like(mask, 128)).save(folder / "stage_mask" / f"{i:06d}_s1.png")
        rows.append(json.dumps({"file": f"img/{i:06d}.png", "key": keys[i // per_key], "caption_idx": 0,
                                "tokens": [1], "stage_masks": [f"stage_mask/{i:06d}_s0.png",
                                                               f"stage_mask/{i:06d}_s1.png"]}))
    (folder / "samples.jsonl").write_text("\n".join(rows) + "\n")
    (folder / "DONE.json").write_text(json.dumps({"count": len(images)}))
    return folder


def test_is_py_reports_every_bird_score_beside_its_reference(birds, tmp_path, capsys):
    keys = sorted(load_attributes(birds, "test"))
    real = _real(birds)
    folder = _sample_folder(birds, tmp_path / "samples", real[[0, 1, 2, 3]], keys, per_key=2)
    assert IS.main(["--image_dir", str(folder), "--weights", "random", "--workers", "0", "--splits", "2",
                    "--bird_net", str(birds), "--bird_diversity", "--mask_coverage", str(birds),
                    "--colour_accuracy", str(birds)]) == 0
    out = capsys.readouterr().out
    result = json.loads((folder / "metrics.json").read_text())
    assert {"bird_fd", "bird_is", "bird_diversity", "mask_coverage", "crown_colour", "wing_colour"} <= set(result)
    assert "real-image floor" in out and "real test images:" in out and "real images of one species" in out
    assert "colour accuracy (crown) = " in out and "colour accuracy (wing) = " in out and "shuffled captions" in out
    cov = result["mask_coverage"]
    assert len(cov["stages"]) == 2 and cov["stages"][0] > cov["uniform"] + 0.2
    assert cov["stages"][1] == pytest.approx(cov["uniform"])  # a grey (uniform) mask
    assert result["bird_diversity"]["captions"] == 2
    # Two different data sets in one call are refused before anything loads.
    assert IS.main(["--image_dir", str(folder), "--weights", "random", "--bird_net", str(birds),
                    "--mask_coverage", str(tmp_path)]) == 2
    assert "different data sets" in capsys.readouterr().err


def test_training_logs_the_bird_scores_and_mask_coverage(tmp_path, synthetic_birds, damsm_files, monkeypatch):
    from miscc.watch import evaluation
    plotted, draw = [], evaluation.metrics_plot  # metrics.png's arguments: the reference levels it is given
    monkeypatch.setattr(evaluation, "metrics_plot", lambda *a, **k: plotted.append((a, k)) or draw(*a, **k))
    data = tmp_path / "birds"
    shutil.copytree(synthetic_birds, data)
    build_bird_net(data, epochs=5)
    configure(tmp_path, data, damsm_files, **{
        "TRAIN.EVAL_INTERVAL": 1, "EVAL.METRICS": "bird_fd,bird_is,mask_coverage", "EVAL.BEST_METRIC": "bird_fd",
        "EVAL.FID_NUM_IMAGES": 6, "EVAL.BATCH_SIZE": 4, "PROGRESS": "off"})
    run = GANTrainer("main").train()
    (line,) = [json.loads(text) for text in (run / "metrics.jsonl").read_text().splitlines()]
    assert set(line["values"]) == {"bird_fd", "bird_is", "mask_coverage"}
    assert line["values"]["bird_fd"] == line["bird_fd"]["fd"] and line["bird_fd"]["floor"] > 0
    assert line["bird_is"]["ceiling"] >= 1.0 and line["bird_fd"]["images"] == 6
    stages = line["mask_coverage"]["stages"]
    assert len(stages) == 5 and all(0.0 <= s <= 1.0 for s in stages)  # 64 px: masks 4x4 ... 64x64
    assert json.loads((run / "best.json").read_text())["metric"] == "bird_fd"
    (args, _), = plotted
    assert args[4] == {"bird_fd": {"real-image floor": [line["bird_fd"]["floor"]]},
                       "bird_is": {"real-image ceiling": [line["bird_is"]["ceiling"]]},
                       "mask_coverage": {"uniform mask": [line["mask_coverage"]["uniform"]]}}

    # The same captions and noise through the sampler into files (every stage's mask), then IS.py: the same
    # numbers, so the masks of training (tensors) and of IS.py (files) are read alike.
    es = EvalSet.from_state(torch.load(run / "eval_set.pt", weights_only=True))
    dataset = build_dataset("test")
    netG, text_encoder = load_models(run / "models" / "netG_001.pth", damsm_files, dataset, torch.device("cpu"))
    samples = tmp_path / "samples"
    for sub in ("img", "mask", "stage_mask"):
        (samples / sub).mkdir(parents=True)
    generate(list(es.jobs), es.noise, netG, text_encoder, torch.device("cpu"), 4, samples, dataset.ixtoword,
             masks="all")
    (samples / "DONE.json").write_text("{}")
    assert IS.main(["--image_dir", str(samples), "--weights", "random", "--splits", str(line["bird_is"]["splits"]),
                    "--workers", "0", "--bird_net", str(data), "--mask_coverage", str(data)]) == 0
    on_files = json.loads((samples / "metrics.json").read_text())
    assert on_files["bird_fd"]["fd"] == pytest.approx(line["bird_fd"]["fd"], rel=1e-4, abs=1e-6)
    assert on_files["bird_is"]["mean"] == pytest.approx(line["bird_is"]["mean"], rel=1e-4)
    assert on_files["mask_coverage"]["stages"] == pytest.approx(stages, abs=1e-9)


def test_is_py_gives_the_bird_scores_without_building_inception(birds, tmp_path, capsys):
    """What the quickstart runs offline: no Inception network is built, so no IS and no FID are reported."""
    def no_inception(weights):
        raise AssertionError("--no_inception built the Inception network")

    keys = sorted(load_attributes(birds, "test"))
    folder = _sample_folder(birds, tmp_path / "samples", _real(birds)[[0, 1, 2, 3]], keys, per_key=2)
    assert IS.main(["--image_dir", str(folder), "--no_inception", "--workers", "0", "--splits", "2",
                    "--bird_net", str(birds), "--bird_diversity", "--mask_coverage", str(birds)],
                   make_inception=no_inception) == 0
    out = capsys.readouterr().out
    result = json.loads((folder / "metrics.json").read_text())
    assert {"bird_fd", "bird_is", "bird_diversity", "mask_coverage"} <= set(result)
    assert result["inception_score"] is None and result["fid"] is None and result["protocol"]["inception"] is None
    assert "Inception: not used" in out and "IS  =" not in out
    assert result["bird_fd"]["floor"] > 0 and result["bird_diversity"]["real_one_species"] > 0
    # The demo report leads with these scores, read from IS.py's file as it is written.
    from tools import demo_report
    report = demo_report.main(["--data_dir", str(birds), "--samples", str(folder), "--out", str(tmp_path / "report"),
                               "--metrics_json", str(folder / "metrics.json")])
    h = report["headline"]
    assert h["bird_fd"]["value"] == result["bird_fd"]["fd"] and h["bird_fd"]["floor"] == result["bird_fd"]["floor"]
    assert h["mask_coverage"]["stages"] == result["mask_coverage"]["stages"]
    assert h["bird_diversity"]["samples"] == str(folder) and set(h["not_measured"]) == {"r_precision", "colour_accuracy", "crown_colour", "wing_colour"}
    assert "FD on the bird network" in capsys.readouterr().out
