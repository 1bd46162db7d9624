"""Shared fixtures: a config reset around every test and one tiny synthetic bird set per session."""
from __future__ import annotations

from pathlib import Path

import pytest

import torch

from DAMSM import CNN_ENCODER, RNN_ENCODER
from datasets import TextDataset
from miscc.run.checkpoint import save_released
from miscc.config import reset_cfg
from tools.birds.make_birds import make_birds

# 4 species x 6 images at 64x48: 3 train classes (18 images) and 1 test class (6 images).
TINY_BIRDS = {"classes": 4, "per_class": 6, "seed": 0, "size": (64, 48)}


@pytest.fixture(autouse=True)
def _fresh_cfg():
    """Every test starts from the default config, so a test that edits ``cfg`` cannot leak."""
    reset_cfg()
    yield
    reset_cfg()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models: a second intra-op thread only adds synchronisation, which stalls on a busy CPU.

    Use per module with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def synthetic_birds(tmp_path_factory) -> Path:
    """Path of a tiny synthetic CUB-layout set (``TINY_BIRDS``); 'birds' is in its name.

    Shared by the whole session: copy it (``shutil.copytree``) before changing any file in it.
    ``captions.pickle`` is built by the first TextDataset that opens it.
    """
    root = tmp_path_factory.mktemp("synthetic_birds") / "birds"
    make_birds(root, **TINY_BIRDS)
    return root


@pytest.fixture(scope="session")
def damsm_files(synthetic_birds, tmp_path_factory):
    """A random DAMSM pair in the released format, sized for the synthetic vocabulary."""
    return write_random_damsm(synthetic_birds, tmp_path_factory.mktemp("DAMSMencoders"))


def write_random_damsm(data_dir: Path, folder: Path) -> Path:
    """A seeded random DAMSM pair for ``data_dir``'s vocabulary in ``folder``; the text encoder's path."""
    n_words = TextDataset(data_dir, "train").n_words
    torch.manual_seed(0)
    save_released(RNN_ENCODER(n_words, nhidden=256), folder / "text_encoder200.pth")
    save_released(CNN_ENCODER(256, pretrained=False), folder / "image_encoder200.pth")
    return folder / "text_encoder200.pth"
