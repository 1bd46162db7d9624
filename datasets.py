"""CUB-200-2011 birds and COCO-2014 in the AttnGAN layout: captions, vocabulary, images, batches.

Behaviour follows the released SSA-GAN / AttnGAN ``datasets.py`` (docs/ORIGINAL.md, "Data");
deliberate differences are listed here and nowhere else:

* Layout switch. The birds layout (images under ``CUB_200_2011/images``, bounding-box crop) is used
  when ``dataset_name == 'birds'`` (DATASET_NAME; the default, as the config documents) **or** when the
  substring ``birds`` occurs in ``data_dir`` (the original's only rule). Otherwise the COCO layout:
  ``DATA_DIR/images/<key>.jpg`` (AttnGAN), falling back to ``DATA_DIR/train2014/<key>.jpg`` for the
  train split and ``DATA_DIR/val2014/<key>.jpg`` for the test split (the original's hard-coded
  ``/data/scene_understanding/coco2014`` root, moved under DATA_DIR).
* Missing or malformed files raise ``SSAGANError`` naming them (the original used an empty list, a
  KeyError or a misaligned caption index).
* A caption file with fewer than CAPTIONS_PER_IMAGE usable captions: one warning per rebuild, and
  the file's captions are repeated cyclically up to CAPTIONS_PER_IMAGE (the original did not pad, so
  every later image read a neighbour's captions). A file with none is an error.
* ``captions.pickle`` is written atomically, so parallel processes never read half a file.
* No global configuration: CAPTIONS_PER_IMAGE, WORDS_NUM and DATASET_NAME are constructor arguments
  (the original read ``cfg`` in ``__getitem__``, which DataLoader workers started with ``spawn`` see
  with its defaults).
* New: ``every_caption`` (the "30k" sampling protocol), ``build_transform(train=False)``, a ``device``
  argument to ``prepare_data`` instead of ``cfg.CUDA``, and ``prepare_data`` works for a batch of 1.
"""
from __future__ import annotations

import os
import pickle
import warnings
from typing import Any, Callable, NamedTuple, Optional, Sequence

import numpy as np
import torch
import torch.utils.data as data
import torchvision.transforms as transforms
from PIL import Image

from miscc.text.captions import (END_TOKEN, build_vocabulary, caption_array, caption_too_long,  # noqa: F401 (re-exported)
                                 encode_sentence, load_split_captions, tokenize, unknown_words_hint,
                                 vocabulary_fingerprint)
from miscc.errors import SSAGANError
from miscc.run.layout import atomic_write


_BIRDS_TREE = """\
  <DATA_DIR>/                    e.g. data/birds
    captions.pickle              vocabulary + encoded captions (built from text/ when absent)
    train/filenames.pickle       keys like 002.Laysan_Albatross/Laysan_Albatross_0002_1027
    train/class_info.pickle      (optional) one class id per key
    test/filenames.pickle
    test/class_info.pickle       (optional)
    CUB_200_2011/images.txt
    CUB_200_2011/bounding_boxes.txt
    CUB_200_2011/images/<key>.jpg
    text/<key>.txt               captions, one per line (only needed to build captions.pickle)"""
_COCO_TREE = """\
  <DATA_DIR>/                    e.g. data/coco  (set DATASET_NAME: coco, as cfg/coco.yml does)
    captions.pickle              vocabulary + encoded captions (built from text/ when absent)
    train/filenames.pickle       keys like COCO_train2014_000000000009
    test/filenames.pickle
    images/<key>.jpg             or train2014/<key>.jpg and val2014/<key>.jpg (COCO 2014 zips)
    text/<key>.txt               (only needed to build captions.pickle)"""
_SOURCES = """\
Where the data comes from (see data/README.md):
  - CUB-200-2011 images: Caltech, https://www.vision.caltech.edu/datasets/cub_200_2011/
    (extract so that <DATA_DIR>/CUB_200_2011/images exists);
  - COCO 2014 train/val images: https://cocodataset.org/#download;
  - captions.pickle, filenames.pickle, class_info.pickle and text/: the AttnGAN preprocessed
    metadata (birds.zip / coco.zip, linked from github.com/taoxugit/AttnGAN);
  - or a small synthetic bird set in this layout: python -m tools.birds.make_birds data/birds_synth"""


