"""Pictures that explain themselves: one colour scheme, labelled grids, skeletons, boxes and charts.

Everything is drawn with Pillow (a dependency of hoimask) and torch; no
plotting library. A *picture* is a ``(H, W, 3)`` uint8 RGB tensor on the CPU.

* :mod:`~hoimask.engine.figures.scheme` — the shared colours: background /
  hand / object / masked, ground truth vs prediction, baselines.
* :func:`label_grid` — pictures in a grid with row titles, column titles, a
  title and a legend; :func:`save_figure` writes a PNG atomically.
* :func:`draw_skeleton`, :func:`draw_box`, :func:`points_box`,
  :func:`colour_segmentation`, :func:`picture_from_image`, :func:`enlarge`.
* :func:`line_chart` (log-y loss curves), :func:`bar_chart`;
  :func:`loss_curves` from a run's log and :func:`error_by_occlusion` from an
  evaluation's results.

Example:
    >>> import torch
    >>> from hoimask.engine.figures import SEGMENTATION_LEGEND, colour_segmentation, label_grid
    >>> seg = colour_segmentation(torch.randint(0, 3, (2, 32, 32)))
    >>> fig = label_grid([[seg[0], seg[1]]], row_titles=["segmentation"], column_titles=["a", "b"],
    ...                  legend=SEGMENTATION_LEGEND)
    >>> fig.shape[-1], fig.dtype
    (3, torch.uint8)
"""

from hoimask.engine.figures.charts import bar_chart, line_chart
from hoimask.engine.figures.grid import (
    LEGEND_KINDS,
    LegendEntry,
    label_grid,
    legend_strip,
    save_figure,
)
from hoimask.engine.figures.overlays import (
    colour_segmentation,
    draw_box,
    draw_skeleton,
    enlarge,
    picture_from_image,
    points_box,
)
from hoimask.engine.figures.scheme import (
    BACKGROUND_COLOUR,
    BASELINE_COLOURS,
    GRID_COLOUR,
    GROUND_TRUTH_COLOUR,
    HAND_COLOUR,
    HIDDEN_HAND_COLOUR,
    INK_COLOUR,
    MASKED_COLOUR,
    OBJECT_COLOUR,
    PAPER_COLOUR,
    PREDICTED_COLOUR,
    SEGMENTATION_COLOURS,
    SEGMENTATION_LEGEND,
    SERIES_COLOURS,
    Colour,
)
from hoimask.engine.figures.summaries import METRIC_LABELS, error_by_occlusion, loss_curves

__all__ = [
    "BACKGROUND_COLOUR", "HAND_COLOUR", "HIDDEN_HAND_COLOUR", "OBJECT_COLOUR", "MASKED_COLOUR",
    "GROUND_TRUTH_COLOUR", "PREDICTED_COLOUR", "BASELINE_COLOURS", "SERIES_COLOURS", "PAPER_COLOUR",
    "INK_COLOUR", "GRID_COLOUR", "SEGMENTATION_COLOURS", "SEGMENTATION_LEGEND", "Colour",
    "LEGEND_KINDS", "LegendEntry", "label_grid", "legend_strip", "save_figure",
    "colour_segmentation", "draw_box", "draw_skeleton", "enlarge", "picture_from_image", "points_box",
    "bar_chart", "line_chart",
    "METRIC_LABELS", "error_by_occlusion", "loss_curves",
]
