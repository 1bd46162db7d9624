"""Sampling: images (and masks) from test captions or from a user's caption file (issue #4).

``sample()`` is the one entry point; ``main.py --sample`` / ``main_finetune.py --sample`` call it.
docs/SAMPLING.md documents the protocol and the folder layout; in short::

    <out_dir>/img/000000.png ...   RGB at the generator's resolution
    <out_dir>/mask/000000.png ...  the last-stage mask masks[-1], greyscale (masks 'last' or 'all')
    <out_dir>/stage_mask/000000_s0.png ...  masks 'all': every stage's mask, upsampled to image size
    <out_dir>/samples.jsonl        one record per image (file, mask, key, caption_idx, text, tokens, repeat)
    <out_dir>/grid.png             user captions only: caption | images | masks, one row per caption
    <out_dir>/DONE.json            written last: count, checkpoints, seed, protocol

Differences from the original ``sampling`` (docs/ORIGINAL.md: "Sampling"; "Original bugs" 1, 10), all
deliberate: every test caption once instead of one random caption per image (``caption_mode="random"``
keeps the original protocol), no dropped partial batch, captions and noise fixed by ``cfg.SEED``, no
image loading.
"""
from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from DAMSM import RNN_ENCODER, encode_text
from datasets import TextDataset, caption_array
from miscc.run import distributed
from miscc.run.checkpoint import load_checkpoint
from miscc.config import cfg
from miscc.errors import SSAGANError
from miscc.config.factory import NOISE_DIM, build_dataset, build_generator, build_text_encoder, get_device, run_layout
from miscc.sample.grid import caption_block, caption_grid
from miscc.run.layout import (BEST_TAG, atomic_write_json, atomic_write_text, companion, epoch_from_name,
                               newest_snapshot)
from miscc.run.lock import folder_lock
from miscc.sample.protocol import (DONE_FILE, GRID_FILE, IMAGE_DIR, MASK_DIR, METRICS_JSON, PLAN_FILE, SAMPLES_FILE,
                                   STAGE_DIR, SampleRecord, image_file, images_to_uint8, mask_file, masks_to_uint8,
                                   stage_mask_file, write_records)
from miscc.sample.png import PngWriter, save_png_atomic
from miscc.text.user_captions import UserCaption, check_policy, read_captions_file
from model import NetG

MODES = ("main", "finetune")
CAPTION_MODES = ("every", "random")
MASK_MODES = ("last", "all", "none")
_OUR_FILES = (IMAGE_DIR, MASK_DIR, STAGE_DIR, SAMPLES_FILE, PLAN_FILE, DONE_FILE, GRID_FILE, METRICS_JSON)


@dataclass(frozen=True)
class Job:
    """One image to generate: which caption (as the text encoder reads it) and which pass."""
    key: str
    caption_idx: int
    tokens: tuple[int, ...]
    repeat: int


# --- checkpoints ---------------------------------------------------------------------------------

def generator_path() -> Path:
    """TRAIN.NET_G, or the newest ``netG_<epoch>.pth`` of this run's ``models/`` when it is ''.

    With TRAIN.EMA_DECAY > 0 the newest ``netG_ema_<epoch>.pth`` (the averaged weights) instead.
    """
    if cfg.TRAIN.NET_G:
        path = Path(cfg.TRAIN.NET_G)
        if not path.is_file():
            raise SSAGANError(f"TRAIN.NET_G = {path} does not exist; point it at a netG_<epoch>.pth file.")
        return path
    models = run_layout().models
    kind = "netG_ema" if cfg.TRAIN.EMA_DECAY > 0 else "netG"
    found = newest_snapshot(models, kind)
    if found is None:
        raise SSAGANError(f"TRAIN.NET_G is empty and {models} holds no {kind}_<epoch>.pth: set TRAIN.NET_G "
                          "to the generator to sample, e.g. --opts TRAIN.NET_G models/bird/netG_550.pth.")
    return found


