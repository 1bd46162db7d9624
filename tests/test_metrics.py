"""The miscc/metrics package: the math against closed forms, image-set checks, the networks offline,
and the registry on files and in memory."""
from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from miscc.errors import SSAGANError
from miscc.metrics import METRICS, EvalContext, GeneratedImages, compute_metrics
from miscc.metrics.classifier import ClassifierIS, classifier_logits
from miscc.metrics.diversity import ALEXNET_WEIGHTS_FILE, build_lpips, lpips_diversity
from miscc.metrics.images import (ImageFiles, cub_crop_box, cub_image_set, find_images, image_size, is_cub_folder,
                                  open_image_dir, record_images)
from miscc.metrics.inception import (INCEPTION_WEIGHTS_FILE, INCEPTION_WEIGHTS_URL, LOGITS_DIM, RANDOM_WEIGHTS,
                                     InceptionExtractor, sha256_file)
from miscc.metrics.reference import ReferenceStats, reference_stats
from miscc.metrics.rprecision import DamsmEncoders, caption_group, encode_sentences, r_precision
from miscc.metrics.stats import (RunningMoments, compute_stats, fid_from_stats, inception_score, load_stats,
                                 save_stats, trace_sqrt_product)
from miscc.sample.protocol import SAMPLES_FILE, SampleRecord, image_file, images_to_uint8, write_records


def _stats(rng: np.random.Generator, n: int, d: int, offset: float = 0.0):
    return compute_stats(rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) + offset)


def _save_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


# ---------------------------------------------------------------------------------------------- FID

def test_fid_of_a_feature_set_with_itself_is_zero():
    rng = np.random.default_rng(0)
    for n, d in ((500, 64), (40, 256)):  # full rank and rank-deficient (n < d)
        mu, sigma = _stats(rng, n, d, offset=3.0)
        assert abs(fid_from_stats(mu, sigma, mu, sigma)) < 1e-6


