"""Sampler: the 30k protocol (every test caption), determinism, checkpoints, user captions, errors."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from DAMSM import RNN_ENCODER
from datasets import TextDataset
from miscc.run.checkpoint import save_released
from miscc.config import cfg
from miscc.errors import SSAGANError
from miscc.sample.protocol import DONE_FILE, GRID_FILE
from miscc.sample.png import PngWriter
from miscc.sample.sampler import sample
from model import NetG

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE, NF, BATCH = 64, 4, 7  # 7 does not divide the 60 test captions: the last batch has 4
RECORD_FIELDS = {"file", "mask", "key", "caption_idx", "text", "tokens", "repeat"}


@pytest.fixture(scope="module")
def models(tmp_path_factory, synthetic_birds) -> dict:
    """A tiny NetG with open gates (so text and noise both matter) and two random text encoders."""
    root = tmp_path_factory.mktemp("sampler_models")
    n_words = TextDataset(synthetic_birds, "test").n_words
    torch.manual_seed(0)
    netG = NetG(NF, 100, imsize=SIZE)
    with torch.no_grad():
        for p in netG.parameters():
            p.add_(0.1 * torch.randn_like(p))
    save_released(netG, root / "netG_010.pth", prefix="module.")
    save_released(RNN_ENCODER(n_words, nhidden=256), root / "damsm_text_encoder.pth")
    save_released(RNN_ENCODER(n_words, nhidden=256), root / "text_encoder_010.pth")
    return {"root": root, "netG": root / "netG_010.pth", "damsm": root / "damsm_text_encoder.pth",
            "finetuned": root / "text_encoder_010.pth", "n_words": n_words}


@pytest.fixture
def setup(models, synthetic_birds, tmp_path) -> dict:
    cfg.DATA_DIR = str(synthetic_birds)
    cfg.TREE.BASE_SIZE, cfg.TRAIN.NF, cfg.TRAIN.BATCH_SIZE = SIZE, NF, BATCH
    cfg.CUDA, cfg.WORKERS = False, 2
    cfg.OUTPUT_DIR, cfg.CONFIG_NAME = str(tmp_path / "output"), "run"
    cfg.TRAIN.NET_G, cfg.TEXT.DAMSM_NAME = str(models["netG"]), str(models["damsm"])
    return {**models, "tmp": tmp_path, "dataset": TextDataset(synthetic_birds, "test")}


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


def png_bytes(out: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted((out / "img").iterdir()) + sorted((out / "mask").iterdir())]


def test_every_caption_protocol_writes_each_caption_once_per_pass(setup):
    ds = setup["dataset"]
    n = len(ds.filenames) * ds.embeddings_num
    out = sample(repeat=2)
    assert out == Path(cfg.OUTPUT_DIR) / "run" / "samples" / "netG_010_main"
    recs = records(out)
    assert len(recs) == 2 * n
    assert sorted(p.name for p in (out / "img").iterdir()) == [f"{i:06d}.png" for i in range(2 * n)]
    assert sorted(p.name for p in (out / "mask").iterdir()) == [f"{i:06d}.png" for i in range(2 * n)]
    for i, r in enumerate(recs):
        assert set(r) == RECORD_FIELDS
        assert (r["file"], r["mask"]) == (f"img/{i:06d}.png", f"mask/{i:06d}.png")
        assert (r["repeat"], r["caption_idx"]) == (i // n, i % n)  # dataset order, pass after pass
        assert r["key"] == ds.filenames[r["caption_idx"] // ds.embeddings_num]
        assert r["text"] == " ".join(ds.ixtoword[t] for t in r["tokens"])
        full = ds.captions[r["caption_idx"]]
        assert len(r["tokens"]) == min(len(full), cfg.TEXT.WORDS_NUM)
    first_pass, second_pass = (out / recs[0]["file"]).read_bytes(), (out / recs[n]["file"]).read_bytes()
    assert first_pass != second_pass, "each pass must draw new noise"
    with Image.open(out / recs[-1]["file"]) as im:
        assert (im.mode, im.size) == ("RGB", (SIZE, SIZE))
    with Image.open(out / recs[-1]["mask"]) as im:
        assert (im.mode, im.size) == ("L", (SIZE, SIZE))
    done = json.loads((out / DONE_FILE).read_text())
    assert done["count"] == 2 * n and done["protocol"] == "every" and done["seed"] == cfg.SEED
    assert done["netG"] == str(setup["netG"]) and done["text_encoder"] == str(setup["damsm"])

    # A caption longer than WORDS_NUM keeps the ordered subset TextDataset(every_caption=True) draws.
    long_idx = [i for i, c in enumerate(ds.captions) if len(c) > cfg.TEXT.WORDS_NUM]
    assert long_idx, "the synthetic set should have captions longer than WORDS_NUM"
    every = TextDataset(cfg.DATA_DIR, "test", every_caption=True)
    for i in long_idx[:3]:
        _, caps, cap_len, _, _ = every[i]
        assert recs[i]["tokens"] == recs[n + i]["tokens"] == caps[:cap_len, 0].tolist()
        assert recs[i]["tokens"] != ds.captions[i][:cfg.TEXT.WORDS_NUM]


def test_pixels_are_the_generator_output_for_the_seeded_noise(setup, models):
    """Image k = uint8((G(z_k, s_k) + 1) * 127.5) truncated, z = randn(N, 100) from Generator(SEED)."""
    out = sample()
    recs = records(out)[:BATCH]
    netG = NetG(NF, 100, imsize=SIZE)
    netG.load_state_dict({k[len("module."):]: v for k, v in torch.load(models["netG"]).items()})
    encoder = RNN_ENCODER(models["n_words"], nhidden=256)
    encoder.load_state_dict(torch.load(models["damsm"]))
    netG.eval(), encoder.eval()
    n = len(setup["dataset"].captions)
    noise = torch.randn(n, 100, generator=torch.Generator().manual_seed(cfg.SEED))[:BATCH]
    lens = torch.tensor([len(r["tokens"]) for r in recs])
    caps = torch.zeros(BATCH, int(lens.max()), dtype=torch.int64)
    for i, r in enumerate(recs):
        caps[i, :len(r["tokens"])] = torch.tensor(r["tokens"])
    with torch.no_grad():
        img, masks = netG(noise, encoder(caps, lens, encoder.init_hidden(caps.size(0)))[1])
    expected = ((img + 1) * 127.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    expected_mask = (masks[-1][:, 0] * 255).to(torch.uint8).numpy()
    for i, r in enumerate(recs):
        assert np.array_equal(np.asarray(Image.open(out / r["file"])), expected[i])
        assert np.array_equal(np.asarray(Image.open(out / r["mask"])), expected_mask[i])


def test_same_seed_same_bytes_other_seed_other_images(setup):
    tmp = setup["tmp"]
    first = png_bytes(sample(out_dir=str(tmp / "a")))
    assert first == png_bytes(sample(out_dir=str(tmp / "b")))
    # The noise of an image depends on its index only, not on how the captions were batched.
    other_batching = sample(out_dir=str(tmp / "c"), batch_size=32)
    for name in ("000000.png", "000059.png"):
        a = np.asarray(Image.open(tmp / "a" / "img" / name), dtype=int)
        c = np.asarray(Image.open(other_batching / "img" / name), dtype=int)
        assert np.abs(a - c).max() <= 1
    cfg.SEED = 101
    other = png_bytes(sample(out_dir=str(tmp / "d")))
    assert len(other) == len(first)
    assert sum(a != b for a, b in zip(first, other)) == len(first)


def test_random_caption_mode_is_the_original_one_caption_per_image(setup):
    ds = setup["dataset"]
    out = sample(caption_mode="random", batch_size=4)
    recs = records(out)
    assert len(recs) == len(ds.filenames) == len(list((out / "img").iterdir()))
    assert [r["key"] for r in recs] == ds.filenames
    assert [r["caption_idx"] // ds.embeddings_num for r in recs] == list(range(len(ds.filenames)))
    assert json.loads((out / DONE_FILE).read_text())["protocol"] == "random"
    again = records(sample(caption_mode="random", out_dir=str(setup["tmp"] / "again")))
    assert [r["caption_idx"] for r in again] == [r["caption_idx"] for r in recs]
    cfg.SEED = 7
    other = records(sample(caption_mode="random", out_dir=str(setup["tmp"] / "s7")))
    assert [r["caption_idx"] for r in other] != [r["caption_idx"] for r in recs]


def test_rerun_into_the_same_folder_leaves_no_stale_image(setup):
    out = sample()
    assert len(list((out / "img").iterdir())) == len(setup["dataset"].captions)
    sample(caption_mode="random")
    assert len(list((out / "img").iterdir())) == len(setup["dataset"].filenames)
    foreign = setup["tmp"] / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(SSAGANError, match="not empty"):
        sample(out_dir=str(foreign))
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_finetune_mode_uses_the_text_encoder_of_the_same_epoch(setup):
    cfg.TEXT.DAMSM_NAME = str(setup["tmp"] / "no_such_encoder.pth")  # must not be read in finetune mode
    out = sample(mode="finetune", caption_mode="random")
    assert out.name == "netG_010_finetune"
    done = json.loads((out / DONE_FILE).read_text())
    assert done["text_encoder"] == str(setup["finetuned"]) and done["mode"] == "finetune"
    with pytest.raises(SSAGANError, match="does not exist"):
        sample(mode="main", caption_mode="random")


def test_finetune_mode_samples_the_best_epoch_with_its_best_text_encoder(setup):
    """main_finetune.py keeps the best epoch as netG_best.pth + text_encoder_best.pth: they pair like epochs."""
    best = setup["tmp"] / "best"
    best.mkdir()
    (best / "netG_best.pth").write_bytes(setup["netG"].read_bytes())
    (best / "text_encoder_best.pth").write_bytes(setup["finetuned"].read_bytes())
    cfg.TRAIN.NET_G = str(best / "netG_best.pth")
    out = sample(mode="finetune", caption_mode="random")
    assert json.loads((out / DONE_FILE).read_text())["text_encoder"] == str(best / "text_encoder_best.pth")
    (best / "netG_final.pth").write_bytes(setup["netG"].read_bytes())  # neither an epoch nor the best tag
    cfg.TRAIN.NET_G = str(best / "netG_final.pth")
    with pytest.raises(SSAGANError, match="cannot read an epoch"):
        sample(mode="finetune")


def test_finetune_mode_without_its_text_encoder_is_a_clear_error(setup):
    lonely = setup["tmp"] / "lonely"
    lonely.mkdir()
    (lonely / "netG_020.pth").write_bytes(setup["netG"].read_bytes())
    cfg.TRAIN.NET_G = str(lonely / "netG_020.pth")
    with pytest.raises(SSAGANError, match=r"text_encoder_020\.pth"):
        sample(mode="finetune")
    with pytest.raises(SSAGANError, match="mode must be one of"):
        sample(mode="fine")
    cfg.TRAIN.NET_G = str(lonely / "netG_030.pth")
    with pytest.raises(SSAGANError, match=r"TRAIN.NET_G = .*netG_030\.pth does not exist"):
        sample(mode="finetune")


def test_empty_net_g_picks_the_newest_snapshot_of_the_run(setup):
    cfg.TRAIN.NET_G = ""
    models_dir = Path(cfg.OUTPUT_DIR) / "run" / "models"
    with pytest.raises(SSAGANError, match="TRAIN.NET_G"):
        sample(caption_mode="random")
    models_dir.mkdir(parents=True)
    for name in ("netG_005.pth", "netG_100.pth", "netG_best.pth"):
        (models_dir / name).write_bytes(setup["netG"].read_bytes())
    out = sample(caption_mode="random")
    assert out.name == "netG_100_main"
    assert json.loads((out / DONE_FILE).read_text())["netG"] == str(models_dir / "netG_100.pth")


def test_vocabulary_mismatch_is_a_clear_error(setup):
    bigger = setup["tmp"] / "bigger.pth"
    save_released(RNN_ENCODER(setup["n_words"] + 1, nhidden=256), bigger)
    cfg.TEXT.DAMSM_NAME = str(bigger)
    with pytest.raises(SSAGANError, match="vocabulary mismatch"):
        sample(caption_mode="random")


def test_user_captions_write_images_masks_and_a_grid(setup):
    ds = setup["dataset"]
    words = [ds.ixtoword[t] for t in ds.captions[0][:6]]
    captions = setup["tmp"] / "my_birds.txt"
    captions.write_text(f"{' '.join(words)}\n\n   \n{' '.join(words[:3]).upper()}!\n")
    out = sample(captions_file=str(captions), per_caption=3)
    assert out.name == "netG_010_main_my_birds"
    recs = records(out)
    assert len(recs) == 6 and len(list((out / "mask").iterdir())) == 6
    assert [r["key"] for r in recs] == ["my_birds.txt:1"] * 3 + ["my_birds.txt:4"] * 3
    assert [r["repeat"] for r in recs] == [0, 1, 2] * 2
    assert recs[3]["text"] == " ".join(words[:3])  # lower-cased, punctuation dropped
    with Image.open(out / GRID_FILE) as grid:
        grid = grid.convert("RGB")
    cell = SIZE + 2
    assert grid.size == (3 * SIZE + 2 * 3 * cell, 2 + 2 * cell)
    # Row 2: image 3 of caption 2 (file 000005) then its mask, three tiles further right.
    y = 2 + cell
    tile = np.asarray(grid.crop((3 * SIZE + 2 * cell, y, 3 * SIZE + 2 * cell + SIZE, y + SIZE)))
    assert np.array_equal(tile, np.asarray(Image.open(out / "img" / "000005.png")))
    mask_x = 3 * SIZE + 5 * cell
    mask_tile = np.asarray(grid.crop((mask_x, y, mask_x + SIZE, y + SIZE)))[..., 0]
    assert np.array_equal(mask_tile, np.asarray(Image.open(out / "mask" / "000005.png")))
    text_panel = np.asarray(grid.crop((0, 2, 3 * SIZE, 2 + SIZE)))
    assert (text_panel < 128).any(), "the caption text should be drawn"
    assert json.loads((out / DONE_FILE).read_text())["protocol"] == "captions"


def test_unknown_error_refuses_the_file_listing_unknown_words_with_their_line(setup):
    known = setup["dataset"].ixtoword[setup["dataset"].captions[0][0]]
    captions = setup["tmp"] / "caps.txt"
    captions.write_text(f"{known}\n\na {known} zqxwv bird\nflorble {known}\n")
    with pytest.raises(SSAGANError) as err:
        sample(captions_file=str(captions), unknown="error")
    msg = str(err.value)
    assert "line 3" in msg and "zqxwv" in msg and "line 4" in msg and "florble" in msg
    assert str(setup["n_words"]) in msg and "line 1" not in msg
    assert not (Path(cfg.OUTPUT_DIR) / "run" / "samples").exists()


def test_too_long_caption_is_refused_under_unknown_error_naming_line_length_and_cap(setup):
    word = setup["dataset"].ixtoword[setup["dataset"].captions[0][0]]
    captions = setup["tmp"] / "long.txt"
    captions.write_text(f"{word}\n{' '.join([word] * 19)}\n")
    with pytest.raises(SSAGANError, match=r"line 2: .*19 words.* 18 \(TEXT.WORDS_NUM\)"):
        sample(captions_file=str(captions), unknown="error")


def test_empty_captions_file_is_an_error(setup):
    captions = setup["tmp"] / "empty.txt"
    captions.write_text("\n  \n")
    with pytest.raises(SSAGANError, match="holds no caption"):
        sample(captions_file=str(captions))
    with pytest.raises(SSAGANError, match="does not exist"):
        sample(captions_file=str(setup["tmp"] / "missing.txt"))


def test_png_writer_propagates_write_errors(tmp_path):
    image = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(SSAGANError, match=r"could not write .*x\.png \(No such file or directory\).*incomplete"):
        with PngWriter(ThreadPoolExecutor(1), max_pending=1) as writer:
            writer.submit([(str(tmp_path / "missing_dir" / "x.png"), image)])
    with PngWriter(ThreadPoolExecutor(2), max_pending=2) as writer:
        for i in range(5):
            writer.submit([(str(tmp_path / f"{i}.png"), image)])
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{i}.png" for i in range(5)]
