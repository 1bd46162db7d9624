"""The resolved configuration turned into objects: devices, data sets, models, encoders, loss options.

This is the one module below the entry points that reads ``cfg`` (with the trainers and the sampler):
everything it builds takes plain arguments, so library code never sees the configuration.
"""
from __future__ import annotations

import os
from typing import Callable, Optional

import torch

from DAMSM import CNN_ENCODER, RNN_ENCODER
from datasets import TextDataset
from miscc.run import distributed
from miscc.config import cfg, cfg_to_dict
from miscc.run.encoders import EncoderSpec, image_encoder, text_encoder
from miscc.train.loop import LoopOptions
from miscc.train.losses import DAMSMSmoothing
from miscc.run.layout import RunLayout, image_encoder_beside
from model import NOISE_DIM, NetD, NetG

__all__ = ["NOISE_DIM", "build_dataset", "build_discriminator", "build_generator", "build_image_encoder",
           "build_text_encoder", "damsm_smoothing", "encoder_spec", "get_device", "loop_options", "run_layout"]


def get_device(gpu_id: Optional[int] = None) -> torch.device:
    """CUDA (cfg.GPU_ID; LOCAL_RANK under torchrun) when enabled and present, else the CPU."""
    return distributed.pick_device(cfg.CUDA, cfg.GPU_ID if gpu_id is None else gpu_id)


def run_layout() -> RunLayout:
    """``OUTPUT_DIR/<CONFIG_NAME>``: the folders and files of this run."""
    return RunLayout.of(cfg.OUTPUT_DIR, cfg.CONFIG_NAME)


def loop_options() -> LoopOptions:
    """What the training skeleton reads of the config, and the config it records."""
    return LoopOptions(max_epoch=cfg.TRAIN.MAX_EPOCH, batch_size=cfg.TRAIN.BATCH_SIZE, workers=cfg.WORKERS,
                       seed=cfg.SEED, restore=cfg.RESTORE, progress=cfg.PROGRESS, config=cfg_to_dict())


def build_dataset(split: str, transform: Optional[Callable] = None, every_caption: bool = False) -> TextDataset:
    return TextDataset(cfg.DATA_DIR, split, cfg.TREE.BASE_SIZE, transform=transform, every_caption=every_caption,
                       captions_per_image=cfg.TEXT.CAPTIONS_PER_IMAGE, words_num=cfg.TEXT.WORDS_NUM,
                       dataset_name=cfg.DATASET_NAME)


def damsm_smoothing() -> DAMSMSmoothing:
    s = cfg.TRAIN.SMOOTH
    return DAMSMSmoothing(s.GAMMA1, s.GAMMA2, s.GAMMA3, s.LAMBDA)


def encoder_spec(nef: Optional[int] = None) -> EncoderSpec:
    """The DAMSM encoders' shape: TEXT.EMBEDDING_DIM (or ``nef``), RNN_TYPE, TEXT.WORDS_NUM, DAMSM_INPUT_SIZE,
    DAMSM_TRUNK."""
    return EncoderSpec(cfg.TEXT.EMBEDDING_DIM if nef is None else nef, cfg.RNN_TYPE, cfg.TEXT.WORDS_NUM,
                       cfg.TRAIN.DAMSM_INPUT_SIZE, cfg.TRAIN.DAMSM_TRUNK)


def build_text_encoder(n_words: int, path: Optional[str] = None,
                       captions_path: str | os.PathLike = "captions.pickle", vocab: Optional[str] = None) -> RNN_ENCODER:
    """RNN_ENCODER sized for the vocabulary, loaded from ``path`` (default TEXT.DAMSM_NAME) if not ''."""
    return text_encoder(n_words, encoder_spec(), cfg.TEXT.DAMSM_NAME if path is None else path, captions_path, vocab)


def build_image_encoder(path: Optional[str] = None) -> CNN_ENCODER:
    """CNN_ENCODER loaded from ``path`` (default: beside TEXT.DAMSM_NAME).

    Built without the ImageNet download because the DAMSM checkpoint replaces every weight; with
    ``path=''`` (DAMSM pretraining from scratch) the ImageNet weights are required instead, unless
    TRAIN.DAMSM_IMAGENET is False.
    """
    path = os.fspath(image_encoder_beside(cfg.TEXT.DAMSM_NAME)) if path is None else os.fspath(path)
    # The original's evaluation runs (TRAIN.FLAG False) built the image encoder at width 256.
    spec = encoder_spec(None if cfg.TRAIN.FLAG else 256)
    return image_encoder(spec, path, imagenet=not path and cfg.TRAIN.DAMSM_IMAGENET)


def build_generator() -> NetG:
    """NetG of the configured size and variant (GAN.SSACN, GAN.FUSION, TEXT.CA; docs/VARIANTS.md)."""
    return NetG(cfg.TRAIN.NF, NOISE_DIM, imsize=cfg.TREE.BASE_SIZE, ssacn=cfg.GAN.SSACN,
                fusion=cfg.GAN.FUSION, ca=cfg.TEXT.CA)


def build_discriminator() -> NetD:
    return NetD(cfg.TRAIN.NF, imsize=cfg.TREE.BASE_SIZE)
