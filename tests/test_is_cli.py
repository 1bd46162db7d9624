"""IS.py end to end on tiny folders with a random-init Inception, and every bad-input error."""
from __future__ import annotations

import json
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import IS
from miscc.metrics.inception import (INCEPTION_WEIGHTS_FILE, INCEPTION_WEIGHTS_URL, RANDOM_WEIGHTS,
                                     InceptionExtractor)
from miscc.metrics.stats import load_stats
from tests.helpers import random_damsm, write_images

ROOT = Path(__file__).resolve().parents[1]
N_IMAGES = 4


@pytest.fixture
def sample_dir(tmp_path: Path) -> Path:
    """The sampler's layout: img/, mask/ (greyscale, must be ignored) and samples.jsonl, two images
    (repeats) per caption."""
    out = tmp_path / "samples"
    write_images(out / "img", N_IMAGES, seed=0)
    write_images(out / "mask", N_IMAGES, seed=1, size=8, mode="L")
    rows = [{"file": f"img/{i:06d}.png", "key": f"{i // 2:03d}.Bird/img_{i // 2}", "caption_idx": 0,
             "repeat": i % 2, "text": "a small bird", "tokens": [1 + i // 2, 2, 3, 4][: 2 + i // 2]}
            for i in range(N_IMAGES)]
    (out / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / "DONE.json").write_text(json.dumps({"count": N_IMAGES}))  # a finished sampling run
    return out


@pytest.fixture(scope="module")
def shared_inception():
    return InceptionExtractor(RANDOM_WEIGHTS)


@pytest.fixture
def fast_inception(shared_inception):
    """Builds IS.py's network: one random-init network shared across CLI runs (building one takes
    seconds on 2 cores)."""
    return lambda w=None: shared_inception if w == RANDOM_WEIGHTS else InceptionExtractor(w)


class _CacheOnly(torch.nn.Module):
    """The shared network's identity (cache key, protocol), but computing a feature is a failure."""

    def __init__(self, real: InceptionExtractor) -> None:
        super().__init__()
        self.sha256, self.protocol = real.sha256, real.protocol

    def forward(self, images: torch.Tensor):
        raise AssertionError("reference statistics were recomputed instead of read from the cache")


def _run(*argv: str, make_inception=InceptionExtractor) -> int:
    return IS.main(["--weights", "random", "--workers", "0", "--batch_size", "4", *argv],
                   make_inception=make_inception)


def test_end_to_end_json_cache_save_stats_and_npz_reference(tmp_path, sample_dir, fast_inception):
    ref = tmp_path / "real"
    write_images(ref, N_IMAGES, seed=2)
    cache = tmp_path / "cache"

    assert _run("--image_dir", str(sample_dir), "--splits", "2", "--fid_ref", str(ref),
                "--cache_dir", str(cache), make_inception=fast_inception) == 0
    result = json.loads((sample_dir / "metrics.json").read_text())
    proto = result["protocol"]
    assert proto["images"] == N_IMAGES and proto["resolution"] == [64, 64] and proto["splits"] == 2
    assert proto["inception"]["weights"] == "random" and proto["inception"]["weights_sha256"] == "random"
    assert proto["inception"]["library"].startswith("torch-fidelity ")
    assert proto["reference"]["images"] == N_IMAGES and proto["reference"]["reference"] == str(ref)
    assert any("RANDOM" in n for n in proto["notes"])
    assert result["inception_score"]["mean"] >= 1.0 and result["inception_score"]["splits"] == 2
    fid = result["fid"]
    assert fid > 0 and np.isfinite(fid)
    assert len(list(cache.glob("*.npz"))) == 1

    # Statistics-only run: served from the cache (no feature extraction at all), written as .npz.
    assert _run("--fid_ref", str(ref), "--save_stats", str(tmp_path / "ref.npz"), "--cache_dir", str(cache),
                make_inception=lambda w: _CacheOnly(fast_inception(w))) == 0
    mu, sigma, meta = load_stats(tmp_path / "ref.npz")
    assert mu.shape == (2048,) and sigma.shape == (2048, 2048) and meta["images"] == N_IMAGES

    # The saved statistics as reference give the same FID as the folder did.
    out = tmp_path / "npz.json"
    assert _run("--image_dir", str(sample_dir), "--splits", "2", "--fid_ref", str(tmp_path / "ref.npz"),
                "--out", str(out), make_inception=fast_inception) == 0
    again = json.loads(out.read_text())
    assert again["fid"] == pytest.approx(fid, rel=1e-9)
    assert again["protocol"]["reference"]["kind"] == "precomputed statistics"


def _damsm_files(tmp_path: Path, n_words: int, rnn_type: str = "LSTM") -> Path:
    text_encoder = random_damsm(tmp_path, n_words, epoch=7, rnn_type=rnn_type)
    vocab = {i: f"w{i}" for i in range(n_words)}
    with open(tmp_path / "captions.pickle", "wb") as f:
        pickle.dump([[], [], vocab, {w: i for i, w in vocab.items()}], f, protocol=2)
    return text_encoder


def test_r_precision_classifier_is_and_lpips_end_to_end(tmp_path, sample_dir, fast_inception):
    pytest.importorskip("lpips", reason="the optional LPIPS metric needs `pip install --no-deps lpips` (scripts/test.sh installs it)")
    from torchvision.models import Inception3
    text_encoder = _damsm_files(tmp_path, n_words=12)
    torch.save(Inception3(num_classes=3, aux_logits=False, init_weights=False).state_dict(), tmp_path / "cls.pth")
    out = tmp_path / "r.json"
    assert _run("--image_dir", str(sample_dir), "--splits", "2", "--r_precision", "--text_encoder",
                str(text_encoder), "--captions_pickle", str(tmp_path / "captions.pickle"),
                "--is_classifier", str(tmp_path / "cls.pth"), "--lpips", "--lpips_backbone", "random",
                "--out", str(out), make_inception=fast_inception) == 0
    result = json.loads(out.read_text())
    r = result["r_precision"]
    assert 0.0 <= r["mean"] <= 1.0 and r["images"] == N_IMAGES and r["mismatched"] == 99
    assert r["distinct_captions"] == N_IMAGES // 2 and r["image_encoder"].endswith("image_encoder7.pth")
    c = result["inception_score_classifier"]
    assert c["classes"] == 3 and 1.0 <= c["mean"] <= 3.0
    d = result["lpips_diversity"]
    assert d["pairs"] == N_IMAGES // 2 and d["captions"] == N_IMAGES // 2 and d["mean"] > 0


def test_r_precision_loads_a_gru_text_encoder_as_the_config_says(tmp_path, sample_dir, fast_inception):
    text_encoder = _damsm_files(tmp_path, n_words=12, rnn_type="GRU")
    config = tmp_path / "gru.yml"
    config.write_text(f"RNN_TYPE: GRU\nTEXT: {{DAMSM_NAME: '{text_encoder}'}}\n")
    out = tmp_path / "gru.json"
    assert _run("--image_dir", str(sample_dir), "--splits", "2", "--r_precision", "--cfg", str(config),
                "--captions_pickle", str(tmp_path / "captions.pickle"), "--out", str(out),
                make_inception=fast_inception) == 0
    r = json.loads(out.read_text())["r_precision"]
    assert 0.0 <= r["mean"] <= 1.0 and r["images"] == N_IMAGES and r["text_encoder"] == str(text_encoder)


def _bad(tmp_path: Path, case: str) -> list[str]:
    folder = tmp_path / "in"
    if case == "missing":
        return ["--image_dir", str(folder)]
    folder.mkdir()
    if case == "empty":
        return ["--image_dir", str(folder)]
    if case == "only_non_images":
        (folder / "a.txt").write_text("x")
        return ["--image_dir", str(folder)]
    if case == "mixed_sizes":
        write_images(folder, 2, seed=0, size=16)
        write_images(folder / "sub", 1, seed=0, size=12)
        return ["--image_dir", str(folder)]
    write_images(folder, 3, seed=0)
    if case == "fewer_than_splits":
        return ["--image_dir", str(folder), "--splits", "10"]
    if case == "npz_without_mu_sigma":
        np.savez(tmp_path / "stats.npz", mean=np.zeros(2))
        return ["--image_dir", str(folder), "--splits", "2", "--fid_ref", str(tmp_path / "stats.npz")]
    if case == "no_inception_with_fid_ref":
        return ["--image_dir", str(folder), "--splits", "2", "--no_inception", "--fid_ref", str(folder)]
    if case == "no_inception_and_no_metric":
        return ["--image_dir", str(folder), "--splits", "2", "--no_inception"]
    if case == "r_precision_without_samples":
        return ["--image_dir", str(folder), "--splits", "2", "--r_precision", "--text_encoder", "x.pth"]
    if case == "vocabulary_mismatch":
        sample = tmp_path / "s"
        write_images(sample / "img", 1, seed=0)
        (sample / "samples.jsonl").write_text(json.dumps(
            {"file": "img/000000.png", "key": "k", "caption_idx": 0, "tokens": [1]}) + "\n")
        (sample / "DONE.json").write_text("{}")
        text_encoder = tmp_path / "text_encoder1.pth"
        torch.save({"encoder.weight": torch.zeros(9, 300)}, text_encoder)
        with open(tmp_path / "captions.pickle", "wb") as f:
            pickle.dump([[], [], {0: "<end>"}, {"<end>": 0}], f)
        return ["--image_dir", str(sample), "--splits", "1", "--r_precision", "--text_encoder",
                str(text_encoder), "--captions_pickle", str(tmp_path / "captions.pickle")]
    raise AssertionError(case)


@pytest.mark.parametrize("case, message", [
    ("missing", r"image folder .*in does not exist"),
    ("empty", r"image folder .*in is empty"),
    ("only_non_images", r"holds no images, only 1 other file\(s\) such as a.txt"),
    ("mixed_sizes", r"images differ in size: .*000000.png is 16x16 but .*sub/000000.png is 12x12"),
    ("fewer_than_splits", r"has 3 images, fewer than --splits 10"),
    ("npz_without_mu_sigma", r"holds the arrays \['mean'\], but FID statistics need 'mu' and 'sigma'"),
    ("r_precision_without_samples", r"--r_precision needs .*samples.jsonl"),
    ("no_inception_with_fid_ref", r"--fid_ref needs the Inception network; drop --no_inception"),
    ("no_inception_and_no_metric", r"--no_inception leaves nothing to compute"),
    ("vocabulary_mismatch", r"captions.pickle has 1 words but the text encoder .* was trained with 9"),
])
def test_bad_input_is_one_clear_error(tmp_path, capsys, case, message):
    def no_network(*a, **k):
        raise AssertionError("bad input must be refused before any network is built")
    argv = _bad(tmp_path, case)
    assert _run(*argv, make_inception=no_network) == 2
    err = capsys.readouterr().err
    assert err.startswith("IS.py: error: ")
    assert re.search(message, err), err


def test_missing_weights_error_names_file_url_and_place(tmp_path, capsys, monkeypatch):
    write_images(tmp_path / "in", 2, seed=0)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    assert IS.main(["--image_dir", str(tmp_path / "in"), "--splits", "1", "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert INCEPTION_WEIGHTS_FILE in err and INCEPTION_WEIGHTS_URL in err
    assert str(tmp_path / "hub" / "checkpoints") in err and "--weights" in err


@pytest.mark.slow
def test_command_line_entry_point_exit_code(tmp_path):
    proc = subprocess.run([sys.executable, "IS.py", "--image_dir", str(tmp_path / "none")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "IS.py: error: image folder" in proc.stderr and "Traceback" not in proc.stderr
