"""``metrics.jsonl`` (one line per evaluation, in epoch order) and the best epoch by one metric; the
numbers a line keeps per metric, and the direction of "better", come from the metrics registry."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

from miscc.metrics import METRICS
from miscc.run.layout import atomic_write_text


def needing(field: str, names: Sequence[str]) -> list[str]:
    """The metrics of ``names`` that read EvalContext ``field`` (e.g. the Inception network)."""
    return [name for name in names if field in METRICS[name].needs]


def scalar_values(results: dict, names: Sequence[str]) -> dict[str, float]:
    """The one number per metric of ``names`` that is logged, plotted and compared, in that order."""
    values = {}
    for name in names:
        value = METRICS[name].value(results)
        if value is not None:
            values[name] = value
    return values


def reference_series(lines: Sequence[dict], names: Sequence[str]) -> dict[str, dict[str, list[Optional[float]]]]:
    """Per metric of ``names``, each of its reference levels (the registry's ``references``, e.g. FD's
    real-image floor) at every line of ``lines``; None where a line lacks it."""
    out = {}
    for name in names:
        levels = [METRICS[name].reference_levels(line) for line in lines]
        out[name] = {label: [level.get(label) for level in levels] for _, label in METRICS[name].references}
    return out


class MetricsHistory:
    """``metrics.jsonl`` (one line per evaluation, in epoch order) and the best line by one metric."""

    def __init__(self, path: Path, best_metric: str) -> None:
        self.path = path
        self.best_metric = best_metric
        self.lines: list[dict] = []
        # The fingerprint of the evaluation set in use: only lines measured on it compete for the best
        # epoch (values on another set are not comparable). None: every line.
        self.eval_set: Optional[str] = None

    def resume(self, start_epoch: int) -> int:
        """Keep the lines of epochs before ``start_epoch`` (later ones will be evaluated again);
        return how many were dropped. A torn last line (a kill while writing) is dropped too."""
        if not self.path.is_file():
            return 0
        raw = [line for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]
        kept = []
        for text in raw:
            try:
                line = json.loads(text)
            except json.JSONDecodeError:
                continue
            if line.get("epoch", start_epoch) < start_epoch:
                kept.append(line)
        self.lines = kept
        if len(kept) != len(raw):
            self._write()
        return len(raw) - len(kept)

    def append(self, line: dict) -> None:
        self.lines.append(line)
        self._write()

    def _write(self) -> None:
        # The whole file, atomically: a kill leaves the old file or the new one, never half a line.
        atomic_write_text(self.path, "".join(json.dumps(line) + "\n" for line in self.lines))

    def better(self, a: float, b: float) -> bool:
        return METRICS[self.best_metric].better(a, b)

    def measured_on_other_set(self, line: dict) -> bool:
        sha = line.get("protocol", {}).get("eval_set", {}).get("sha256")
        return self.eval_set is not None and sha is not None and sha != self.eval_set

    def best(self) -> Optional[dict]:
        best = None
        for line in self.lines:
            if self.measured_on_other_set(line):
                continue
            value = line.get("values", {}).get(self.best_metric)
            if value is not None and (best is None or self.better(value, best["values"][self.best_metric])):
                best = line
        return best
