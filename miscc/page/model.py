"""The interactive page's model side (issue #14): captions in, images and every stage's mask out.

No HTTP here (``miscc/page/server.py`` serves it): ``PageModel`` holds a loaded generator and text
encoder and answers one request at a time. It reuses the sampler's pieces, so a caption gives on the
page exactly what ``main.py --captions ... --same_noise --masks all`` writes for the same seed:
``read_caption`` (unknown words dropped and marked), ``user_caption_jobs`` (the seeded noise),
``generate_batch`` (images and masks in memory) and ``caption_grid`` (the downloadable grid).
"""
from __future__ import annotations

import base64
import io
import re
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch
from PIL import Image

from datasets import TextDataset
from miscc.config import cfg
from miscc.errors import SSAGANError
from miscc.config.factory import build_dataset, get_device
from miscc.sample.grid import caption_block, caption_grid
from miscc.sample.png import PNG_SAVE_OPTIONS
from miscc.sample.sampler import (generate_batch, generator_path, load_models, text_encoder_path,
                           user_caption_jobs)
from miscc.text.user_captions import UserCaption, read_caption

MAX_IMAGES = 16      # per caption
MAX_CAPTIONS = 4     # compare mode
MAX_SEED = 2 ** 31 - 1
BATCH = 8            # images per generator call: bounds memory at 256 px and paces the progress bar
SLOW_IMAGE_S = 0.25  # a model slower than this per image runs one image per call: the bar moves per image
KEPT_RESULTS = 8     # recent results kept for the grid download


@dataclass
class PageResult:
    """One answer: the captions as read, RGB uint8 (C*n, H, W, 3), masks per stage (C*n, r, r)."""
    captions: list[UserCaption]
    images: np.ndarray
    masks: list[np.ndarray]
    n: int
    seed: int
    seconds: float


