"""The colour scheme every hoimask picture shares.

One meaning, one colour, in every picture the library and the examples draw:

================================  ===============  ====================================================
constant                          RGB              meaning
================================  ===============  ====================================================
:data:`BACKGROUND_COLOUR`         (40, 40, 40)     background pixels of a segmentation (label 0)
:data:`HAND_COLOUR`               (230, 160, 120)  hand pixels (label 1), skin-coloured
:data:`HIDDEN_HAND_COLOUR`        (120, 80, 65)    hand hidden behind the object (amodal mask only)
:data:`OBJECT_COLOUR`             (80, 140, 230)   object pixels (label 2), blue
:data:`MASKED_COLOUR`             (128, 128, 128)  masked (removed) patches; ``draw_mask``'s default fill
:data:`GROUND_TRUTH_COLOUR`       (40, 200, 90)    ground truth: skeletons, boxes (green)
:data:`PREDICTED_COLOUR`          (235, 60, 200)   predictions, and the model's bar in charts (magenta)
:data:`BASELINE_COLOURS`          greys            constant baselines in charts
================================  ===============  ====================================================

Green against magenta stays distinct under the common colour-vision
deficiencies. Figures are drawn on :data:`PAPER_COLOUR` with text in
:data:`INK_COLOUR`; lines of a chart take :data:`SERIES_COLOURS` in turn.
"""

from __future__ import annotations

from collections.abc import Sequence

from hoimask._checks import DTypeError, ValueRangeError

__all__ = [
    "BACKGROUND_COLOUR", "HAND_COLOUR", "HIDDEN_HAND_COLOUR", "OBJECT_COLOUR", "MASKED_COLOUR",
    "GROUND_TRUTH_COLOUR", "PREDICTED_COLOUR", "BASELINE_COLOURS", "SERIES_COLOURS", "PAPER_COLOUR",
    "INK_COLOUR", "GRID_COLOUR", "SEGMENTATION_COLOURS", "SEGMENTATION_LEGEND", "Colour",
]

#: An RGB colour: three ints in [0, 255].
Colour = tuple[int, int, int]

BACKGROUND_COLOUR: Colour = (40, 40, 40)
HAND_COLOUR: Colour = (230, 160, 120)
HIDDEN_HAND_COLOUR: Colour = (120, 80, 65)
OBJECT_COLOUR: Colour = (80, 140, 230)
MASKED_COLOUR: Colour = (128, 128, 128)
GROUND_TRUTH_COLOUR: Colour = (40, 200, 90)
PREDICTED_COLOUR: Colour = (235, 60, 200)
#: Constant baselines (``mean_pose``, ``wrist``, ...), in this order.
BASELINE_COLOURS: tuple[Colour, ...] = ((150, 150, 150), (95, 95, 95), (195, 195, 195), (60, 60, 60))
#: Lines of a chart in turn (Tableau 10); a chart with more lines repeats them dashed.
SERIES_COLOURS: tuple[Colour, ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)
PAPER_COLOUR: Colour = (255, 255, 255)
INK_COLOUR: Colour = (20, 20, 20)
GRID_COLOUR: Colour = (225, 225, 225)

#: Colours of the segmentation labels 0 (background), 1 (hand), 2 (object).
SEGMENTATION_COLOURS: tuple[Colour, Colour, Colour] = (BACKGROUND_COLOUR, HAND_COLOUR, OBJECT_COLOUR)
#: Legend entries of a segmentation picture (see :func:`hoimask.engine.figures.label_grid`).
SEGMENTATION_LEGEND: tuple[tuple[str, Colour], ...] = (
    ("background", BACKGROUND_COLOUR), ("hand", HAND_COLOUR), ("object", OBJECT_COLOUR),
)


def check_colour(colour: object, *, name: str, fn: str) -> Colour:
    """``colour`` as an RGB tuple of ints, or a typed error naming the argument."""
    if isinstance(colour, (str, bytes)) or not isinstance(colour, Sequence):
        raise DTypeError(f"{fn}(): argument '{name}' expected an RGB triple of ints in [0, 255], got {colour!r}")
    values = tuple(colour)
    if len(values) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise DTypeError(f"{fn}(): argument '{name}' expected an RGB triple of ints in [0, 255], got {colour!r}")
    if not all(0 <= v <= 255 for v in values):
        raise ValueRangeError(f"{fn}(): argument '{name}' expected RGB values in [0, 255], got {colour!r}")
    return values  # type: ignore[return-value]
