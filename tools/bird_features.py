"""Build the bird feature network of a synthetic bird set (miscc/metrics/bird_net.py), once per set.

    python -m tools.bird_features DATA_DIR [--size 64] [--epochs 30] [--seed 0] [--holdout 0.2]

Trains on the real images of every species of both splits (species + body/head/wing/tail colour),
holding out the last ``--holdout`` of each species' images to report its accuracy, and writes
``DATA_DIR/bird_net.pt`` with the data's fingerprint. Deterministic for a seed; about a minute on 2
CPU cores at the demo's size (600 images, 64 px). FD, IS, diversity and mask coverage on the bird
network (IS.py --bird_net DATA_DIR, EVAL.METRICS bird_fd,...) read that file.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from miscc.errors import SSAGANError
from miscc.metrics.bird_net import build_bird_net


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.bird_features", description=__doc__.split("\n")[0])
    p.add_argument("data_dir", help="a synthetic bird set (python -m tools.birds.make_birds DATA_DIR)")
    p.add_argument("--size", type=int, default=64, help="input side in pixels (default 64, the demo's)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--holdout", type=float, default=0.2, help="share of each species' images held out")
    args = p.parse_args(argv)
    try:
        path, meta = build_bird_net(args.data_dir, args.size, args.epochs, args.seed, args.holdout,
                                    log=lambda s: print(s, flush=True))
    except SSAGANError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    held = ", ".join(f"{k} {v:.3f}" for k, v in meta["heldout"].items())
    print(f"held-out accuracy ({meta['heldout_images']} real images never trained on): {held}")
    print(f"wrote {path} ({meta['train_images']} training images, {len(meta['species'])} species, "
          f"{meta['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
