"""Object 6D pose errors: OCE, MCE, ADD, ADD-S, OME and ADD-0.5D accuracy.

Poses map model-frame points to the camera frame: ``X_cam = R X + t``, with
``R (B, 3, 3)``, ``t (B, 3)``; ``model_points`` are the object's points in its
model frame, ``(P, 3)`` shared by the batch or ``(B, P, 3)`` per sample.
Functions take torch tensors or NumPy arrays and return ``(B,)`` values in the
input's units and type. Which official code each reproduces:

* :func:`center_error` (OCE) -- HOISDF ``eval_batched_obj_direct``:
  ``|| t_pred - t_gt ||`` (AlignSDF/gSDF report the same).
* :func:`corner_error` (MCE) -- HOISDF ``compute_obj_metrics_dexycb``: the 8
  corners of the axis-aligned box, in the camera frame, of each *posed* model;
  mean distance between corresponding corners.
* :func:`add` -- BOP ``pose_error.add``: mean distance of corresponding points.
* :func:`add_s` -- BOP ``pose_error.adi`` (``direction="gt_to_pred"``: for
  every ground-truth point the nearest predicted point); HOISDF
  ``compute_obj_metrics_*`` use the opposite direction (``"pred_to_gt"``).
* :func:`object_mesh_error` (OME) -- HOISDF ``compute_obj_metrics_ho3d``
  "MME": mean corresponding-vertex distance of the posed meshes (the ADD
  formula, applied to the mesh vertices).
* :func:`add_within` (ADD-0.5D, UniHOPE) -- ADD below ``fraction`` x diameter.

Non-finite values (docs/conventions.md): a NaN or infinite predicted pose
raises ``ValueRangeError``, and so do non-finite model points or diameters
(they cannot be excluded); a sample whose ground-truth pose is not finite is
unannotated and gets NaN.
"""

from __future__ import annotations

import torch

from hoimask._checks import (
    ShapeError,
    ValueRangeError,
    check_choice,
    check_in_range,
    check_positive,
    check_shape,
)
from hoimask.metrics._arrays import ArrayLike, like_input, to_tensors
from hoimask.metrics._finite import annotated, check_finite_input, check_prediction, sanitise
from hoimask.metrics.hand import _mean_distance
from hoimask.metrics.nearest import DEFAULT_MAX_ELEMENTS, _nearest, point_set_diameter

__all__ = [
    "transform_points",
    "box_corners",
    "center_error",
    "corner_error",
    "add",
    "add_s",
    "object_mesh_error",
    "add_within",
]

# Corner k of a box uses max (1) or min (0) along x, y, z: bits of k.
_CORNER_BITS = torch.tensor([[(k >> 2) & 1, (k >> 1) & 1, k & 1] for k in range(8)], dtype=torch.bool)


