"""Hand metrics of one evaluator batch: per-sample means and per-keypoint errors.

Kept apart from :mod:`hoimask.metrics.evaluator` so that file holds only the
accumulation logic. The formulas are those of :mod:`hoimask.metrics.hand` and
:mod:`hoimask.metrics.fscore`; inputs are already in millimetres (float64).
"""

from __future__ import annotations

import torch

from hoimask.metrics._finite import annotated, masked_mean, masked_procrustes_align, sanitise
from hoimask.metrics.fscore import f_score_from_distances
from hoimask.metrics.hand import joint_index, st_align
from hoimask.metrics.nearest import _nearest

__all__ = ["hand_batch_metrics"]


def _aligned(p: torch.Tensor, g: torch.Tensor, valid: torch.Tensor, p_root, g_root, root_ok,
             allow_reflection: bool):
    """The absolute, root-relative and Procrustes-aligned (pred, gt, valid) triples.

    ``g`` is already sanitised (zeros where not annotated); ``valid`` ``(B, N)``
    marks the annotated points, ``root_ok`` ``(B,)`` the samples whose root is.
    """
    return {
        "": (p, g, valid),
        "rr_": (p - p_root, g - g_root, valid & root_ok[:, None]),
        "pa_": (masked_procrustes_align(p, g, valid, allow_reflection=allow_reflection), g, valid),
    }


def hand_batch_metrics(
    pj: torch.Tensor,
    gj: torch.Tensor,
    pv: torch.Tensor | None,
    gv: torch.Tensor | None,
    *,
    root: int,
    joint_order: str,
    allow_reflection: bool,
    f_thresholds_mm: tuple[float, ...],
    max_elements: int,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Per-sample hand metrics and the per-keypoint errors for the AUCs.

    Args:
        pj, gj: predicted / ground-truth joints in mm.
        pv, gv: predicted / ground-truth vertices in mm, or ``None``.
        root: index of the root joint (for ``rr_*``).
        joint_order: order of the joints (for the ST bone).
        allow_reflection: Procrustes convention of ``pa_*``.
        f_thresholds_mm: F-score thresholds.
        max_elements: nearest-neighbour memory bound.

    Returns:
        ``(values, errors, excluded)``: metric name -> ``(B,)`` values (F-scores
        in percent; NaN for a sample with nothing to measure), AUC name
        (``jauc``, ``vauc`` with prefixes) -> ``(B, K)`` per-keypoint errors
        (NaN where the ground truth is not annotated), and ``joints`` /
        ``vertices`` -> ``(B,)`` int64 numbers of non-finite ground-truth
        joints / vertices (docs/conventions.md, "Non-finite values").

    Shape:
        - pj, gj: ``(B, 21, 3)``; pv, gv: ``(B, V, 3)``
    """
    values: dict[str, torch.Tensor] = {}
    errors: dict[str, torch.Tensor] = {}
    nan = float("nan")
    vj = annotated(gj)  # (B, 21) annotated ground-truth joints
    gj = sanitise(gj, vj)
    excluded = {"joints": (~vj).sum(dim=1)}
    r = slice(root, root + 1)
    root_ok = vj[:, root]  # (B,)
    for a, (p, g, ok) in _aligned(pj, gj, vj, pj[:, r], gj[:, r], root_ok, allow_reflection).items():
        err = torch.linalg.vector_norm(p - g, dim=-1)  # (B, 21)
        values[f"{a}mje"] = masked_mean(err, ok)
        errors[f"{a}jauc"] = torch.where(ok, err, torch.full_like(err, nan))
    st = st_align(pj, gj, joint_order=joint_order)
    w, m = joint_index("wrist", joint_order), joint_index("middle_mcp", joint_order)
    st_ok = vj & vj[:, w : w + 1] & vj[:, m : m + 1]  # ST alignment needs the wrist -> middle-MCP bone
    values["st_mje"] = masked_mean(torch.linalg.vector_norm(st - gj, dim=-1), st_ok)
    if pv is None:
        return values, errors, excluded
    vv = annotated(gv)  # (B, V)
    gv = sanitise(gv, vv)
    excluded["vertices"] = (~vv).sum(dim=1)
    th = torch.tensor(f_thresholds_mm, dtype=pv.dtype, device=pv.device)
    for a, (p, g, ok) in _aligned(pv, gv, vv, pj[:, r], gj[:, r], root_ok, allow_reflection).items():
        err = torch.linalg.vector_norm(p - g, dim=-1)  # (B, V)
        values[f"{a}mme"] = masked_mean(err, ok)
        errors[f"{a}vauc"] = torch.where(ok, err, torch.full_like(err, nan))
        d_pred = _nearest(p, g, max_elements, ok)  # (B, V) to the annotated gt vertices
        f = f_score_from_distances(d_pred, _nearest(g, p, max_elements), th, ok)  # (B, T)
        for i, mm in enumerate(f_thresholds_mm):
            values[f"{a}f{mm:g}"] = f[:, i] * 100.0
    return values, errors, excluded
