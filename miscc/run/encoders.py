"""The DAMSM encoder pair, built in one place for training, pretraining, sampling and evaluation.

``EncoderSpec`` holds what defines an encoder's shape (TEXT.EMBEDDING_DIM, RNN_TYPE, TEXT.WORDS_NUM,
TRAIN.DAMSM_INPUT_SIZE); callers fill it from their config and pass it down, so a GRU text encoder is
built as a GRU wherever it is loaded. Weights come from released-format files: the text encoder
through the one loader that checks the vocabulary (``miscc.run.checkpoint.load_text_encoder``), the image
encoder strictly.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from DAMSM import CNN_ENCODER, RNN_ENCODER
from miscc.run.checkpoint import load_checkpoint, load_text_encoder, text_encoder_rows
from miscc.run.layout import image_encoder_beside


@dataclass(frozen=True)
class EncoderSpec:
    """The shape of a DAMSM encoder pair (the released pairs: 256, LSTM, 18 words, 299 px)."""
    nef: int = 256
    rnn_type: str = "LSTM"
    words_num: int = 18
    input_size: int = 299


def text_encoder(n_words: int, spec: EncoderSpec, path: str | os.PathLike = "",
                 captions_path: str | os.PathLike = "captions.pickle", vocab: Optional[str] = None) -> RNN_ENCODER:
    """RNN_ENCODER of ``spec`` for ``n_words`` words, loaded from ``path`` unless it is ''."""
    encoder = RNN_ENCODER(n_words, nhidden=spec.nef, n_steps=spec.words_num, rnn_type=spec.rnn_type)
    if path:
        load_text_encoder(encoder, path, n_words, captions_path, vocab)
    return encoder


def image_encoder(spec: EncoderSpec, path: str | os.PathLike = "", imagenet: bool = False) -> CNN_ENCODER:
    """CNN_ENCODER of ``spec``, loaded from ``path`` unless it is ''.

    ``imagenet``: start from the ImageNet Inception trunk (a download); pointless when ``path`` replaces
    every weight.
    """
    encoder = CNN_ENCODER(spec.nef, pretrained=imagenet, input_size=spec.input_size)
    if path:
        load_checkpoint(encoder, path)
    return encoder


def encoder_pair(text_path: str | os.PathLike, image_path: Optional[str | os.PathLike], spec: EncoderSpec,
                 n_words: Optional[int] = None, captions_path: Optional[str | os.PathLike] = None,
                 vocab: Optional[str] = None) -> tuple[RNN_ENCODER, CNN_ENCODER, str]:
    """(text encoder, image encoder, image encoder path) from released-format files.

    ``image_path`` defaults to the file beside ``text_path``; ``n_words`` to the text encoder's own
    row count (nothing to check it against without a ``captions_path``).
    """
    if n_words is None:
        n_words = text_encoder_rows(text_path)
    text = text_encoder(n_words, spec, text_path, captions_path or "(no captions.pickle given)", vocab)
    image_path = os.fspath(image_path) if image_path else os.fspath(image_encoder_beside(text_path))
    return text, image_encoder(spec, image_path), image_path
