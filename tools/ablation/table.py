"""The ablation's table and figures, built from run folders alone (whoever ran them).

Per variant and metric: mean ± std over seeds at the final epoch and at the best epoch (by
EVAL.BEST_METRIC), the real-image references each number is read against, the cost (CPU seconds per
step, parameters), and, for each row, which differences from the row it adds one part to are larger
than the seeds' spread (|difference| > std(a) + std(b): a plain, stated rule, not a significance test).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from miscc.run.layout import atomic_write_json, atomic_write_text, newest_snapshot
from tools.ablation.plan import RUN_RECORD, load_record
from tools.ablation.variants import VARIANTS


@dataclass(frozen=True)
class Column:
    key: str       # in the table
    title: str
    lower_is_better: bool = False
    digits: int = 3
    # Better = closer to this reference (e.g. diversity: more than real birds of one species vary is noise,
    # not diversity); "" = the direction above.
    closer_to: str = ""


COLUMNS = (
    Column("colour_accuracy", "body colour"),
    Column("crown_colour", "crown colour"),
    Column("wing_colour", "wing colour"),
    Column("bird_fd", "FD (bird net)", lower_is_better=True, digits=2),
    Column("bird_is", "IS (bird net)", digits=2),
    Column("r_precision", "R-precision"),
    Column("mask_coverage", "mask coverage"),
    Column("bird_diversity", "noise diversity", digits=2, closer_to="bird_diversity real images of one species"),
)
ABLATION_JSON, ABLATION_MD, CURVES_PNG, GRID_PNG = "ablation.json", "ablation.md", "ablation_curves.png", "ablation_grid.png"


def _jsonl(path: Path) -> list[dict]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def parameters(generator: Path) -> Optional[int]:
    """Trainable-parameter count of a released-format generator file (BN statistics excluded)."""
    import torch
    try:
        state = torch.load(generator, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError):
        return None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    skip = ("running_mean", "running_var", "num_batches_tracked")
    return int(sum(v.numel() for k, v in state.items() if hasattr(v, "numel") and not k.endswith(skip)))


def run_summary(folder: Path) -> Optional[dict]:
    """One finished run: its values at the final and best epochs, references, cost, and curves."""
    record = load_record(folder)
    lines = _jsonl(folder / "metrics.jsonl")
    if record is None or not lines:
        return None
    try:
        best_epoch = json.loads((folder / "best.json").read_text(encoding="utf-8"))["epoch"]
    except (OSError, json.JSONDecodeError, KeyError):
        best_epoch = None
    by_epoch = {line["epoch"]: line for line in lines}
    final = lines[-1]
    best = by_epoch.get(best_epoch, final)
    points = {}
    for name, line in (("final", final), ("best", best)):
        values = dict(line.get("values", {}))
        div = record.get("evaluations", {}).get(name, {}).get("bird_diversity")
        if div is not None:
            values["bird_diversity"] = div["mean"]
        points[name] = {"epoch": line["epoch"], "values": values,
                        "shuffled": {k: line[k]["shuffled_caption_baseline"] for k in ("crown_colour", "wing_colour")
                                     if isinstance(line.get(k), dict)}}
    refs = {}
    if isinstance(final.get("bird_fd"), dict):
        refs["bird_fd floor (real halves)"] = final["bird_fd"]["floor"]
    if isinstance(final.get("bird_is"), dict):
        refs["bird_is ceiling (real test images)"] = final["bird_is"]["ceiling"]
    if isinstance(final.get("mask_coverage"), dict):
        refs["mask_coverage uniform mask"] = final["mask_coverage"]["uniform"]
    for key in ("colour_accuracy", "crown_colour", "wing_colour"):
        if isinstance(final.get(key), dict):
            refs[f"{key} chance"] = final[key]["chance"]
    div = record.get("evaluations", {}).get("final", {}).get("bird_diversity")
    if div is not None:
        refs["bird_diversity real images of one species"] = div["real_one_species"]
    train = record.get("times", {}).get("train", {})
    steps = final.get("step") or 0
    generator = newest_snapshot(folder / "models", "netG")
    return {"variant": record["variant"], "seed": record["seed"], "points": points, "references": refs,
            "steps": steps, "cpu_seconds_per_step": train.get("cpu_seconds", math.nan) / steps if steps else math.nan,
            "train_wall_seconds": train.get("wall_seconds"), "times": record.get("times", {}),
            "parameters_G": parameters(generator) if generator else None,
            "curves": {"epoch": [line["epoch"] for line in lines],
                       **{c.key: [line.get("values", {}).get(c.key) for line in lines] for c in COLUMNS}}}


def _stats(values: Sequence[Optional[float]]) -> dict:
    v = [x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not v:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, "n": len(v),
            "values": v}


def collect(root: Path) -> dict:
    """``ablation.json``'s content from every ``runs/*/ablation_run.json`` under ``root``."""
    summaries = [s for f in sorted((root / "runs").glob(f"*/{RUN_RECORD}")) if (s := run_summary(f.parent))]
    order = [v for v in VARIANTS if any(s["variant"] == v for s in summaries)]
    rows = {}
    for v in order:
        runs = [s for s in summaries if s["variant"] == v]
        row = {"label": VARIANTS[v].label, "paper_is_fid": VARIANTS[v].paper, "seeds": [s["seed"] for s in runs],
               "compare_to": VARIANTS[v].compare_to}
        for point in ("final", "best"):
            row[point] = {c.key: _stats([s["points"][point]["values"].get(c.key) for s in runs]) for c in COLUMNS}
            row[point]["epoch"] = _stats([s["points"][point]["epoch"] for s in runs])
            row[point]["shuffled"] = {k: _stats([s["points"][point]["shuffled"].get(k) for s in runs])
                                      for k in ("crown_colour", "wing_colour")}
        row["cost"] = {"cpu_seconds_per_step": _stats([s["cpu_seconds_per_step"] for s in runs]),
                       "parameters_G": runs[0]["parameters_G"], "steps": runs[0]["steps"]}
        rows[v] = row
    refs = {}
    for s in summaries:
        for k, value in s["references"].items():
            refs.setdefault(k, []).append(value)
    targets = {c.key: float(np.mean(refs[c.closer_to])) for c in COLUMNS if c.closer_to in refs}
    for v, row in rows.items():
        ref = rows.get(row["compare_to"])
        row["versus"] = None if ref is None else {
            point: {c.key: _difference(row[point][c.key], ref[point][c.key], c, targets.get(c.key)) for c in COLUMNS}
            for point in ("final", "best")}
    return {"rows": rows, "references": {k: _stats(v) for k, v in refs.items()},
            "runs": [{k: s[k] for k in ("variant", "seed", "steps", "cpu_seconds_per_step", "times", "curves")}
                     for s in summaries],
            "rule": "a difference is 'beyond spread' when |mean(a) - mean(b)| > std(a) + std(b) over seeds"}