def text_encoder_path(mode: str, netg_path: Path) -> Path:
    """``main``: TEXT.DAMSM_NAME (original main.py); ``finetune``: text_encoder_<epoch>.pth beside netG.

    A generator trained by main_finetune.py learned against its own fine-tuned encoder, so sampling it
    with the DAMSM encoder would condition on sentence embeddings it never saw.
    """
    if mode == "main":
        if not cfg.TEXT.DAMSM_NAME:
            raise SSAGANError("TEXT.DAMSM_NAME is empty: set it to the DAMSM text encoder "
                              "(e.g. DAMSMencoders/bird/text_encoder200.pth).")
        return Path(cfg.TEXT.DAMSM_NAME)
    if Path(netg_path).stem.rsplit("_", 1)[-1] != BEST_TAG:  # netG_best.pth pairs with text_encoder_best.pth
        epoch_from_name(str(netg_path))  # rejects names without an epoch, with the naming rule
    path = companion(netg_path, "text_encoder")
    if not path.is_file():
        raise SSAGANError(f"finetune sampling needs the text encoder fine-tuned with {netg_path}: {path} "
                          "does not exist. Put it next to the generator, or sample a generator trained by "
                          "main.py with mode 'main' (which uses TEXT.DAMSM_NAME).")
    return path


def load_models(netg_path: Path, encoder_path: Path, dataset: TextDataset, device: torch.device
                ) -> tuple[NetG, RNN_ENCODER]:
    """(netG, text_encoder), both in eval mode on ``device``; a vocabulary mismatch is a clear error."""
    text_encoder = build_text_encoder(dataset.n_words, path=str(encoder_path), captions_path=dataset.captions_path,
                                      vocab=dataset.vocab_fingerprint)
    netG = load_checkpoint(build_generator(), netg_path)
    return netG.to(device).eval(), text_encoder.to(device).eval()


# --- what to generate -----------------------------------------------------------------------------

def _kept_tokens(ids: Sequence[int], words_num: int, rng: Any) -> tuple[int, ...]:
    caps, n = caption_array(ids, words_num, rng)
    return tuple(int(t) for t in caps[:n, 0])