def _png_data_url(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", **PNG_SAVE_OPTIONS)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _integer(payload: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    """A JSON integer, or a string of ASCII digits with an optional sign ('--5', '²' and '1e3' are not)."""
    value = payload.get(key, default)
    if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]{1,30}", value.strip()):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SSAGANError(f"{key} must be a whole number from {low} to {high}, got {value!r}.")
    return value


def example_captions(dataset: TextDataset, count: int) -> list[str]:
    """The first caption of ``count`` test images spread over the split, as the model reads them."""
    images = len(dataset.filenames)
    picks = sorted({i * images // count for i in range(count)})
    cpi = dataset.embeddings_num
    texts = (" ".join(dataset.ixtoword[t] for t in dataset.captions[i * cpi]) for i in picks)
    return list(dict.fromkeys(t for t in texts if t))  # each once


class PageModel:
    """A loaded generator + text encoder behind a lock; ``respond`` is the page's one request."""

    def __init__(self, netG: torch.nn.Module, text_encoder: torch.nn.Module, device: torch.device,
                 wordtoix: dict[str, int], words_num: int, examples: Sequence[str], seed: int,
                 about: Optional[dict] = None) -> None:
        self.netG, self.text_encoder, self.device = netG.eval(), text_encoder.eval(), device
        self.wordtoix, self.words_num = wordtoix, words_num
        self.examples, self.seed = list(examples), seed
        self.about = dict(about or {})
        self.progress = {"done": 0, "total": 0}
        self.results: OrderedDict[str, PageResult] = OrderedDict()
        self._lock = threading.Lock()
        self.batch = BATCH
        # One image (word id 0) finds the mask sizes and warms the kernels up before the first request.
        warm_up = self.generate([UserCaption(0, ("<end>",), (True,), (0,))], 1, 0)
        self.stage_sizes = [m.shape[-1] for m in warm_up.masks]
        if warm_up.seconds > SLOW_IMAGE_S:
            self.batch = 1

    @classmethod
    def from_config(cls, mode: str = "main", netg_path: Optional[str] = None,
                    encoder_path: Optional[str] = None) -> "PageModel":
        """The models the sampler would load (cfg, mode), or the given files; examples from the test split."""
        if netg_path and not Path(netg_path).is_file():
            raise SSAGANError(f"--netG {netg_path} does not exist; point it at a netG_<epoch>.pth file.")
        dataset = build_dataset("test")
        netg = Path(netg_path) if netg_path else generator_path()
        encoder = Path(encoder_path) if encoder_path else text_encoder_path(mode, netg)
        device = get_device()
        netG, text_encoder = load_models(netg, encoder, dataset, device)
        about = {"netG": str(netg), "text_encoder": str(encoder), "data_dir": str(dataset.data_dir),
                 "mode": mode, "device": str(device)}
        return cls(netG, text_encoder, device, dataset.wordtoix, dataset.words_num,
                   example_captions(dataset, 8), cfg.SEED, about)

    def info(self) -> dict:
        """What the page needs before the first request (limits, examples, model description)."""
        return {"image_size": self.netG.imsize, "stage_sizes": self.stage_sizes, "examples": self.examples,
                "vocabulary_size": len(self.wordtoix), "words_num": self.words_num, "seed": self.seed,
                "max_images": MAX_IMAGES, "max_captions": MAX_CAPTIONS, "default_images": 8, **self.about}

    def read(self, texts: Sequence[str]) -> list[UserCaption]:
        """The typed captions as the model reads them; an empty or unreadable one is an SSAGANError."""
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise SSAGANError("captions must be a list of strings.")
        if not texts or not any(t.strip() for t in texts):
            raise SSAGANError("The caption is empty: type a sentence describing a bird, or pick an example.")
        if len(texts) > MAX_CAPTIONS:
            raise SSAGANError(f"at most {MAX_CAPTIONS} captions can be compared, got {len(texts)}.")
        captions = []
        for i, text in enumerate(texts, 1):
            where = f"Caption {i}: " if len(texts) > 1 else ""
            if not text.strip():
                raise SSAGANError(f"{where}it is empty: type a sentence or remove it.")
            try:
                captions.append(read_caption(text, self.wordtoix, self.words_num, "drop", line=i))
            except SSAGANError as e:
                raise SSAGANError(f"{where}{e}") from e
        return captions

    def generate(self, captions: Sequence[UserCaption], n: int, seed: int) -> PageResult:
        """``n`` images per caption, sample j of every caption from the same noise (seeded)."""
        jobs, noise = user_caption_jobs(captions, n, "page", seed, same_noise=True)
        with self._lock:
            self.progress = {"done": 0, "total": len(jobs)}
            start = time.perf_counter()
            images, masks = [], []
            for s in range(0, len(jobs), self.batch):
                rgb, grey = generate_batch(jobs[s:s + self.batch], noise[s:s + self.batch], self.netG,
                                           self.text_encoder, self.device, masks="all")
                images.append(rgb)
                masks.append(grey)
                self.progress = {"done": min(s + self.batch, len(jobs)), "total": len(jobs)}
            seconds = time.perf_counter() - start
        stages = [np.concatenate([batch[i] for batch in masks]) for i in range(len(masks[0]))]
        return PageResult(list(captions), np.concatenate(images), stages, n, seed, seconds)

    def respond(self, payload: Mapping[str, Any]) -> dict:
        """POST /api/generate: {captions: [str], n, seed} -> rows of images and masks as PNG data URLs.

        User mistakes (empty caption, no known word, bad n/seed) raise SSAGANError, which the server
        returns as a message for the page; a caption over TEXT.WORDS_NUM known words is cut to its first
        ones and the row lists what was cut (``cut``), as it lists dropped words.
        """
        if not isinstance(payload, Mapping):
            raise SSAGANError("the request body must be a JSON object.")
        captions = self.read(payload.get("captions"))
        n = _integer(payload, "n", 8, 1, MAX_IMAGES)
        seed = _integer(payload, "seed", self.seed, 0, MAX_SEED)
        start = time.perf_counter()
        result = self.generate(captions, n, seed)
        key = uuid.uuid4().hex[:12]
        with self._lock:
            self.results[key] = result
            while len(self.results) > KEPT_RESULTS:
                self.results.popitem(last=False)
        rows = []
        for c, caption in enumerate(captions):
            own = range(c * n, (c + 1) * n)
            rows.append({
                "words": [{"word": w, "known": k, **({} if r or not k else {"cut": True})}
                          for w, k, r in zip(caption.words, caption.known, caption.read)],
                "read_as": caption.read_as, "dropped": caption.dropped, "cut": caption.cut,
                "limit": caption.limit, "marked": caption.marked,
                "images": [_png_data_url(result.images[i]) for i in own],
                "masks": [[_png_data_url(stage[i]) for stage in result.masks] for i in own]})
        return {"rows": rows, "n": n, "seed": seed, "image_size": int(result.images.shape[1]),
                "stage_sizes": self.stage_sizes, "grid": f"/api/grid/{key}.png",
                "generate_seconds": round(result.seconds, 4),
                "seconds": round(time.perf_counter() - start, 4)}

    def grid_png(self, key: str) -> Optional[bytes]:
        """The grid of a recent result (one line per image: image, then every stage's mask), or None."""
        with self._lock:
            result = self.results.get(key)
        if result is None:
            return None
        n, blocks = result.n, []
        for c, caption in enumerate(result.captions):
            own = range(c * n, (c + 1) * n)
            blocks.append(caption_block(caption.marked, [result.images[i] for i in own],
                                        [[stage[i] for stage in result.masks] for i in own], "all"))
        buffer = io.BytesIO()
        caption_grid(blocks, result.images.shape[1]).save(buffer, format="PNG", **PNG_SAVE_OPTIONS)
        return buffer.getvalue()
