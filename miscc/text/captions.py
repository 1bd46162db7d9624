"""Captions as word ids: tokenising, the vocabulary and its fingerprint, fixed-length caption arrays.

The rules are the original AttnGAN/SSA-GAN ones (docs/ORIGINAL.md, "Data"): a text encoder's embedding
rows are the word ids these functions assign, so they are frozen. ``datasets.py`` re-exports them.
"""
from __future__ import annotations

import difflib
import hashlib
import os
import re
import warnings
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


def read_caption_file(path: str, cpi: int, split: str, wordless: Optional[list[str]] = None) -> list[list[str]]:
    """Up to ``cpi`` captions of one text file; lines without an ASCII word are skipped (and listed in
    ``wordless``), so every stored caption can be fed to the text encoder."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            lines = f.read().split("\n")
    except FileNotFoundError as e:
        raise SSAGANError(
            f"caption file {path} (split {split}) does not exist; captions.pickle is built from "
            f"text/<key>.txt for every key of train/ and test/filenames.pickle. Put the AttnGAN "
            f"captions.pickle into the data folder instead, or restore text/.") from e
    except UnicodeDecodeError as e:
        raise SSAGANError(f"caption file {path} (split {split}) is not UTF-8 text: {e}") from e
    caps = []
    for line in lines:
        if not line:
            continue
        tokens = tokenize(line)
        if tokens is None:
            continue
        if not tokens:  # only non-ASCII letters: the original kept an empty caption, which crashed later
            if wordless is not None:
                wordless.append(path)
            continue
        caps.append(tokens)
        if len(caps) == cpi:
            break
    return caps


def load_split_captions(data_dir: str, split: str, names: Sequence[str], cpi: int) -> list[list[str]]:
    """``cpi`` captions per key of ``names`` from ``data_dir/text/<key>.txt`` (AttnGAN layout), short
    files padded cyclically with one warning, wordless lines skipped with one warning."""
    out: list[list[str]] = []
    short: list[tuple[str, int]] = []
    wordless: list[str] = []
    for key in names:
        path = os.path.join(data_dir, "text", f"{key}.txt")
        caps = read_caption_file(path, cpi, split, wordless)
        if not caps:
            raise SSAGANError(
                f"caption file {path} (split {split}) has no caption with an ASCII word in it; every image "
                f"needs at least one (TEXT.CAPTIONS_PER_IMAGE = {cpi}). Nothing was written.")
        if len(caps) < cpi:
            short.append((path, len(caps)))
            caps = [caps[k % len(caps)] for k in range(cpi)]
        out.extend(caps)
    if wordless:
        files = sorted(set(wordless))
        warnings.warn(
            f"{len(wordless)} caption line(s) of split {split} have no ASCII word (only other letters or "
            f"punctuation) and were skipped, in {len(files)} file(s): {', '.join(files[:5])}"
            f"{' ...' if len(files) > 5 else ''}.", stacklevel=3)
    if short:
        listed = ", ".join(f"{p} ({n})" for p, n in short[:5])
        more = f" and {len(short) - 5} more" if len(short) > 5 else ""
        warnings.warn(
            f"{len(short)} caption file(s) of split {split} have fewer than TEXT.CAPTIONS_PER_IMAGE = "
            f"{cpi} captions: {listed}{more}. Their captions are repeated to fill {cpi} slots.",
            stacklevel=3)
    return out
