"""Small builders shared by tests: the tiny configuration, the synthetic bird set with a random DAMSM pair,
opened generator gates, reference facts, sample folders and raw HTTP."""
from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from DAMSM import CNN_ENCODER, RNN_ENCODER
from miscc.config import cfg, cfg_from_list
from miscc.run.checkpoint import save_released
from miscc.run.seeding import seed_everything
from model import residual_gates
from tools.birds.make_birds import make_birds

# Facts measured on the original classes (docs/ORIGINAL.md, 'Checkpoints'): every key, shape and dtype
# of the four released modules, and their prefixes, file names and parameter counts.
REFERENCE = Path(__file__).resolve().parent / "data" / "reference"


def reference_state_dict(name: str) -> list[tuple[str, tuple[int, ...], str]]:
    """(key, shape, dtype) rows of a released module, from tests/data/reference/state_dicts."""
    rows = json.loads((REFERENCE / "state_dicts" / name).read_text())
    return [(r["key"], tuple(r["shape"]), r["dtype"]) for r in rows]


def checkpoint_facts() -> dict:
    """tests/data/reference/checkpoint_facts.json: per released module, prefix, counts and file names."""
    return json.loads((REFERENCE / "checkpoint_facts.json").read_text())


def state_dict_rows(module: torch.nn.Module) -> list[tuple[str, tuple[int, ...], str]]:
    return [(k, tuple(v.shape), str(v.dtype).replace("torch.", ""))
            for k, v in module.state_dict().items()]


# The one tiny training configuration of the tests (GAN training, sampling and DAMSM pretraining alike; a
# test changes only what it is about): 64 px, 4 generator channels, batches of 6 (the synthetic set's 18
# train images make 3 steps), one epoch whose snapshots are all written, no loader workers, 3 x 3 DAMSM
# regions (75 px encoder input).
# The released (Inception) DAMSM trunk whatever the base config says: ``random_damsm`` writes that shape, and
# the demo configs' small trunk (TRAIN.DAMSM_TRUNK small) has tests of its own.
TINY = {"TREE.BASE_SIZE": 64, "TRAIN.NF": 4, "TRAIN.BATCH_SIZE": 6, "TRAIN.MAX_EPOCH": 1, "TRAIN.WARMUP_EPOCHS": 0,
        "TRAIN.GSAVE_INTERVAL": 1, "TRAIN.DSAVE_INTERVAL": 1, "WORKERS": 0, "TRAIN.DAMSM_INPUT_SIZE": 75,
        "TRAIN.DAMSM_TRUNK": "inception"}
# conftest's shared synthetic bird set: 4 species x 6 images at 64x48, 3 train species (18 images), 1 test species.
TINY_BIRDS = {"classes": 4, "per_class": 6, "seed": 0, "size": (64, 48)}


def tiny_opts(**changes: Any) -> list[str]:
    """``TINY`` updated with ``changes`` (config keys: ``**{"TRAIN.BATCH_SIZE": 3}``) as the flat KEY VALUE
    list that ``--opts`` and ``cfg_from_list`` take."""
    return [str(x) for kv in {**TINY, **changes}.items() for x in kv]


def configure(tmp_path: Path, data_dir: Path, damsm: Path, **extra: Any) -> None:
    """The global config set to ``TINY`` on ``data_dir`` with the DAMSM text encoder ``damsm`` (CPU), run
    folder ``tmp_path/output/tiny``, changed by ``extra``; then seeded as an entry point seeds."""
    cfg_from_list(tiny_opts(**{"DATA_DIR": str(data_dir), "OUTPUT_DIR": str(tmp_path / "output"),
                               "CONFIG_NAME": "tiny", "TEXT.DAMSM_NAME": str(damsm), "CUDA": False, **extra}))
    seed_everything(cfg.SEED)


def bird_set(root: Path, **changes: Any) -> Path:
    """A synthetic CUB-layout set at ``root`` (``TINY_BIRDS`` changed by ``changes``, e.g. ``classes=8``)."""
    make_birds(root, **{**TINY_BIRDS, **changes})
    return root


def random_damsm(folder: Path, n_words: int, epoch: int = 200, rnn_type: str = "LSTM") -> Path:
    """A random DAMSM pair (seed 0) in the released format, sized for ``n_words``:
    ``text_encoder<epoch>.pth`` and ``image_encoder<epoch>.pth`` in ``folder``; returns the text encoder's path."""
    torch.manual_seed(0)
    save_released(RNN_ENCODER(n_words, nhidden=256, rnn_type=rnn_type), folder / f"text_encoder{epoch}.pth")
    save_released(CNN_ENCODER(256, pretrained=False), folder / f"image_encoder{epoch}.pth")
    return folder / f"text_encoder{epoch}.pth"


