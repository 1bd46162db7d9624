"""Sampler options of issue #14: --unknown drop|error, --masks last|all|none, --same_noise."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from PIL import Image

from miscc.config import cfg
from miscc.errors import SSAGANError
from miscc.sample.sampler import DONE_FILE, GRID_FILE, STAGE_DIR, sample
from main import cli_main
from miscc.text.user_captions import UserCaptionWarning, read_caption
from tests.test_sampler import SIZE, models, records, setup  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STAGES = [4, 8, 16, 32, 64]  # mask sizes of a 64 px generator, smallest first
CELL = SIZE + 2


def known_words(setup, count: int) -> list[str]:
    ds = setup["dataset"]
    words = list(dict.fromkeys(ds.ixtoword[t] for c in ds.captions for t in c))
    return [w for w in words if len(w) >= 4][:count]


def pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def text_panel_is_red(grid: np.ndarray, line: int) -> bool:
    """The grid's dropped-word colour (red) in the text panel of tile line ``line``."""
    panel = grid[2 + line * CELL: 2 + line * CELL + SIZE, :3 * SIZE].astype(int)
    return bool(((panel[..., 0] > 150) & (panel[..., 1] < 90) & (panel[..., 2] < 90)).any())


def test_unknown_words_are_dropped_reported_and_marked(setup):
    a, b, c = known_words(setup, 3)
    typo = a[:-1] + "q" if a[-1] != "q" else a[:-1] + "z"  # a near miss of a known word: gets a hint
    captions = setup["tmp"] / "mine.txt"
    captions.write_text(f"{b} {typo} {c}\nzqxwv florble\n\n!!!\n{c} {b}\n")
    with pytest.warns(UserCaptionWarning) as caught:
        out = sample(captions_file=str(captions), per_caption=2)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 3, messages  # one per changed or skipped line, none for line 5
    assert [(w.filename, w.lineno) for w in caught] == [(str(captions), 1), (str(captions), 2), (str(captions), 4)]
    assert f"dropped 1 unknown word(s): '{typo}' (did you mean {a}" in messages[0]
    assert f"the model reads '{b} {c}'" in messages[0]
    assert "line skipped" in messages[1] and "zqxwv" in messages[1] and "florble" in messages[1]
    assert "line skipped" in messages[2] and "no words" in messages[2]

    recs = records(out)
    assert [r["key"] for r in recs] == ["mine.txt:1"] * 2 + ["mine.txt:5"] * 2
    wordtoix = setup["dataset"].wordtoix
    assert recs[0]["text"] == f"{b} {c}" and recs[0]["tokens"] == [wordtoix[b], wordtoix[c]]
    assert recs[0]["dropped"] == [typo] and recs[0]["marked"] == f"{b} [{typo}] {c}"
    assert recs[2]["dropped"] == [] and recs[2]["marked"] == f"{c} {b}"
    grid = pixels(out / GRID_FILE)
    assert text_panel_is_red(grid, 0) and not text_panel_is_red(grid, 1)
    done = json.loads((out / DONE_FILE).read_text())
    assert done["unknown"] == "drop" and done["count"] == 4


def test_a_file_with_no_readable_line_is_an_error_naming_the_skips(setup):
    captions = setup["tmp"] / "none.txt"
    captions.write_text("zqxwv florble\n\n...\n")
    with pytest.warns(UserCaptionWarning), pytest.raises(SSAGANError, match=r"holds no caption.*2 line\(s\) skipped"):
        sample(captions_file=str(captions))