def _difference(a: dict, b: dict, column: Column, target: Optional[float] = None) -> Optional[dict]:
    if a["mean"] is None or b["mean"] is None:
        return None
    diff = a["mean"] - b["mean"]
    judged = a["n"] > 1 and b["n"] > 1
    if target is not None:
        better = abs(a["mean"] - target) < abs(b["mean"] - target)
    else:
        better = (diff < 0) if column.lower_is_better else (diff > 0)
    return {"difference": diff, "beyond_spread": bool(judged and abs(diff) > a["std"] + b["std"]),
            "better": better, "judged": judged}


def _cell(stats: dict, digits: int) -> str:
    if stats["mean"] is None:
        return "-"
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}" if stats["n"] > 1 else f"{stats['mean']:.{digits}f}"


def markdown(table: dict) -> str:
    rows = table["rows"]
    out = []
    for point in ("final", "best"):
        out.append(f"**{point} epoch** (mean ± std over seeds; ▲/▼ = better/worse than the row named in 'vs' "
                   "by more than the seeds' spread; noise diversity is better when closer to real birds of one "
                   "species)\n")
        out.append("| variant | vs | epoch | " + " | ".join(c.title for c in COLUMNS) + " | CPU s/step | params G |")
        out.append("|---" * (len(COLUMNS) + 5) + "|")
        for v, row in rows.items():
            cells = []
            for c in COLUMNS:
                text = _cell(row[point][c.key], c.digits)
                if c.key in row[point]["shuffled"] and row[point]["shuffled"][c.key]["mean"] is not None:
                    text += f" (sh. {row[point]['shuffled'][c.key]['mean']:.2f})"
                d = (row["versus"] or {}).get(point, {}).get(c.key)
                if d and d["beyond_spread"]:
                    text += " ▲" if d["better"] else " ▼"
                cells.append(text)
            cost = row["cost"]
            params = f"{cost['parameters_G'] / 1e6:.3f} M" if cost["parameters_G"] else "-"
            out.append(f"| {row['label']} ({len(row['seeds'])} seeds) | {row['compare_to'] or '-'} | "
                       f"{_cell(row[point]['epoch'], 0)} | " + " | ".join(cells) +
                       f" | {_cell(cost['cpu_seconds_per_step'], 3)} | {params} |")
        out.append("")
    refs = table["references"]
    out.append("References (the same data for every row): " + "; ".join(
        f"{k} {_cell(v, 3)}" for k, v in refs.items()) + ". 'sh.' = the shuffled-caption baseline of that "
        "row's own images.\n")
    return "\n".join(out)