def test_fid_matches_the_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    s1, s2 = rng.uniform(0.2, 3.0, 8), rng.uniform(0.2, 3.0, 8)
    closed = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert fid_from_stats(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(closed, rel=1e-10)
    # The same from samples of the two Gaussians, through compute_stats.
    x1 = mu1 + np.sqrt(s1) * rng.standard_normal((100_000, 8))
    x2 = mu2 + np.sqrt(s2) * rng.standard_normal((100_000, 8))
    fid = fid_from_stats(*compute_stats(x1), *compute_stats(x2))
    assert fid == pytest.approx(closed, rel=0.03)


def test_fid_agrees_with_scipy_sqrtm_and_torch_fidelity_on_full_covariances():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    from torch_fidelity.metric_fid import fid_statistics_to_metric
    rng = np.random.default_rng(2)
    mu1, s1 = _stats(rng, 400, 32)
    mu2, s2 = _stats(rng, 400, 32, offset=0.5)
    diff = mu1 - mu2
    reference = diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(scipy_linalg.sqrtm(s1 @ s2).real)
    ours = fid_from_stats(mu1, s1, mu2, s2)
    assert ours == pytest.approx(reference, rel=1e-8)
    fidelity = fid_statistics_to_metric({"mu": mu1, "sigma": s1}, {"mu": mu2, "sigma": s2}, False)
    assert ours == pytest.approx(fidelity["frechet_inception_distance"], rel=1e-8)


def test_matrix_square_root_is_stable_on_rank_deficient_covariances():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((10, 64)) * 1e3  # 10 samples in 64 dims: rank 9, large scale
    b = rng.standard_normal((12, 64)) + 5.0
    mu1, s1 = compute_stats(a)
    mu2, s2 = compute_stats(b)
    tr = trace_sqrt_product(s1, s2)
    assert np.isfinite(tr) and isinstance(tr, float)
    # Independent exact value for low rank: tr((s1 s2)^1/2) is the nuclear norm of A1c A2c^T / sqrt((n1-1)(n2-1)).
    a_c, b_c = a - a.mean(0), b - b.mean(0)
    exact = np.linalg.svd(a_c @ b_c.T, compute_uv=False).sum() / np.sqrt(9 * 11)
    assert tr == pytest.approx(exact, rel=1e-7)
    fid = fid_from_stats(mu1, s1, mu2, s2)
    assert np.isfinite(fid) and fid >= 0
    assert trace_sqrt_product(s1, s1) == pytest.approx(np.trace(s1), rel=1e-9)


def test_running_moments_equal_two_pass_statistics_even_with_a_large_offset():
    rng = np.random.default_rng(4)
    feats = rng.standard_normal((300, 16)) * 1e-3 + 1e4
    rm = RunningMoments()
    for chunk in np.array_split(feats, 7):
        rm.update(torch.from_numpy(chunk))
    mu, sigma = rm.stats()
    ref_mu, ref_sigma = compute_stats(feats)
    np.testing.assert_allclose(mu, ref_mu, rtol=1e-12)
    np.testing.assert_allclose(sigma, ref_sigma, rtol=1e-6, atol=1e-14)


def test_fid_rejects_mismatched_or_non_finite_statistics():
    with pytest.raises(SSAGANError, match="do not match"):
        fid_from_stats(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(SSAGANError, match="NaN"):
        fid_from_stats(np.array([np.nan, 0]), np.eye(2), np.zeros(2), np.eye(2))
    with pytest.raises(SSAGANError, match="at least 2"):
        compute_stats(np.zeros((1, 5)))


# ----------------------------------------------------------------------------------------------- IS

def test_inception_score_of_identical_predictions_is_one():
    probs = np.tile(np.random.default_rng(5).dirichlet(np.ones(10)), (20, 1))
    mean, std = inception_score(probs, splits=4, from_logits=False)
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)
    logits = np.tile(np.random.default_rng(6).normal(size=1008), (20, 1))
    assert inception_score(logits, splits=2)[0] == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("k", [1, 2, 5, 10])
def test_inception_score_of_k_equiprobable_one_hot_classes_is_k(k):
    probs = np.zeros((6 * k, 1008))
    probs[np.arange(6 * k), np.arange(6 * k) % k] = 1.0
    mean, std = inception_score(probs, splits=3, from_logits=False)
    assert mean == pytest.approx(k, rel=1e-12) and std == pytest.approx(0.0, abs=1e-12)
    # Confident logits approach the same value.
    assert inception_score(60.0 * probs, splits=3)[0] == pytest.approx(k, rel=1e-6)


def test_inception_score_splits_are_consecutive_chunks():
    probs = np.zeros((10, 4))
    probs[:5, 0] = probs[5:, 1] = 1.0
    assert inception_score(probs, splits=1, from_logits=False)[0] == pytest.approx(2.0)
    # Each half holds a single class, so each split scores 1.
    assert inception_score(probs, splits=2, from_logits=False) == pytest.approx((1.0, 0.0))


def test_inception_score_matches_torch_fidelity_on_random_logits():
    from torch_fidelity.metric_isc import isc_features_to_metric
    logits = torch.from_numpy(np.random.default_rng(7).normal(scale=3.0, size=(50, 1008)))
    ref = isc_features_to_metric(logits, splits=5, shuffle=False)
    mean, std = inception_score(logits, splits=5)
    assert mean == pytest.approx(ref["inception_score_mean"], rel=1e-9)
    assert std == pytest.approx(ref["inception_score_std"], rel=1e-6)


def test_inception_score_input_errors():
    with pytest.raises(SSAGANError, match="fewer than the 10 splits"):
        inception_score(np.zeros((9, 5)), splits=10)
    with pytest.raises(SSAGANError, match="probabilities"):
        inception_score(np.full((4, 3), 0.5), splits=1, from_logits=False)


# ---------------------------------------------------------------------------------------- R-precision

def test_r_precision_is_one_for_real_features_and_chance_when_shuffled():
    rng = np.random.default_rng(8)
    codes = rng.standard_normal((2000, 32))
    keys = np.arange(2000)
    mean, std = r_precision(codes, codes, codes, groups=keys, pool_groups=keys, splits=10)
    assert mean == 1.0 and std == 0.0
    shuffled = codes[rng.permutation(2000)]
    mean, _ = r_precision(shuffled, codes, codes, groups=keys, pool_groups=keys, splits=10)
    assert abs(mean - 0.01) < 0.008  # chance: 1 of 100 candidates (binomial sd 0.0022)


def test_r_precision_never_draws_mismatches_from_the_same_group():
    rng = np.random.default_rng(9)
    img = rng.standard_normal((20, 16))
    true = img + 0.05 * rng.standard_normal((20, 16))
    # Each group owns 20 near-copies of its image in the pool: drawing any of them would beat the
    # (more perturbed) true caption, and without the group rule almost every image draws one.
    copies = np.repeat(img, 20, axis=0) + 1e-3 * rng.standard_normal((400, 16))
    pool = np.concatenate([copies, rng.standard_normal((20, 16))])
    groups = np.arange(20)
    pool_groups = np.concatenate([np.repeat(groups, 20), 1000 + groups])
    mean, _ = r_precision(img, true, pool, groups=groups, pool_groups=pool_groups, splits=2)
    assert mean == 1.0
    unguarded, _ = r_precision(img, true, pool, splits=2)
    assert unguarded < 0.2
    with pytest.raises(SSAGANError, match="no mismatched caption"):
        r_precision(img[:4], true[:4], pool[:4], groups=[0] * 4, pool_groups=[0] * 4, splits=2)


def test_caption_groups_are_cub_classes_or_keys():
    assert caption_group("002.Laysan_Albatross/Laysan_Albatross_0002_1027") == "002.Laysan_Albatross"
    assert caption_group("COCO_val2014_000000000042") == "COCO_val2014_000000000042"
    assert caption_group("prompts/birds.txt:3") == "prompts/birds.txt:3"


# ------------------------------------------------------------------------------------ statistics files

def test_stats_round_trip_and_bad_npz(tmp_path):
    mu, sigma = np.arange(3.0), np.eye(3)
    save_stats(tmp_path / "s.npz", mu, sigma, {"images": 7})
    got_mu, got_sigma, meta = load_stats(tmp_path / "s.npz")
    np.testing.assert_array_equal(got_mu, mu)
    np.testing.assert_array_equal(got_sigma, sigma)
    assert meta == {"images": 7}
    np.savez(tmp_path / "bad.npz", mean=mu, cov=sigma)
    with pytest.raises(SSAGANError, match="'mu' and 'sigma'"):
        load_stats(tmp_path / "bad.npz")
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(SSAGANError, match="not a readable .npz"):
        load_stats(tmp_path / "junk.npz")
    np.savez(tmp_path / "shape.npz", mu=mu, sigma=np.eye(4))
    with pytest.raises(SSAGANError, match="expected"):
        load_stats(tmp_path / "shape.npz")


# ------------------------------------------------------------------------------------------ image sets

def test_find_images_errors_and_warnings(tmp_path):
    with pytest.raises(SSAGANError, match="does not exist"):
        find_images(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SSAGANError, match="is empty"):
        find_images(tmp_path / "empty")
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "notes.txt").write_text("x")
    with pytest.raises(SSAGANError, match="no images, only 1 other"):
        find_images(tmp_path / "text")
    _save_png(tmp_path / "mixed" / "sub" / "b.png", np.zeros((4, 4, 3)))
    _save_png(tmp_path / "mixed" / "a.jpg", np.zeros((4, 4, 3)))
    (tmp_path / "mixed" / "readme.md").write_text("x")
    with pytest.warns(UserWarning, match="skipping 1 non-image file.*readme.md"):
        files = find_images(tmp_path / "mixed")
    assert [f.name for f in files] == ["a.jpg", "b.png"]