def _layout_error(data_dir: str, problem: str, birds: bool, hint: str = "") -> SSAGANError:
    tree = _BIRDS_TREE if birds else _COCO_TREE
    return SSAGANError(
        f"dataset folder {data_dir!r} {problem}.{hint}\n"
        f"Expected the AttnGAN {'birds (CUB)' if birds else 'COCO'} layout:\n{tree}\n{_SOURCES}")


def uses_birds_layout(data_dir: str | os.PathLike, dataset_name: str = "birds") -> bool:
    """The layout rule of the module docstring: CUB images + bbox crop, or the COCO layout."""
    return dataset_name == "birds" or "birds" in os.fspath(data_dir)


def build_transform(base_size: int, train: bool = True, flip: bool = True) -> transforms.Compose:
    """Image transform before ToTensor/Normalize (which TextDataset applies itself).

    ``train=True`` is the original's (used for train and test alike): resize the shorter side to
    base_size*76/64, random crop, random horizontal flip (``flip=False``, new, leaves the flip out:
    for data whose subjects all face one way, ``TRAIN.RANDOM_FLIP``). ``train=False`` (new)
    centre-crops and never flips, for deterministic evaluation and sampling.
    """
    resize = transforms.Resize(int(base_size * 76 / 64))
    if train:
        return transforms.Compose([resize, transforms.RandomCrop(base_size),
                                   *([transforms.RandomHorizontalFlip()] if flip else [])])
    return transforms.Compose([resize, transforms.CenterCrop(base_size)])


def _load_pickle(path: str, what: str, **kwargs: Any) -> Any:
    try:
        with open(path, "rb") as f:
            return pickle.load(f, **kwargs)
    except Exception as e:  # unpickling garbage can raise almost anything
        raise SSAGANError(f"{path} is not a readable {what} pickle ({type(e).__name__}: {e}).") from e


def _write_atomic_pickle(obj: Any, path: str) -> None:
    atomic_write(path, lambda f: pickle.dump(obj, f, protocol=2))


def load_bbox(data_dir: str) -> dict[str, list[int]]:
    """key -> [x, y, w, h] (ints, truncated) from CUB_200_2011/images.txt + bounding_boxes.txt."""
    def rows(name: str) -> list[list[str]]:
        with open(os.path.join(data_dir, "CUB_200_2011", name), encoding="utf-8") as f:
            return [line.split() for line in f if line.strip()]

    images, boxes = rows("images.txt"), rows("bounding_boxes.txt")
    if len(images) != len(boxes):  # rows are matched by position, as in the original
        raise SSAGANError(
            f"{data_dir}/CUB_200_2011: images.txt has {len(images)} rows but bounding_boxes.txt has "
            f"{len(boxes)}; the two files must list the same images in the same order.")
    try:
        return {img[1][:-4]: [int(float(v)) for v in box[1:5]] for img, box in zip(images, boxes)}
    except (IndexError, ValueError) as e:
        raise SSAGANError(f"{data_dir}/CUB_200_2011: malformed images.txt/bounding_boxes.txt row "
                          f"({e}); expected '<id> <path>.jpg' and '<id> <x> <y> <w> <h>'.") from e


def bbox_crop_box(bbox: Sequence[int], width: int, height: int) -> tuple[int, int, int, int]:
    """Original crop: square of side 1.5*max(w, h) around the box centre, clipped to the image."""
    r = int(max(bbox[2], bbox[3]) * 0.75)
    center_x = int((2 * bbox[0] + bbox[2]) / 2)
    center_y = int((2 * bbox[1] + bbox[3]) / 2)
    return (max(0, center_x - r), max(0, center_y - r),
            min(width, center_x + r), min(height, center_y + r))