def dataset_caption_jobs(dataset: TextDataset, caption_mode: str, repeat: int, seed: int
                      ) -> tuple[list[Job], torch.Tensor]:
    """Jobs for ``repeat`` passes over the test split and their noise (row k = noise of job k).

    ``every``: each caption once per pass, in dataset order; a caption longer than WORDS_NUM keeps
    the ordered word subset TextDataset(every_caption=True) draws for that index (seeded by it).
    ``random``: the original protocol, one caption per image (a numpy RandomState(seed) draws the
    caption, then the subset of a long caption, image by image as the original's __getitem__ did).
    Noise: a torch.Generator seeded with ``seed`` draws randn(N, 100) once per pass, so job k of a
    pass always gets the same noise whatever the batch size, device or number of passes.
    """
    caps, cpi, words_num = dataset.captions, dataset.embeddings_num, dataset.words_num
    empty = [i for i, c in enumerate(caps) if not c]
    if empty:
        raise SSAGANError(
            f"{len(empty)} test caption(s) have no word the vocabulary knows (caption indices "
            f"{empty[:5]}, e.g. of {dataset.filenames[empty[0] // cpi]!r}); the text encoder cannot read "
            f"an empty caption. Fix text/ and delete {dataset.captions_path} to rebuild it.")
    noise_rng = torch.Generator().manual_seed(seed)
    caption_rng = np.random.RandomState(seed)
    jobs: list[Job] = []
    noise = []
    for r in range(repeat):
        first = len(jobs)
        if caption_mode == "every":
            for idx, ids in enumerate(caps):
                rng = np.random.RandomState(idx) if len(ids) > words_num else np.random
                jobs.append(Job(dataset.filenames[idx // cpi], idx, _kept_tokens(ids, words_num, rng), r))
        else:
            for i, key in enumerate(dataset.filenames):
                idx = i * cpi + caption_rng.randint(0, cpi)
                jobs.append(Job(key, idx, _kept_tokens(caps[idx], words_num, caption_rng), r))
        noise.append(torch.randn(len(jobs) - first, NOISE_DIM, generator=noise_rng))
    return jobs, torch.cat(noise)


def user_caption_jobs(captions: Sequence[UserCaption], per_caption: int, source: str, seed: int,
                      same_noise: bool = False) -> tuple[list[Job], torch.Tensor]:
    """``per_caption`` jobs per caption (caption-major); key = '<file name>:<line>', caption_idx = the
    caption's position in the file, repeat = sample number; one seeded randn draw for all.

    ``same_noise``: sample j of every caption gets the j-th of ``per_caption`` draws of randn(100),
    so captions differ only by their text. One draw per vector (not one randn(k, 100): torch fills
    the tail of a large draw differently) makes vector j depend on the seed and j only, not on how
    many samples or captions there are: the interactive page relies on it.
    """
    jobs = [Job(f"{source}:{cap.line}", c, cap.ids, j)
            for c, cap in enumerate(captions) for j in range(per_caption)]
    generator = torch.Generator().manual_seed(seed)
    if same_noise:
        rows = [torch.randn(1, NOISE_DIM, generator=generator) for _ in range(per_caption)]
        return jobs, torch.cat(rows).repeat(len(captions), 1)
    return jobs, torch.randn(len(jobs), NOISE_DIM, generator=generator)


# --- writing --------------------------------------------------------------------------------------

def _writer() -> PngWriter:
    workers = max(1, min(cfg.WORKERS, os.cpu_count() or 1))
    return PngWriter(ThreadPoolExecutor(workers, thread_name_prefix="png"), max_pending=2 * workers)


def _prepare_out_dir(out: Path, masks: str = "last") -> None:
    """Refuse a foreign non-empty folder; clear a previous sampler run so no stale image survives."""
    if out.exists() and not out.is_dir():
        raise SSAGANError(f"--out_dir {out} is a file, not a folder; choose a new or empty folder.")
    if out.exists() and any(out.iterdir()):
        parts = list(out.glob(f".{SAMPLES_FILE}.rank*"))  # left by an interrupted multi-process run
        if not ((out / SAMPLES_FILE).exists() or (out / DONE_FILE).exists() or parts):
            raise SSAGANError(f"output folder {out} is not empty and was not written by the sampler; "
                              "choose an empty or new folder.")
        for part in parts:
            part.unlink()
        for name in _OUR_FILES:
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    (out / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    if masks != "none":
        (out / MASK_DIR).mkdir(exist_ok=True)
    if masks == "all":
        (out / STAGE_DIR).mkdir(exist_ok=True)


def caption_tensors(batch: Sequence[Job]) -> tuple[torch.Tensor, torch.Tensor]:
    """(word ids B x longest, zero-padded; lengths B) of some jobs, as the text encoder reads them."""
    lens = torch.tensor([len(j.tokens) for j in batch])
    caps = torch.zeros(len(batch), int(lens.max()), dtype=torch.int64)
    for row, job in enumerate(batch):
        caps[row, :len(job.tokens)] = torch.tensor(job.tokens)
    return caps, lens


def _part_file(out: Path, rank: int) -> Path:
    return out / f".{SAMPLES_FILE}.rank{rank}"


def _merge_records(out: Path, world: int) -> None:
    """Rank 0, after every rank has finished: the ranks' records, in image order, as SAMPLES_FILE."""
    parts = [_part_file(out, r) for r in range(world)]
    lines = [line for part in parts for line in part.read_text(encoding="utf-8").splitlines()]
    lines.sort(key=lambda line: SampleRecord.from_json(line).file)  # file names sort in image order
    atomic_write_text(out / SAMPLES_FILE, "".join(line + "\n" for line in lines))
    for part in parts:
        part.unlink()


@torch.no_grad()
@torch.no_grad()
def generate_images(netG: NetG, text_encoder: RNN_ENCODER, batch: Sequence[Job], noise: torch.Tensor,
                    device: torch.device) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The one in-memory generator (sampler, page, in-training evaluation): (images in [-1, 1] on
    ``device``, masks of every stage) of some jobs and their noise rows."""
    caps, lens = caption_tensors(batch)
    _, sent = encode_text(text_encoder, caps.to(device), lens.to(device))
    return netG(noise.to(device), sent)


def generate_batch(batch: Sequence[Job], noise: torch.Tensor, netG: NetG, text_encoder: RNN_ENCODER,
                   device: torch.device, masks: str = "last") -> tuple[np.ndarray, list[np.ndarray]]:
    """One batch in memory: (RGB uint8 B x H x W x 3, [uint8 B x r x r per mask stage]).

    ``masks``: 'last' = [masks[-1]], 'all' = every stage at its own size r (4, 8, ... image size),
    'none' = []. ``generate`` writes these arrays to files; the interactive page shows them.
    """
    imgs, stage_masks = generate_images(netG, text_encoder, batch, noise, device)
    rgb = images_to_uint8(imgs).permute(0, 2, 3, 1).cpu().numpy()
    chosen = {"last": stage_masks[-1:], "all": stage_masks, "none": []}[masks]
    return rgb, [masks_to_uint8(m).cpu().numpy() for m in chosen]


def _mask_files(out: Path, index: int, masks: str, stages: int) -> list[Path]:
    """The mask files ``generate`` wrote for image ``index``, smallest stage first."""
    if masks == "all":
        return [out / stage_mask_file(index, i) for i in range(stages)]
    return [out / mask_file(index)] if masks == "last" else []


def upsample_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour r x r -> size x size: each mask cell becomes a block, so the raw mask stays
    readable (and exactly recoverable) in the viewing copy."""
    r = mask.shape[0]
    if size % r == 0:
        return mask.repeat(size // r, axis=0).repeat(size // r, axis=1)
    return np.asarray(Image.fromarray(mask).resize((size, size), Image.NEAREST))


@torch.no_grad()
def generate(jobs: Sequence[Job], noise: torch.Tensor, netG: NetG, text_encoder: RNN_ENCODER,
             device: torch.device, batch_size: int, out: Path, ixtoword: dict[int, str],
             masks: str = "last", extras: Optional[Sequence[Mapping[str, Any]]] = None) -> None:
    """Generate every job in order (the last batch may be smaller) and write images, masks, records.

    ``masks`` as in ``generate_batch``; 'all' also writes ``stage_mask/<n>_s<i>.png`` (stage i
    upsampled to the image size) and records their paths and raw sizes. ``extras[caption_idx]``:
    fields added to the records of that caption (user captions: what was dropped).
    Under torchrun, batch k is generated by rank k % world_size: every batch holds the same jobs as
    in one process, so the images are those a single process writes. Each rank writes its records to
    its own part file; the caller merges them (``_merge_records``) once every rank is done.
    """
    rank, world = distributed.rank(), distributed.world_size()
    log_path = out / SAMPLES_FILE if world == 1 else _part_file(out, rank)
    starts = list(range(0, len(jobs), batch_size))[rank::world]
    mine = sum(len(jobs[start:start + batch_size]) for start in starts)
    with _writer() as writer, \
            open(log_path, "w", encoding="utf-8") as log, \
            tqdm(total=mine, unit="img", desc="sampling", disable=distributed.bar_disabled()) as bar:
        for start in starts:
            batch = jobs[start:start + batch_size]
            rgb, grey = generate_batch(batch, noise[start:start + len(batch)], netG, text_encoder, device,
                                       masks)
            items, records = [], []
            for row, job in enumerate(batch):
                index = start + row
                extra: tuple = ()
                items.append((str(out / image_file(index)), rgb[row]))
                if masks != "none":
                    items.append((str(out / mask_file(index)), grey[-1][row]))
                if masks == "all":
                    stage_names = [stage_mask_file(index, i) for i in range(len(grey))]
                    items += [(str(out / n), upsample_mask(g[row], rgb.shape[1])) for n, g in zip(stage_names, grey)]
                    extra += (("stage_masks", stage_names), ("stage_mask_sizes", [g.shape[1] for g in grey]))
                if extras is not None:
                    extra += tuple(extras[job.caption_idx].items())
                records.append(SampleRecord(image_file(index), None if masks == "none" else mask_file(index), job.key,
                                            job.caption_idx, " ".join(ixtoword[t] for t in job.tokens),
                                            tuple(job.tokens), job.repeat, extra))
            writer.submit(items)
            write_records(log, records)
            bar.update(len(batch))


# --- entry point ----------------------------------------------------------------------------------

def sample(mode: str = "main", captions_file: Optional[str] = None, repeat: int = 1,
           caption_mode: str = "every", per_caption: int = 4, out_dir: Optional[str] = None,
           batch_size: Optional[int] = None, unknown: str = "drop", masks: str = "last",
           same_noise: bool = False) -> Path:
    """Generate from the test captions (default) or from ``captions_file``; return the output folder.

    Everything else comes from ``cfg``: TRAIN.NET_G (or the newest netG_<epoch>.pth of the run),
    TEXT.DAMSM_NAME (mode ``main``) or text_encoder_<epoch>.pth beside netG (mode ``finetune``),
    DATA_DIR (captions and vocabulary of the test split; no image is read), TRAIN.NF, TREE.BASE_SIZE,
    TRAIN.BATCH_SIZE (unless ``batch_size``), SEED, WORKERS (PNG writer threads).

    Test captions: ``caption_mode`` ``every`` = each caption once per pass (CUB: 29,330 images),
    ``random`` = one random caption per image (the original protocol); ``repeat`` passes with fresh
    noise. User captions: ``per_caption`` images per non-blank line, plus ``grid.png``; ``unknown``
    'drop' leaves out words the vocabulary lacks (with warnings; records and grid mark them), 'error'
    refuses the file (miscc/text/user_captions.py); ``same_noise`` gives every line the same
    ``per_caption`` noise vectors. ``masks``: 'last' (the last stage), 'all' (every stage), 'none'.
    The default folder is ``<run folder>/samples/<netG stem>_<mode>`` (``..._<captions file stem>`` for
    user captions).
    """
    if mode not in MODES:
        raise SSAGANError(f"sampling mode must be one of {list(MODES)}, got {mode!r}.")
    if caption_mode not in CAPTION_MODES:
        raise SSAGANError(f"caption mode must be one of {list(CAPTION_MODES)}, got {caption_mode!r}.")
    if masks not in MASK_MODES:
        raise SSAGANError(f"--masks must be one of {list(MASK_MODES)}, got {masks!r}.")
    check_policy(unknown)
    if same_noise and not captions_file:
        raise SSAGANError("--same_noise applies to a captions file (--captions): the test-caption protocol "
                          "gives every image its own noise.")
    batch_size = cfg.TRAIN.BATCH_SIZE if batch_size is None else batch_size
    for name, value in (("repeat", repeat), ("per_caption", per_caption), ("batch size", batch_size)):
        if value < 1:
            raise SSAGANError(f"{name} must be at least 1, got {value}.")

    dataset = build_dataset("test")
    captions = (read_captions_file(captions_file, dataset.wordtoix, dataset.words_num, unknown)
                if captions_file else None)
    netg_path = generator_path()
    encoder_path = text_encoder_path(mode, netg_path)
    device = get_device()
    netG, text_encoder = load_models(netg_path, encoder_path, dataset, device)

    summary: dict = {"mode": mode, "seed": cfg.SEED, "netG": os.path.abspath(netg_path),
                     "text_encoder": os.path.abspath(encoder_path),
                     "data_dir": os.path.abspath(dataset.data_dir),
                     "image_size": netG.imsize, "words_num": dataset.words_num, "masks": masks}
    extra = None
    if captions is not None:
        source = Path(captions_file)
        jobs, noise = user_caption_jobs(captions, per_caption, source.name, cfg.SEED, same_noise)
        # "cut" only when words were cut off: the records of every other caption keep their bytes.
        extra = [{"dropped": cap.dropped, "marked": cap.marked, **({"cut": cap.cut} if cap.cut else {})}
                 for cap in captions]
        default_name = f"{netg_path.stem}_{mode}_{source.stem}"
        summary.update(protocol="captions", captions_file=os.path.abspath(source), per_caption=per_caption,
                       unknown=unknown, same_noise=same_noise)
    else:
        jobs, noise = dataset_caption_jobs(dataset, caption_mode, repeat, cfg.SEED)
        default_name = f"{netg_path.stem}_{mode}"
        summary.update(protocol=caption_mode, repeat=repeat, test_images=len(dataset.filenames),
                       captions_per_image=dataset.embeddings_num)

    out = Path(out_dir) if out_dir else run_layout().samples / default_name
    with folder_lock(out, "sampling"):  # before anything is written: one sampler per folder
        if distributed.is_main():
            _prepare_out_dir(out, masks)
            atomic_write_json(out / PLAN_FILE, {"count": len(jobs)})
        distributed.barrier()
        try:
            generate(jobs, noise, netG, text_encoder, device, batch_size, out, dataset.ixtoword, masks, extra)
        except OSError as e:
            raise SSAGANError(f"writing samples to {out} failed ({e.strerror or e}); the folder is incomplete (no "
                              f"{DONE_FILE}, so IS.py refuses it). Free disk space and sample again.") from e
        distributed.barrier()
        if not distributed.is_main():
            return out
        if distributed.world_size() > 1:
            _merge_records(out, distributed.world_size())
        if captions is not None:
            blocks = []
            for c, cap in enumerate(captions):
                indices = range(c * per_caption, (c + 1) * per_caption)
                blocks.append(caption_block(cap.marked, [out / image_file(i) for i in indices],
                                            [_mask_files(out, i, masks, netG.num_blocks) for i in indices], masks))
            save_png_atomic(out / GRID_FILE, caption_grid(blocks, netG.imsize), options={})  # PIL's defaults, as before
        atomic_write_json(out / DONE_FILE, {"count": len(jobs), **summary})
        return out