def test_mixed_image_sizes_are_an_error_naming_two_files(tmp_path):
    _save_png(tmp_path / "a.png", np.zeros((8, 8, 3)))
    _save_png(tmp_path / "b.png", np.zeros((8, 6, 3)))
    with pytest.raises(SSAGANError, match=r"a\.png is 8x8 but .*b\.png is 6x8"):
        image_size(find_images(tmp_path))
    (tmp_path / "c.png").write_text("not a png")
    with pytest.raises(SSAGANError, match="not a readable image"):
        image_size([tmp_path / "c.png"])


def test_sample_dir_uses_img_and_ignores_masks(tmp_path):
    for i in range(3):
        _save_png(tmp_path / "img" / f"{i:06d}.png", np.full((8, 8, 3), 10 * i))
        _save_png(tmp_path / "mask" / f"{i:06d}.png", np.zeros((16, 16)))  # other size: must not matter
    rows = [{"file": f"img/{i:06d}.png", "key": f"k{i}", "caption_idx": 0, "text": "a", "tokens": [1, 2]}
            for i in range(3)]
    (tmp_path / "samples.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    images, records = open_image_dir(tmp_path)
    assert len(images) == 3 and images.size == (8, 8)
    assert images.dataset[2].shape == (3, 8, 8) and images.dataset[2].dtype == torch.uint8
    assert [r.key for r in records] == ["k0", "k1", "k2"]
    small, _ = open_image_dir(tmp_path, square=4)  # the original IS.py's pre-resize
    assert small.size == (4, 4) and small.dataset[0].shape == (3, 4, 4)
    (tmp_path / "samples.jsonl").write_text('{"file": "img/000000.png", "key": "k"}\n')
    with pytest.raises(SSAGANError, match=r"samples.jsonl:1: not a sample record"):
        open_image_dir(tmp_path)


def test_cub_crop_box_arithmetic():
    # r = int(0.75*max(w,h)) = 30, centre (60, 45) -> box clipped at the image border.
    assert cub_crop_box([40.0, 30.0, 40.0, 30.0], 100, 70) == (30, 15, 90, 70)
    assert cub_crop_box([0, 0, 10, 10], 100, 100) == (0, 0, 12, 12)


def test_cub_reference_set_crops_boxes_of_the_split(tmp_path):
    root = tmp_path / "birds"
    keys = ["001.A/a_1", "002.B/b_2"]
    img = np.zeros((60, 80, 3), dtype=np.uint8)
    img[20:40, 30:50] = 255  # the bird: a white square inside the bounding box
    for k in keys:
        _save_png(root / "CUB_200_2011" / "images" / f"{k}.jpg", img)
    (root / "CUB_200_2011" / "images.txt").write_text("1 001.A/a_1.jpg\n2 002.B/b_2.jpg\n3 003.C/c.jpg\n")
    (root / "CUB_200_2011" / "bounding_boxes.txt").write_text(
        "1 30.0 20.0 20.0 20.0\n2 30.0 20.0 20.0 20.0\n3 0 0 1 1\n")
    (root / "test").mkdir(parents=True)
    with open(root / "test" / "filenames.pickle", "wb") as f:
        pickle.dump(keys, f, protocol=2)
    assert is_cub_folder(root)
    images = cub_image_set(root, "test", 16)
    assert len(images) == 2 and images.size == (16, 16)
    x = images.dataset[0]
    assert x.shape == (3, 16, 16)
    # Box = centre +- 15 around the square: the square fills the middle two thirds of the crop.
    assert x[:, 8, 8].min() > 200 and x[:, 0, 0].max() < 60
    with pytest.raises(SSAGANError, match="train/filenames.pickle is missing"):
        cub_image_set(root, "train", 16)


class _RecordingInception(torch.nn.Module):
    """Stands in for Inception: records (height, width, first pixel) of every image it is shown and
    returns different random features on every pass."""
    sha256 = "abc"

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[list[tuple[int, int, int]]] = []

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.seen.append([(*x.shape[1:], int(x[0, 0, 0])) for x in images])
        gen = torch.Generator().manual_seed(len(self.seen))
        return torch.randn(len(images), 4, generator=gen), torch.zeros(len(images), 5)


def test_reference_stats_cache_and_sampler_folder(tmp_path):
    """The cache is keyed by file contents' stat and settings; a sampler folder contributes img/ only."""
    for i in range(3):
        _save_png(tmp_path / "ref" / "img" / f"{i}.png", np.full((8, 8, 3), 40 * i))
        _save_png(tmp_path / "ref" / "mask" / f"{i}.png", np.zeros((4, 4)))  # would be a size error
    model = _RecordingInception()
    seen = model.seen
    first = reference_stats(tmp_path / "ref", model, cache_dir=tmp_path / "cache")
    assert seen[0] == [(8, 8, 0), (8, 8, 40), (8, 8, 80)]  # img/0.png, img/1.png, img/2.png in order
    again = reference_stats(tmp_path / "ref", model, cache_dir=tmp_path / "cache")
    assert len(seen) == 1 and np.array_equal(again.mu, first.mu) and again.protocol["cache"]
    resized = reference_stats(tmp_path / "ref", model, size=4, cache_dir=tmp_path / "cache")
    assert len(seen) == 2 and resized.protocol["resolution"] == [4, 4]  # another setting: recomputed
    _save_png(tmp_path / "ref" / "img" / "1.png", np.full((8, 8, 3), 99))
    os.utime(tmp_path / "ref" / "img" / "1.png", ns=(1, 1))
    reference_stats(tmp_path / "ref", model, cache_dir=tmp_path / "cache")
    assert len(seen) == 3  # a changed file: recomputed


# ------------------------------------------------------------------------------------------- networks

@pytest.fixture(scope="module")
def random_inception():
    return InceptionExtractor(RANDOM_WEIGHTS)


def test_weights_missing_error_says_what_to_download(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(SSAGANError, match="no Inception weights found") as e:
        InceptionExtractor()
    assert INCEPTION_WEIGHTS_URL in str(e.value) and str(tmp_path / "hub" / "checkpoints") in str(e.value)
    with pytest.raises(SSAGANError, match="missing.pth does not exist"):
        InceptionExtractor(str(tmp_path / "missing.pth"))
    torch.save({"fc.weight": torch.zeros(2)}, tmp_path / "wrong.pth")
    with pytest.raises(SSAGANError, match="is not torch-fidelity's"):
        InceptionExtractor(str(tmp_path / "wrong.pth"))


def test_weights_load_from_a_local_file(tmp_path, random_inception, monkeypatch):
    path = tmp_path / "hub" / "checkpoints" / INCEPTION_WEIGHTS_FILE
    path.parent.mkdir(parents=True)
    torch.save(random_inception.net.state_dict(), path)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.warns(UserWarning, match="not comparable"):  # not the real file's sha256
        loaded = InceptionExtractor()  # found in the hub cache without --weights
    assert loaded.weights == str(path) and loaded.sha256 == sha256_file(path)
    for a, b in zip(loaded.state_dict().values(), random_inception.state_dict().values()):
        assert torch.equal(a, b)
    assert not loaded.train().training  # stays in eval mode inside a training loop


def _tanh_images(seed: int, n: int = 6, size: int = 16) -> torch.Tensor:
    """What a generator outputs: [n, 3, size, size] in [-1, 1]."""
    return torch.tanh(2 * torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed)))