def transform_points(points: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Pose model points: ``R X + t`` for each sample.

    Args:
        points: model-frame points, shared or per sample (torch).
        R: rotations, model -> camera.
        t: translations.

    Returns:
        Camera-frame points.

    Shape:
        - points: ``(P, 3)`` or ``(B, P, 3)``
        - R: ``(B, 3, 3)``; t: ``(B, 3)``
        - output: ``(B, P, 3)``
    """
    dims = check_shape(R, "B 3 3", name="R")
    check_shape(t, "B 3", name="t", dims=dims)
    if isinstance(points, torch.Tensor) and points.dim() == 2:
        check_shape(points, "P 3", name="points")
        points = points.unsqueeze(0)
    else:
        check_shape(points, "B P 3", name="points", dims=dims)
    return points @ R.transpose(1, 2) + t[:, None, :]  # (B, P, 3)


def box_corners(points: torch.Tensor) -> torch.Tensor:
    """The 8 corners of each point set's axis-aligned bounding box.

    Corner ``k`` takes the max along x if bit 2 of ``k`` is set, y for bit 1,
    z for bit 0 (else the min), so corresponding corners of two boxes match.

    Args:
        points: point sets (torch).

    Returns:
        The box corners.

    Shape:
        - points: ``(B, P, 3)``
        - output: ``(B, 8, 3)``
    """
    check_shape(points, "B P 3", name="points")
    if points.shape[1] == 0:
        raise ShapeError(f"box_corners(): argument 'points' expected at least one point per set, got shape {tuple(points.shape)}")
    lo = points.amin(dim=1)  # (B, 3)
    hi = points.amax(dim=1)  # (B, 3)
    bits = _CORNER_BITS.to(points.device)  # (8, 3)
    return torch.where(bits[None], hi[:, None, :], lo[:, None, :])  # (B, 8, 3)


def _unannotated_to_nan(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``(B,)`` values with NaN for the samples whose ground truth is not annotated."""
    return torch.where(valid, values, torch.full_like(values, float("nan")))


def _pose_inputs(fn: str, R_pred, t_pred, R_gt, t_gt, model_points):
    """Validate pose arguments; return (was_numpy, posed_pred, posed_gt, valid).

    ``valid`` ``(B,)`` marks the samples with a finite ground-truth pose; the
    others are posed with the identity so no NaN enters the computation.
    """
    was_numpy, t = to_tensors(
        fn, R_pred=R_pred, t_pred=t_pred, R_gt=R_gt, t_gt=t_gt, model_points=model_points
    )
    dims = check_shape(t["R_pred"], "B 3 3", name="R_pred", fn=fn)
    check_shape(t["t_pred"], "B 3", name="t_pred", dims=dims, fn=fn)
    check_shape(t["R_gt"], "B 3 3", name="R_gt", dims=dims, fn=fn)
    check_shape(t["t_gt"], "B 3", name="t_gt", dims=dims, fn=fn)
    pts = t["model_points"]
    if pts is not None and pts.dim() == 2:
        check_shape(pts, "P 3", name="model_points", fn=fn)
    else:
        check_shape(pts, "B P 3", name="model_points", dims=dims, fn=fn)
    if pts.shape[-2] == 0:
        raise ValueRangeError(f"{fn}(): argument 'model_points' needs at least one point, got P=0")
    check_prediction(t["R_pred"], name="R_pred", fn=fn)
    check_prediction(t["t_pred"], name="t_pred", fn=fn)
    check_finite_input(pts, name="model_points", fn=fn)
    valid = annotated(t["R_gt"], 2) & annotated(t["t_gt"])  # (B,)
    R_gt = torch.where(valid[:, None, None], t["R_gt"], torch.eye(3, dtype=pts.dtype, device=pts.device))
    posed_pred = transform_points(pts, t["R_pred"], t["t_pred"])  # (B, P, 3)
    posed_gt = transform_points(pts, R_gt, sanitise(t["t_gt"], valid))  # (B, P, 3)
    return was_numpy, posed_pred, posed_gt, valid


def center_error(t_pred: ArrayLike, t_gt: ArrayLike) -> ArrayLike:
    """Object centre error (OCE): ``|| t_pred - t_gt ||``.

    ``t`` is the translation of the model frame's origin in the camera frame
    (for YCB models, whose origin is the model centre, the object centre).

    Args:
        t_pred: predicted translations, finite.
        t_gt: ground-truth translations; a non-finite one is unannotated.

    Returns:
        ``(B,)`` distances in the input's units and type; NaN for an
        unannotated sample.

    Raises:
        ValueRangeError: ``t_pred`` holds a NaN or infinity.

    Shape:
        - t_pred, t_gt: ``(B, 3)``
        - output: ``(B,)``

    Example:
        >>> import torch
        >>> center_error(torch.tensor([[0.0, 0.0, 0.5]]), torch.tensor([[0.0, 0.03, 0.54]]))
        tensor([0.0500])
    """
    was_numpy, t = to_tensors(t_pred=t_pred, t_gt=t_gt)
    dims = check_shape(t["t_pred"], "B 3", name="t_pred")
    check_shape(t["t_gt"], "B 3", name="t_gt", dims=dims)
    check_prediction(t["t_pred"], name="t_pred", fn="center_error")
    valid = annotated(t["t_gt"])  # (B,)
    err = torch.linalg.vector_norm(t["t_pred"] - sanitise(t["t_gt"], valid), dim=-1)
    return like_input(was_numpy, _unannotated_to_nan(err, valid))


def corner_error(R_pred, t_pred, R_gt, t_gt, model_points) -> ArrayLike:
    """Mean corner error (MCE) of the posed models' camera-frame bounding boxes.

    Both posed point sets get their axis-aligned box in the camera frame
    (:func:`box_corners`); the error is the mean distance between the 8 pairs
    of corresponding corners (HOISDF ``compute_obj_metrics_dexycb``). Note
    that the box is recomputed after posing, so it is *not* the rotated
    model-frame box.

    Args:
        R_pred: predicted rotation (model -> camera).
        t_pred: predicted translation.
        R_gt: ground-truth rotation.
        t_gt: ground-truth translation.
        model_points: model-frame points (vertices) of the object.

    Returns:
        ``(B,)`` errors in the input's units and type; NaN for a sample whose
        ground-truth pose is not finite.

    Raises:
        ValueRangeError: a non-finite predicted pose or model point.

    Shape:
        - R_pred, R_gt: ``(B, 3, 3)``; t_pred, t_gt: ``(B, 3)``
        - model_points: ``(P, 3)`` or ``(B, P, 3)``
        - output: ``(B,)``
    """
    was_numpy, a, b, valid = _pose_inputs("corner_error", R_pred, t_pred, R_gt, t_gt, model_points)
    return like_input(was_numpy, _unannotated_to_nan(_mean_distance(box_corners(a), box_corners(b)), valid))


def add(R_pred, t_pred, R_gt, t_gt, model_points) -> ArrayLike:
    """Average distance of corresponding model points (ADD), BOP ``pose_error.add``.

    ``mean_i || (R_pred x_i + t_pred) - (R_gt x_i + t_gt) ||``.

    Args:
        R_pred: predicted rotation (model -> camera).
        t_pred: predicted translation.
        R_gt: ground-truth rotation.
        t_gt: ground-truth translation.
        model_points: model-frame points of the object.

    Returns:
        ``(B,)`` errors in the input's units and type; NaN for a sample whose
        ground-truth pose is not finite.

    Raises:
        ValueRangeError: a non-finite predicted pose or model point.

    Shape:
        - R_pred, R_gt: ``(B, 3, 3)``; t_pred, t_gt: ``(B, 3)``
        - model_points: ``(P, 3)`` or ``(B, P, 3)``
        - output: ``(B,)``
    """
    was_numpy, a, b, valid = _pose_inputs("add", R_pred, t_pred, R_gt, t_gt, model_points)
    return like_input(was_numpy, _unannotated_to_nan(_mean_distance(a, b), valid))


def add_s(
    R_pred,
    t_pred,
    R_gt,
    t_gt,
    model_points,
    *,
    direction: str = "gt_to_pred",
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> ArrayLike:
    """Average closest-point distance (ADD-S), for symmetric objects.

    Args:
        R_pred: predicted rotation, as in :func:`add`.
        t_pred: predicted translation.
        R_gt: ground-truth rotation.
        t_gt: ground-truth translation.
        model_points: model-frame points of the object.
        direction: ``"gt_to_pred"`` (default, BOP ``pose_error.adi``): mean over
            ground-truth points of the distance to the nearest predicted point;
            ``"pred_to_gt"``: mean over predicted points of the distance to the
            nearest ground-truth point (HOISDF ``compute_obj_metrics_*``). The
            two differ only through which posed set is averaged over.
        max_elements: memory bound of the exact chunked nearest-neighbour search.

    Returns:
        ``(B,)`` errors in the input's units and type; NaN for a sample whose
        ground-truth pose is not finite.

    Raises:
        ValueRangeError: a non-finite predicted pose or model point.

    Shape:
        - R_pred, R_gt: ``(B, 3, 3)``; t_pred, t_gt: ``(B, 3)``
        - model_points: ``(P, 3)`` or ``(B, P, 3)``
        - output: ``(B,)``
    """
    check_choice(direction, ("gt_to_pred", "pred_to_gt"), name="direction", fn="add_s")
    check_positive(max_elements, name="max_elements", fn="add_s")
    was_numpy, a, b, valid = _pose_inputs("add_s", R_pred, t_pred, R_gt, t_gt, model_points)
    if direction == "gt_to_pred":
        d = _nearest(b, a, int(max_elements))  # (B, P) for each gt point
    else:
        d = _nearest(a, b, int(max_elements))  # (B, P) for each predicted point
    return like_input(was_numpy, _unannotated_to_nan(d.mean(dim=1), valid))


def object_mesh_error(R_pred, t_pred, R_gt, t_gt, model_points) -> ArrayLike:
    """Object mesh error (OME): mean corresponding-vertex distance of the posed meshes.

    HOISDF reports it on HO3D (``compute_obj_metrics_ho3d``, called MME there).
    The formula is ADD's; pass the object's mesh vertices as ``model_points``.

    Args:
        R_pred: predicted rotation (model -> camera).
        t_pred: predicted translation.
        R_gt: ground-truth rotation.
        t_gt: ground-truth translation.
        model_points: model-frame mesh vertices of the object.

    Returns:
        ``(B,)`` errors in the input's units and type; NaN for a sample whose
        ground-truth pose is not finite.

    Raises:
        ValueRangeError: a non-finite predicted pose or model point.

    Shape:
        - R_pred, R_gt: ``(B, 3, 3)``; t_pred, t_gt: ``(B, 3)``
        - model_points: ``(P, 3)`` or ``(B, P, 3)`` mesh vertices
        - output: ``(B,)``
    """
    was_numpy, a, b, valid = _pose_inputs("object_mesh_error", R_pred, t_pred, R_gt, t_gt, model_points)
    return like_input(was_numpy, _unannotated_to_nan(_mean_distance(a, b), valid))


def add_within(
    R_pred,
    t_pred,
    R_gt,
    t_gt,
    model_points,
    *,
    fraction: float = 0.5,
    diameter: float | ArrayLike | None = None,
) -> ArrayLike:
    """Whether ADD is below ``fraction`` of the object diameter (ADD-0.5D, UniHOPE).

    ``1`` where ``add(...) < fraction * diameter`` (strict, as LINEMOD
    "ADD < 0.1 d"), else ``0``; the mean over samples is the accuracy.

    Args:
        R_pred: predicted rotation, as in :func:`add`.
        t_pred: predicted translation.
        R_gt: ground-truth rotation.
        t_gt: ground-truth translation.
        model_points: model-frame points of the object.
        fraction: the fraction of the diameter (UniHOPE: 0.5), > 0.
        diameter: the object diameter, a number or ``(B,)`` values in the
            points' units; ``None`` computes it from ``model_points`` as the
            largest pairwise distance (BOP ``calc_pts_diameter``).

    Returns:
        ``(B,)`` indicators (0.0 or 1.0) in the points' dtype and array type;
        NaN for a sample whose ground-truth pose is not finite (so that a mean
        over samples cannot count it as a miss).

    Raises:
        ValueRangeError: a non-finite predicted pose, model point or diameter,
            or a diameter <= 0.

    Shape:
        - R_pred, R_gt: ``(B, 3, 3)``; t_pred, t_gt: ``(B, 3)``
        - model_points: ``(P, 3)`` or ``(B, P, 3)``
        - diameter: scalar or ``(B,)``
        - output: ``(B,)``
    """
    check_in_range(fraction, name="fraction", low=0.0, low_inclusive=False, fn="add_within")
    was_numpy, a, b, valid = _pose_inputs("add_within", R_pred, t_pred, R_gt, t_gt, model_points)
    err = _mean_distance(a, b)  # (B,)
    B = err.shape[0]
    if diameter is None:
        _, pts = to_tensors("add_within", model_points=model_points)
        p = pts["model_points"].to(err.dtype)
        diam = point_set_diameter(p if p.dim() == 3 else p.unsqueeze(0))  # (B,) or (1,)
        diam = diam.expand(B) if diam.shape[0] == 1 else diam
    elif isinstance(diameter, (int, float)) and not isinstance(diameter, bool):
        check_in_range(diameter, name="diameter", low=0.0, low_inclusive=False, high=float("inf"),
                       high_inclusive=False, fn="add_within")
        diam = err.new_full((B,), float(diameter))
    else:
        _, d = to_tensors("add_within", diameter=diameter)
        diam = d["diameter"].to(err.device, err.dtype)
        check_shape(diam, "B", name="diameter", dims={"B": B}, fn="add_within")
        check_finite_input(diam, name="diameter", fn="add_within")
        if bool((diam <= 0).any()):
            first = int((diam <= 0).nonzero()[0])
            raise ValueRangeError(
                f"add_within(): argument 'diameter' expected values > 0, got {float(diam[first])!r} at sample {first}"
            )
    hit = (err < fraction * diam).to(err.dtype)
    return like_input(was_numpy, _unannotated_to_nan(hit, valid))
