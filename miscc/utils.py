"""Small shared pieces: device choice, seeding, and building the models a config describes.

Every entry point (training, fine-tuning, DAMSM pretraining, sampling, evaluation) builds its models
and encoders through these functions so that sizes, checkpoint paths and device handling agree.
"""
from __future__ import annotations

import os
import random
from typing import Optional

import numpy as np
import torch

from DAMSM import CNN_ENCODER, RNN_ENCODER
from miscc import distributed
from miscc.checkpoint import load_checkpoint, load_file, load_into
from miscc.config import cfg
from miscc.errors import SSAGANError
from model import NetD, NetG

NOISE_DIM = 100  # hard-coded in the released NetG


def get_device(gpu_id: Optional[int] = None) -> torch.device:
    """CUDA (cfg.GPU_ID; LOCAL_RANK under torchrun) when enabled and present, else the CPU.

    Never fails on a CPU-only machine.
    """
    return distributed.pick_device(cfg.CUDA, cfg.GPU_ID if gpu_id is None else gpu_id)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def image_encoder_path(text_encoder_path: str) -> str:
    """The original's rule: the image encoder sits next to the text encoder, same epoch."""
    return text_encoder_path.replace("text_encoder", "image_encoder")


def build_text_encoder(n_words: int, path: Optional[str] = None,
                       captions_path: str = "captions.pickle") -> RNN_ENCODER:
    """RNN_ENCODER sized for the vocabulary, loaded from ``path`` (default TEXT.DAMSM_NAME) if not ''.

    A file trained on another vocabulary is refused before loading, naming both files.
    """
    from datasets import check_vocab

    encoder = RNN_ENCODER(n_words, nhidden=cfg.TEXT.EMBEDDING_DIM)
    path = cfg.TEXT.DAMSM_NAME if path is None else path
    if path:
        state = load_file(path, what="DAMSM text encoder")
        table = state.get("encoder.weight", state.get("module.encoder.weight")) \
            if isinstance(state, dict) else None
        if table is not None:
            check_vocab(n_words, table.shape[0], captions_path, path)
        load_into(encoder, state, path)
    return encoder


def build_image_encoder(path: Optional[str] = None) -> CNN_ENCODER:
    """CNN_ENCODER loaded from ``path`` (default: derived from TEXT.DAMSM_NAME).

    Built without the ImageNet download because the DAMSM checkpoint replaces every weight; with
    ``path=''`` (DAMSM pretraining from scratch) the ImageNet weights are required instead.
    """
    path = image_encoder_path(cfg.TEXT.DAMSM_NAME) if path is None else path
    encoder = CNN_ENCODER(cfg.TEXT.EMBEDDING_DIM, pretrained=not path and cfg.TRAIN.DAMSM_IMAGENET,
                          input_size=cfg.TRAIN.DAMSM_INPUT_SIZE)
    if path:
        load_checkpoint(encoder, path)
    return encoder


def build_generator() -> NetG:
    """NetG of the configured size and variant (GAN.SSACN, GAN.FUSION, TEXT.CA; docs/VARIANTS.md)."""
    return NetG(cfg.TRAIN.NF, NOISE_DIM, imsize=cfg.TREE.BASE_SIZE, ssacn=cfg.GAN.SSACN,
                fusion=cfg.GAN.FUSION, ca=cfg.TEXT.CA)


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema = decay * ema + (1 - decay) * model for parameters; buffers (BN statistics) are copied,
    since averaging running statistics of different weights would describe neither."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def build_discriminator() -> NetD:
    return NetD(cfg.TRAIN.NF, imsize=cfg.TREE.BASE_SIZE)


def encode_text(text_encoder: RNN_ENCODER, captions: torch.Tensor, cap_lens: torch.Tensor):
    """(words_emb, sent_emb) of a batch, with the zero initial state the original used."""
    hidden = text_encoder.init_hidden(captions.size(0))
    return text_encoder(captions, cap_lens, hidden)


def epoch_from_name(path: str) -> int:
    """Epoch encoded in a checkpoint name, the original's rule: between the last '_' and the last '.'.

    ``netG_550.pth`` -> 550. Raises a clear error instead of the original's crash on other names.
    """
    name = os.path.basename(path)
    try:
        return int(name[name.rindex("_") + 1: name.rindex(".")])
    except ValueError as e:
        raise SSAGANError(f"cannot read an epoch from {path}: released generator files are named "
                          "netG_<epoch>.pth (e.g. netG_550.pth).") from e
