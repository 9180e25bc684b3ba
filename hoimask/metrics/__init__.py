"""Hand and object pose metrics matching the benchmarks' official evaluation code.

Functions take torch tensors or NumPy arrays with ``B`` leading samples and
return per-sample values in the input's units and array type. ``docs/metrics.md``
lists every metric with its formula and the official code it matches
(HO3D/FreiHAND ``eval.py``, DexYCB ``hpe_eval.py``, BOP ``pose_error.py``,
HOISDF ``common/metrics.py``), including where those codes disagree.
:class:`Evaluator` accumulates a dataset and reports the MaskHOI tables.
"""

from hoimask.metrics.auc import PCKAccumulator, PCKResult, pck_auc
from hoimask.metrics.baselines import (
    BASELINE_METRICS,
    ConstantBaselines,
    baseline_ratios,
    format_baseline_table,
)
from hoimask.metrics.dexycb_results import (
    BOP_RESULTS_HEADER,
    write_dexycb_bop_results,
    write_dexycb_hpe_results,
)
from hoimask.metrics.evaluator import Evaluator
from hoimask.metrics.freihand import (
    FREIHAND_ERROR_KINDS,
    FreiHANDErrors,
    FreiHANDEvaluator,
    freihand_errors,
    freihand_metrics,
)
from hoimask.metrics.fscore import f_score
from hoimask.metrics.hand import joint_index, mpjpe, mpvpe, pa_mpjpe, pa_mpvpe, st_align, st_mpjpe
from hoimask.metrics.nearest import nearest_distances, point_set_diameter
from hoimask.metrics.objects import (
    add,
    add_s,
    add_within,
    box_corners,
    center_error,
    corner_error,
    object_mesh_error,
    transform_points,
)
from hoimask.metrics.submission import ho3d_submission_arrays, write_ho3d_submission

__all__ = [
    "BASELINE_METRICS",
    "BOP_RESULTS_HEADER",
    "FREIHAND_ERROR_KINDS",
    "ConstantBaselines",
    "Evaluator",
    "FreiHANDErrors",
    "FreiHANDEvaluator",
    "PCKAccumulator",
    "PCKResult",
    "add",
    "add_s",
    "add_within",
    "baseline_ratios",
    "box_corners",
    "center_error",
    "corner_error",
    "f_score",
    "format_baseline_table",
    "freihand_errors",
    "freihand_metrics",
    "ho3d_submission_arrays",
    "joint_index",
    "mpjpe",
    "mpvpe",
    "nearest_distances",
    "object_mesh_error",
    "pa_mpjpe",
    "pa_mpvpe",
    "pck_auc",
    "point_set_diameter",
    "st_align",
    "st_mpjpe",
    "transform_points",
    "write_dexycb_bop_results",
    "write_dexycb_hpe_results",
    "write_ho3d_submission",
]
