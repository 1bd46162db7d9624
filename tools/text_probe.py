"""How much of each part's colour a text encoder's sentence embedding carries: a linear probe.

    python -m tools.text_probe --cfg cfg/demo.yml [--text_encoder PATH] [--data_dir DIR] [--out probe.json]

SSA-GAN's blocks see a caption only through its sentence embedding, so a colour the embedding does not
carry cannot be drawn. The probe fits a multinomial logistic regression from the (unit-length) sentence
embeddings of every training-split caption of a synthetic bird set to the body, crown (head) and wing
colour of the caption's image, and reports its accuracy on the test-split captions (the L2 penalty
chosen on held-out training images), next to:

- ``chance``: the most frequent colour of the test split (an embedding-blind guesser);
- ``random_encoder``: the same probe on a randomly initialised text encoder of the same shape and
  vocabulary (seed 0): what the words alone carry before DAMSM pretraining;
- ``unseen``: the share of test captions whose colour no training caption has (no linear probe trained
  on the training split can name it: on a set made with ``--parts species`` the test species' crowns
  and wings are such colours).

The encoder and its shape come from the config (TEXT.DAMSM_NAME, TEXT.EMBEDDING_DIM, RNN_TYPE,
TEXT.WORDS_NUM), the data from DATA_DIR; ``--opts`` overrides as everywhere.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from typing import Optional, Sequence

import numpy as np
import torch

from datasets import TextDataset
from miscc.errors import SSAGANError
from miscc.metrics.colour import SCORED_PARTS, load_attributes
from miscc.metrics.rprecision import encode_sentences

PROBED_PARTS = ("body", "head", "wing")


def _split_captions(split: TextDataset) -> tuple[list[list[int]], list[str]]:
    """(token-id captions, the image key of each) of one split, its empty captions left out."""
    per_image = split.embeddings_num
    keep = [i for i, c in enumerate(split.captions) if len(c)]
    return [list(split.captions[i]) for i in keep], [split.filenames[i // per_image] for i in keep]


L2_GRID = (1e-4, 1e-5, 1e-6)  # the probe's L2 penalty is chosen among these on held-out training images


def fit_probe(train_x: np.ndarray, train_y: np.ndarray, n_classes: int, l2: float, steps: int = 200
              ) -> torch.nn.Linear:
    """Multinomial logistic regression (L-BFGS, L2 penalty ``l2`` on the weights) on float features."""
    torch.manual_seed(0)
    x, y = torch.as_tensor(train_x, dtype=torch.float32), torch.as_tensor(train_y)
    probe = torch.nn.Linear(x.shape[1], n_classes)
    opt = torch.optim.LBFGS(probe.parameters(), max_iter=steps, history_size=10, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(probe(x), y) + l2 * probe.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return probe


def _accuracy(probe: torch.nn.Linear, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float((probe(torch.as_tensor(x, dtype=torch.float32)).argmax(1).numpy() == y).mean())


def probe_accuracy(train_x: np.ndarray, train_labels: Sequence[str], train_groups: Sequence[str],
                   test_x: np.ndarray, test_labels: Sequence[str]) -> tuple[float, float]:
    """(test accuracy, chosen L2) of a linear probe fitted on the training features (labels: colour
    names). The L2 penalty is the one of ``L2_GRID`` that scores best on every fifth training image's
    captions (``train_groups``: each caption's image) when fitted on the others; the test split is
    only scored, once, by the probe refitted on all training captions."""
    classes = sorted(set(train_labels))
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[c] for c in train_labels])
    images = sorted(set(train_groups))
    held = {g for i, g in enumerate(images) if i % 5 == 4}
    val = np.array([g in held for g in train_groups])
    scores = {l2: _accuracy(fit_probe(train_x[~val], y[~val], len(classes), l2), train_x[val], y[val])
              for l2 in L2_GRID}
    l2 = max(L2_GRID, key=lambda v: (scores[v], v))  # ties: the stronger penalty
    test_y = np.array([index.get(c, -1) for c in test_labels])  # -1: a colour the probe cannot name
    return _accuracy(fit_probe(train_x, y, len(classes), l2), test_x, test_y), l2


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def text_probe(splits: dict[str, TextDataset], text_encoder: torch.nn.Module, random_encoder: torch.nn.Module,
               parts: Sequence[str] = PROBED_PARTS) -> dict:
    """The probe's figures per part (see the module's docstring), for ``text_encoder`` and a random one;
    ``splits``: the train and test split of a synthetic bird set."""
    captions = {s: _split_captions(splits[s]) for s in ("train", "test")}
    data_dir = splits["train"].data_dir
    attrs = {split: load_attributes(data_dir, split) for split in ("train", "test")}
    feats = {name: {split: _unit(encode_sentences(enc, captions[split][0])) for split in ("train", "test")}
             for name, enc in (("trained", text_encoder), ("random", random_encoder))}
    out = {"data_dir": data_dir, "captions": {s: len(captions[s][0]) for s in ("train", "test")}, "parts": {}}
    for part in parts:
        attribute = SCORED_PARTS[part][0]
        labels = {s: [attrs[s][k][attribute] for k in captions[s][1]] for s in ("train", "test")}
        seen = set(labels["train"])
        test_counts = Counter(labels["test"])
        trained, random = (probe_accuracy(feats[name]["train"], labels["train"], captions["train"][1],
                                          feats[name]["test"], labels["test"]) for name in ("trained", "random"))
        out["parts"][part] = {
            "attribute": attribute,
            "accuracy": trained[0], "l2": trained[1], "random_encoder": random[0],
            "chance": max(test_counts.values()) / len(labels["test"]),
            "unseen": sum(n for c, n in test_counts.items() if c not in seen) / len(labels["test"]),
            "test_colours": sorted(test_counts)}
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    from miscc.config import cfg, cfg_from_file, cfg_from_list
    from miscc.config.factory import encoder_spec
    from miscc.run.encoders import text_encoder

    p = argparse.ArgumentParser(prog="python -m tools.text_probe", description=__doc__.split("\n")[0])
    p.add_argument("--cfg", default="cfg/demo.yml", help="config naming the data and the text encoder")
    p.add_argument("--text_encoder", default=None, help="text encoder file (default: TEXT.DAMSM_NAME)")
    p.add_argument("--data_dir", default=None, help="synthetic bird set (default: DATA_DIR)")
    p.add_argument("--out", default=None, help="write the figures as JSON here")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="KEY VALUE config overrides")
    args = p.parse_args(argv)
    try:
        cfg_from_file(args.cfg)
        cfg_from_list(args.opts)
        data_dir = args.data_dir or cfg.DATA_DIR
        path = args.text_encoder or cfg.TEXT.DAMSM_NAME
        if not path or not os.path.isfile(path):
            raise SSAGANError(f"text encoder {path!r} does not exist: pretrain it (python DAMSM.py --cfg ...) "
                              f"or give --text_encoder.")
        if not os.path.isfile(os.path.join(data_dir, "attributes_train.json")):
            raise SSAGANError(f"{data_dir} is not a synthetic bird set (no attributes_train.json): the probe needs "
                              f"each image's colours, which python -m tools.birds.make_birds writes.")
        captions_pickle = os.path.join(data_dir, "captions.pickle")
        if not os.path.isfile(captions_pickle):  # never rebuilt here: the encoder's word ids are its own
            raise SSAGANError(f"{captions_pickle} does not exist: it is built by the first training or DAMSM "
                              f"pretraining on {data_dir} (python DAMSM.py --cfg ...).")
        splits = {s: TextDataset(data_dir, s, captions_per_image=cfg.TEXT.CAPTIONS_PER_IMAGE,
                                 words_num=cfg.TEXT.WORDS_NUM, dataset_name=cfg.DATASET_NAME)
                  for s in ("train", "test")}
        vocabulary = splits["train"]
        spec = encoder_spec()
        trained = text_encoder(vocabulary.n_words, spec, path, captions_pickle, vocabulary.vocab_fingerprint).eval()
        torch.manual_seed(0)
        random_encoder = text_encoder(vocabulary.n_words, spec).eval()
        result = text_probe(splits, trained, random_encoder)
    except SSAGANError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result["text_encoder"] = path
    print(f"linear probe of sentence embeddings -> colour ({result['captions']['train']} training-split captions "
          f"fitted, {result['captions']['test']} test-split captions scored; {path})")
    print("| part | probe | random encoder | chance | test colours unseen in training |")
    print("|---|---|---|---|---|")
    for part, r in result["parts"].items():
        print(f"| {part} ({r['attribute']}) | {r['accuracy']:.3f} | {r['random_encoder']:.3f} | {r['chance']:.3f} "
              f"| {r['unseen']:.3f} |")
    if args.out:
        from miscc.run.layout import atomic_write_text
        atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
