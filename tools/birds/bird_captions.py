"""CUB-style captions for a synthetic bird: ten per image, in the phrasings CUB annotators use.

Real CUB captions name two to four visible attributes in a handful of recurring shapes ("this bird
has a grey crown, a white belly and brown wings", "a small bird with a very short pointy beak", "this
bird is mostly olive with a buff breast and a short, thick bill", "... in color", "... as well as ...",
"this bird has wings that are black and has a white belly"). The grammar here reproduces those shapes
with the part and colour synonyms annotators use (belly / breast / chest / abdomen, crown / head /
nape, bill / beak, grey / gray ...), so that real sentences about the drawn attributes can be typed.

Every caption names the body (breast / belly) colour: it is the largest coloured area and the
attribute the demo scores first. Nine of ten captions stay within ``MAX_WORDS`` words, the text
encoder's cap, so no random subsampling can drop it; the tenth is longer, like some real ones.
"""
from __future__ import annotations

import re
from typing import Callable, Mapping, Sequence

import numpy as np

from miscc.metrics.bird_geometry import bill_length_words

MAX_WORDS = 18  # cfg TEXT.WORDS_NUM: longer captions lose random words
_AN = re.compile(r"\ba (?=[aeiou])")
_BRIGHT = {"yellow", "red", "orange", "blue", "green", "pink"}
_DARK = {"brown", "grey", "blue", "green", "olive", "purple", "red"}
_LIGHT = {"grey", "brown", "blue", "pink", "buff", "yellow"}


class _Words:
    """Draws synonyms from the image's generator, so captions stay reproducible per seed."""

    def __init__(self, rng: np.random.RandomState) -> None:
        self.rng = rng

    def pick(self, *options: str) -> str:
        return options[int(self.rng.randint(len(options)))]

    def chance(self, p: float) -> bool:
        return bool(self.rng.rand() < p)

    def colour(self, name: str, shade: bool = True) -> str:
        word = self.pick("grey", "gray") if name == "grey" else name
        if shade and self.chance(0.12):
            shades = ["bright"] * (name in _BRIGHT) + ["dark"] * (name in _DARK) + ["light"] * (name in _LIGHT)
            if shades:
                return f"{self.pick(*shades)} {word}"
        return word


def _body_noun(w: _Words) -> str:
    return w.pick("belly", "breast", "body", "chest", "abdomen", "breast and belly", "belly and breast",
                  "underbelly", "body", "belly", "breast")


def _head_noun(w: _Words) -> str:
    return w.pick("crown", "head", "crown", "head", "crown and nape", "nape", "forehead", "head and nape")


def _wing_noun(w: _Words) -> str:
    return w.pick("wings", "wings", "wing feathers", "secondaries", "primaries", "back and wings",
                  "wings and back")


def _tail_noun(w: _Words) -> str:
    return w.pick("tail feathers", "rectrices", "tail feathers")


def _bill_noun(w: _Words) -> str:
    return w.pick("bill", "beak")


def _size(w: _Words, size: str) -> str:
    return {"small": w.pick("small", "small", "tiny", "little"),
            "medium": w.pick("medium sized", "medium size", "medium"),
            "large": w.pick("large", "big", "large")}[size]


def _shape(w: _Words, shape: str) -> str:
    return {"round": w.pick("plump", "round", "chubby", "fat"),
            "slim": w.pick("slender", "slim", "thin", "skinny", "sleek")}[shape]


def _bill_shape(w: _Words, shape: str) -> str:
    return {"cone": w.pick("thick", "cone shaped", "conical", "stout", "stubby", "short thick"),
            "pointed": w.pick("pointy", "pointed", "sharp", "thin", "sharp pointed", "narrow"),
            "curved": w.pick("curved", "downward curved", "down curved", "long curved", "thin curved"),
            "hooked": w.pick("hooked", "hook shaped", "slightly curved", "thick hooked")}[shape]


def _bill_length(w: _Words, length: str) -> str:
    return {"short": w.pick("short", "very short", "small", "short"),
            "medium": w.pick("medium length", "medium sized", "medium"),
            "long": w.pick("long", "very long", "long")}[length]


