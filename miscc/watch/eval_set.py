"""The fixed evaluation set of a training run: test captions with their noise, drawn once from SEED.

Two parts, saved together in ``OUTPUT_DIR/<CONFIG_NAME>/eval_set.pt`` and reused at every
evaluation and after a resume:
  * the evaluation jobs (none when evaluation is off): every test caption once, or ``num_images`` of them drawn with
    ``numpy.random.RandomState(SEED)`` and kept in dataset order. A caption's tokens and noise are
    those ``main.py --sample`` gives it (the sampler's ``every`` protocol: noise row k of one
    ``randn(captions, 100)`` of ``torch.Generator`` seeded with SEED), so the in-training images of a
    caption are the sampler's images of that caption;
  * the display set of the epoch grids: ``display_captions`` captions of different classes where
    the split has enough, and ``display_noises`` noise vectors shared by every caption.
Only private generators are used: drawing the set never moves the training's random streams.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from datasets import TextDataset, caption_array
from miscc.run.checkpoint import load_file
from miscc.errors import SSAGANError
from miscc.run.layout import atomic_save
from miscc.sample.sampler import Job
from model import NOISE_DIM

VERSION = 1


@dataclass(frozen=True)
class EvalSet:
    jobs: tuple[Job, ...]
    noise: torch.Tensor  # [len(jobs), NOISE_DIM]
    display: tuple[Job, ...]
    display_noise: torch.Tensor  # [display_noises, NOISE_DIM]
    meta: dict  # how it was drawn (``request``) and from what

    def texts(self, ixtoword: dict[int, str], jobs: tuple[Job, ...]) -> list[str]:
        return [" ".join(ixtoword[t] for t in job.tokens) for job in jobs]

    def fingerprint(self) -> str:
        """sha256 of what the images depend on: keys, caption indices, tokens and noise of both parts."""
        h = hashlib.sha256()
        for jobs, noise in ((self.jobs, self.noise), (self.display, self.display_noise)):
            for job in jobs:
                h.update(f"{job.key}\0{job.caption_idx}\0{','.join(map(str, job.tokens))}\n".encode())
            h.update(noise.contiguous().numpy().tobytes())
        return h.hexdigest()

    def state(self) -> dict:
        def rows(jobs: tuple[Job, ...]) -> dict:
            return {"keys": [j.key for j in jobs], "caption_idx": [j.caption_idx for j in jobs],
                    "tokens": [list(j.tokens) for j in jobs]}
        return {"version": VERSION, "meta": self.meta, "jobs": rows(self.jobs), "noise": self.noise,
                "display": rows(self.display), "display_noise": self.display_noise}

    @classmethod
    def from_state(cls, state: dict) -> "EvalSet":
        def jobs(rows: dict) -> tuple[Job, ...]:
            return tuple(Job(k, int(i), tuple(int(t) for t in toks), 0)
                         for k, i, toks in zip(rows["keys"], rows["caption_idx"], rows["tokens"]))
        return cls(jobs(state["jobs"]), state["noise"], jobs(state["display"]), state["display_noise"],
                   state["meta"])

    def save(self, path: str | os.PathLike) -> None:
        atomic_save(self.state(), path)


def _tokens(dataset: TextDataset, idx: int) -> Optional[tuple[int, ...]]:
    """The words the sampler feeds the text encoder for test caption ``idx`` (None: no known word)."""
    ids = dataset.captions[idx]
    if not ids:
        return None
    # A long caption keeps the ordered subset drawn by RandomState(idx), as TextDataset(every_caption)
    # and the sampler do; a short one draws nothing.
    rng = np.random.RandomState(idx) if len(ids) > dataset.words_num else None
    caps, n = caption_array(ids, dataset.words_num, rng)
    return tuple(int(t) for t in caps[:n, 0])


def _display_choice(dataset: TextDataset, usable: list[int], n_captions: int, seed: int) -> list[int]:
    """Caption indices of the display set: one image per class in a shuffled class order, then more
    images of the same classes, then more captions of the same images; a random usable caption of each."""
    cpi = dataset.embeddings_num
    rng = np.random.RandomState([seed, 1])  # its own stream: independent of the evaluation subset
    captions_of: dict[int, list[int]] = {}
    for idx in usable:
        captions_of.setdefault(idx // cpi, []).append(idx)
    by_class: dict = {}
    for image in sorted(captions_of):
        by_class.setdefault(int(np.asarray(dataset.class_id[image]).item()), []).append(image)
    classes = [sorted(by_class)[i] for i in rng.permutation(len(by_class))]
    queues = {c: [by_class[c][i] for i in rng.permutation(len(by_class[c]))] for c in classes}
    images: list[int] = []
    while any(queues.values()):
        images += [queues[c].pop(0) for c in classes if queues[c]]
    for image in images:
        order = captions_of[image]
        captions_of[image] = [order[i] for i in rng.permutation(len(order))]
    chosen: list[int] = []
    round_ = 0
    while len(chosen) < n_captions and any(round_ < len(captions_of[i]) for i in images):
        chosen += [captions_of[i][round_] for i in images if round_ < len(captions_of[i])]
        round_ += 1
    return chosen[:n_captions]


def request(dataset: TextDataset, num_images: Optional[int], display_captions: int, display_noises: int,
            seed: int) -> dict:
    """What a set is drawn from and for: a saved set is reused only if all of this is unchanged (not
    the data folder's path: a moved folder holds the same captions)."""
    return {"version": VERSION, "seed": seed, "num_images": num_images, "display_captions": display_captions,
            "display_noises": display_noises, "test_captions": len(dataset.captions),
            "words_num": dataset.words_num, "vocab": dataset.vocab_fingerprint}


def draw_eval_set(dataset: TextDataset, num_images: Optional[int], display_captions: int, display_noises: int,
                  seed: int) -> EvalSet:
    """Draw the set of a run from the test split ``dataset`` (see the module doc); ``num_images``:
    0 = every test caption, None = no evaluation jobs (the display set only)."""
    tokens = [_tokens(dataset, idx) for idx in range(len(dataset.captions))]
    usable = [idx for idx, t in enumerate(tokens) if t is not None]
    if not usable:
        raise SSAGANError(f"no test caption of {dataset.data_dir} has a word the vocabulary knows: nothing to "
                          "generate the epoch grids and evaluations from.")
    noise = torch.randn(len(tokens), NOISE_DIM, generator=torch.Generator().manual_seed(seed))
    if num_images is None:
        picked, selection = [], "none: in-training evaluation is off"
    elif 0 < num_images < len(usable):
        picked = sorted(int(i) for i in np.random.RandomState(seed).choice(usable, num_images, replace=False))
        selection = (f"{num_images} of {len(usable)} test captions drawn with numpy RandomState(SEED), in "
                     "dataset order")
    else:
        picked = usable
        selection = f"every test caption once ({len(usable)}), as main.py --sample"
    skipped = len(tokens) - len(usable)
    if skipped:
        selection += f"; {skipped} caption(s) without a known word left out"

    def job(idx: int) -> Job:
        return Job(dataset.filenames[idx // dataset.embeddings_num], idx, tokens[idx], 0)
    shown = _display_choice(dataset, usable, display_captions, seed)
    display_noise = torch.randn(display_noises, NOISE_DIM, generator=torch.Generator().manual_seed(seed + 1))
    meta = {**request(dataset, num_images, display_captions, display_noises, seed), "selection": selection,
            "data_dir": os.path.abspath(dataset.data_dir),
            "noise": "row k of torch.randn(test captions, 100) with torch.Generator().manual_seed(SEED) for "
                     "test caption k; display noise: randn(DISPLAY_NOISES, 100), manual_seed(SEED + 1)"}
    return EvalSet(tuple(job(i) for i in picked), noise[picked].clone(), tuple(job(i) for i in shown),
                   display_noise, meta)


def load_or_draw(path: Path, dataset: TextDataset, num_images: Optional[int], display_captions: int,
                 display_noises: int, seed: int) -> tuple[EvalSet, bool, Optional[str]]:
    """(set, drawn now, note): the saved set if it was drawn for these settings (``num_images`` None:
    whatever evaluation jobs it has), else a fresh draw. The note says when a set that evaluations
    used, or whose display part the grids showed, is replaced: values are then not comparable across
    the change. The display part does not depend on ``num_images``: turning evaluation on keeps it."""
    wanted = request(dataset, num_images, display_captions, display_noises, seed)
    note = None
    if path.is_file():
        try:
            saved = EvalSet.from_state(load_file(path, what="evaluation set"))
        except (SSAGANError, KeyError, TypeError) as e:
            note = f"{path} could not be read ({e}); a new evaluation set is drawn"
        else:
            changed = sorted(k for k, v in wanted.items() if saved.meta.get(k) != v)
            if not changed or (changed == ["num_images"] and num_images is None):
                return saved, False, None  # evaluation off: a saved set keeps its jobs, the display part is the same
            if changed != ["num_images"] or saved.meta.get("num_images") is not None:
                note = (f"{path} was drawn for other settings ({', '.join(changed)} changed): a new evaluation "
                        "set is drawn, and values before and after this epoch are not comparable")
    return draw_eval_set(dataset, num_images, display_captions, display_noises, seed), True, note
