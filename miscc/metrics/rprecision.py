"""R-precision with the DAMSM encoders (the AttnGAN / DM-GAN protocol).

Each generated image is ranked (cosine, DAMSM space) against its own caption and mismatched ones;
R@1 is the share of images whose own caption ranks first.
"""
from __future__ import annotations

import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from miscc.run.encoders import EncoderSpec, encoder_pair
from miscc.errors import SSAGANError
from miscc.metrics.sources import ImageSource, progress
from miscc.metrics.stats import as_float64, check_splits, split_bounds
from miscc.sample.protocol import SampleRecord


def _unit_rows(x: np.ndarray) -> np.ndarray:
    # Same eps as the DAMSM cosine_similarity, so zero vectors give 0 similarity instead of nan.
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8)


def r_precision(img_codes: np.ndarray | torch.Tensor, sent_codes_true: np.ndarray | torch.Tensor,
                sent_codes_pool: np.ndarray | torch.Tensor, *, groups: Optional[Sequence] = None,
                pool_groups: Optional[Sequence] = None, n_mismatch: int = 99, splits: int = 10,
                seed: int = 0) -> tuple[float, float]:
    """R@1 of the AttnGAN/DM-GAN protocol; returns (mean, std) over splits.

    Image i is compared (cosine) with its own caption ``sent_codes_true[i]`` and ``n_mismatch``
    captions drawn with replacement from ``sent_codes_pool``; it scores 1 when its own caption is the
    most similar (ties go to the own caption, as ``argmax == 0`` did). Pool entries whose
    ``pool_groups`` value equals ``groups[i]`` (same image or same class) are never drawn.
    """
    img, true, pool = (_unit_rows(as_float64(x)) for x in (img_codes, sent_codes_true, sent_codes_pool))
    n = len(img)
    if img.ndim != 2 or true.shape != img.shape or pool.ndim != 2 or pool.shape[1] != img.shape[1]:
        raise SSAGANError(f"r_precision: shapes do not match (images {img.shape}, true captions "
                          f"{true.shape}, pool {pool.shape}).")
    check_splits(n, splits, "R-precision")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(pool), size=(n, n_mismatch))
    if groups is not None:
        g, pg = np.asarray(groups), np.asarray(pool_groups)
        if len(g) != n or len(pg) != len(pool):
            raise SSAGANError("r_precision: groups / pool_groups must have one entry per image / pool row.")
        lonely = [x for x in np.unique(g) if (pg == x).all()]
        if lonely:
            raise SSAGANError(f"R-precision: every caption in the pool belongs to group {lonely[0]!r}, "
                              "so there is no mismatched caption to draw; evaluate more images.")
        bad = pg[idx] == g[:, None]
        while bad.any():
            idx[bad] = rng.integers(0, len(pool), size=int(bad.sum()))
            bad = pg[idx] == g[:, None]
    true_sim = (img * true).sum(axis=1)
    hits = np.empty(n, dtype=bool)
    chunk = 256  # n x n_mismatch x D at once would need gigabytes for 30k images
    for a in range(0, n, chunk):
        mis_sim = np.einsum("nd,nkd->nk", img[a:a + chunk], pool[idx[a:a + chunk]])
        hits[a:a + chunk] = true_sim[a:a + chunk] >= mis_sim.max(axis=1)
    scores = [hits[a:b].mean() for a, b in split_bounds(n, splits)]
    return float(np.mean(scores)), float(np.std(scores))


def read_vocabulary(captions_pickle: str | os.PathLike) -> dict[int, str]:
    """``ixtoword`` of an AttnGAN captions.pickle ([train, test, ixtoword, wordtoix])."""
    path = Path(captions_pickle)
    if not path.is_file():
        raise SSAGANError(f"captions pickle {path} does not exist.")
    with open(path, "rb") as f:
        try:
            data = pickle.load(f, encoding="latin1")
        except Exception as e:
            raise SSAGANError(f"{path} is not a readable captions.pickle ({type(e).__name__}: {e}).") from e
    if not (isinstance(data, (list, tuple)) and len(data) == 4 and isinstance(data[2], dict)):
        raise SSAGANError(f"{path} is not an AttnGAN captions.pickle [train, test, ixtoword, wordtoix].")
    return data[2]


@dataclass
class DamsmEncoders:
    """The DAMSM text and image encoders (eval mode, CPU) and the files they came from."""
    text: nn.Module
    image: nn.Module
    text_path: str
    image_path: str


def load_damsm_encoders(text_encoder: str | os.PathLike, image_encoder: Optional[str | os.PathLike] = None,
                        captions_pickle: Optional[str | os.PathLike] = None, *, spec: EncoderSpec) -> DamsmEncoders:
    """Text and image DAMSM encoders from their released files.

    The vocabulary size comes from the text encoder's embedding matrix; a given ``captions_pickle``
    must agree with it (a different vocabulary would map word ids to the wrong embeddings).
    ``spec`` is the pair's shape (width, RNN_TYPE, TRAIN.DAMSM_INPUT_SIZE: part of what they were
    trained with). ``image_encoder`` defaults to the file beside ``text_encoder``.
    """
    from datasets import vocabulary_fingerprint

    n_words = vocab = None
    if captions_pickle is not None:
        ixtoword = read_vocabulary(captions_pickle)
        n_words, vocab = len(ixtoword), vocabulary_fingerprint(ixtoword)
    text, image, image_path = encoder_pair(text_encoder, image_encoder, spec, n_words, captions_pickle, vocab)
    return DamsmEncoders(text.eval(), image.eval(), str(text_encoder), image_path)


