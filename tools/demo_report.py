"""Score the synthetic-bird demo: do generated birds have the colours their captions name?

    # 1. captions that differ in one colour word (the body colour), for main.py --captions
    python -m tools.demo_report --data_dir data/birds_demo --write_swap_captions output/demo/swap.txt
    python main.py --cfg cfg/demo.yml --sample --captions output/demo/swap.txt --per_caption 4 \
        --out_dir output/demo/samples/swap
    # 2. the report
    python -m tools.demo_report --samples output/demo/samples/every_caption --data_dir data/birds_demo \
        --swap_samples output/demo/samples/swap --swap_captions output/demo/swap.txt --out output/demo/results

Writes ``results.json``: ``headline``, the scores that mean something each beside what it is read
against (printed too, see ``headline_lines``): per scored part (body = breast/belly, head = crown, wing)
the accuracy over all samples with its chance level (an image-blind guesser following the label
frequencies), its shuffled-caption baseline and the real test crops' accuracy; the swap captions' body
colour; and, from the IS.py results passed with ``--metrics_json``, FD and IS on the bird network with
their real-image floor and ceiling, R-precision with its chance, mask coverage per stage with the
uniform mask's value and noise diversity with that of real images of one species. Below it the details
(``parts``, ``swap``, ``evaluation``). ``results_grid.png``: one row per body colour, real test crops
then generated birds whose caption names that colour. ``results_swap.png``: one row per swap caption,
its samples, missed ones framed red. The expected colours of a sample are the ground truth of the test
image its caption describes (``attributes_test.json`` written by ``tools.birds.make_birds``).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from PIL import Image

from miscc.errors import SSAGANError
from miscc.metrics.bird_metrics import score_folder
from miscc.metrics.bird_net import BIRD_NET_FILE
from miscc.sample.grid import Framed, GridStyle, labelled_grid
from miscc.sample.protocol import read_samples
from miscc.metrics.colour import (NAMES, SCORED_PARTS, accuracy, candidate_colours, chance_level, load_attributes,
                                score_parts, shuffled_baseline)

PARTS = ("body", "head", "wing")
SWAP_FRAMES = ("this bird has a {B} belly, {W} wings and a {H} crown",
               "a small {B} bird with {W} wings and a short pointy beak")


def load_images(folder: Path, samples: Sequence[dict]) -> np.ndarray:
    return np.stack([np.asarray(Image.open(folder / s.file).convert("RGB")) for s in samples])


def real_crops(data_dir: Path, size: int) -> tuple[list[str], np.ndarray]:
    """Test keys and images as the GAN sees them (bbox crop, resize, centre crop), uint8 NHWC."""
    import torch

    from datasets import TextDataset, build_transform

    ds = TextDataset(data_dir, "test", size, transform=build_transform(size, train=False))
    imgs = torch.stack([ds[i][0][0] for i in range(len(ds))])
    pixels = ((imgs.clamp(-1, 1) + 1) * 127.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return list(ds.filenames), pixels


def all_records(data_dir: Path) -> list[dict]:
    return [*load_attributes(data_dir, "train").values(), *load_attributes(data_dir, "test").values()]


def part_scores(images: np.ndarray, records: Sequence[dict], candidates: dict) -> dict[str, Any]:
    """Accuracy, per-colour accuracy, chance and shuffled baseline of every part in PARTS (by part)."""
    pred = score_parts(images, records, {**candidates, **{f"{p}:all": NAMES for p in PARTS}}, PARTS)
    out = {}
    for part in PARTS:
        expected = [r[SCORED_PARTS[part][0]] for r in records]
        per = defaultdict(list)
        for p, e in zip(pred[part], expected):
            per[e].append(p == e)
        out[part] = {
            "accuracy": accuracy(pred[part], expected),
            # stricter: the colour must also be the nearest of all 15 CUB colours, not only of the
            # colours this part takes in the data set (e.g. dark red is 'black' among 5, 'rufous' among 15)
            "accuracy_among_all_15_colours": accuracy(pred[f"{part}:all"], expected),
            "chance_level": chance_level(expected),
            "shuffled_caption_baseline": shuffled_baseline(pred[part], expected),
            "per_colour_accuracy": {c: float(np.mean(v)) for c, v in sorted(per.items())},
            "n_per_colour": {c: len(v) for c, v in sorted(per.items())},
            "predicted_colour_counts": dict(sorted(Counter(pred[part]).items())),
            "candidates": list(candidates[part]),
            "per_colour_accuracy_among_all_15": {
                c: float(np.mean([p == c for p, e in zip(pred[f"{part}:all"], expected) if e == c]))
                for c in sorted(per)},
        }
    return out


def write_swap_captions(data_dir: Path, path: Path) -> list[dict]:
    """Captions that differ only in the body colour word, for two test birds; a JSON sidecar keeps
    the attributes each line asks for (the base bird with the body colour swapped)."""
    from datasets import TextDataset, tokenize

    test = load_attributes(data_dir, "test")
    colours = candidate_colours(all_records(data_dir), ("body",))["body"]
    by_species: dict[int, dict] = {}
    for key in sorted(test):
        by_species.setdefault(test[key]["class_id"], test[key])
    bases = list(by_species.values())[:len(SWAP_FRAMES)]
    vocab = TextDataset(data_dir, "train").wordtoix
    rows = []
    for frame, base in zip(SWAP_FRAMES, bases):
        for colour in colours:
            text = frame.format(B=colour, W=base["wing_colour"], H=base["head_colour"])
            unknown = [t for t in tokenize(text) if t not in vocab]
            if unknown:
                raise SSAGANError(f"swap caption {text!r} has words outside the vocabulary: {unknown}")
            rows.append({"line": len(rows) + 1, "text": text, "attributes": {**base, "body_colour": colour}})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(r["text"] + "\n" for r in rows), encoding="utf-8")
    path.with_suffix(".json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return rows


def swap_report(folder: Path, captions_file: Path, candidates: dict) -> tuple[dict, list]:
    """Body-colour scores of the swap captions' samples; the sidecar JSON gives each line's bird.

    Returns the report and, per sample, (record, image, predicted colour, expected colour) for
    ``swap_grid``."""
    sidecar = captions_file.with_suffix(".json")
    if not sidecar.is_file():
        raise SSAGANError(f"{sidecar} not found: write the captions with --write_swap_captions {captions_file}")
    rows = {r["line"]: r for r in json.loads(sidecar.read_text(encoding="utf-8"))}
    samples = read_samples(folder)
    records = [rows[int(s.key.rsplit(":", 1)[1])]["attributes"] for s in samples]
    images = load_images(folder, samples)
    pred = score_parts(images, records, candidates, ("body",))["body"]
    per_caption, by_caption = defaultdict(list), defaultdict(list)
    for s, p, img in zip(samples, pred, images):
        per_caption[s.text].append(p)
        by_caption[s.text].append(img)
    expected = [r["body_colour"] for r in records]
    report = {"n_samples": len(samples), "body_accuracy": accuracy(pred, expected),
              "chance_level": chance_level(expected), "predicted_body_colours": dict(per_caption),
              **noise_diversity(list(by_caption.values()))}
    return report, [(s, img, p, r["body_colour"]) for s, img, p, r in zip(samples, images, pred, records)]


COARSE_CELLS = 8  # the coarse measure compares images averaged over an 8 x 8 grid of cells


def coarse(image: np.ndarray, cells: int = COARSE_CELLS) -> np.ndarray:
    """H x W x 3 image averaged over a cells x cells grid: layout and colour without the grain."""
    h, w = image.shape[:2]
    if h % cells or w % cells:
        image = np.asarray(Image.fromarray(image.clip(0, 255).astype(np.uint8)).resize(
            (cells * max(1, w // cells), cells * max(1, h // cells)), Image.BOX), np.float32)
        h, w = image.shape[:2]
    return image.reshape(cells, h // cells, cells, w // cells, -1).mean(axis=(1, 3))


def noise_diversity(groups: Sequence[Sequence[np.ndarray]]) -> dict[str, float]:
    """Mean absolute difference (0-255) between samples of one caption (different noises) and
    between samples of different captions: how much the noise changes the image, for scale.

    ``pixel``: per pixel, which also counts grain and texture; ``8x8``: of the images averaged over
    an 8 x 8 grid (``coarse``), which counts what is visible at a glance (layout, colour areas).
    """
    out = {}
    for name, view in (("pixel", lambda x: x), (f"{COARSE_CELLS}x{COARSE_CELLS}", coarse)):
        gs = [[view(np.asarray(x, np.float32)) for x in g] for g in groups]
        within = [np.abs(a - b).mean() for g in gs for i, a in enumerate(g) for b in g[i + 1:]]
        across = [np.abs(a[0] - b[0]).mean() for i, a in enumerate(gs) for b in gs[i + 1:]]
        out[f"mean_abs_{name}_difference_same_caption"] = float(np.mean(within)) if within else 0.0
        out[f"mean_abs_{name}_difference_other_caption"] = float(np.mean(across)) if across else 0.0
    return out


def species_diversity(images: np.ndarray, records: Sequence[dict]) -> dict[str, float]:
    """``noise_diversity`` of real images grouped by species: the scale the noise's effect is read
    against (real photos of one species differ in background, pose, size and branch)."""
    groups: dict[str, list[np.ndarray]] = defaultdict(list)
    for img, r in zip(images, records):
        groups[r["species"]].append(img)
    return {k.replace("_caption", "_species"): v for k, v in noise_diversity(list(groups.values())).items()}


# The report's pictures are read at a glance: birds of 64 px enlarged to 128 (whole pixels), captions at
# 13 px with spaces widened to 5 px (the default font's 2-3 px spaces vanish between letters).
REPORT_TILE = 128
REPORT_FONT = 13
REPORT_WORD_SPACE = 5


def report_style(image_size: int, text_width: int) -> GridStyle:
    """The grid style of the report's figures for images of ``image_size`` pixels."""
    tile = image_size * max(1, REPORT_TILE // image_size)
    return GridStyle(tile=(tile, tile), text_width=text_width, pad=4, font_size=REPORT_FONT,
                     min_word_space=REPORT_WORD_SPACE, margin=4)


def results_grid(samples: Sequence[dict], images: np.ndarray, records: Sequence[dict], real: np.ndarray,
                 real_records: Sequence[dict], per_row: int = 6, n_real: int = 2) -> Image.Image:
    """One row per body colour: ``n_real`` real test crops, then ``per_row`` generated birds whose
    caption names that colour, spread over the captions of different birds."""
    rows = []
    for colour in sorted({r["body_colour"] for r in records}):
        reals = [real[i] for i, rec in enumerate(real_records) if rec["body_colour"] == colour][:n_real]
        fakes = [images[i] for i, rec in enumerate(records) if rec["body_colour"] == colour]
        step = max(1, len(fakes) // per_row)
        rows.append((colour, [[*reals, *[None] * (n_real - len(reals)), *fakes[::step][:per_row]]]))
    return labelled_grid(rows, report_style(images.shape[1], 80),
                         "Body colour: real test crops, then birds generated from captions naming it",
                         ["real test crop"] * n_real + ["generated"] * per_row)


def swap_grid(scored: Sequence[tuple[dict, np.ndarray, str, str]]) -> Image.Image:
    """One row per swap caption (the caption, then its samples); a sample whose body colour is not the
    caption's is framed red."""
    by_caption: dict[str, list] = defaultdict(list)
    for s, image, pred, want in scored:
        by_caption[s.text].append(image if pred == want else Framed(image, "red"))
    size = scored[0][1].shape[0]
    per_row = max(len(v) for v in by_caption.values())
    style = report_style(size, 2 * size * max(1, REPORT_TILE // size))
    return labelled_grid([(text, [cells]) for text, cells in by_caption.items()], style,
                         "Captions that differ in one colour word; red frame: body colour missed",
                         [f"noise {k + 1}" for k in range(per_row)])


def bird_scores(samples: Path, swap_samples: Optional[Path], data_dir: Path) -> dict[str, Any]:
    """The scores on the bird feature network with their real-image references (docs/EVALUATION.md):
    FD and IS of every test caption's sample, mask coverage when they have stage masks (--masks all),
    diversity of the swap captions' 4 noises each."""
    names = ["bird_fd", "bird_is"]
    first = read_samples(samples)[0]
    if dict(first.extra).get("stage_masks") or first.mask:  # every stage with --masks all, else the last
        names.append("mask_coverage")
    out = score_folder(samples, data_dir, names)
    if swap_samples is not None:
        out.update(score_folder(swap_samples, data_dir, ["bird_diversity"]))
    return out


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Command line; a user mistake (missing folder or file) ends with one line and exit code 2."""
    try:
        return _run(argv)
    except SSAGANError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def _run(argv: Optional[Sequence[str]]) -> dict:
    p = argparse.ArgumentParser(prog="python -m tools.demo_report", description=__doc__.split("\n\n")[0])
    p.add_argument("--data_dir", required=True, type=Path, help="the synthetic set (attributes_*.json)")
    p.add_argument("--write_swap_captions", type=Path, default=None,
                   help="only write captions differing in the body colour word (+ .json) and exit")
    p.add_argument("--samples", type=Path, help="sample folder of every test caption (samples.jsonl)")
    p.add_argument("--swap_samples", type=Path, default=None, help="sample folder of the swap captions")
    p.add_argument("--swap_captions", type=Path, default=None,
                   help="the captions file --write_swap_captions wrote (its .json names each line's bird)")
    p.add_argument("--out", type=Path, help="folder for results.json, results_grid.png, results_swap.png")
    p.add_argument("--extra_json", type=Path, default=None, help="metrics JSON (e.g. from IS.py) to merge")
    args = p.parse_args(argv)
    if args.write_swap_captions is not None:
        rows = write_swap_captions(args.data_dir, args.write_swap_captions)
        print(f"wrote {len(rows)} captions to {args.write_swap_captions}")
        return {"captions": rows}
    if args.samples is None or args.out is None:
        p.error("--samples and --out are required unless --write_swap_captions is given")

    samples = read_samples(args.samples)
    test = load_attributes(args.data_dir, "test")
    records = [test[s.key] for s in samples]
    candidates = candidate_colours(all_records(args.data_dir))
    images = load_images(args.samples, samples)
    real_keys, real = real_crops(args.data_dir, images.shape[1])
    real_records = [test[k] for k in real_keys]
    fake = part_scores(images, records, candidates)
    genuine = part_scores(real, real_records, candidates)
    for part in PARTS:
        fake[part]["real_test_crops_accuracy"] = genuine[part]["accuracy"]
        fake[part]["real_test_crops_per_colour"] = genuine[part]["per_colour_accuracy"]
    result: dict[str, Any] = {
        "n_samples": len(samples),
        # body-colour summary under the keys earlier reports used
        "colour_accuracy": fake["body"]["accuracy"], "chance_level": fake["body"]["chance_level"],
        "real_test_crops_accuracy": fake["body"]["real_test_crops_accuracy"],
        "per_colour_accuracy": fake["body"]["per_colour_accuracy"],
        "parts": fake,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    if args.swap_samples is not None:
        if args.swap_captions is None:
            p.error("--swap_samples needs --swap_captions (the file written by --write_swap_captions)")
        result["swap"], scored = swap_report(args.swap_samples, args.swap_captions, candidates)
        result["swap"]["real_test_crops"] = species_diversity(real, real_records)
        swap_grid(scored).save(args.out / "results_swap.png")
    if args.extra_json is not None and args.extra_json.is_file():
        result["evaluation"] = json.loads(args.extra_json.read_text())
    if (args.data_dir / BIRD_NET_FILE).is_file():  # FD, IS, mask coverage, diversity on the bird network
        result["bird_network"] = bird_scores(args.samples, args.swap_samples, args.data_dir)
    (args.out / "results.json").write_text(json.dumps(result, indent=2))
    results_grid(samples, images, records, real, real_records).save(args.out / "results_grid.png")
    parts = ", ".join(f"{p} {fake[p]['accuracy']:.3f} (chance {fake[p]['chance_level']:.3f}, real "
                      f"{fake[p]['real_test_crops_accuracy']:.3f})" for p in PARTS)
    print(f"colour accuracy on {len(samples)} samples: {parts}; wrote {args.out}/results.json")
    if "bird_network" in result:
        bn = result["bird_network"]
        print(f"bird network: FD {bn['bird_fd']['fd']:.3f} (real floor {bn['bird_fd']['floor']:.3f}), IS "
              f"{bn['bird_is']['mean']:.3f} (real {bn['bird_is']['ceiling']:.3f})"
              + (f", mask coverage per stage {', '.join(f'{v:.3f}' for v in bn['mask_coverage']['stages'])} "
                 f"(uniform {bn['mask_coverage']['uniform']:.3f}, perfect 1)" if "mask_coverage" in bn else "")
              + (f", diversity {bn['bird_diversity']['mean']:.3f} (real, one species "
                 f"{bn['bird_diversity']['real_one_species']:.3f})" if "bird_diversity" in bn else ""))
    if "swap" in result:
        sw, ref = result["swap"], result["swap"]["real_test_crops"]
        for name in ("pixel", f"{COARSE_CELLS}x{COARSE_CELLS}"):
            m = f"mean_abs_{name}_difference"
            print(f"noise effect ({m}): {sw[m + '_same_caption']:.1f} between the noises of one caption vs "
                  f"{sw[m + '_other_caption']:.1f} between captions; real test crops "
                  f"{ref[m + '_same_species']:.1f} within a species vs {ref[m + '_other_species']:.1f} between")
    return result


if __name__ == "__main__":
    main()