def _very(length: str) -> str:
    return "medium length" if length == "medium" else f"very {length}"


def _phrases(a: Mapping, w: _Words) -> dict[str, Callable[[], str]]:
    """Noun phrases for every non-body attribute this bird shows (each call draws new synonyms)."""
    c = w.colour
    p: dict[str, Callable[[], str]] = {
        "head": lambda: w.pick(f"a {c(a['head_colour'])} {_head_noun(w)}",
                               f"a {c(a['head_colour'])} {_head_noun(w)}",
                               f"a {_head_noun(w)} that is {c(a['head_colour'])}"),
        "wing": lambda: w.pick(f"{c(a['wing_colour'])} {_wing_noun(w)}", f"{c(a['wing_colour'])} wings",
                               f"wings that are {c(a['wing_colour'])}", f"a {c(a['wing_colour'])} wing",
                               f"{w.pick('broad', 'large', 'small')} {c(a['wing_colour'])} wings"),
        "eyes": lambda: w.pick("small black eyes", "a small black eye", "black eyes"),
        "tail": lambda: w.pick(f"a {c(a['tail_colour'])} tail", f"{c(a['tail_colour'])} {_tail_noun(w)}",
                               f"a {a['tail_length']} {c(a['tail_colour'])} tail",
                               f"a {a['tail_length']} tail"),
        "bill": lambda: w.pick(
            f"a {_bill_length(w, a['bill_length'])} {_bill_shape(w, a['bill_shape'])} {_bill_noun(w)}",
            f"a {_bill_length(w, a['bill_length'])}, {_bill_shape(w, a['bill_shape'])} {_bill_noun(w)}",
            f"a {c(a['bill_colour'])} {_bill_noun(w)}",
            f"a {_bill_shape(w, a['bill_shape'])} {c(a['bill_colour'], False)} {_bill_noun(w)}",
            f"a {_bill_noun(w)} that is {bill_length_words(a['bill_length'])} its head",
            f"a {_very(a['bill_length'])} {_bill_shape(w, a['bill_shape'])} {_bill_noun(w)}"),
        "legs": lambda: w.pick(f"{c(a['leg_colour'])} legs", f"{c(a['leg_colour'])} feet",
                               f"{c(a['leg_colour'])} tarsus", f"{c(a['leg_colour'])} legs and feet",
                               f"{c(a['leg_colour'])} tarsals and feet"),
    }
    if a["bill_shape"] == "curved":
        p["bill_curve"] = lambda: w.pick(f"a long {_bill_noun(w)} that curves downward",
                                         f"a {c(a['bill_colour'], False)} {_bill_noun(w)} that curves down")
    if a["eye_mark"] == "ring":
        p["eye"] = lambda: w.pick(f"a {c(a['eye_mark_colour'], False)} eye ring",
                                  f"a {c(a['eye_mark_colour'], False)} eyering",
                                  f"{c(a['eye_mark_colour'], False)} eye rings",
                                  f"a {c(a['eye_mark_colour'], False)} ring around its eye")
    elif a["eye_mark"] == "eyebrow":
        p["eye"] = lambda: w.pick(f"a {c(a['eye_mark_colour'], False)} eyebrow",
                                  f"{c(a['eye_mark_colour'], False)} eyebrows",
                                  f"a {c(a['eye_mark_colour'], False)} superciliary",
                                  f"a {c(a['eye_mark_colour'], False)} stripe above its eye")
    if a["wingbars"]:
        p["wingbars"] = lambda: w.pick(f"{c(a['wingbar_colour'], False)} wingbars",
                                       f"a {c(a['wingbar_colour'], False)} wingbar",
                                       f"{c(a['wingbar_colour'], False)} wing bars",
                                       f"{c(a['wingbar_colour'], False)} bars on its wings",
                                       f"{c(a['wingbar_colour'], False)} stripes on the wings")
    return p