def curves_figure(table: dict, path: Path) -> None:
    """One panel per metric: the mean over seeds per variant, a band over the seeds' range."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    keys = [c for c in COLUMNS if c.key != "bird_diversity"]
    fig, axes = plt.subplots(2, math.ceil(len(keys) / 2), figsize=(4.2 * math.ceil(len(keys) / 2), 7.5))
    for ax, col in zip(axes.flat, keys):
        for v in table["rows"]:
            runs = [r for r in table["runs"] if r["variant"] == v and r["curves"][col.key]]
            if not runs:
                continue
            epochs = runs[0]["curves"]["epoch"]
            series = np.array([[np.nan if x is None else x for x in r["curves"][col.key][:len(epochs)]] for r in runs
                               if len(r["curves"]["epoch"]) >= len(epochs)], dtype=float)
            mean = np.nanmean(series, axis=0)
            line, = ax.plot(epochs, mean, marker="o", ms=3, label=v)
            if len(series) > 1:
                ax.fill_between(epochs, np.nanmin(series, axis=0), np.nanmax(series, axis=0), alpha=0.15,
                                color=line.get_color())
        ref = {"bird_fd": "bird_fd floor (real halves)", "bird_is": "bird_is ceiling (real test images)",
               "mask_coverage": "mask_coverage uniform mask", "colour_accuracy": "colour_accuracy chance"}.get(col.key)
        if ref and table["references"].get(ref, {}).get("mean") is not None:
            ax.axhline(table["references"][ref]["mean"], color="grey", ls="--", lw=1, label=ref.split(" ", 1)[1])
        ax.set_title(col.title + (" (lower is better)" if col.lower_is_better else ""))
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def grid_figure(root: Path, rows: dict, path: Path) -> bool:
    """The same captions and noises drawn by every variant (its first seed's final generator)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image
    found = []
    for v in rows:
        seed = rows[v]["seeds"][0]
        grid = root / "runs" / f"{v}_seed{seed}" / "eval" / "grid" / "grid.png"
        if grid.is_file():
            found.append((rows[v]["label"], np.asarray(Image.open(grid).convert("RGB"))))
    if not found:
        return False
    h, w = found[0][1].shape[:2]
    fig, axes = plt.subplots(len(found), 1, figsize=(w / 90, len(found) * (h / 90 + 0.35)), squeeze=False)
    for ax, (label, img) in zip(axes[:, 0], found):
        ax.imshow(img)
        ax.set_title(label, fontsize=9, loc="left")
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def write_table(root: Path) -> dict:
    table = collect(root)
    atomic_write_json(root / ABLATION_JSON, table)
    atomic_write_text(root / ABLATION_MD, markdown(table))
    if table["rows"]:
        curves_figure(table, root / CURVES_PNG)
        grid_figure(root, table["rows"], root / GRID_PNG)
    return table