class TextDataset(data.Dataset):
    """One split of an AttnGAN-layout data set; items are ([image], caps (18,1), cap_len, cls, key).

    ``base_size`` and ``target_transform`` are kept for the original signature only: the image size
    comes from ``transform`` (e.g. ``build_transform(base_size)``); with ``transform=None`` images
    keep their (cropped) native size, as in the original.
    """

    def __init__(self, data_dir: str | os.PathLike, split: str = "train", base_size: int = 64,
                 transform: Optional[Callable] = None, target_transform: Optional[Callable] = None,
                 every_caption: bool = False, captions_per_image: int = 10, words_num: int = 18,
                 dataset_name: str = "birds") -> None:
        if split not in ("train", "test"):
            raise SSAGANError(f"split must be 'train' or 'test', got {split!r}")
        self.data_dir = os.fspath(data_dir)
        self.split = split
        self.base_size = base_size
        self.transform = transform
        self.target_transform = target_transform
        self.every_caption = every_caption
        self.embeddings_num: int = captions_per_image
        self.words_num: int = words_num
        self.norm = transforms.Compose([transforms.ToTensor(),
                                        transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
        self.dataset_name = dataset_name
        self.birds = uses_birds_layout(self.data_dir, dataset_name)
        self.image_dir = self._check_layout()
        self.captions_path = os.path.join(self.data_dir, "captions.pickle")

        names = {s: self._load_filenames(s) for s in ("train", "test")}
        self.filenames: list[str] = names[split]
        train_caps, test_caps, self.ixtoword, self.wordtoix = self._load_text_data(names)
        self.captions: list[list[int]] = train_caps if split == "train" else test_caps
        self.n_words: int = len(self.ixtoword)
        self.class_id = self._load_class_id()
        self.bbox = self._load_checked_bbox() if self.birds else None
        self._warn_empty_captions()

    # --- construction -----------------------------------------------------------------------
    def _check_layout(self) -> str:
        d = self.data_dir
        if not d:
            raise _layout_error(d, "is not set (DATA_DIR is empty): set DATA_DIR in the YAML file or "
                                   "pass --data_dir", self.birds)
        if not os.path.isdir(d):
            raise _layout_error(d, "does not exist", self.birds)
        missing = [p for p in ("train/filenames.pickle", "test/filenames.pickle")
                   if not os.path.isfile(os.path.join(d, p))]
        has_text = os.path.isdir(os.path.join(d, "text"))
        if not os.path.isfile(os.path.join(d, "captions.pickle")) and not has_text:
            missing.append("captions.pickle (or text/ to build it)")
        if self.birds:
            image_dir = os.path.join(d, "CUB_200_2011", "images")
            missing += [p for p in ("CUB_200_2011/images.txt", "CUB_200_2011/bounding_boxes.txt")
                        if not os.path.isfile(os.path.join(d, p))]
            if not os.path.isdir(image_dir):
                missing.append("CUB_200_2011/images/")
        else:
            fallback = "train2014" if self.split == "train" else "val2014"
            image_dir = os.path.join(d, "images")
            if not os.path.isdir(image_dir):
                image_dir = os.path.join(d, fallback)
                if not os.path.isdir(image_dir):
                    missing.append(f"images/ (or {fallback}/)")
        if missing:
            hint = ""
            if self.birds and not os.path.isdir(os.path.join(d, "CUB_200_2011")) and any(
                    os.path.isdir(os.path.join(d, x)) for x in ("images", "train2014", "val2014")):
                hint = (" It looks like a COCO folder: set DATASET_NAME: coco (cfg/coco.yml) and use a "
                        "DATA_DIR without 'birds' in its path.")
            raise _layout_error(d, "is not in the expected layout; missing: " + ", ".join(missing),
                                self.birds, hint)
        return image_dir

    def _load_filenames(self, split: str) -> list[str]:
        path = os.path.join(self.data_dir, split, "filenames.pickle")
        names = _load_pickle(path, "filenames")
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
            raise SSAGANError(f"{path} must hold a list of image keys (str), got {type(names).__name__}.")
        return list(names)

    def _load_text_data(self, names: dict[str, list[str]]):
        cpi = self.embeddings_num
        if not os.path.isfile(self.captions_path):
            train = load_split_captions(self.data_dir, "train", names["train"], cpi)
            test = load_split_captions(self.data_dir, "test", names["test"], cpi)
            result = build_vocabulary(train, test)
            _write_atomic_pickle(list(result), self.captions_path)
            return result
        x = _load_pickle(self.captions_path, "captions")
        if (not isinstance(x, (list, tuple)) or len(x) < 4 or not isinstance(x[2], dict)
                or not isinstance(x[3], dict) or not isinstance(x[0], list) or not isinstance(x[1], list)):
            raise SSAGANError(
                f"{self.captions_path} is not a captions.pickle: expected [train_captions, "
                f"test_captions, ixtoword, wordtoix]. Restore the file you trained with (a text encoder's "
                f"rows are its word ids); only for data that no encoder was trained on, delete it to rebuild "
                f"it from text/.")
        counts = {"train": len(x[0]), "test": len(x[1])}
        expected = {s: len(names[s]) * cpi for s in ("train", "test")}
        if counts != expected:
            per_image = {s: counts[s] / len(names[s]) for s in counts if names[s]}
            hint = ""
            values = set(per_image.values())
            if len(values) == 1 and (k := values.pop()).is_integer() and k != cpi:
                hint = f" It matches {int(k)} captions per image: set TEXT.CAPTIONS_PER_IMAGE {int(k)}."
            raise SSAGANError(
                f"{self.captions_path} does not belong to this data set: it holds {counts['train']} "
                f"train / {counts['test']} test captions, but train/ and test/filenames.pickle list "
                f"{len(names['train'])} / {len(names['test'])} images x TEXT.CAPTIONS_PER_IMAGE {cpi} = "
                f"{expected['train']} / {expected['test']}.{hint} Use the captions.pickle shipped with "
                f"these filenames, or delete it to rebuild it from text/ (a rebuilt vocabulary numbers "
                f"words differently, so released text encoders will not match it).")
        return x[0], x[1], x[2], x[3]

    def _load_class_id(self) -> Any:
        path = os.path.join(self.data_dir, self.split, "class_info.pickle")
        if not os.path.isfile(path):
            return np.arange(len(self.filenames))
        class_id = _load_pickle(path, "class_info", encoding="bytes")
        if len(class_id) != len(self.filenames):
            raise SSAGANError(f"{path} has {len(class_id)} class ids but {self.split}/filenames.pickle "
                              f"lists {len(self.filenames)} images; they must match one to one.")
        return class_id

    def _load_checked_bbox(self) -> dict[str, list[int]]:
        bbox = load_bbox(self.data_dir)
        missing = [k for k in self.filenames if k not in bbox]
        if missing:
            raise SSAGANError(
                f"{len(missing)} key(s) of {self.split}/filenames.pickle have no row in "
                f"{self.data_dir}/CUB_200_2011/images.txt, e.g. {missing[0]!r}.")
        return bbox

    @property
    def vocab_fingerprint(self) -> str:
        """sha256 of the ordered vocabulary (``ixtoword``): the identity of the word ids a text encoder's
        embedding rows were trained on. Two vocabularies of equal size but other numbering differ."""
        return vocabulary_fingerprint(self.ixtoword)

    def check_fingerprint(self, recorded: Optional[str], source: str) -> None:
        """Refuse ``source`` (a text encoder or training state) recorded under another vocabulary."""
        if recorded is None or recorded == self.vocab_fingerprint:
            return
        raise SSAGANError(
            f"vocabulary mismatch: {source} was trained with the vocabulary {recorded[:16]}..., but "
            f"{self.captions_path} has {self.vocab_fingerprint[:16]}... ({self.n_words} words): the same "
            f"word ids now name other words. Use the captions.pickle that run was trained with (do not "
            f"rebuild it from text/), or train a new run on this data.")

    def _warn_empty_captions(self) -> None:
        """A captions.pickle written by the original code may hold empty captions (a line of non-ASCII
        words), which the text encoder cannot pack. Each is replaced, when drawn, by the next non-empty
        caption of its image; the vocabulary (and so any trained encoder) stays valid."""
        cpi = self.embeddings_num
        empty = [i for i, c in enumerate(self.captions) if not c]
        self._substitute: dict[int, int] = {}
        if not empty:
            return
        for i in empty:
            base = i - i % cpi
            others = [base + (i - base + k) % cpi for k in range(1, cpi)]
            usable = [j for j in others if self.captions[j]]
            if not usable:
                raise SSAGANError(
                    f"every caption of image {self.filenames[i // cpi]!r} (split {self.split}) in "
                    f"{self.captions_path} is empty (no ASCII word); the image cannot be trained on. Remove it "
                    f"from {self.split}/filenames.pickle, or give it a caption.")
            self._substitute[i] = usable[0]
        keys = sorted({self.filenames[i // cpi] for i in empty})
        warnings.warn(
            f"{len(empty)} caption(s) of split {self.split} in {self.captions_path} have no ASCII word (images "
            f"{', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}); each is replaced by another caption of "
            f"its image when drawn. The vocabulary is unchanged.", stacklevel=3)

    def caption(self, index: int) -> list[int]:
        """Caption ``index`` of the split, an empty one replaced as ``_warn_empty_captions`` says."""
        return self.captions[self._substitute.get(index, index)]

    # --- items --------------------------------------------------------------------------------
    def _image_path(self, key: str) -> str:
        return os.path.join(self.image_dir, f"{key}.jpg")

    def _load_image(self, key: str) -> list[torch.Tensor]:
        path = self._image_path(key)
        try:
            with Image.open(path) as im:
                img = im.convert("RGB")  # CUB has greyscale JPEGs
        except FileNotFoundError as e:
            raise SSAGANError(f"image {path} (split {self.split}) is listed in "
                              f"{self.split}/filenames.pickle but does not exist.") from e
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            raise SSAGANError(f"image {path} (split {self.split}) cannot be read: "
                              f"{type(e).__name__}: {e}. Replace the file or re-extract the data.") from e
        if self.bbox is not None:
            img = img.crop(bbox_crop_box(self.bbox[key], *img.size))
        if self.transform is not None:
            img = self.transform(img)
        return [self.norm(img)]

    def __getitem__(self, index: int):
        img_index = index // self.embeddings_num if self.every_caption else index
        key = self.filenames[img_index]
        cls_id = self.class_id[img_index]
        imgs = self._load_image(key)
        if self.every_caption:
            caption = self.caption(index)
            # Seeded per item: the same caption index always yields the same 18-word subset.
            rng = np.random.RandomState(index) if len(caption) > self.words_num else None
        else:
            sent_ix = np.random.randint(0, self.embeddings_num)
            caption = self.caption(index * self.embeddings_num + sent_ix)
            rng = None
        caps, cap_len = caption_array(caption, self.words_num, rng)
        return imgs, caps, cap_len, cls_id, key

    def __len__(self) -> int:
        n = len(self.filenames)
        return n * self.embeddings_num if self.every_caption else n


class Batch(NamedTuple):
    """A length-sorted batch; unpacks like the original's list ``[imgs, caps, lens, class_ids, keys]``."""
    imgs: list[torch.Tensor]  # one tensor per resolution (SSA-GAN: one)
    captions: torch.Tensor  # B x WORDS_NUM word ids, zero-padded
    cap_lens: torch.Tensor  # B, descending
    class_ids: np.ndarray
    keys: list[str]

    def to(self, device: torch.device | str) -> "Batch":
        """Images, captions and lengths on ``device`` (class ids and keys stay on the host)."""
        return self._replace(imgs=[im.to(device) for im in self.imgs], captions=self.captions.to(device),
                             cap_lens=self.cap_lens.to(device))


def collate_batch(samples: Sequence[Any]) -> Batch:
    """The loaders' ``collate_fn``: the default collation, then ``prepare_data``'s sorting, so a
    training step receives a ``Batch`` (in the loader's worker processes when there are some)."""
    return prepare_data(data.dataloader.default_collate(samples))


def prepare_data(data: Sequence[Any], device: Optional[torch.device | str] = None) -> Batch:
    """Collated batch -> Batch(imgs, captions B x WORDS_NUM, sorted_lens, class_ids (numpy), keys).

    Sorted by caption length, longest first (the text encoder packs sequences, and the sorted order
    defines the mismatched pairs and DAMSM labels downstream). Images, captions and lengths go to
    ``device`` when given. A ``Batch`` (from ``collate_batch``) is sorted already: it is only moved.
    """
    if isinstance(data, Batch):
        return data if device is None else data.to(device)
    imgs, captions, captions_lens, class_ids, keys = data
    sorted_lens, order = torch.sort(torch.as_tensor(captions_lens), 0, descending=True)
    real_imgs = [im[order] for im in imgs]
    captions = captions[order].reshape(len(order), -1)  # not squeeze(): B = 1 must stay 1 x 18
    class_ids = torch.as_tensor(np.asarray(class_ids))[order].numpy()
    keys = [keys[i] for i in order.tolist()]
    if device is not None:
        real_imgs = [im.to(device) for im in real_imgs]
        captions = captions.to(device)
        sorted_lens = sorted_lens.to(device)
    return Batch(real_imgs, captions, sorted_lens, class_ids, keys)
