"""Shared fixtures: a config reset around every test and one tiny synthetic bird set per session."""
from __future__ import annotations

from pathlib import Path

import pytest

import torch

from datasets import TextDataset
from miscc.config import reset_cfg
from tests.helpers import bird_set, random_damsm


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
    """Path of a tiny synthetic CUB-layout set (``tests.helpers.TINY_BIRDS``); 'birds' is in its name.

    Shared by the whole session: copy it (``shutil.copytree``) before changing any file in it.
    ``captions.pickle`` is built by the first TextDataset that opens it.
    """
    return bird_set(tmp_path_factory.mktemp("synthetic_birds") / "birds")


@pytest.fixture(scope="session")
def damsm_files(synthetic_birds, tmp_path_factory):
    """A random DAMSM pair in the released format, sized for the synthetic vocabulary."""
    return random_damsm(tmp_path_factory.mktemp("DAMSMencoders"), TextDataset(synthetic_birds, "train").n_words)