def _body_phrase(a: Mapping, w: _Words) -> str:
    """The body colour as a noun phrase, with the breast pattern when the bird has one."""
    b, pc = w.colour(a["body_colour"]), w.colour(a["pattern_colour"], False)
    if a["pattern"] == "spotted":
        return w.pick(f"a {b} breast with {pc} spots", f"a spotted {b} breast",
                      f"a {b} belly speckled with {pc}", f"a {b} breast that has {pc} spots",
                      f"a mottled {b} and {pc} breast")
    if a["pattern"] == "striped":
        return w.pick(f"a {b} breast with {pc} streaks", f"a streaked {b} breast",
                      f"a {b} belly with {pc} stripes", f"a striped {b} and {pc} breast")
    return w.pick(f"a {b} {_body_noun(w)}", f"a {b} {_body_noun(w)}", f"a {_body_noun(w)} that is {b}",
                  f"a {b} colored {_body_noun(w)}")


def _join(items: list[str], w: _Words) -> str:
    if len(items) == 1:
        return items[0]
    if len(items) == 2 and w.chance(0.3):
        return f"{items[0]} as well as {items[1]}"
    return ", ".join(items[:-1]) + (w.pick(" and ", ", and ") if len(items) > 2 else " and ") + items[-1]


def _openers(a: Mapping, w: _Words) -> list[Callable[[], str]]:
    """Sentence starts that name the body colour; the extras follow after 'with' or ','."""
    b = lambda: w.colour(a["body_colour"])  # noqa: E731
    size, shape = lambda: _size(w, a["size"]), lambda: _shape(w, a["shape"])  # noqa: E731
    return [
        lambda: f"this bird has {_body_phrase(a, w)}",
        lambda: f"this bird is mostly {b()} with",
        lambda: f"this bird is {b()} in color with",
        lambda: f"this bird is {b()} in colour, with",
        lambda: f"a {size()} bird with {_body_phrase(a, w)}",
        lambda: f"a {size()} {b()} bird with",
        lambda: f"this is a {b()} bird with",
        lambda: f"the bird has {_body_phrase(a, w)}",
        lambda: f"this {shape()} bird has {_body_phrase(a, w)}",
        lambda: f"this particular bird has a {_body_noun(w)} that is {b()}",
        lambda: f"{b()} bird with",
        lambda: f"this bird is covered in {b()} feathers except for",
        lambda: f"this bird is almost all {b()} except for",
        lambda: f"this bird has {b()} plumage with",
        lambda: f"a {shape()} {b()} bird with",
        lambda: f"this {size()} bird is mostly {b()} with",
        lambda: f"a {size()} {shape()} bird with {_body_phrase(a, w)}",
    ]


def _frames(a: Mapping, w: _Words) -> list[tuple[frozenset, Callable[[], str]]]:
    """Whole-sentence shapes that do not fit opener + list (clauses with 'that are', 'its ... is'),
    each with the parts besides the body it names."""
    c = w.colour
    wing, both = frozenset({"wing"}), frozenset({"head", "wing"})
    frames = [
        (wing, lambda: f"this bird has wings that are {c(a['wing_colour'])} and has {_body_phrase(a, w)}"),
        (wing, lambda: (f"the {_body_noun(w)} of this bird is {c(a['body_colour'])}, its wings are "
                        f"{c(a['wing_colour'])} and its {_bill_noun(w)} is {c(a['bill_colour'], False)}")),
        (both, lambda: (f"the belly is {c(a['body_colour'])}, the wings are {c(a['wing_colour'])} and the "
                        f"crown is {c(a['head_colour'])}")),
        (both, lambda: (f"{c(a['body_colour'])} {_body_noun(w)}, {c(a['head_colour'])} {_head_noun(w)}, "
                        f"{c(a['wing_colour'])} wings and {c(a['tail_colour'])} tail")),
        (frozenset(), lambda: (f"this bird has a {_bill_noun(w)} that is {bill_length_words(a['bill_length'])} "
                               f"its head and {_body_phrase(a, w)}")),
        (both, lambda: (f"a {c(a['body_colour'])} and {c(a['wing_colour'])} bird with a {c(a['head_colour'])} "
                        f"{_head_noun(w)}")),
        (wing, lambda: (f"a {_size(w, a['size'])} bird with {c(a['body_colour'])} and {c(a['wing_colour'])} "
                        f"{w.pick('coloring', 'coloration', 'feathers', 'plumage')}")),
        (wing, lambda: f"this bird is mostly {c(a['body_colour'])} but has {c(a['wing_colour'])} {_wing_noun(w)}"),
        (wing, lambda: (f"this bird is {c(a['body_colour'])} with {c(a['wing_colour'])} on its wings and has "
                        f"{w.pick('small black eyes', 'a small black eye')}")),
    ]
    if len({a["body_colour"], a["head_colour"], a["wing_colour"]}) == 3:
        frames.append((both, lambda: (f"this colorful bird has a {c(a['head_colour'])} {_head_noun(w)}, "
                                      f"{_body_phrase(a, w)} and {c(a['wing_colour'])} wings")))
    return frames


