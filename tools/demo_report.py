"""Score a sample folder of the synthetic-bird demo: do generated birds have the captions' body colour?

    python -m tools.demo_report --samples output/demo/samples/netG_010_main --data_dir data/birds_demo \
        --out output/demo/results

Writes ``results.json`` (colour accuracy vs chance and vs real test crops, per colour) and
``results_grid.png`` (one row per body colour: real test crops, then generated birds whose caption
names that colour). The expected colour of a sample is the ground-truth body colour of the test image
its caption describes (``attributes_test.json`` written by ``tools.make_birds``).
"""
from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

from miscc.errors import SSAGANError
from miscc.sample_protocol import SampleRecord, read_samples
from tools.colour_score import NAMES, chance_level, dominant_body_colour, load_attributes


def real_crops(data_dir: Path, size: int) -> dict[str, np.ndarray]:
    """Test images as the GAN sees them (bbox crop, resize, centre crop), uint8 HWC by key."""
    import torch

    from datasets import TextDataset, build_transform

    ds = TextDataset(data_dir, "test", size, transform=build_transform(size, train=False))
    out = {}
    for i, key in enumerate(ds.filenames):
        img = ds[i][0][0]
        out[key] = ((img.clamp(-1, 1) + 1) * 127.5).to(torch.uint8).permute(1, 2, 0).numpy()
    return out


def score(samples: Sequence[SampleRecord], folder: Path, attributes: dict, real: dict[str, np.ndarray]) -> dict:
    expected = [attributes[s.key]["body_colour"] for s in samples]
    predicted = [dominant_body_colour(np.asarray(Image.open(folder / s.file).convert("RGB")))
                 for s in samples]
    hits = [p == e for p, e in zip(predicted, expected)]
    per_colour = defaultdict(list)
    for h, e in zip(hits, expected):
        per_colour[e].append(h)
    real_keys = sorted(real)
    real_hits = [dominant_body_colour(real[k]) == attributes[k]["body_colour"] for k in real_keys]
    return {
        "n_samples": len(samples),
        "colour_accuracy": float(np.mean(hits)),
        "chance_level": chance_level(expected),
        "real_test_crops_accuracy": float(np.mean(real_hits)),
        "per_colour_accuracy": {c: float(np.mean(v)) for c, v in sorted(per_colour.items())},
        "predicted_colour_counts": dict(Counter(predicted)),
    }


def results_grid(samples: Sequence[SampleRecord], folder: Path, attributes: dict, real: dict[str, np.ndarray],
                 per_row: int = 6, n_real: int = 2) -> Image.Image:
    by_colour = defaultdict(list)
    for s in samples:
        by_colour[attributes[s.key]["body_colour"]].append(s)
    real_by_colour = defaultdict(list)
    for k in sorted(real):
        real_by_colour[attributes[k]["body_colour"]].append(real[k])
    colours = [c for c in NAMES if by_colour[c]]
    size = np.asarray(Image.open(folder / samples[0].file)).shape[0]
    label_w, gap = 70, 4
    width = label_w + (n_real + per_row) * (size + gap) + gap
    grid = Image.new("RGB", (width, len(colours) * (size + gap) + gap + 16), "white")
    draw = ImageDraw.Draw(grid)
    draw.text((label_w, 2), "real test crops | generated from captions naming the colour", fill="black")
    for r, colour in enumerate(colours):
        y = 16 + gap + r * (size + gap)
        draw.text((4, y + size // 2 - 5), colour, fill="black")
        tiles = [Image.fromarray(a) for a in real_by_colour[colour][:n_real]]
        tiles += [None] * (n_real - len(tiles))
        tiles += [Image.open(folder / s.file).convert("RGB") for s in by_colour[colour][:per_row]]
        for c, tile in enumerate(tiles):
            if tile is not None:
                grid.paste(tile.resize((size, size)), (label_w + gap + c * (size + gap), y))
    return grid


def main(argv: Optional[Sequence[str]] = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", required=True, type=Path, help="sample folder with samples.jsonl")
    p.add_argument("--data_dir", required=True, type=Path, help="the synthetic set (attributes_test.json)")
    p.add_argument("--out", required=True, type=Path, help="folder for results.json and results_grid.png")
    p.add_argument("--extra_json", type=Path, default=None, help="metrics JSON (e.g. from IS.py) to merge")
    args = p.parse_args(argv)

    try:
        samples = read_samples(args.samples)
    except SSAGANError as e:
        raise SystemExit(f"demo_report: error: {e}") from e
    attributes = load_attributes(args.data_dir, "test")
    size = np.asarray(Image.open(args.samples / samples[0].file)).shape[0]
    real = real_crops(args.data_dir, size)
    result = score(samples, args.samples, attributes, real)
    if args.extra_json is not None and args.extra_json.is_file():
        result["evaluation"] = json.loads(args.extra_json.read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2))
    results_grid(samples, args.samples, attributes, real).save(args.out / "results_grid.png")
    print(f"body-colour accuracy {result['colour_accuracy']:.3f} (chance {result['chance_level']:.3f}, "
          f"real test crops {result['real_test_crops_accuracy']:.3f}) on {result['n_samples']} samples; "
          f"wrote {args.out / 'results.json'} and {args.out / 'results_grid.png'}")
    return result


if __name__ == "__main__":
    main()