def open_gates(net: torch.nn.Module, std: float = 0.5) -> torch.nn.Module:
    """``net`` with its residual gates and text MLP output layers drawn from N(0, std^2) (torch's global
    stream, in parameter order); every other weight keeps its initialisation.

    Fresh, those are zero: the generator is a pure shortcut chain whose image ignores the text and the
    masks, and the discriminator's blocks are their shortcuts. A test that needs every block, mask and
    text path to matter (and on the gradient path) opens them this way."""
    gates = {id(p) for p in residual_gates(net)}
    with torch.no_grad():
        for name, p in net.named_parameters():
            if id(p) in gates or ".linear2." in name:
                p.normal_(0, std)
    return net


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before, module, keys=None):
    after = module.state_dict()
    return {k for k in (keys or before) if not torch.equal(before[k], after[k])}


def write_images(folder: Path, n: int, seed: int, size: int = 64, mode: str = "RGB") -> list[Path]:
    """``n`` square PNGs of random pixels, ``000000.png`` ..., in ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        shape = (size, size, 3) if mode == "RGB" else (size, size)
        paths.append(folder / f"{i:06d}.png")
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(paths[-1])
    return paths


def calibrate_batchnorm(encoder: torch.nn.Module, size: int = 64) -> None:
    """Give a random DAMSM image encoder the BatchNorm statistics of its own activations on random images.

    With the default statistics (mean 0, var 1) a random Inception's activations grow to ~1e7, past
    fp16's range; a trained encoder's statistics keep them O(1), as these do. 8 images, so that the
    1x1 maps of the last stages give usable variances. Leaves the encoder in eval mode.
    """
    bns = [m for m in encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:
        m.momentum = 1.0
    device = next(encoder.parameters()).device
    with torch.no_grad():
        encoder.train()(torch.rand(8, 3, size, size, device=device) * 2 - 1)
    for m in bns:
        m.momentum = 0.1
    encoder.eval()


def permute_vocabulary(data: Path) -> None:
    """Renumber the words of ``data``'s captions.pickle (same words, other ids), as a rebuilt pickle can."""
    import pickle
    train, test, ixtoword, wordtoix = pickle.loads((data / "captions.pickle").read_bytes())
    ids = sorted(i for i in ixtoword if i)
    swap = dict(zip(ids, ids[1:] + ids[:1]))

    def remap(caps):
        return [[swap.get(t, t) for t in c] for c in caps]
    ixtoword = {swap.get(i, i): w for i, w in ixtoword.items()}
    wordtoix = {w: i for i, w in ixtoword.items()}
    (data / "captions.pickle").write_bytes(pickle.dumps([remap(train), remap(test), ixtoword, wordtoix], protocol=2))


def write_sample_folder(folder: Path, done: bool, images: int = 3, planned: int = 10) -> Path:
    """A sampler-style folder of ``images`` tiny PNGs with their records and a plan of ``planned``;
    without DONE.json it is an interrupted sampling run."""
    from miscc.sample.protocol import DONE_FILE, PLAN_FILE, SAMPLES_FILE
    (folder / "img").mkdir(parents=True)
    rows = []
    for i in range(images):
        Image.new("RGB", (16, 16), (i * 40, 0, 0)).save(folder / "img" / f"{i:06d}.png")
        rows.append(json.dumps({"file": f"img/{i:06d}.png", "key": f"k{i}", "caption_idx": 0, "tokens": [1]}))
    (folder / SAMPLES_FILE).write_text("\n".join(rows) + "\n")
    (folder / PLAN_FILE).write_text(json.dumps({"count": planned}))
    if done:
        (folder / DONE_FILE).write_text(json.dumps({"count": images}))
    return folder


def http_exchange(host: str, port: int, data: bytes, close_write: bool = True, timeout: float = 30) -> tuple[bytes, bytes]:
    """(head, body) of one raw HTTP exchange: ``data`` sent as is (malformed on purpose), the reply read to
    the end. Raises ``OSError`` (``socket.timeout`` included) when the server does not answer in time."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(data)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return head, body


def word_gaps(band: np.ndarray, min_width: int = 4) -> int:
    """Blank column runs at least ``min_width`` wide between inked columns of a line of text: the spaces
    a reader sees (letters of one word are at most 3 px apart in the default font at 10-14 px)."""
    ink = np.flatnonzero((band.min(axis=(0, 2)) if band.ndim == 3 else band.min(axis=0)) < 160)
    return int((np.diff(ink) - 1 >= min_width).sum())


def x_height_band(image: np.ndarray, x: int, y: int, size: int) -> np.ndarray:
    """The rows of a text line drawn at (x, y) in the default font of ``size`` px where every lower-case
    letter has ink."""
    from miscc.sample.grid import font
    _, top, _, bottom = font(size).getbbox("x")
    return image[y + top:y + bottom, x:]


def visible_spaces(panel: np.ndarray, x: int, y: int, size: int, lines: int) -> tuple[int, int]:
    """(lines with ink, visible word gaps in them) of up to ``lines`` text lines drawn from (x, y) at
    the drawer's line height (size + 3)."""
    n_lines = gaps = 0
    for n in range(lines):
        band = x_height_band(panel, x, y + n * (size + 3), size)
        if (band < 160).any():
            n_lines += 1
            gaps += word_gaps(band)
    return n_lines, gaps
