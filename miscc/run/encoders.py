"""The DAMSM encoder pair, built in one place for training, pretraining, sampling and evaluation.

``EncoderSpec`` holds what defines an encoder's shape (TEXT.EMBEDDING_DIM, RNN_TYPE, TEXT.WORDS_NUM,
TRAIN.DAMSM_INPUT_SIZE, TRAIN.DAMSM_TRUNK); callers fill it from their config and pass it down, so a GRU
text encoder is built as a GRU wherever it is loaded. Weights come from released-format files: the text encoder
through the one loader that checks the vocabulary (``miscc.run.checkpoint.load_text_encoder``), the image
encoder strictly.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional

from DAMSM import CNN_ENCODER, RNN_ENCODER, SMALL_CNN_ENCODER
from miscc.run.checkpoint import load_checkpoint, load_file, load_text_encoder, text_encoder_rows
from miscc.errors import SSAGANError
from miscc.run.layout import image_encoder_beside


@dataclass(frozen=True)
class EncoderSpec:
    """The shape of a DAMSM encoder pair (the released pairs: 256, LSTM, 18 words, 299 px, Inception)."""
    nef: int = 256
    rnn_type: str = "LSTM"
    words_num: int = 18
    input_size: int = 299
    trunk: str = "inception"


def text_encoder(n_words: int, spec: EncoderSpec, path: str | os.PathLike = "",
                 captions_path: str | os.PathLike = "captions.pickle", vocab: Optional[str] = None) -> RNN_ENCODER:
    """RNN_ENCODER of ``spec`` for ``n_words`` words, loaded from ``path`` unless it is ''."""
    encoder = RNN_ENCODER(n_words, nhidden=spec.nef, n_steps=spec.words_num, rnn_type=spec.rnn_type)
    if path:
        load_text_encoder(encoder, path, n_words, captions_path, vocab)
    return encoder


def image_encoder(spec: EncoderSpec, path: str | os.PathLike = "", imagenet: bool = False
                  ) -> CNN_ENCODER | SMALL_CNN_ENCODER:
    """The image encoder of ``spec`` (CNN_ENCODER, or SMALL_CNN_ENCODER for trunk 'small'), loaded from
    ``path`` unless it is ''.

    ``imagenet``: start from the ImageNet Inception trunk (a download); pointless when ``path`` replaces
    every weight, and the small trunk has none.
    """
    if spec.trunk == "small":
        encoder = SMALL_CNN_ENCODER(spec.nef, input_size=spec.input_size)
    else:
        encoder = CNN_ENCODER(spec.nef, pretrained=imagenet, input_size=spec.input_size)
    if path:
        try:
            load_checkpoint(encoder, path)
        except SSAGANError as e:  # the keys do not fit: name the key to set when the file is the other trunk
            other = "inception" if spec.trunk == "small" else "small"
            if _trunk_of(path) == other:
                raise SSAGANError(f"{path} is an image encoder with TRAIN.DAMSM_TRUNK {other!r}, but the config "
                                  f"builds {spec.trunk!r}: set TRAIN.DAMSM_TRUNK {other} (as in the DAMSM "
                                  f"pretraining that wrote it).") from e
            raise
    return encoder


def _trunk_of(path: str | os.PathLike) -> str | None:
    """'small' or 'inception' from the keys of an image encoder file (None when neither shows)."""
    state = load_file(path)
    keys = state.keys() if isinstance(state, Mapping) else ()
    if any(k.startswith("trunk.") for k in keys):
        return "small"
    return "inception" if any(k.startswith("Mixed_") for k in keys) else None


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
