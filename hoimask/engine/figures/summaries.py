"""The figures of a run: loss curves from the training log, the error per occlusion level of an evaluation."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import torch

from hoimask._checks import DTypeError, ValueRangeError
from hoimask.engine.figures.charts import bar_chart, line_chart
from hoimask.engine.figures.grid import label_grid
from hoimask.engine.figures.scheme import BASELINE_COLOURS, INK_COLOUR, PREDICTED_COLOUR

__all__ = ["loss_curves", "error_by_occlusion", "METRIC_LABELS"]

#: Axis titles of the metrics :func:`error_by_occlusion` knows (keys of ``Evaluator.compute``).
METRIC_LABELS: dict[str, str] = {
    "mje": "hand: joint error MJE (mm)",
    "rr_mje": "hand: root-relative joint error (mm)",
    "pa_mje": "hand: Procrustes-aligned joint error (mm)",
    "st_mje": "hand: scale-translation-aligned joint error (mm)",
    "mme": "hand: mesh error MME (mm)",
    "oce": "object: centre error OCE (mm)",
    "mce": "object: corner error MCE (mm)",
    "add_s": "object: ADD-S (mm)",
}
_OCCLUSION = re.compile(r"^occlusion_(\d+)-(\d+)/num_samples$")


def _number(value: object) -> float:
    """A logged value as a float; NaN for what is not a number (``"nan"``, ``"inf"`` strings, missing)."""
    if isinstance(value, bool):
        return math.nan
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)  # "nan" / "inf" as RunLogger writes non-finite values
    except (TypeError, ValueError):
        return math.nan


def loss_curves(records: Sequence[Mapping[str, object]], *, title: str | None = "Training loss",
                size: tuple[int, int] = (720, 380)) -> torch.Tensor:
    """Loss curves from the records of :meth:`hoimask.engine.RunLogger.read_records`.

    One line per loss term (``terms/<name>``) and the total (``loss``, thick
    and black), against the step, on a log y axis. When some terms are
    weighted groups of the others (MaskHOI's ``loss_2d``, ``loss_3d``,
    ``loss_hand``, ``loss_object``: names starting with ``loss_``), the
    total and the groups get one chart and the individual terms a second one
    below it. Non-finite and non-positive values are gaps in their line.

    Args:
        records: ``{"step": int, "loss": float, "terms/<name>": float, ...}`` dicts.
        title: the figure's title.
        size: ``(width, height)`` of each chart without its legend.

    Returns:
        uint8 picture.

    Shape:
        ``-> (H, W, 3)``.

    Raises:
        ValueRangeError: no record has a ``step`` and a ``loss``.

    Example:
        >>> records = [{"step": s, "loss": 1.0 / s, "terms/sdf": 0.5 / s} for s in range(1, 11)]
        >>> loss_curves(records).dtype
        torch.uint8
    """
    fn = "loss_curves"
    if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Sequence):
        raise DTypeError(f"{fn}(): argument 'records' expected a sequence of log records (dicts)")
    rows = [r for r in records if isinstance(r, Mapping) and "step" in r and "loss" in r]
    if not rows:
        raise ValueRangeError(f"{fn}(): argument 'records' holds no record with a 'step' and a 'loss' "
                              f"({len(records)} records)")
    steps = [_number(r["step"]) for r in rows]
    names = sorted({k[len("terms/"):] for r in rows for k in r if isinstance(k, str) and k.startswith("terms/")})

    def curve(key: str) -> tuple[list[float], list[float]]:
        return steps, [_number(r.get(key)) for r in rows]

    groups = [n for n in names if n.startswith("loss_")]
    terms = [n for n in names if not n.startswith("loss_")]
    split = bool(groups and terms)
    charts = []
    first = {"loss (total)": curve("loss"), **{n: curve(f"terms/{n}") for n in (groups if split else names)}}
    label = "total and groups" if split else "total and terms"
    charts.append(line_chart(first, title=label, y_label="loss (log scale)", log_y=True,
                             colours={"loss (total)": INK_COLOUR}, emphasis=["loss (total)"], size=size))
    if split:
        charts.append(line_chart({n: curve(f"terms/{n}") for n in terms}, title="terms", y_label="loss (log scale)",
                                 log_y=True, size=size))
    return label_grid([[c] for c in charts], title=title)


def _occlusion_bins(results: Mapping[str, float]) -> list[tuple[int, int, str, float]]:
    bins = []
    for key, value in results.items():
        m = _OCCLUSION.match(str(key))
        if m:
            lo, hi = int(m[1]), int(m[2])
            bins.append((lo, hi, f"occlusion_{lo}-{hi}", float(value)))
    return sorted(bins)


def error_by_occlusion(results: Mapping[str, float], baselines: Mapping[str, Mapping[str, float]] | None = None,
                       *, metrics: Sequence[str] = ("rr_mje", "oce"), title: str | None = None,
                       size: tuple[int, int] = (520, 340)) -> torch.Tensor:
    """Bar charts of an evaluation's error per hand-occlusion level: the model beside the constant baselines.

    Reads the per-group keys of :meth:`hoimask.metrics.Evaluator.compute`
    (``occlusion_<lo>-<hi>/<metric>`` and ``.../num_samples``). One chart per
    metric in ``metrics`` that the results hold; the model's bars are
    :data:`PREDICTED_COLOUR`, the constants' :data:`BASELINE_COLOURS`.

    Args:
        results: the model's ``Evaluator.compute()``.
        baselines: name -> the ``compute()`` of a constant predictor on the same samples.
        metrics: metric keys to chart, in order (see :data:`METRIC_LABELS`).
        title: the figure's title.
        size: ``(width, height)`` of each chart.

    Returns:
        uint8 picture, the charts side by side with one legend.

    Shape:
        ``-> (H, W, 3)``.

    Raises:
        ValueRangeError: the results have no occlusion groups, or none of ``metrics``.

    Example:
        >>> results = {"occlusion_0-25/num_samples": 3.0, "occlusion_0-25/rr_mje": 20.0,
        ...            "occlusion_25-50/num_samples": 1.0, "occlusion_25-50/rr_mje": 35.0}
        >>> const = {"mean_pose": {"occlusion_0-25/rr_mje": 40.0, "occlusion_25-50/rr_mje": 50.0}}
        >>> error_by_occlusion(results, const).dtype
        torch.uint8
    """
    fn = "error_by_occlusion"
    if not isinstance(results, Mapping):
        raise DTypeError(f"{fn}(): argument 'results' expected a mapping (Evaluator.compute()), "
                         f"got {type(results).__name__}")
    baselines = dict(baselines or {})
    bins = _occlusion_bins(results)
    if not bins:
        raise ValueRangeError(f"{fn}(): argument 'results' has no 'occlusion_<lo>-<hi>/num_samples' entries "
                              "(no sample had ground truth and an occlusion ratio)")
    categories = [f"{lo}-{hi} %\n(n={n:.0f})" for lo, hi, _, n in bins]
    colours = {"model": PREDICTED_COLOUR,
               **{name: BASELINE_COLOURS[i % len(BASELINE_COLOURS)] for i, name in enumerate(baselines)}}
    charts = []
    for metric in metrics:
        if not any(f"{group}/{metric}" in results for _, _, group, _ in bins):
            continue
        series = {"model": [results.get(f"{group}/{metric}", math.nan) for _, _, group, _ in bins]}
        for name, res in baselines.items():
            series[name] = [res.get(f"{group}/{metric}", math.nan) for _, _, group, _ in bins]
        charts.append(bar_chart(categories, series, title=METRIC_LABELS.get(metric, metric),
                                x_label="hand occlusion (share of the hand hidden)", y_label="error (mm)",
                                colours=colours, value_format="{:.0f}", legend=False, size=size))
    if not charts:
        raise ValueRangeError(f"{fn}(): argument 'results' has none of the metrics {tuple(metrics)} per occlusion level")
    legend = [("model", PREDICTED_COLOUR)] + [(f"constant: {name}", colours[name]) for name in baselines]
    return label_grid([charts], title=title, legend=legend)
