"""UniHOPE's evaluation (§4.1–4.2): scenes by grasp status, switcher accuracy, ADD-0.5D per object.

What :class:`~hoimask.metrics.Evaluator` adds with these helpers:

* **Scenes by grasp status.** UniHOPE splits DexYCB into *hand-only* and
  *hand-object* scenes by whether the hand grasps the object — not by whether
  an object is in view (``has_object`` is always true on DexYCB). The groups
  ``not_grasping`` (hand-only) and ``grasping`` (hand-object) follow the
  samples' ground-truth ``grasped`` label; a sample without a label (NaN or
  ``None``) is in neither, and a batch without labels adds to neither.
* **Switcher accuracy** (``switcher_accuracy``, percent): the predicted grasp
  status, ``grasp_probability >= 0.5`` (:data:`SWITCHER_THRESHOLD`, the
  ``argmax`` of UniHOPE's eq. 2 and what :func:`hoimask.nn.gate_object_outputs`
  reports), against the label, over the labelled samples — overall and per
  group. A model without a switcher feeds no probability: the key is absent (not 0).
* **ADD-0.5D per object** (``object_<name>/add_0.5d``, ``object_<name>/num_samples``)
  and its mean over the objects (``add_0.5d_mean_over_objects``, UniHOPE
  Table 3's "average" column as the brief words it). UniHOPE scores the pose of
  the *grasped* object: a sample labelled not grasping is left out of these
  keys; unlabelled samples count, as do samples without a name (under no
  object, so only in the overall ``add_0.5d``). Note that the paper's
  "average" is not the mean of its own per-object columns (26.23, 32.32, 74.29
  average to 44.28, not the printed 43.06), so it is probably a mean over
  samples; the per-sample mean over the same samples is ``grasping/add_0.5d``
  when every sample is labelled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.metrics.report import format_table

__all__ = [
    "GRASP_GROUPS",
    "SWITCHER_THRESHOLD",
    "format_unihope_tables",
    "grasp_labels",
    "per_object_add",
    "switcher_correct",
]

#: Group names of the evaluator's split by ground-truth grasp status: hand-only, hand-object.
GRASP_GROUPS: tuple[str, str] = ("not_grasping", "grasping")
#: A sample is predicted grasping when the switcher's probability is at least this (eq. 2's argmax).
SWITCHER_THRESHOLD: float = 0.5


def grasp_labels(grasped, B: int, *, fn: str) -> np.ndarray:
    """Ground-truth grasp labels as ``(B,)`` float64: 1 grasping, 0 not, NaN unknown.

    Args:
        grasped: ``B`` labels: a bool or 0/1 tensor or array (a batch's
            ``grasped``), a float one with NaN where unknown, or a list of
            bools with ``None`` where unknown.
        B: the batch size.
        fn: the calling function for error messages.

    Raises:
        DTypeError: not a tensor, array or list of bools.
        ShapeError: not ``B`` labels.
        ValueRangeError: a value other than 0, 1 or NaN.
    """
    if isinstance(grasped, (list, tuple)):
        if any(v is not None and not isinstance(v, (bool, np.bool_, int, float)) for v in grasped):
            raise DTypeError(f"{fn}(): argument 'grasped' expected bools (None where unknown), got {grasped!r}")
        values = np.array([np.nan if v is None else float(v) for v in grasped], dtype=np.float64)
    elif isinstance(grasped, torch.Tensor):
        values = grasped.detach().cpu().double().numpy()
    elif isinstance(grasped, np.ndarray):
        if grasped.dtype.kind not in "biuf":
            raise DTypeError(f"{fn}(): argument 'grasped' expected a numeric or bool array, got dtype {grasped.dtype}")
        values = grasped.astype(np.float64)
    else:
        raise DTypeError(f"{fn}(): argument 'grasped' expected a tensor, an array or a list of B labels, got "
                         f"{type(grasped).__name__}")
    if values.shape != (B,):
        raise ShapeError(f"{fn}(): argument 'grasped' expected shape ({B},), got {values.shape}")
    bad = ~(np.isnan(values) | (values == 0) | (values == 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueRangeError(f"{fn}(): argument 'grasped' expected 0, 1 (or NaN where unknown), got {values[i]} "
                              f"at index {i}")
    return values


def switcher_correct(grasp_probability, labels: np.ndarray, *, fn: str,
                     threshold: float = SWITCHER_THRESHOLD) -> np.ndarray:
    """Per sample: 100 where the switcher's grasp status is right, 0 where wrong, NaN where the label is unknown.

    Args:
        grasp_probability: ``(B,)`` the switcher's probabilities in ``[0, 1]``
            (UniHOPE's prediction ``grasp_probability``).
        labels: ``(B,)`` from :func:`grasp_labels`.
        fn: the calling function for error messages.
        threshold: predicted grasping from ``probability >= threshold``.

    Raises:
        DTypeError: not a floating tensor or array.
        ShapeError: not ``(B,)``.
        ValueRangeError: a probability outside ``[0, 1]`` or not finite (a prediction is never excluded).

    Example:
        >>> switcher_correct(torch.tensor([0.9, 0.5, 0.2]), np.array([1.0, 0.0, np.nan]), fn="f")
        array([100.,   0.,  nan])
    """
    p = grasp_probability
    if isinstance(p, np.ndarray):
        p = torch.from_numpy(p)
    if not isinstance(p, torch.Tensor) or not p.is_floating_point():
        raise DTypeError(f"{fn}(): argument 'grasp_probability' expected a floating tensor or array (B,), got "
                         f"{getattr(p, 'dtype', type(p).__name__)}")
    p = p.detach().cpu().double().numpy()
    if p.shape != labels.shape:
        raise ShapeError(f"{fn}(): argument 'grasp_probability' expected shape {labels.shape}, got {p.shape}")
    bad = ~((p >= 0) & (p <= 1))  # NaN fails both
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueRangeError(f"{fn}(): argument 'grasp_probability' expected probabilities in [0, 1], got {p[i]} "
                              f"at index {i}")
    right = ((p >= threshold) == (labels == 1)).astype(np.float64) * 100.0
    return np.where(np.isnan(labels), np.nan, right)


def per_object_add(add: np.ndarray | None, names: np.ndarray, not_grasping: np.ndarray) -> dict[str, float]:
    """ADD-0.5D per object name and its mean over the objects (see the module docstring).

    Args:
        add: ``(S,)`` per-sample ADD-0.5D (100 or 0; NaN where not measured), or ``None``.
        names: ``(S,)`` object names (``""`` or ``None``: unnamed, no row).
        not_grasping: ``(S,)`` bool, samples labelled not grasping (left out).

    Returns:
        ``object_<name>/add_0.5d``, ``object_<name>/num_samples`` per name (sorted)
        and ``add_0.5d_mean_over_objects``; empty when nothing was measured.

    Example:
        >>> per_object_add(np.array([100.0, 0.0, 100.0]), np.array(["a", "b", "b"], dtype=object), np.zeros(3, bool))
        {'object_a/add_0.5d': 100.0, 'object_a/num_samples': 1.0, 'object_b/add_0.5d': 50.0, 'object_b/num_samples': 2.0, 'add_0.5d_mean_over_objects': 75.0}
    """
    if add is None:
        return {}
    use = ~np.isnan(add) & ~not_grasping & np.array([bool(n) for n in names], dtype=bool)
    out: dict[str, float] = {}
    means = []
    for name in sorted({str(n) for n in names[use]}):
        sel = use & (names == name)
        means.append(float(add[sel].mean()))
        out[f"object_{name}/add_0.5d"] = means[-1]
        out[f"object_{name}/num_samples"] = float(sel.sum())
    if means:
        out["add_0.5d_mean_over_objects"] = float(np.mean(means))
    return out


def _cell(results: Mapping[str, float], key: str) -> str:
    v = results.get(key)
    return "-" if v is None else f"{v:.2f}"


def format_unihope_tables(results: Mapping[str, float], f_thresholds_mm: Sequence[float] = (5.0, 15.0)) -> list[str]:
    """UniHOPE's tables of :meth:`Evaluator.compute` results: scenes by grasp status (Table 2) and objects (Table 3).

    Args:
        results: the dictionary of :meth:`Evaluator.compute`.
        f_thresholds_mm: the F-score thresholds used.

    Returns:
        The tables present in ``results`` (none without grasp labels or per-object values); the switcher
        column only when ``switcher_accuracy`` was measured.
    """
    fk = [f"{t:g}" for t in f_thresholds_mm]
    tables = []
    switcher = "switcher_accuracy" in results
    if any(f"{g}/num_samples" in results for g in GRASP_GROUPS):
        keys = ["rr_mje", "rr_jauc", "rr_mme", "rr_vauc", *(f"rr_f{t}" for t in fk), "pa_mje", "pa_jauc", "pa_mme",
                "add_0.5d"] + ["switcher_accuracy"] * switcher
        rows = []
        for prefix, label in (("", "all"), ("not_grasping/", "hand-only"), ("grasping/", "hand-object")):
            count = results.get(f"{prefix}num_samples")
            if count is not None:
                rows.append([label, str(int(count))] + [_cell(results, prefix + k) for k in keys])
        tables.append(format_table(
            "By grasp status (UniHOPE Table 2 layout: hand-only = not grasping, root-relative)",
            ["scene", "N", "J-PE", "J-AUC", "V-PE", "V-AUC", *(f"F@{t}" for t in fk), "PA-J-PE", "PA-J-AUC",
             "PA-V-PE", "ADD-0.5D"] + ["Switcher acc."] * switcher, rows))
    elif switcher:
        tables.append(format_table("Object switcher (grasp status)", ["N", "Switcher acc."],
                                   [[str(int(results["num_samples"])), _cell(results, "switcher_accuracy")]]))
    objects = sorted(k.removeprefix("object_").removesuffix("/add_0.5d") for k in results
                     if k.startswith("object_") and k.endswith("/add_0.5d"))
    if objects:
        rows = [[name, str(int(results[f"object_{name}/num_samples"])), _cell(results, f"object_{name}/add_0.5d")]
                for name in objects]
        rows.append(["mean over objects", "", _cell(results, "add_0.5d_mean_over_objects")])
        tables.append(format_table("ADD-0.5D per object (UniHOPE Table 3 layout; samples not grasping left out)",
                                   ["object", "N", "ADD-0.5D"], rows))
    return tables
