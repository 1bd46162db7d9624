"""datasets.py: the original's caption, vocabulary, crop and batching rules, and the user errors."""
from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datasets import (TextDataset, bbox_crop_box, build_transform, caption_array, caption_too_long,
                      encode_sentence, prepare_data, tokenize)
from miscc.run.checkpoint import check_vocab
from miscc.config import cfg
from miscc.errors import SSAGANError
from miscc.metrics.colour import load_attributes


def _gradient(w: int, h: int) -> Image.Image:
    # Smooth ramps survive JPEG well enough to locate a crop by its pixel values.
    xs = np.linspace(0, 255, w)[None, :].repeat(h, 0)
    ys = np.linspace(0, 255, h)[:, None].repeat(w, 1)
    return Image.fromarray(np.stack([xs, ys, np.full_like(xs, 128)], -1).astype(np.uint8))


def write_birds(root: Path, train: dict[str, list[str]], test: dict[str, list[str]],
                size: tuple[int, int] = (40, 30), bboxes: dict[str, str] | None = None) -> Path:
    """Hand-made CUB layout: keys -> caption lines; one gradient JPEG per key."""
    rows, boxes = [], []
    for split, caps in (("train", train), ("test", test)):
        (root / split).mkdir(parents=True)
        with open(root / split / "filenames.pickle", "wb") as f:
            pickle.dump(list(caps), f, protocol=2)
        for key, lines in caps.items():
            img = root / "CUB_200_2011" / "images" / f"{key}.jpg"
            img.parent.mkdir(parents=True, exist_ok=True)
            _gradient(*size).save(img, quality=95)
            txt = root / "text" / f"{key}.txt"
            txt.parent.mkdir(parents=True, exist_ok=True)
            txt.write_text("\n".join(lines) + "\n", encoding="utf-8")
            rows.append(f"{len(rows) + 1} {key}.jpg")
            box = (bboxes or {}).get(key, f"0.0 0.0 {size[0]}.0 {size[1]}.0")
            boxes.append(f"{len(boxes) + 1} {box}")
    (root / "CUB_200_2011" / "images.txt").write_text("\n".join(rows) + "\n")
    (root / "CUB_200_2011" / "bounding_boxes.txt").write_text("\n".join(boxes) + "\n")
    return root


