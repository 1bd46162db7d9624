"""Captions as word ids: tokenising, the vocabulary and its fingerprint, fixed-length caption arrays.

The rules are the original AttnGAN/SSA-GAN ones (docs/ORIGINAL.md, "Data"): a text encoder's embedding
rows are the word ids these functions assign, so they are frozen. ``datasets.py`` re-exports them.
"""
from __future__ import annotations

import difflib
import hashlib
import re
from collections import Counter
from typing import Any, Optional, Sequence

import numpy as np

from miscc.errors import SSAGANError

END_TOKEN = "<end>"
_WORD = re.compile(r"\w+")


def tokenize(line: str) -> Optional[list[str]]:
    """Caption tokens by the original rules; None when the line has no ``\\w+`` token at all.

    A line whose tokens all vanish in the ASCII filter returns ``[]``: the original kept it as an
    empty caption (its "no tokens" test ran before the filter).
    """
    tokens = _WORD.findall(line.replace("\ufffd\ufffd", " ").lower())
    if not tokens:
        return None
    ascii_tokens = (t.encode("ascii", "ignore").decode("ascii") for t in tokens)
    return [t for t in ascii_tokens if t]


def caption_array(ids: Sequence[int], words_num: int, rng: Any = None) -> tuple[np.ndarray, int]:
    """Word ids -> (int64 array (words_num, 1) zero-padded, length), as the original ``get_caption``.

    Longer captions keep ``words_num`` positions drawn by ``rng.shuffle`` (a ``RandomState``; None =
    numpy's global generator, like the original) and re-sorted, so the kept words stay in order.
    """
    sent = np.asarray(ids, dtype=np.int64)
    n = len(sent)
    x = np.zeros((words_num, 1), dtype=np.int64)
    if n <= words_num:
        x[:n, 0] = sent
        return x, n
    ix = list(np.arange(n))  # a list, like the original, so the shuffle consumes the same draws
    (np.random if rng is None else rng).shuffle(ix)
    x[:, 0] = sent[np.sort(ix[:words_num])]
    return x, words_num


def encode_sentence(text: str, wordtoix: dict[str, int]) -> list[int]:
    """A user's caption -> word ids, tokenised like the training captions.

    Raises SSAGANError for a caption without words or with words the vocabulary lacks (the
    original crashed with KeyError). Length is not checked: see ``caption_too_long``.
    """
    tokens = tokenize(text)
    if not tokens:
        raise SSAGANError(f"caption {text!r} contains no words (letters or digits).")
    unknown = list(dict.fromkeys(t for t in tokens if t not in wordtoix))
    if unknown:
        vocab = [w for w in wordtoix if w != END_TOKEN]
        raise SSAGANError(
            f"caption {text!r}: {len(unknown)} word(s) not in the vocabulary of {len(wordtoix)} words "
            f"(training captions only, no <unk>): {unknown_words_hint(unknown, wordtoix)}. Examples of "
            f"known words: {', '.join(vocab[:10])}. Rephrase with known words.")
    return [wordtoix[t] for t in tokens]


def unknown_words_hint(unknown: Sequence[str], wordtoix: dict[str, int]) -> str:
    """"'grey' (did you mean green, red?); 'zq'": each unknown word with up to 3 close known words."""
    vocab = [w for w in wordtoix if w != END_TOKEN]
    parts = []
    for word in unknown:
        close = difflib.get_close_matches(word, vocab, n=3)
        parts.append(f"{word!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
    return "; ".join(parts)


def caption_too_long(ids: Sequence[int], words_num: int = 18) -> Optional[str]:
    """None if the caption fits TEXT.WORDS_NUM, else a message for the caller to show or act on."""
    limit = words_num
    if len(ids) <= limit:
        return None
    return (f"the caption has {len(ids)} words but the text encoder reads at most {limit} "
            f"(TEXT.WORDS_NUM); training kept a random ordered subset of {limit} words of such "
            f"captions (caption_array does the same). Shorten it to keep every word.")


def vocabulary_fingerprint(ixtoword: dict[int, str]) -> str:
    """sha256 of the words in id order; see ``TextDataset.vocab_fingerprint``."""
    words = "\n".join(ixtoword[i] for i in sorted(ixtoword))
    return hashlib.sha256(words.encode("utf-8")).hexdigest()


def build_vocabulary(train_captions: list[list[str]], test_captions: list[list[str]]
                     ) -> tuple[list[list[int]], list[list[int]], dict[int, str], dict[str, int]]:
    """Original ``build_dictionary``: every word of train+test, ids in first-seen order from 1."""
    counts = Counter(w for sent in train_captions + test_captions for w in sent)
    ixtoword = {0: END_TOKEN}
    wordtoix = {END_TOKEN: 0}
    for ix, word in enumerate(counts, start=1):  # Counter keeps first-insertion order
        wordtoix[word] = ix
        ixtoword[ix] = word
    train_ids = [[wordtoix[w] for w in sent] for sent in train_captions]
    test_ids = [[wordtoix[w] for w in sent] for sent in test_captions]
    return train_ids, test_ids, ixtoword, wordtoix