@torch.no_grad()
def encode_sentences(text_encoder: nn.Module, token_lists: Sequence[Sequence[int]],
                     device: str | torch.device = "cpu", batch_size: int = 100) -> np.ndarray:
    """Sentence embeddings [N, nef] of token-id lists (each batch sorted by length, longest first)."""
    device = torch.device(device)
    n_words = text_encoder.encoder.num_embeddings
    too_big = [max(t) for t in token_lists if max(t) >= n_words]
    if too_big:
        raise SSAGANError(f"word id {too_big[0]} is outside the text encoder's vocabulary of {n_words} "
                          "words: the samples were made with another vocabulary.")
    text_encoder = text_encoder.to(device).eval()
    out = []
    for a in range(0, len(token_lists), batch_size):
        chunk = token_lists[a:a + batch_size]
        lens = torch.tensor([len(t) for t in chunk])
        order = torch.argsort(lens, descending=True)
        caps = torch.zeros(len(chunk), int(lens.max()), dtype=torch.long)
        for row, i in enumerate(order.tolist()):
            caps[row, :lens[i]] = torch.tensor(chunk[i])
        _, sent = text_encoder(caps.to(device), lens[order].to(device), text_encoder.init_hidden(len(chunk)))
        unsorted = torch.empty_like(sent)
        unsorted[order.to(device)] = sent
        out.append(unsorted.double().cpu().numpy())
    return np.concatenate(out)


@torch.no_grad()
def encode_images(image_encoder: nn.Module, images: ImageSource, device: str | torch.device = "cpu",
                  batch_size: int = 50, workers: int = 0) -> np.ndarray:
    """DAMSM global image codes [N, nef] of uint8 images (mapped back to the generator's [-1, 1])."""
    device = torch.device(device)
    image_encoder = image_encoder.to(device).eval()
    return np.concatenate([image_codes(image_encoder, batch.to(device)).double().cpu().numpy()
                           for batch in progress(images, batch_size, device, workers, "DAMSM images")])


def image_codes(image_encoder: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """DAMSM global codes [B, nef] of one uint8 batch [B, 3, H, W] (on the encoder's device)."""
    return image_encoder(batch.float() / 127.5 - 1.0)[1]


_CUB_CLASS = re.compile(r"^(\d{3}\.[^/]+)/")


def caption_group(key: str) -> str:
    """Mismatched captions must not come from this group: the CUB class folder of a CUB key
    (``002.Laysan_Albatross/...``, as DM-GAN excluded the same class), else the key itself (COCO
    images, user caption lines): never another caption of the same image."""
    match = _CUB_CLASS.match(key)
    return match.group(1) if match else key


def samples_r_precision(records: Sequence[SampleRecord], images: ImageSource, encoders: DamsmEncoders,
                        *, n_mismatch: int = 99, splits: int = 10, seed: int = 0,
                        device: str | torch.device = "cpu", batch_size: int = 50,
                        workers: int = 0, codes: Optional[np.ndarray] = None) -> tuple[float, float, dict]:
    """R-precision of generated ``images`` (in the order of their ``records``); the mismatch pool is
    every distinct caption of the set. ``codes``: the images' DAMSM codes if already computed
    (``image_codes`` of each batch), else ``images`` are encoded here."""
    check_splits(len(records), splits, "R-precision")
    if len(images) != len(records):
        raise SSAGANError(f"R-precision got {len(images)} images for {len(records)} sample records; "
                          "they must pair one to one.")
    pool_index: dict[tuple[str, int], int] = {}
    pool_tokens: list[Sequence[int]] = []
    for r in records:
        if (r.key, r.caption_idx) not in pool_index:
            pool_index[(r.key, r.caption_idx)] = len(pool_tokens)
            pool_tokens.append(r.tokens)
    pool = encode_sentences(encoders.text, pool_tokens, device)
    true = pool[[pool_index[(r.key, r.caption_idx)] for r in records]]
    if codes is None:
        codes = encode_images(encoders.image, images, device, batch_size, workers)
    elif len(codes) != len(records):
        raise SSAGANError(f"R-precision got {len(codes)} image codes for {len(records)} sample records.")
    groups = [caption_group(r.key) for r in records]
    pool_groups = [caption_group(k) for k, _ in pool_index]
    mean, std = r_precision(codes, true, pool, groups=groups, pool_groups=pool_groups,
                            n_mismatch=n_mismatch, splits=splits, seed=seed)
    info = {"images": len(records), "distinct_captions": len(pool_tokens), "mismatched": n_mismatch,
            "splits": splits, "seed": seed,
            "mismatch_rule": "drawn with replacement from the other captions of the set, never from "
                             "the same CUB class (key prefix) or, without a class, the same image"}
    return mean, std, info