def test_unknown_error_keeps_the_strict_refusal_and_drop_keeps_the_length_check(setup):
    a, b = known_words(setup, 2)
    wordtoix = setup["dataset"].wordtoix
    with pytest.raises(SSAGANError, match=r"not in the vocabulary.*'zqxwv'"):
        read_caption(f"{a} zqxwv", wordtoix, 18, "error")
    with pytest.raises(SSAGANError, match="contains no words"):
        read_caption("!!!", wordtoix, 18, "error")
    # Counted after dropping: 18 known words fit, 19 do not, whatever the number of unknown words;
    # --unknown error refuses the 19th, drop cuts it (test_a_long_line_is_cut_...).
    assert len(read_caption(" ".join([a] * 18 + ["zqxwv"] * 3), wordtoix, 18).ids) == 18
    assert read_caption(" ".join([a] * 18 + ["zqxwv"] * 3), wordtoix, 18).cut == []
    with pytest.raises(SSAGANError, match="19 words"):
        read_caption(" ".join([a] * 19), wordtoix, 18, "error")
    with pytest.raises(SSAGANError, match="--unknown must be one of"):
        sample(captions_file=str(setup["tmp"] / "x.txt"), unknown="ignore")
    captions = setup["tmp"] / "strict.txt"
    captions.write_text(f"{a} {b}\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing dropped: no warning either way
        out = sample(captions_file=str(captions), per_caption=1, unknown="error")
    assert records(out)[0]["dropped"] == []


def test_masks_all_writes_every_stage_upsampled_and_records_raw_sizes(setup):
    a, b = known_words(setup, 2)
    captions = setup["tmp"] / "two.txt"
    captions.write_text(f"{a} {b}\n{b}\n")
    out = sample(captions_file=str(captions), per_caption=2, masks="all")
    recs = records(out)
    assert sorted(p.name for p in (out / STAGE_DIR).iterdir()) == sorted(
        f"{i:06d}_s{s}.png" for i in range(4) for s in range(len(STAGES)))
    assert len(list((out / "mask").iterdir())) == 4
    for r in recs:
        assert r["stage_mask_sizes"] == STAGES
        assert r["stage_masks"] == [f"{STAGE_DIR}/{r['file'][4:-4]}_s{s}.png" for s in range(len(STAGES))]
        for size, name in zip(STAGES, r["stage_masks"]):
            up = pixels(out / name)
            assert up.shape == (SIZE, SIZE) and up.dtype == np.uint8
            block = SIZE // size  # nearest upsampling: every raw cell is a constant block
            raw = up[::block, ::block]
            assert raw.shape == (size, size)
            assert np.array_equal(raw.repeat(block, 0).repeat(block, 1), up)
        assert np.array_equal(pixels(out / r["stage_masks"][-1]), pixels(out / r["mask"]))
    # The coarse stages are not all constant (the generator's masks do vary): a real check of the blocks.
    assert any(len(np.unique(pixels(out / r["stage_masks"][1]))) > 1 for r in recs)
    # Grid: one line per image, the image then its 5 masks.
    grid = pixels(out / GRID_FILE)
    assert grid.shape[:2] == (2 + 4 * CELL, 3 * SIZE + 6 * CELL)
    line, stage = 3, 2
    x, y = 3 * SIZE + (1 + stage) * CELL, 2 + line * CELL
    assert np.array_equal(grid[y:y + SIZE, x:x + SIZE, 0], pixels(out / recs[line]["stage_masks"][stage]))
    assert json.loads((out / DONE_FILE).read_text())["masks"] == "all"


def test_masks_none_writes_images_only_and_last_is_the_default(setup):
    a = known_words(setup, 1)[0]
    captions = setup["tmp"] / "one.txt"
    captions.write_text(f"{a}\n")
    out = sample(captions_file=str(captions), per_caption=3, masks="none")
    assert not (out / "mask").exists() and not (out / STAGE_DIR).exists()
    assert all("mask" not in r and "stage_masks" not in r for r in records(out))
    assert pixels(out / GRID_FILE).shape[:2] == (2 + CELL, 3 * SIZE + 3 * CELL)
    default = sample(captions_file=str(captions), per_caption=3, out_dir=str(setup["tmp"] / "default"))
    assert len(list((default / "mask").iterdir())) == 3 and not (default / STAGE_DIR).exists()
    for name in ("000000.png", "000002.png"):
        assert (out / "img" / name).read_bytes() == (default / "img" / name).read_bytes()
    with pytest.raises(SSAGANError, match="--masks must be one of"):
        sample(masks="every")


def test_same_noise_gives_identical_sentences_identical_images(setup):
    a, b = known_words(setup, 2)
    captions = setup["tmp"] / "compare.txt"
    captions.write_text(f"{a} {b}\n{b}\n{a} {b}\n")
    k = 3
    out = sample(captions_file=str(captions), per_caption=k, same_noise=True, batch_size=9)
    img = [[(out / "img" / f"{c * k + j:06d}.png").read_bytes() for j in range(k)] for c in range(3)]
    assert img[0] == img[2], "same sentence, same noise: same image"
    assert all(img[0][j] != img[1][j] for j in range(k)), "another sentence changes the image"
    assert len(set(img[0])) == k, "the k columns have different noise"
    assert [r["repeat"] for r in records(out)] == [0, 1, 2] * 3
    assert json.loads((out / DONE_FILE).read_text())["same_noise"] is True

    # Noise vector j depends on the seed and j only: fewer samples or captions keep the first images.
    fewer = setup["tmp"] / "fewer.txt"
    fewer.write_text(f"{b}\n")
    two = sample(captions_file=str(fewer), per_caption=2, same_noise=True, batch_size=9,
                 out_dir=str(setup["tmp"] / "two"))
    for j in range(2):  # another batch size may move a pixel by one grey level (docs/SAMPLING.md)
        diff = pixels(two / "img" / f"{j:06d}.png").astype(int) - pixels(out / "img" / f"{k + j:06d}.png")
        assert np.abs(diff).max() <= 1

    # Without it every image has its own noise: identical sentences give different images.
    own = sample(captions_file=str(captions), per_caption=k, batch_size=9, out_dir=str(setup["tmp"] / "own"))
    own_img = [[(own / "img" / f"{c * k + j:06d}.png").read_bytes() for j in range(k)] for c in range(3)]
    assert all(own_img[0][j] != own_img[2][j] for j in range(k))
    with pytest.raises(SSAGANError, match="--same_noise applies to a captions file"):
        sample(same_noise=True)


def test_command_line_flags_reach_the_sampler(setup, monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr("miscc.sample.sampler.sample", lambda **kwargs: seen.update(kwargs) or tmp_path)
    cli_main("main", ["--cfg", "cfg/demo.yml", "--gpu", "-1", "--captions", "c.txt", "--unknown", "error",
                      "--masks", "all", "--same_noise", "--per_caption", "2"])
    assert (seen["unknown"], seen["masks"], seen["same_noise"], seen["per_caption"]) == ("error", "all", True, 2)
    cli_main("main", ["--cfg", "cfg/demo.yml", "--gpu", "-1", "--sample"])
    assert (seen["unknown"], seen["masks"], seen["same_noise"]) == ("drop", "last", False)
    with pytest.raises(SystemExit):
        cli_main("main", ["--cfg", "cfg/demo.yml", "--sample", "--masks", "every"])
    assert cfg.CONFIG_NAME == "demo"


def test_a_long_line_is_cut_to_its_first_known_words_and_what_was_cut_is_shown(setup):
    """--unknown drop: a line over TEXT.WORDS_NUM known words generates from its first 18; the warning,
    samples.jsonl and the grid show the words cut off (issue 23: one long line stopped a whole file)."""
    words = known_words(setup, 21)
    long_line = " ".join(words[:20] + ["zqxwv"] + words[20:21])  # 21 known words, one unknown
    captions = setup["tmp"] / "long.txt"
    captions.write_text(f"{words[0]} {words[1]}\n{long_line}\n")
    with pytest.warns(UserCaptionWarning) as caught:
        out = sample(captions_file=str(captions), per_caption=1)
    messages = [(w.lineno, str(w.message)) for w in caught]
    assert [line for line, _ in messages] == [2, 2], messages  # dropped zqxwv, then cut 3 words
    cut = words[18:21]
    assert "cut 3 word(s) beyond TEXT.WORDS_NUM 18" in messages[1][1] and " ".join(cut) in messages[1][1]
    recs = records(out)
    assert [r["key"] for r in recs] == ["long.txt:1", "long.txt:2"]  # every line generated
    assert "cut" not in recs[0]  # a line that fits keeps the record it had
    wordtoix = setup["dataset"].wordtoix
    assert recs[1]["cut"] == cut and recs[1]["dropped"] == ["zqxwv"]
    assert recs[1]["tokens"] == [wordtoix[w] for w in words[:18]]
    assert recs[1]["marked"] == " ".join(words[:18] + [f"[{w}]" for w in words[18:20]] + ["[zqxwv]", f"[{words[20]}]"])
    grid = pixels(out / GRID_FILE)
    assert text_panel_is_red(grid, 1) and not text_panel_is_red(grid, 0)
    assert json.loads((out / DONE_FILE).read_text())["count"] == 2


def test_unknown_error_still_refuses_a_long_line(setup):
    words = known_words(setup, 19)
    captions = setup["tmp"] / "long_strict.txt"
    captions.write_text(" ".join(words) + "\n")
    with pytest.raises(SSAGANError, match=r"line 1: .*19 words"):
        sample(captions_file=str(captions), unknown="error")
