"""Score the synthetic-bird demo: do generated birds have the colours their captions name?

    # 1. captions that differ in one colour word (the body colour), for main.py --captions
    python -m tools.demo_report --data_dir data/birds_demo --write_swap_captions output/demo/swap.txt
    python main.py --cfg cfg/demo.yml --sample --captions output/demo/swap.txt --per_caption 4 \
        --out_dir output/demo/samples/swap
    # 2. IS.py's scores (no Inception) of the folders they fit: one caption per test image, the swap captions
    python IS.py --image_dir output/demo/samples/one_per_image --no_inception --bird_net data/birds_demo \
        --mask_coverage data/birds_demo --colour_accuracy data/birds_demo --out output/demo/results/metrics.json
    python IS.py --image_dir output/demo/samples/swap --no_inception --bird_net data/birds_demo \
        --bird_diversity --out output/demo/results/metrics_swap.json
    # 3. the report
    python -m tools.demo_report --samples output/demo/samples/every_caption --data_dir data/birds_demo \
        --swap_samples output/demo/samples/swap --swap_captions output/demo/swap.txt --out output/demo/results \
        --metrics_json output/demo/results/metrics.json output/demo/results/metrics_swap.json

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
from typing import Any, Callable, Optional, Sequence

import numpy as np
from PIL import Image

from miscc.errors import SSAGANError
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
    per_caption = defaultdict(list)
    for s, p in zip(samples, pred):
        per_caption[s.text].append(p)
    expected = [r["body_colour"] for r in records]
    report = {"n_samples": len(samples), "body_accuracy": accuracy(pred, expected),
              "chance_level": chance_level(expected), "predicted_body_colours": dict(per_caption)}
    return report, [(s, img, p, r["body_colour"]) for s, img, p, r in zip(samples, images, pred, records)]


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


# --- the headline: each score beside what it is read against ----------------------------------------
PART_NAMES = {"body": "body (breast/belly)", "head": "crown", "wing": "wings"}
# The IS.py scores the headline leads with, and the options that compute them.
IS_PY_SCORES = {"bird_fd": "--bird_net DATA_DIR", "bird_is": "--bird_net DATA_DIR", "r_precision": "--r_precision",
                "mask_coverage": "--mask_coverage DATA_DIR (samples with --masks all)",
                "bird_diversity": "--bird_net DATA_DIR --bird_diversity (several samples per caption)",
                "colour_accuracy": "--colour_accuracy DATA_DIR", "crown_colour": "--colour_accuracy DATA_DIR",
                "wing_colour": "--colour_accuracy DATA_DIR"}


def read_evaluations(paths: Sequence[Path]) -> list[tuple[str, dict]]:
    """(sample folder, IS.py result) of each metrics JSON, in the order given."""
    out = []
    for path in paths:
        if not path.is_file():
            raise SSAGANError(f"{path} not found: write it with IS.py --image_dir FOLDER --out {path}")
        result = json.loads(path.read_text(encoding="utf-8"))
        out.append((str(result.get("protocol", {}).get("image_dir", path)), result))
    return out


def _measured(entry: dict, key: str) -> dict:
    """The headline fields of one IS.py entry."""
    if key == "bird_fd":
        return {"value": entry["fd"], "floor": entry["floor"], "images": entry["images"],
                "real_images": entry["real_images"]}
    if key == "bird_is":
        return {"value": entry["mean"], "std": entry["std"], "ceiling": entry["ceiling"], "classes": entry["classes"]}
    if key == "r_precision":  # R@1 against 1 true and n mismatched captions: a blind guess ranks first 1/(n+1)
        return {"value": entry["mean"], "std": entry["std"], "chance": 1.0 / (1 + entry["mismatched"]),
                "mismatched": entry["mismatched"], "images": entry["images"]}
    if key == "mask_coverage":
        return {"stages": entry["stages"], "uniform": entry["uniform"], "perfect": entry["perfect"],
                "images": entry["images"]}
    if key == "bird_diversity":
        return {"value": entry["mean"], "real_one_species": entry["real_one_species"], "captions": entry["captions"]}
    if key in ("crown_colour", "wing_colour"):
        return {"value": entry["accuracy"], "chance": entry["chance"],
                "shuffled_captions": entry["shuffled_caption_baseline"], "images": entry["images"]}
    return {"value": entry["accuracy"], "chance": entry["chance"], "images": entry["images"]}


def headline(parts: dict, swap: Optional[dict], evaluations: Sequence[tuple[str, dict]]) -> dict[str, Any]:
    """The scores that mean something, each with its reference: the colour of every scored part (chance,
    shuffled captions, real crops), the swap captions' body colour, and the IS.py scores in
    ``IS_PY_SCORES``, each from the first of ``evaluations`` that has it (``samples``: its folder)."""
    out: dict[str, Any] = {"colour": {part: {
        "accuracy": parts[part]["accuracy"], "chance": parts[part]["chance_level"],
        "shuffled_captions": parts[part]["shuffled_caption_baseline"],
        "real_test_crops": parts[part]["real_test_crops_accuracy"]} for part in PARTS}}
    if swap is not None:
        out["swap_body_colour"] = {"accuracy": swap["body_accuracy"], "chance": swap["chance_level"],
                                   "samples": swap["n_samples"], "captions": len(swap["predicted_body_colours"])}
    missing = {}
    for key, how in IS_PY_SCORES.items():
        found = next(((folder, r[key]) for folder, r in evaluations if isinstance(r.get(key), dict)), None)
        if found is None:
            missing[key] = f"IS.py {how}, then --metrics_json"
        else:
            out[key] = {**_measured(found[1], key), "samples": found[0]}
    out["not_measured"] = missing
    return out


def _colour_line(e: dict, h: dict) -> str:
    parts = [f"body {e['value']:.3f} (chance {e['chance']:.3f})"]
    parts += [f"{part} {h[key]['value']:.3f} (shuffled captions {h[key]['shuffled_captions']:.3f})"
              for key, part in (("crown_colour", "crown"), ("wing_colour", "wings")) if key in h]
    return f"colour as training measures it: {', '.join(parts)} - {e['images']} samples of {e['samples']}"


# The headline's score lines in order: (its key in the headline, its line from the entry and the headline).
HEADLINE_SCORES: tuple[tuple[str, Callable[[dict, dict], str]], ...] = (
    ("colour_accuracy", _colour_line),
    ("bird_fd", lambda e, h: f"FD on the bird network: {e['value']:.3f} (real-image floor {e['floor']:.3f}; lower is "
                             f"better) - {e['images']} samples of {e['samples']} vs the {e['real_images']} real test images"),
    ("bird_is", lambda e, h: f"IS on the bird network: {e['value']:.3f} ± {e['std']:.3f} (real-image ceiling "
                             f"{e['ceiling']:.3f}; {e['classes']} species) - {e['samples']}"),
    ("r_precision", lambda e, h: f"R-precision (demo DAMSM): {e['value']:.3f} ± {e['std']:.3f} (chance {e['chance']:.3f}: "
                                 f"1 true vs {e['mismatched']} mismatched captions) - {e['samples']}"),
    ("mask_coverage", lambda e, h: "mask coverage per stage, first to last: " + " ".join(f"{v:.3f}" for v in e["stages"])
                                   + f" (uniform mask {e['uniform']:.3f}, perfect {e['perfect']:g}) - {e['samples']}"),
    ("bird_diversity", lambda e, h: f"noise diversity on the bird network: {e['value']:.3f} (real images of one species "
                                    f"{e['real_one_species']:.3f}) over {e['captions']} captions - {e['samples']}"),
)


def headline_lines(h: dict, n_samples: int) -> list[str]:
    """The headline as the quickstart prints it."""
    lines = [f"{f'colour the caption names ({n_samples} samples)':<44}{'generated':>10}{'chance':>8}"
             f"{'shuffled captions':>19}{'real crops':>12}"]
    for part in PARTS:
        c = h["colour"][part]
        lines.append(f"  {PART_NAMES[part]:<42}{c['accuracy']:>10.3f}{c['chance']:>8.3f}"
                     f"{c['shuffled_captions']:>19.3f}{c['real_test_crops']:>12.3f}")
    if "swap_body_colour" in h:
        w = h["swap_body_colour"]
        lines.append(f"body colour of {w['captions']} captions differing in one colour word ({w['samples']} samples): "
                     f"{w['accuracy']:.3f} (chance {w['chance']:.3f})")
    lines += [line(h[key], h) for key, line in HEADLINE_SCORES if key in h]
    lines += [f"not measured: {key} ({how})" for key, how in h["not_measured"].items()]
    return lines


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
    p.add_argument("--metrics_json", "--extra_json", type=Path, nargs="+", default=[],
                   help="IS.py results (metrics.json) of the sample folders, in order of preference: each IS.py "
                        "score of the headline is taken from the first that has it")
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
    evaluations = read_evaluations(args.metrics_json)  # before the slow part: a missing file is a typo
    swap, scored = None, None
    if args.swap_samples is not None:
        if args.swap_captions is None:
            p.error("--swap_samples needs --swap_captions (the file written by --write_swap_captions)")
        swap, scored = swap_report(args.swap_samples, args.swap_captions, candidates)
    result: dict[str, Any] = {
        "headline": headline(fake, swap, evaluations),
        "n_samples": len(samples),
        # body-colour summary under the keys earlier reports used
        "colour_accuracy": fake["body"]["accuracy"], "chance_level": fake["body"]["chance_level"],
        "real_test_crops_accuracy": fake["body"]["real_test_crops_accuracy"],
        "per_colour_accuracy": fake["body"]["per_colour_accuracy"],
        "parts": fake,
        **({"swap": swap} if swap is not None else {}),
        **({"evaluation": {folder: r for folder, r in evaluations}} if evaluations else {}),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2))
    results_grid(samples, images, records, real, real_records).save(args.out / "results_grid.png")
    if scored is not None:
        swap_grid(scored).save(args.out / "results_swap.png")
    print(f"\nThe demo's scores, each beside what it is read against ({args.out / 'results.json'}: headline):")
    print("\n".join(headline_lines(result["headline"], len(samples))))
    return result


if __name__ == "__main__":
    main()