@pytest.mark.slow
def test_registry_gives_the_numbers_of_the_png_files_for_images_generated_in_memory(tmp_path, random_inception):
    """A training loop's GeneratedImages give exactly what IS.py computes on the sampler's files."""
    from torchvision.models import Inception3

    from DAMSM import CNN_ENCODER, RNN_ENCODER
    fake = _tanh_images(0)
    records = [SampleRecord.numbered(i, f"{i // 2:03d}.Bird/b{i // 2}", 0, "", [1 + i // 2, 2], 0)
               for i in range(6)]
    folder = tmp_path / "samples"
    for i, img in enumerate(images_to_uint8(fake)):  # the sampler's conversion and file names
        _save_png(folder / image_file(i), img.permute(1, 2, 0).numpy())
    with open(folder / SAMPLES_FILE, "w") as f:
        write_records(f, records)
    images, read = open_image_dir(folder)
    assert read == records
    torch.manual_seed(0)
    torch.save(Inception3(num_classes=3, aux_logits=False, init_weights=False).state_dict(), tmp_path / "c.pth")
    common = dict(
        inception=random_inception, splits=2, batch_size=4, classifier=ClassifierIS(tmp_path / "c.pth"),
        encoders=DamsmEncoders(RNN_ENCODER(12, nhidden=256).eval(),
                               CNN_ENCODER(256, pretrained=False, input_size=75).eval(), "text.pth", "image.pth"))
    on_files = EvalContext(images=images, records=read, record_images=record_images(folder, read), **common)
    feats = on_files.features()
    mu, sigma = feats.moments.stats()
    assert feats.count == 6 and feats.logits.shape == (6, LOGITS_DIM) and mu.shape == (2048,)
    on_files.reference = ReferenceStats(mu, sigma, {"resolution": [16, 16]})
    names = ["inception_score", "fid", "r_precision", "classifier_is"]
    want = compute_metrics(names, on_files)
    assert abs(want["fid"]) < 1e-6 and set(want) == {"inception_score", "fid", "r_precision",
                                                       "inception_score_classifier"}
    # Generated in chunks other than the evaluation batch size; records pair with the images themselves.
    in_memory = EvalContext(images=GeneratedImages(lambda: [fake[:3], fake[3:5], fake[5:]], 6, (16, 16)),
                            records=records, reference=on_files.reference, **common)
    assert compute_metrics(names, in_memory) == want
    other = EvalContext(images=GeneratedImages(lambda: [0.2 * _tanh_images(1)], 6, (16, 16)),
                        reference=on_files.reference, **common)
    assert METRICS["fid"](other)["fid"] > 1e-4


def test_generated_images_and_registry_refuse_what_they_cannot_evaluate():
    fake = _tanh_images(0, n=3)
    with pytest.raises(SSAGANError, match="told 4 images but make_batches\\(\\) yielded 3"):
        list(GeneratedImages(lambda: [fake], 4, (16, 16)).batches(2, torch.device("cpu")))
    with pytest.raises(SSAGANError, match=r"expects batches \[B, 3, 8, 8\]"):
        list(GeneratedImages(lambda: [fake], 3, (8, 8)).batches(2, torch.device("cpu")))
    records = [SampleRecord.numbered(i, "k", 0, "", [1], i) for i in range(3)]
    with pytest.raises(SSAGANError, match="needs them indexable"):
        lpips_diversity(records, GeneratedImages(lambda: [fake], 3, (16, 16)), torch.nn.Identity())
    with pytest.raises(SSAGANError, match=r"'fid' needs EvalContext.inception, EvalContext.reference"):
        METRICS["fid"](EvalContext(images=GeneratedImages(lambda: [fake], 3, (16, 16))))
    with pytest.raises(SSAGANError, match="unknown metric 'kid'"):
        compute_metrics(["kid"], EvalContext())


def test_encode_sentences_matches_one_by_one_encoding():
    from DAMSM import RNN_ENCODER
    torch.manual_seed(0)
    enc = RNN_ENCODER(30, nhidden=16).eval()
    tokens = [[1, 2, 3], [4, 5, 6, 7, 8], [9], [10, 11]]
    batched = encode_sentences(enc, tokens, batch_size=3)
    for t, row in zip(tokens, batched):
        _, sent = enc(torch.tensor([t]), torch.tensor([len(t)]), enc.init_hidden(1))
        np.testing.assert_allclose(row, sent[0].detach().double().numpy(), atol=1e-6)
    with pytest.raises(SSAGANError, match="outside the text encoder's vocabulary"):
        encode_sentences(enc, [[30]])


def test_classifier_is_reads_a_torchvision_state_dict(tmp_path):
    from torchvision.models import Inception3
    torch.save(Inception3(num_classes=4, aux_logits=True, init_weights=False).state_dict(), tmp_path / "c.pth")
    model = ClassifierIS(tmp_path / "c.pth")
    assert model.classes == 4
    files = [tmp_path / f"{i}.png" for i in range(3)]
    for i, f in enumerate(files):
        _save_png(f, np.full((32, 32, 3), 80 * i))
    logits = classifier_logits(ImageFiles(files), model, batch_size=2)
    assert logits.shape == (3, 4) and np.isfinite(logits).all()
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(SSAGANError, match="not an Inception-v3 state dict"):
        ClassifierIS(tmp_path / "bad.pth")


def test_lpips_trunk_is_loaded_from_a_torchvision_alexnet_file_and_measures_diversity(tmp_path):
    pytest.importorskip("lpips", reason="the optional LPIPS metric needs `pip install --no-deps lpips` (scripts/test.sh installs it)")
    from torchvision.models import alexnet
    trunk = {k: v for k, v in alexnet(weights=None).state_dict().items() if k.startswith("features.")}
    torch.save(trunk, tmp_path / ALEXNET_WEIGHTS_FILE)
    lpips = build_lpips(str(tmp_path / ALEXNET_WEIGHTS_FILE))
    assert lpips.backbone == str(tmp_path / ALEXNET_WEIGHTS_FILE)
    model = lpips.model
    assert torch.equal(model.net.slice2._modules["3"].weight, trunk["features.3.weight"])
    rng = np.random.default_rng(0)
    same, other = rng.integers(0, 256, (64, 64, 3)), rng.integers(0, 256, (64, 64, 3))
    records = []
    for i, array in enumerate((same, same, same, other)):
        _save_png(tmp_path / image_file(i), array)
        records.append(SampleRecord.numbered(i, f"k{i // 2}", 0, "", [1], 0))
    mean, std, info = lpips_diversity(records, record_images(tmp_path, records), model, batch_size=2)
    assert info == {"captions": 2, "pairs": 2, "net": "alex (lpips v0.1)"}
    # Caption k0 has two identical images (distance 0), caption k1 two different ones.
    assert mean > 0 and std == pytest.approx(mean)
    with pytest.raises(SSAGANError, match="every caption has one image"):
        lpips_diversity(records[1:3], record_images(tmp_path, records[1:3]), model)
    with pytest.raises(SSAGANError, match="alexnet-owt-7be5be79.pth"):
        build_lpips(str(tmp_path / "none.pth"))
