"""A user's sentences as the text encoder reads them (issue #14): unknown words dropped or refused.

The text encoder knows only the words of the training captions and has no ``<unk>`` row, so a word
outside the vocabulary cannot be read at all. Two policies:

* ``drop`` (default): the unknown words are left out and reported (one warning per line, with the
  "did you mean" hints of ``datasets.unknown_words_hint``); a line left with no known word is skipped
  with a warning; only a file with no usable line is an error. What the model read is kept next to
  what was typed (``UserCaption.marked``: dropped words in brackets), so nothing is hidden.
* ``error``: any unknown word refuses the whole file, every problem listed with its line (the
  behaviour before issue #14).

A sentence longer than TEXT.WORDS_NUM (counted after dropping):

* ``drop``: cut to its first WORDS_NUM known words, with a warning; the words cut off are kept
  (``UserCaption.cut``) and shown wherever dropped words are (records, grid, page). The first words,
  not training's random ordered subset: the kept words are a prefix anyone can read off the line,
  they do not depend on a hidden seed, and captions name the bird and its main parts first.
* ``error``: refused, as before (the user shortens it).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from datasets import caption_too_long, encode_sentence, tokenize, unknown_words_hint
from miscc.errors import SSAGANError

UNKNOWN_POLICIES = ("drop", "error")


class UserCaptionWarning(UserWarning):
    """A captions-file line was changed (words dropped or cut off) or skipped under ``--unknown drop``."""


class UnreadableCaption(SSAGANError):
    """No word of the sentence is in the vocabulary: under ``drop`` the line is skipped, not fatal."""


@dataclass(frozen=True)
class UserCaption:
    """One sentence: every word as tokenised, which of them the vocabulary knows, and the ids read."""
    line: int
    words: tuple[str, ...]
    known: tuple[bool, ...]
    ids: tuple[int, ...]
    limit: Optional[int] = None  # set when the known words were cut to this many (TEXT.WORDS_NUM)

    @property
    def read(self) -> tuple[bool, ...]:
        """Per word: did the text encoder read it (known, and within ``limit`` known words)."""
        flags, seen = [], 0
        for k in self.known:
            seen += k
            flags.append(bool(k) and (self.limit is None or seen <= self.limit))
        return tuple(flags)

    @property
    def dropped(self) -> list[str]:
        """The unknown words, each once, in order of appearance."""
        return list(dict.fromkeys(w for w, k in zip(self.words, self.known) if not k))

    @property
    def cut(self) -> list[str]:
        """The known words left out because the sentence was longer than ``limit``, in order."""
        return [w for w, k, r in zip(self.words, self.known, self.read) if k and not r]

    @property
    def read_as(self) -> str:
        """The sentence as the text encoder reads it (lower case, known words only)."""
        return " ".join(w for w, r in zip(self.words, self.read) if r)

    @property
    def marked(self) -> str:
        """The sentence with every word not read (unknown or cut off) in brackets, e.g. 'a [grey] bird'."""
        return " ".join(w if r else f"[{w}]" for w, r in zip(self.words, self.read))


def check_policy(unknown: str) -> None:
    if unknown not in UNKNOWN_POLICIES:
        raise SSAGANError(f"--unknown must be one of {list(UNKNOWN_POLICIES)}, got {unknown!r}.")


def read_caption(text: str, wordtoix: dict[str, int], words_num: int, unknown: str = "drop",
                 line: int = 0) -> UserCaption:
    """One sentence -> UserCaption; raises UnreadableCaption (drop: no known word) or SSAGANError.

    Under ``error`` the messages are ``datasets.encode_sentence``'s and a sentence longer than
    ``words_num`` is refused; under ``drop`` a sentence of unknown words only, or of no word at all, is
    UnreadableCaption naming them with their hints, and a longer one is cut (``cut_to_limit``).
    """
    check_policy(unknown)
    if unknown == "error":
        ids = tuple(encode_sentence(text, wordtoix))
        words = tuple(tokenize(text) or ())
        caption = UserCaption(line, words, (True,) * len(words), ids)
    else:
        words = tuple(tokenize(text) or ())
        known = tuple(w in wordtoix for w in words)
        caption = UserCaption(line, words, known, tuple(wordtoix[w] for w, k in zip(words, known) if k))
        if not words:
            raise UnreadableCaption(f"caption {text!r} contains no words (letters or digits).")
        if not caption.ids:
            raise UnreadableCaption(
                f"caption {text!r} has no word the model knows (vocabulary of {len(wordtoix)} words, "
                f"training captions only): {unknown_words_hint(caption.dropped, wordtoix)}.")
    too_long = caption_too_long(caption.ids, words_num)
    if too_long and unknown == "error":
        raise SSAGANError(too_long)
    if too_long:
        caption = cut_to_limit(caption, words_num)
    return caption


def cut_to_limit(caption: UserCaption, words_num: int) -> UserCaption:
    """The caption read as its first ``words_num`` known words (module doc says why the first)."""
    return UserCaption(caption.line, caption.words, caption.known, caption.ids[:words_num], words_num)


def cut_message(caption: UserCaption) -> Optional[str]:
    """'cut 3 word(s) beyond TEXT.WORDS_NUM 18: ...; the model reads "..."', or None when nothing was cut."""
    if not caption.cut:
        return None
    return (f"cut {len(caption.cut)} word(s) beyond TEXT.WORDS_NUM {caption.limit} (the text encoder reads at "
            f"most {caption.limit}; the first ones are kept): {' '.join(caption.cut)!r}; the model reads "
            f"{caption.read_as!r}")


def dropped_message(caption: UserCaption, wordtoix: dict[str, int]) -> Optional[str]:
    """'dropped 1 unknown word(s): ...; the model reads "..."', or None when nothing was dropped."""
    if not caption.dropped:
        return None
    return (f"dropped {len(caption.dropped)} unknown word(s): "
            f"{unknown_words_hint(caption.dropped, wordtoix)}; the model reads {caption.read_as!r}")


def _warn(message: str, path: Path, line: int) -> None:
    # Attributed to the captions file itself: Python prints "<file>:<line>: ..." and then that line.
    warnings.warn_explicit(message, UserCaptionWarning, str(path), line)


def read_captions_file(path: str | os.PathLike, wordtoix: dict[str, int], words_num: int,
                       unknown: str = "drop") -> list[UserCaption]:
    """The usable non-blank lines of a UTF-8 file, as the model reads them (module doc for policies).

    Fatal problems of every line come together in one SSAGANError; drops and skips are
    UserCaptionWarnings attributed to the file and line (``filename``/``lineno`` of the warning).
    """
    check_policy(unknown)
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as e:
        raise SSAGANError(f"captions file {path} does not exist.") from e
    except (OSError, UnicodeDecodeError) as e:
        raise SSAGANError(f"captions file {path} cannot be read as UTF-8 text: {e}") from e
    captions, problems, skipped = [], [], 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            caption = read_caption(line, wordtoix, words_num, unknown, number)
        except UnreadableCaption as e:
            _warn(f"line skipped: {e}", path, number)
            skipped += 1
            continue
        except SSAGANError as e:
            problems.append(f"line {number}: {e}")
            continue
        for note in (dropped_message(caption, wordtoix), cut_message(caption)):
            if note:
                _warn(note, path, number)
        captions.append(caption)
    if problems:
        raise SSAGANError(f"captions file {path}: {len(problems)} line(s) cannot be used:\n  "
                          + "\n  ".join(problems))
    if not captions:
        why = (f" ({skipped} line(s) skipped: no word the model knows, see the warnings above)"
               if skipped else "")
        raise SSAGANError(f"captions file {path} holds no caption the model can read{why}: write one "
                          "sentence per line, in words of the training captions.")
    return captions
