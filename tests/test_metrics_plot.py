"""metrics.png (miscc/watch/display.py): round value ticks, a tick at every evaluated epoch, and each
metric's reference level (FD's real-image floor, IS's ceiling, colour chance, a uniform mask's coverage)
read from its metrics.jsonl entry and drawn as a line. The panels are computed before drawing
(``plot_panels``), so the tests read the ticks and lines as numbers, then check the drawing."""
from __future__ import annotations

import math

import numpy as np
import pytest

from miscc.metrics import METRICS
from miscc.watch.display import PANEL_H, REFERENCE_COLOUR, metrics_plot, plot_panels, y_axis
from miscc.watch.history import reference_series

EPOCHS = [2, 4, 6, 8, 10, 12, 14, 16]


def _lines() -> list[dict]:
    """metrics.jsonl lines as the in-training evaluation writes them (values + each metric's entry)."""
    lines = []
    for i, epoch in enumerate(EPOCHS):
        fd, is_, colour, coverage = 56.3 - 2.5 * i, 2.2 + 0.2 * i, [0.49, 0.606667, 0.133333][i % 3], 0.33 + 0.01 * i
        lines.append({"epoch": epoch, "values": {"bird_fd": fd, "bird_is": is_, "colour_accuracy": colour,
                                                 "crown_colour": 0.3,
                                                 "mask_coverage": coverage, "r_precision": 0.1 * i},
                      "bird_fd": {"fd": fd, "floor": 0.25}, "bird_is": {"mean": is_, "ceiling": 4.15},
                      "colour_accuracy": {"accuracy": colour, "chance": 0.2},
                      "crown_colour": {"accuracy": 0.3, "chance": 0.44, "shuffled_caption_baseline": 0.17},
                      "mask_coverage": {"mean": coverage, "uniform": 0.30 + 0.01 * (i % 2)},
                      "r_precision": {"mean": 0.1 * i}})
    return lines


def _panels(lines: list[dict]):
    names = ["r_precision", "colour_accuracy", "crown_colour", "bird_fd", "bird_is", "mask_coverage"]
    series = {n: [line["values"].get(n) for line in lines] for n in names}
    return plot_panels([line["epoch"] for line in lines], series, {n: METRICS[n].short for n in names},
                       reference_series(lines, names)), series


@pytest.mark.parametrize("values", [(0.606667, 0.133333), (56.3, 0.25), (2.19, 4.15), (0.3, 0.3), (-1.5, 0.02),
                                    (1234.5, 1290.0)])
def test_value_ticks_are_round_steps_that_cover_the_values(values):
    (lo, hi), ticks = y_axis(values)
    assert lo <= min(values) and hi >= max(values) and ticks[0][0] == lo and ticks[-1][0] == hi
    steps = np.diff([v for v, _ in ticks])
    assert 3 <= len(ticks) <= 9 and np.allclose(steps, steps[0])
    mantissa = steps[0] / 10 ** math.floor(math.log10(steps[0]))
    assert any(abs(mantissa - m) < 1e-9 for m in (1, 2, 2.5, 5))
    for value, label in ticks:  # labels name their value exactly, with no more decimals than the step needs
        assert float(label) == value and len(label.split(".")[-1] if "." in label else "") <= 2, label


def test_every_evaluated_epoch_gets_a_tick_and_a_label_when_they_fit():
    panels, _ = _panels(_lines())
    for panel in panels:
        assert panel.x_ticks == [(e, str(e)) for e in EPOCHS]  # not only the first and the last
        assert [e for e, _ in panel.points] == EPOCHS
    colour = next(p for p in panels if p.name == "colour_accuracy")
    assert [label for _, label in colour.y_ticks] == ["0.0", "0.2", "0.4", "0.6", "0.8"]  # not 0.606667, 0.133333


def test_a_long_run_keeps_a_tick_per_evaluation_and_thins_only_the_labels():
    epochs = list(range(10, 610, 10))
    (panel,) = plot_panels(epochs, {"fid": [30 - 0.1 * i for i in range(60)]}, {"fid": "FID"})
    assert [e for e, _ in panel.x_ticks] == epochs
    labelled = [e for e, label in panel.x_ticks if label]
    assert labelled[0] == 10 and labelled[-1] == 600 and 5 < len(labelled) < 60


def test_reference_levels_come_from_each_metrics_entry_and_widen_the_range():
    lines = _lines()
    panels, _ = _panels(lines)
    refs = {p.name: dict(p.references) for p in panels}
    assert refs["bird_fd"] == {"real-image floor": [(e, 0.25) for e in EPOCHS]}
    assert refs["bird_is"] == {"real-image ceiling": [(e, 4.15) for e in EPOCHS]}
    assert refs["colour_accuracy"] == {"chance": [(e, 0.2) for e in EPOCHS]}
    assert refs["crown_colour"] == {"shuffled captions": [(e, 0.17) for e in EPOCHS], "chance": [(e, 0.44) for e in EPOCHS]}
    assert refs["mask_coverage"] == {"uniform mask": [(e, line["mask_coverage"]["uniform"]) for e, line in
                                                      zip(EPOCHS, lines)]}
    assert refs["r_precision"] == {}  # its entry names no reference level
    fd = next(p for p in panels if p.name == "bird_fd")
    assert fd.y_range[0] <= 0.25 < 56.3 <= fd.y_range[1]  # the floor is on the plot, far below the curve
    is_ = next(p for p in panels if p.name == "bird_is")
    assert is_.y_range[1] >= 4.15  # the ceiling above every value is on the plot too
    # An evaluation that lacks the entry (e.g. the metric was skipped) leaves a gap, not a zero.
    del lines[3]["bird_fd"]
    assert reference_series(lines, ["bird_fd"])["bird_fd"]["real-image floor"][3] is None


def _reference_rows(image: np.ndarray, panel: int) -> list[int]:
    """Rows of panel ``panel`` where a long dashed reference line is drawn."""
    band = image[panel * PANEL_H:(panel + 1) * PANEL_H]
    hits = (band == REFERENCE_COLOUR).all(axis=2).sum(axis=1)
    return [int(r) for r in np.flatnonzero(hits > 200)]


def test_the_drawing_has_a_line_at_each_reference_level_and_none_without():
    lines = _lines()
    panels, series = _panels(lines)
    epochs = [line["epoch"] for line in lines]
    titles = {n: n for n in series}
    with_refs = np.asarray(metrics_plot(epochs, series, titles, references=reference_series(lines, list(series))))
    without = np.asarray(metrics_plot(epochs, series, titles))
    order = list(series)
    fd_rows = _reference_rows(with_refs, order.index("bird_fd"))
    is_rows = _reference_rows(with_refs, order.index("bird_is"))
    assert len(fd_rows) == 1 and len(is_rows) == 1
    # The FD floor lies below every FD point (near the panel's bottom), the IS ceiling above every IS point.
    assert fd_rows[0] > PANEL_H * 0.7 and is_rows[0] < PANEL_H * 0.35
    assert _reference_rows(with_refs, order.index("r_precision")) == []
    assert all(_reference_rows(without, i) == [] for i in range(len(order)))
