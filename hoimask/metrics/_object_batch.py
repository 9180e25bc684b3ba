"""Object metrics of one evaluator batch (validation and vectorised maths).

Kept apart from :mod:`hoimask.metrics.evaluator` so that file holds only the
accumulation logic. The formulas are those of :mod:`hoimask.metrics.objects`.
"""

from __future__ import annotations

import numpy as np
import torch

from hoimask._checks import ShapeError, ValueRangeError, check_shape
from hoimask.metrics._arrays import to_tensors
from hoimask.metrics._finite import annotated, check_finite_input, check_prediction, sanitise
from hoimask.metrics.nearest import _nearest
from hoimask.metrics.objects import box_corners, transform_points

__all__ = ["object_batch_metrics"]

_FN = "Evaluator.update"


def _metrics(pts, Rp, tp, Rg, tg, sel, scale, add_s_direction, max_elements) -> dict[str, torch.Tensor]:
    """MCE, OME (= ADD) and ADD-S for the samples ``sel`` of the pose tensors."""
    pts = pts.to(Rp.device).double() * scale  # (P, 3) or (n, P, 3)
    a = transform_points(pts, Rp[sel], tp[sel])  # (n, P, 3) predicted pose
    b = transform_points(pts, Rg[sel], tg[sel])  # (n, P, 3) ground-truth pose
    q, ref = (b, a) if add_s_direction == "gt_to_pred" else (a, b)
    return {
        "mce": torch.linalg.vector_norm(box_corners(a) - box_corners(b), dim=-1).mean(-1),
        "ome": torch.linalg.vector_norm(a - b, dim=-1).mean(-1),
        "add_s": _nearest(q, ref, max_elements).mean(-1),
    }


def object_batch_metrics(
    R_p, t_p, R_g, t_g, points, diameter, valid: np.ndarray, *,
    scale: float, add_s_direction: str, add_fraction: float, max_elements: int,
) -> dict[str, torch.Tensor]:  # fmt: skip
    """OCE, MCE, OME, ADD-S (and ADD-0.5D in percent if ``diameter``) of the valid samples.

    Args:
        R_p, t_p, R_g, t_g: ``(B, 3, 3)`` / ``(B, 3)`` poses, in the evaluator's units.
        points: ``(P, 3)``, ``(B, P, 3)`` or a list of ``B`` ``(P_i, 3)`` model points.
        diameter: ``None`` or ``(B,)`` object diameters.
        valid: ``(B,)`` bool, samples that have an object.
        scale: factor to millimetres.
        add_s_direction, add_fraction, max_elements: the evaluator's settings.

    Returns:
        Metric name -> ``(n,)`` float64 values for the ``n`` valid samples, in mm
        (``add_0.5d`` in percent); NaN for a sample whose ground-truth pose is
        not finite (unannotated, docs/conventions.md "Non-finite values").

    Raises:
        ValueRangeError: a non-finite predicted pose, model point or diameter.
    """
    if any(x is None for x in (R_p, t_p, R_g, t_g, points)):
        raise ValueRangeError(
            f"{_FN}(): object metrics need all of pred_obj_R, pred_obj_t, gt_obj_R, gt_obj_t and obj_points"
        )
    B = valid.shape[0]
    _, t = to_tensors(_FN, pred_obj_R=R_p, pred_obj_t=t_p, gt_obj_R=R_g, gt_obj_t=t_g)
    dims = check_shape(t["pred_obj_R"], "B 3 3", name="pred_obj_R", dims={"B": B}, fn=_FN)
    check_shape(t["gt_obj_R"], "B 3 3", name="gt_obj_R", dims=dims, fn=_FN)
    check_shape(t["pred_obj_t"], "B 3", name="pred_obj_t", dims=dims, fn=_FN)
    check_shape(t["gt_obj_t"], "B 3", name="gt_obj_t", dims=dims, fn=_FN)
    check_prediction(t["pred_obj_R"], name="pred_obj_R", fn=_FN)
    check_prediction(t["pred_obj_t"], name="pred_obj_t", fn=_FN)
    diam = None
    if diameter is not None:
        _, d = to_tensors(_FN, obj_diameter=diameter)
        diam = d["obj_diameter"].detach().cpu().double()
        check_shape(diam, "B", name="obj_diameter", dims={"B": B}, fn=_FN)
        check_finite_input(diam[torch.from_numpy(valid)], name="obj_diameter", fn=_FN)
    idx = torch.from_numpy(np.flatnonzero(valid))
    dev = t["pred_obj_R"].device
    idx_d = idx.to(dev)
    gt_ok = annotated(t["gt_obj_R"][idx_d], 2) & annotated(t["gt_obj_t"][idx_d])  # (n,) annotated poses
    eye = torch.eye(3, dtype=torch.float64, device=dev)
    Rp = t["pred_obj_R"].double()[idx_d]
    Rg = torch.where(gt_ok[:, None, None], t["gt_obj_R"].double()[idx_d], eye)
    tp = t["pred_obj_t"].double()[idx_d] * scale
    tg = sanitise(t["gt_obj_t"].double()[idx_d], gt_ok) * scale
    opts = (scale, add_s_direction, max_elements)
    if isinstance(points, (list, tuple)):
        if len(points) != B:
            raise ShapeError(f"{_FN}(): 'obj_points' list has {len(points)} entries, expected {B}")
        parts = []
        for k, i in enumerate(idx.tolist()):
            _, pt = to_tensors(_FN, obj_points=points[i])
            check_shape(pt["obj_points"], "P 3", name=f"obj_points[{i}]", fn=_FN)
            check_finite_input(pt["obj_points"], name=f"obj_points[{i}]", fn=_FN)
            parts.append(_metrics(pt["obj_points"], Rp, tp, Rg, tg, slice(k, k + 1), *opts))
        keys = ("mce", "ome", "add_s")
        out = {key: torch.cat([m[key] for m in parts]) if parts else Rp.new_zeros(0) for key in keys}
    else:
        _, pt = to_tensors(_FN, obj_points=points)
        p = pt["obj_points"]
        if p.dim() == 2:
            check_shape(p, "P 3", name="obj_points", fn=_FN)
        else:
            check_shape(p, "B P 3", name="obj_points", dims={"B": B}, fn=_FN)
            p = p[idx.to(p.device)]
        if p.shape[-2] == 0:
            raise ValueRangeError(f"{_FN}(): argument 'obj_points' needs at least one point, got P=0")
        check_finite_input(p, name="obj_points", fn=_FN)
        out = _metrics(p, Rp, tp, Rg, tg, slice(None), *opts)
    out["oce"] = torch.linalg.vector_norm(tp - tg, dim=-1)
    if diam is not None:
        out["add_0.5d"] = (out["ome"].cpu() < add_fraction * diam[idx] * scale).double() * 100.0
    nan = float("nan")
    return {key: torch.where(gt_ok.to(v.device), v, torch.full_like(v, nan)) for key, v in out.items()}
