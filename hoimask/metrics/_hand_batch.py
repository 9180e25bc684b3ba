"""Hand metrics of one evaluator batch: per-sample means and per-keypoint errors.

Kept apart from :mod:`hoimask.metrics.evaluator` so that file holds only the
accumulation logic. The formulas are those of :mod:`hoimask.metrics.hand` and
:mod:`hoimask.metrics.fscore`; inputs are already in millimetres (float64).
"""

from __future__ import annotations

import torch

from hoimask.geometry import procrustes_align
from hoimask.metrics.fscore import f_score_from_distances
from hoimask.metrics.hand import st_align
from hoimask.metrics.nearest import _nearest

__all__ = ["hand_batch_metrics"]


def _aligned(p: torch.Tensor, g: torch.Tensor, p_root, g_root, allow_reflection: bool):
    """The absolute, root-relative and Procrustes-aligned (pred, gt) pairs."""
    return {
        "": (p, g),
        "rr_": (p - p_root, g - g_root),
        "pa_": (procrustes_align(p, g, allow_reflection=allow_reflection), g),
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
        ``(values, errors)``: metric name -> ``(B,)`` values (F-scores in
        percent), and AUC name (``jauc``, ``vauc`` with prefixes) -> ``(B, K)``
        per-keypoint errors.

    Shape:
        - pj, gj: ``(B, 21, 3)``; pv, gv: ``(B, V, 3)``
    """
    values: dict[str, torch.Tensor] = {}
    errors: dict[str, torch.Tensor] = {}
    r = slice(root, root + 1)
    for a, (p, g) in _aligned(pj, gj, pj[:, r], gj[:, r], allow_reflection).items():
        err = torch.linalg.vector_norm(p - g, dim=-1)  # (B, 21)
        values[f"{a}mje"] = err.mean(1)
        errors[f"{a}jauc"] = err
    st = st_align(pj, gj, joint_order=joint_order)
    values["st_mje"] = torch.linalg.vector_norm(st - gj, dim=-1).mean(1)
    if pv is None:
        return values, errors
    th = torch.tensor(f_thresholds_mm, dtype=pv.dtype, device=pv.device)
    for a, (p, g) in _aligned(pv, gv, pj[:, r], gj[:, r], allow_reflection).items():
        err = torch.linalg.vector_norm(p - g, dim=-1)  # (B, V)
        values[f"{a}mme"] = err.mean(1)
        errors[f"{a}vauc"] = err
        f = f_score_from_distances(_nearest(p, g, max_elements), _nearest(g, p, max_elements), th)  # (B, T)
        for i, mm in enumerate(f_thresholds_mm):
            values[f"{a}f{mm:g}"] = f[:, i] * 100.0
    return values, errors