def _words(text: str) -> int:
    return len(re.findall(r"\w+", text))


def captions(a: Mapping, rng: np.random.RandomState, n: int = 10, always: Sequence[str] = ()) -> list[str]:
    """``n`` captions for one image with attributes ``a`` (the record ``make_birds`` writes).

    One caption of the ``n`` is longer than ``MAX_WORDS`` (as some real CUB captions are) and names
    the body colour twice, so the encoder's random subset of words usually keeps it. ``always``: parts
    (``head``, ``wing``) every caption names besides the body (``make_birds --parts image``); empty,
    the captions are the ones written before the option existed, drawn from the same random numbers.
    """
    w = _Words(rng)
    long_slot = int(rng.randint(n))
    out = []
    while len(out) < n:
        if len(out) == long_slot:
            text, fits = _long_caption(a, w, always), lambda k: MAX_WORDS < k <= MAX_WORDS + 10
        elif w.chance(0.2):
            frames = [frame for names, frame in _frames(a, w) if names.issuperset(always)]
            text, fits = frames[int(rng.randint(len(frames)))](), lambda k: k <= MAX_WORDS
        else:
            text, fits = _list_caption(a, w, always), lambda k: k <= MAX_WORDS
        if fits(_words(text)):
            out.append(_AN.sub("an ", text).strip() + ".")
    return out


def _first(keys: Sequence[str], always: Sequence[str], w: _Words) -> list[str]:
    """``keys`` in a random order, the ``always`` ones moved to the front."""
    order = [keys[i] for i in w.rng.permutation(len(keys))]
    return [k for k in order if k in always] + [k for k in order if k not in always]


def _long_caption(a: Mapping, w: _Words, always: Sequence[str] = ()) -> str:
    phrases = _phrases(a, w)
    keys = _first(list(phrases), always, w)[:4]
    rest = w.pick("the rest of its body is", "most of the bird is", "its belly is")
    return (f"this bird has {_body_phrase(a, w)}, {_join([phrases[k]() for k in keys], w)}, and "
            f"{rest} {w.colour(a['body_colour'])}")


def _list_caption(a: Mapping, w: _Words, always: Sequence[str] = ()) -> str:
    phrases = _phrases(a, w)
    order = _first(list(phrases), always, w)
    chosen = order[:max(len(always), 1 + int(w.rng.randint(3)))]
    if always:  # the named parts anywhere in the list, not always first
        chosen = [chosen[i] for i in w.rng.permutation(len(chosen))]
    extras = [phrases[k]() for k in chosen]
    if w.chance(0.35):  # body colour inside the list, where CUB annotators often put it
        opener = w.pick(f"a {_size(w, a['size'])} bird with", "this bird has", "a bird with",
                        f"this {_size(w, a['size'])} bird has", "the bird has")
        extras.insert(int(w.rng.randint(len(extras) + 1)), _body_phrase(a, w))
        return f"{opener} {_join(extras, w)}"
    openers = _openers(a, w)
    opener = openers[int(w.rng.randint(len(openers)))]()
    if opener.endswith(("with", "for", ",")):
        if opener.endswith("except for"):
            extras = [e.replace("a ", "its ", 1) if e.startswith("a ") else f"its {e}" for e in extras]
        return f"{opener} {_join(extras, w)}"
    glue = w.pick(" and ", ", ", " with ") if len(extras) > 1 else w.pick(" and ", " with ")
    return f"{opener}{glue}{_join(extras, w)}"