def copy_of(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "birds"
    shutil.copytree(src, dst)
    return dst


# --- tokenisation and vocabulary ----------------------------------------------------------------

def test_tokenize_follows_the_original_rules():
    assert tokenize("This bird's  Wing\ufffd\ufffdbar is RED.") == [
        "this", "bird", "s", "wing", "bar", "is", "red"]
    assert tokenize("café crème") == ["caf", "crme"]  # ASCII filter per token
    assert tokenize("!!! ...") is None  # no \w token: the caption is skipped
    assert tokenize("日本語 ü") == []  # tokens vanish only in the ASCII filter: kept, empty


def test_vocabulary_is_first_seen_order_over_train_then_test(tmp_path):
    root = write_birds(tmp_path / "birds", {"001.a/a_1": ["The red bird", "A bird!"]},
                       {"002.b/b_1": ["blue bird red", "a blue one"]})
    ds = TextDataset(root, "train", captions_per_image=2)
    assert ds.ixtoword == {0: "<end>", 1: "the", 2: "red", 3: "bird", 4: "a", 5: "blue", 6: "one"}
    assert ds.wordtoix == {w: i for i, w in ds.ixtoword.items()}
    assert ds.n_words == 7 and ds.embeddings_num == 2
    assert ds.captions == [[1, 2, 3], [4, 3]]
    assert TextDataset(root, "test", captions_per_image=2).captions == [[5, 3, 2], [4, 5, 6]]


def test_captions_pickle_has_the_original_structure_and_is_reused(tmp_path):
    root = write_birds(tmp_path / "birds", {"001.a/a_1": ["red bird"]}, {"002.b/b_1": ["blue bird"]})
    TextDataset(root, "train", captions_per_image=1)
    raw = (root / "captions.pickle").read_bytes()
    assert raw[:2] == b"\x80\x02"  # protocol 2, readable by the original code
    train_caps, test_caps, ixtoword, wordtoix = pickle.loads(raw)
    assert (train_caps, test_caps) == ([[1, 2]], [[3, 2]])
    assert ixtoword == {0: "<end>", 1: "red", 2: "bird", 3: "blue"} and wordtoix["blue"] == 3

    (root / "text" / "001.a" / "a_1.txt").write_text("green owl\n")
    assert TextDataset(root, "train", captions_per_image=1).captions == [[1, 2]]  # the cache wins, as in the original
    (root / "captions.pickle").unlink()
    assert TextDataset(root, "train", captions_per_image=1).ixtoword[1] == "green"


def test_blank_wordless_and_non_ascii_lines_are_skipped_counted_and_named(tmp_path):
    # "日本" tokenises to nothing after the ASCII filter: the original kept it as an empty caption, which
    # crashed training whenever it was drawn; here it is skipped like the other wordless lines.
    lines = ["", "...", "日本", "red bird", "blue bird", "extra caption"]
    root = write_birds(tmp_path / "birds", {"001.a/a_1": lines}, {"002.b/b_1": ["x", "y", "z"]})
    with pytest.warns(UserWarning, match=r"1 caption line\(s\) of split train have no ASCII word.*a_1\.txt"):
        ds = TextDataset(root, "train", captions_per_image=3)
    assert [[ds.ixtoword[i] for i in c] for c in ds.captions] == [
        ["red", "bird"], ["blue", "bird"], ["extra", "caption"]]
    assert all(ds.captions)  # the pickle written can always train


def test_a_file_of_only_non_ascii_lines_is_an_error_and_writes_no_pickle(tmp_path):
    root = write_birds(tmp_path / "birds", {"001.a/a_1": ["日本", "ü"]}, {"002.b/b_1": ["x"]})
    with pytest.raises(SSAGANError, match=r"a_1\.txt.*no caption with an ASCII word"):
        TextDataset(root, "train", captions_per_image=1)
    assert not (root / "captions.pickle").exists()


def test_empty_captions_of_an_old_pickle_are_replaced_when_drawn_and_the_vocabulary_kept(tmp_path):
    root = write_birds(tmp_path / "birds", {"001.a/a_1": ["red bird", "blue bird"]}, {"002.b/b_1": ["x", "y"]})
    TextDataset(root, "train", captions_per_image=2)
    train, test, ixtoword, wordtoix = pickle.loads((root / "captions.pickle").read_bytes())
    train[0] = []  # what the original wrote for a line of non-ASCII words
    (root / "captions.pickle").write_bytes(pickle.dumps([train, test, ixtoword, wordtoix], protocol=2))
    with pytest.warns(UserWarning, match=r"1 caption\(s\) of split train.*001\.a/a_1.*replaced"):
        ds = TextDataset(root, "train", captions_per_image=2)
    assert ds.ixtoword == ixtoword
    for seed in range(6):
        np.random.seed(seed)
        assert ds[0][2] > 0  # never a zero-length caption


def test_short_caption_file_warns_once_with_its_name_and_is_padded_by_repetition(tmp_path):
    root = write_birds(tmp_path / "birds",
                       {"001.a/a_1": ["red bird", "red wings"], "001.a/a_2": ["w", "x", "y", "z"]},
                       {"002.b/b_1": ["p", "q", "r", "s"]})
    with pytest.warns(UserWarning, match=r"a_1\.txt") as record:
        ds = TextDataset(root, "train", captions_per_image=4)
    assert len([w for w in record if "fewer than" in str(w.message)]) == 1
    words = [" ".join(ds.ixtoword[i] for i in c) for c in ds.captions]
    assert words == ["red bird", "red wings", "red bird", "red wings", "w", "x", "y", "z"]
    for i in range(len(ds)):  # never an IndexError, and image 2 keeps its own captions
        ds[i]


def test_caption_file_without_any_word_is_an_error(tmp_path):
    root = write_birds(tmp_path / "birds", {"001.a/a_1": ["...", ""]}, {"002.b/b_1": ["x"] * 10})
    with pytest.raises(SSAGANError, match=r"a_1\.txt.*no caption"):
        TextDataset(root, "train")


def test_missing_caption_file_is_named(tmp_path):
    root = write_birds(tmp_path / "birds", {"001.a/a_1": ["x"] * 10}, {"002.b/b_1": ["x"] * 10})
    (root / "text" / "002.b" / "b_1.txt").unlink()
    with pytest.raises(SSAGANError, match=r"b_1\.txt \(split test\) does not exist"):
        TextDataset(root, "train")


# --- captions in items ----------------------------------------------------------------------

def test_long_caption_keeps_an_ordered_random_subset_drawn_after_the_caption_choice(tmp_path):
    first = " ".join(f"a{i}" for i in range(25))
    second = " ".join(f"b{i}" for i in range(25))
    root = write_birds(tmp_path / "birds", {"001.a/a_1": [first, second]}, {"002.b/b_1": ["x", "y"]})
    ds = TextDataset(root, "train", captions_per_image=2)
    for seed in range(5):
        np.random.seed(seed)
        _, caps, cap_len, _, _ = ds[0]
        np.random.seed(seed)  # the original's order of draws on numpy's global generator
        sent_ix = np.random.randint(0, 2)
        ix = list(np.arange(25))
        np.random.shuffle(ix)
        expected = np.asarray(ds.captions[sent_ix])[np.sort(ix[:18])]
        assert cap_len == 18 and caps.shape == (18, 1) and caps.dtype == np.int64
        assert caps[:, 0].tolist() == expected.tolist()
        assert caps[:, 0].tolist() == sorted(caps[:, 0].tolist())  # word order kept


def test_short_caption_is_zero_padded():
    caps, n = caption_array([5, 6, 7], 18)
    assert n == 3 and isinstance(n, int)
    assert caps.shape == (18, 1) and caps.dtype == np.int64
    assert caps[:3, 0].tolist() == [5, 6, 7] and not caps[3:].any()


def test_words_num_is_a_constructor_argument_and_the_global_config_is_not_read(synthetic_birds):
    ds = TextDataset(synthetic_birds, "train", words_num=5)
    cfg.TEXT.WORDS_NUM = 7  # library code never reads cfg (spawned DataLoader workers would see defaults)
    assert ds[0][1].shape == (5, 1)
    assert TextDataset(synthetic_birds, "train")[0][1].shape == (18, 1)


def test_every_caption_mode_is_exhaustive_and_deterministic(synthetic_birds):
    ds = TextDataset(synthetic_birds, "test", transform=build_transform(64, train=False), every_caption=True)
    assert len(ds) == len(ds.filenames) * 10
    state = np.random.get_state()
    items = [ds[i] for i in range(len(ds))]
    after = np.random.get_state()
    assert np.array_equal(after[1], state[1]) and after[2] == state[2]  # global RNG untouched
    np.random.seed(123)
    assert all(np.array_equal(ds[i][1], items[i][1]) for i in range(len(ds)))
    for i, (_, caps, cap_len, _, key) in enumerate(items):
        assert key == ds.filenames[i // 10]
        words = ds.captions[i]
        if len(words) <= 18:
            assert caps[:cap_len, 0].tolist() == words
        else:
            assert cap_len == 18 and set(caps[:, 0]) <= set(words)
    assert max(item[2] for item in items) == 18


# --- images -------------------------------------------------------------------------------------

def test_bbox_crop_box_arithmetic():
    # r = int(0.75 * 41) = 30, cx = int(50 / 2) = 25, cy = int(81 / 2) = 40.
    assert bbox_crop_box([10, 20, 30, 41], 100, 80) == (0, 10, 55, 70)
    assert bbox_crop_box([0, 0, 10, 10], 100, 80) == (0, 0, 12, 12)  # r = 7, cx = cy = 5
    assert bbox_crop_box([90, 70, 10, 10], 100, 80) == (88, 68, 100, 80)


def test_bbox_is_truncated_and_the_crop_is_applied(tmp_path):
    # y = 20.6 must truncate to 20 (pandas astype(int)); rounding to 21 would give a 55 x 59 crop.
    root = write_birds(tmp_path / "birds", {"001.a/a_1": ["x"] * 10}, {"002.b/b_1": ["x"] * 10},
                       size=(100, 80), bboxes={"001.a/a_1": "10.7 20.6 30.0 41.0"})
    ds = TextDataset(root, "train")
    img = ds[0][0][0]
    assert img.shape == (3, 60, 55)  # box (0, 10, 55, 70)
    full = np.asarray(_gradient(100, 80), dtype=np.float32) / 127.5 - 1
    crop = img.permute(1, 2, 0).numpy()
    assert np.abs(crop[:, :, :2] - full[10:70, 0:55, :2]).mean() < 0.05


def test_coco_layout_reads_images_folder_then_split_folders_without_crop(tmp_path):
    root = tmp_path / "coco"
    for split, key in (("train", "COCO_train2014_01"), ("test", "COCO_val2014_02")):
        (root / split).mkdir(parents=True)
        with open(root / split / "filenames.pickle", "wb") as f:
            pickle.dump([key], f, protocol=2)
        (root / "text").mkdir(exist_ok=True)
        (root / "text" / f"{key}.txt").write_text("a cat on a mat\n")
        (root / ("train2014" if split == "train" else "val2014")).mkdir()
        _gradient(50, 30).save(root / ("train2014" if split == "train" else "val2014") / f"{key}.jpg")
    assert TextDataset(root, "train", captions_per_image=1, dataset_name="coco")[0][0][0].shape == (3, 30, 50)  # no bbox crop
    assert TextDataset(root, "test", captions_per_image=1, dataset_name="coco")[0][4] == "COCO_val2014_02"
    (root / "images").mkdir()
    _gradient(20, 10).save(root / "images" / "COCO_train2014_01.jpg")
    assert TextDataset(root, "train", captions_per_image=1, dataset_name="coco")[0][0][0].shape == (3, 10, 20)  # images/ wins (AttnGAN layout)


@pytest.mark.parametrize("base_size", [64, 256])
def test_images_have_the_training_shape_and_range(synthetic_birds, base_size):
    ds = TextDataset(synthetic_birds, "train", base_size, transform=build_transform(base_size))
    imgs, caps, cap_len, cls, key = ds[3]
    assert isinstance(imgs, list) and len(imgs) == 1
    img = imgs[0]
    assert img.shape == (3, base_size, base_size) and img.dtype == torch.float32
    assert img.min() >= -1 and img.max() <= 1 and img.min() < -0.5 and img.max() > 0.5
    assert key == ds.filenames[3] and cls == ds.class_id[3] and 1 <= cap_len <= 18


def test_greyscale_jpeg_becomes_rgb(tmp_path):
    root = write_birds(tmp_path / "birds", {"001.a/a_1": ["x"] * 10}, {"002.b/b_1": ["x"] * 10})
    Image.new("L", (40, 30), 90).save(root / "CUB_200_2011" / "images" / "001.a" / "a_1.jpg")
    assert TextDataset(root, "train")[0][0][0].shape == (3, 30, 40)


def test_eval_transform_is_deterministic_and_train_transform_is_not(synthetic_birds):
    ds = TextDataset(synthetic_birds, "train", transform=build_transform(64, train=False))
    torch.manual_seed(0)
    a = ds[0][0][0]
    torch.manual_seed(1)
    assert torch.equal(a, ds[0][0][0])
    ds.transform = build_transform(64, train=True)
    outs = []
    for seed in range(4):
        torch.manual_seed(seed)
        outs.append(ds[0][0][0])
    assert any(not torch.equal(outs[0], o) for o in outs[1:])


def test_without_random_flip_the_train_transform_only_crops():
    """flip=False (TRAIN.RANDOM_FLIP False): random crops, never a mirrored image."""
    img = Image.fromarray(np.arange(76 * 76 * 3, dtype=np.uint8).reshape(76, 76, 3))
    crops, flipped = [], []
    for seed in range(40):
        torch.manual_seed(seed)
        crops.append(np.asarray(build_transform(64, train=True, flip=False)(img)))
        torch.manual_seed(seed)
        flipped.append(np.asarray(build_transform(64, train=True)(img)))
    windows = {np.asarray(img)[y:y + 64, x:x + 64].tobytes() for y in range(13) for x in range(13)}
    assert all(c.tobytes() in windows for c in crops)
    assert any(f.tobytes() not in windows for f in flipped)  # the released transform does mirror


# --- batches ------------------------------------------------------------------------------------

def test_prepare_data_sorts_by_length_and_reorders_everything():
    lens = torch.tensor([3, 7, 1, 5])
    caps = torch.zeros(4, 18, 1, dtype=torch.int64)
    for i, n in enumerate(lens):
        caps[i, :n, 0] = i + 1
    imgs = [torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 2, 2)]
    batch = (imgs, caps, lens, torch.tensor([10, 11, 12, 13]), ["k0", "k1", "k2", "k3"])
    out_imgs, out_caps, out_lens, out_cls, out_keys = prepare_data(batch)
    assert out_lens.tolist() == [7, 5, 3, 1]
    assert out_keys == ["k1", "k3", "k0", "k2"]
    assert out_cls.tolist() == [11, 13, 10, 12] and isinstance(out_cls, np.ndarray)
    assert out_caps.shape == (4, 18) and out_caps[:, 0].tolist() == [2, 4, 1, 3]
    assert out_imgs[0][:, 0, 0, 0].tolist() == [1.0, 3.0, 0.0, 2.0]


def test_prepare_data_keeps_a_batch_of_one_two_dimensional():
    batch = ([torch.zeros(1, 3, 4, 4)], torch.ones(1, 18, 1, dtype=torch.int64), torch.tensor([18]),
             torch.tensor([5]), ["only"])
    imgs, caps, lens, cls, keys = prepare_data(batch, device="cpu")
    assert caps.shape == (1, 18) and lens.tolist() == [18] and keys == ["only"] and cls.shape == (1,)


def test_loader_batches_are_consistent_after_prepare_data(synthetic_birds):
    ds = TextDataset(synthetic_birds, "train", transform=build_transform(64))
    loader = torch.utils.data.DataLoader(ds, batch_size=6, shuffle=True, drop_last=True)
    imgs, caps, lens, cls, keys = prepare_data(next(iter(loader)))
    assert imgs[0].shape == (6, 3, 64, 64) and caps.shape == (6, 18) and caps.dtype == torch.int64
    assert torch.all(lens[:-1] >= lens[1:])
    assert ((caps != 0).sum(1) == lens).all()
    index = {k: i for i, k in enumerate(ds.filenames)}
    assert [ds.class_id[index[k]] for k in keys] == cls.tolist()


# --- user captions and vocabulary checks --------------------------------------------------------

def test_encode_sentence_uses_training_rules_and_names_unknown_words(synthetic_birds):
    ds = TextDataset(synthetic_birds, "train")
    colour = load_attributes(synthetic_birds, "train")[ds.filenames[0]]["body_colour"]
    ids = encode_sentence(f"This BIRD has a {colour.upper()} body!", ds.wordtoix)
    assert [ds.ixtoword[i] for i in ids] == ["this", "bird", "has", "a", colour, "body"]
    with pytest.raises(SSAGANError, match=r"vocabulary of \d+ words.*'brid' \(did you mean bird.*'zebra'"):
        encode_sentence("a brid with zebra stripes", ds.wordtoix)
    with pytest.raises(SSAGANError, match="no words"):
        encode_sentence(" ?! ", ds.wordtoix)


def test_caption_too_long_reports_the_cap():
    assert caption_too_long(list(range(18))) is None
    message = caption_too_long(list(range(19)))
    assert "19 words" in message and "at most 18" in message and "TEXT.WORDS_NUM" in message


def test_check_vocab_refuses_a_mismatched_text_encoder():
    check_vocab(5450, 5450, "data/birds/captions.pickle", "text_encoder200.pth")
    with pytest.raises(SSAGANError, match=r"captions\.pickle has 62 words.*text_encoder200\.pth.*5450"):
        check_vocab(62, 5450, "data/birds/captions.pickle", "text_encoder200.pth")


# --- user errors --------------------------------------------------------------------------------

def test_missing_data_dir_explains_layout_and_sources(tmp_path):
    with pytest.raises(SSAGANError) as e:
        TextDataset(tmp_path / "birds_nowhere", "train")
    msg = str(e.value)
    assert "birds_nowhere" in msg and "does not exist" in msg
    for part in ("CUB_200_2011/bounding_boxes.txt", "filenames.pickle", "caltech", "AttnGAN",
                 "python -m tools.birds.make_birds"):
        assert part in msg
    with pytest.raises(SSAGANError, match="DATA_DIR is empty"):
        TextDataset(cfg.DATA_DIR, "train")


def test_wrong_layout_lists_every_missing_file_in_one_message(tmp_path):
    (tmp_path / "birds" / "CUB_200_2011" / "images").mkdir(parents=True)
    with pytest.raises(SSAGANError) as e:
        TextDataset(tmp_path / "birds", "train")
    missing = str(e.value).split("missing:")[1].split("\n")[0]
    for part in ("train/filenames.pickle", "test/filenames.pickle", "captions.pickle (or text/",
                 "CUB_200_2011/images.txt", "CUB_200_2011/bounding_boxes.txt"):
        assert part in missing
    assert "CUB_200_2011/images/" not in missing


def test_coco_folder_read_as_birds_gets_a_hint(tmp_path):
    (tmp_path / "coco" / "images").mkdir(parents=True)
    with pytest.raises(SSAGANError, match="DATASET_NAME: coco"):
        TextDataset(tmp_path / "coco", "train")


def test_missing_and_corrupt_images_name_the_file_and_split(synthetic_birds, tmp_path):
    root = copy_of(synthetic_birds, tmp_path)
    ds = TextDataset(root, "test")
    images = root / "CUB_200_2011" / "images"
    (images / f"{ds.filenames[0]}.jpg").unlink()
    with pytest.raises(SSAGANError, match=rf"{ds.filenames[0]}\.jpg \(split test\).*does not exist"):
        ds[0]
    (images / f"{ds.filenames[1]}.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(SSAGANError, match=rf"{ds.filenames[1]}\.jpg \(split test\) cannot be read"):
        ds[1]
    path = images / f"{ds.filenames[2]}.jpg"
    path.write_bytes(path.read_bytes()[:300])  # truncated JPEG
    with pytest.raises(SSAGANError, match=rf"{ds.filenames[2]}\.jpg \(split test\) cannot be read"):
        ds[2]
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=1)
    with pytest.raises(SSAGANError, match="split test"):
        next(iter(loader))  # the type survives the worker process


def test_captions_pickle_of_another_dataset_is_refused(synthetic_birds, tmp_path):
    root = copy_of(synthetic_birds, tmp_path)
    TextDataset(root, "train")
    train, test, i2w, w2i = pickle.loads((root / "captions.pickle").read_bytes())
    with open(root / "captions.pickle", "wb") as f:
        pickle.dump([train[:-10], test, i2w, w2i], f, protocol=2)
    with pytest.raises(SSAGANError, match=r"does not belong to this data set.*170 train / 60 test"):
        TextDataset(root, "train")
    with open(root / "captions.pickle", "wb") as f:
        pickle.dump([train[::2], test[::2], i2w, w2i], f, protocol=2)
    with pytest.raises(SSAGANError, match="set TEXT.CAPTIONS_PER_IMAGE 5"):
        TextDataset(root, "test")
    (root / "captions.pickle").write_bytes(b"garbage")
    with pytest.raises(SSAGANError, match="not a readable captions pickle"):
        TextDataset(root, "train")
    with open(root / "captions.pickle", "wb") as f:
        pickle.dump({"a": 1}, f)
    with pytest.raises(SSAGANError, match="not a captions.pickle"):
        TextDataset(root, "train")


def test_inconsistent_metadata_is_refused(synthetic_birds, tmp_path):
    root = copy_of(synthetic_birds, tmp_path)
    with open(root / "train" / "class_info.pickle", "wb") as f:
        pickle.dump([1, 2], f, protocol=2)
    with pytest.raises(SSAGANError, match="2 class ids but train/filenames.pickle lists 18"):
        TextDataset(root, "train")
    (root / "train" / "class_info.pickle").unlink()
    assert TextDataset(root, "train").class_id.tolist() == list(range(18))  # the original's fallback

    rows = (root / "CUB_200_2011" / "images.txt").read_text().splitlines()
    (root / "CUB_200_2011" / "images.txt").write_text("\n".join(rows[1:]) + "\n")
    with pytest.raises(SSAGANError, match="images.txt has 23 rows but bounding_boxes.txt has 24"):
        TextDataset(root, "train")
    boxes = (root / "CUB_200_2011" / "bounding_boxes.txt").read_text().splitlines()
    (root / "CUB_200_2011" / "bounding_boxes.txt").write_text("\n".join(boxes[1:]) + "\n")
    with pytest.raises(SSAGANError, match="1 key.*no row in .*images.txt"):
        TextDataset(root, "train")
    with pytest.raises(SSAGANError, match="split must be"):
        TextDataset(root, "val")
