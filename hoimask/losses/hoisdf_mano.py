"""HOISDF's MANO loss (its ``ManoLoss``): MSE on vertices, joints, rotation matrices and shape, every layer.

HOISDF regresses 16 6D rotations and β with a query decoder and supervises
every decoder layer (DETR-style intermediate outputs). Per layer its
``ManoLoss`` takes

* ``vertices``: MSE of the root-relative mesh (metres) against the mesh of the
  ground-truth parameters;
* ``joints``: MSE of the root-relative joints (metres) against the joints of
  the ground-truth parameters (``mano_joints_gt``);
* ``pose``: MSE of the 16 rotation matrices (the prediction orthonormalised
  by Gram–Schmidt) against the ground truth's;
* ``shape``: MSE of β;

with the weights 1e4, 1e4, 10 and 0.1 (``lambda_verts3d``, ``lambda_joints3d``,
``lambda_manopose``, ``lambda_manoshape``). Here each term is the mean over
the supervised layers of that layer's MSE.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from hoimask._checks import ShapeError, check_shape
from hoimask.geometry import axis_angle_to_matrix, rotation_6d_to_matrix
from hoimask.losses.pose import hand_from_rotation_6d

__all__ = ["hoisdf_mano_loss"]


def hoisdf_mano_loss(
    hand_layer: Any,
    rotation_6d: torch.Tensor,
    shape: torch.Tensor,
    *,
    target_pose: torch.Tensor | None = None,
    target_shape: torch.Tensor | None = None,
    target_joints: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """HOISDF's MANO terms, unweighted, for predictions of any number of layers.

    Terms (each present only when its targets are):

    * ``mano_vertices`` and ``mano_joints`` need ``target_pose`` and
      ``target_shape`` (the targets are the hand layer's output for them,
      without gradient); ``mano_joints`` falls back to ``target_joints``
      (made root-relative) when the parameters are absent;
    * ``mano_pose`` needs ``target_pose``; ``mano_shape`` needs ``target_shape``.

    Samples whose targets hold a NaN/inf do not count in that term (an exact
    0 when none counts).

    Args:
        hand_layer: ``ProceduralHand`` / ``MANOLayer`` (see
            :func:`~hoimask.losses.hand_from_rotation_6d`).
        rotation_6d: ``(..., B, 16, 6)`` raw 6D rotations, global first.
        shape: ``(..., B, S)`` β.
        target_pose: ``(B, 16, 3)`` axis-angle.
        target_shape: ``(B, S)``.
        target_joints: ``(B, 21, 3)`` joints in any frame (only without parameters).

    Returns:
        ``{name: ()}`` for the present terms.

    Shape:
        ``(..., B, 16, 6), (..., B, S)`` -> scalars.

    Example:
        >>> from hoimask.hand import ProceduralHand
        >>> from hoimask.geometry import matrix_to_rotation_6d
        >>> pose, beta = torch.zeros(2, 16, 3), torch.zeros(2, 10)
        >>> d6 = matrix_to_rotation_6d(axis_angle_to_matrix(pose)).expand(3, 2, 16, 6)  # 3 layers, exact
        >>> terms = hoisdf_mano_loss(ProceduralHand(), d6, beta.expand(3, 2, 10), target_pose=pose, target_shape=beta)
        >>> sorted(terms), max(float(v) for v in terms.values()) < 1e-10
        (['mano_joints', 'mano_pose', 'mano_shape', 'mano_vertices'], True)
    """
    fn = "hoisdf_mano_loss"
    dims = check_shape(rotation_6d, "... B 16 6", name="rotation_6d", fn=fn)
    check_shape(shape, "... B S", name="shape", dims=dims, fn=fn)
    if rotation_6d.shape[:-2] != shape.shape[:-1]:
        raise ShapeError(
            f"{fn}(): arguments 'rotation_6d' {tuple(rotation_6d.shape)} and 'shape' {tuple(shape.shape)} "
            "need the same leading dimensions"
        )
    B, S = dims["B"], dims["S"]
    lead = rotation_6d.shape[:-3]  # (...,) layers
    if target_pose is not None:
        check_shape(target_pose, "B 16 3", name="target_pose", dims=dims, fn=fn)
    if target_shape is not None:
        check_shape(target_shape, "B S", name="target_shape", dims=dims, fn=fn)
    if target_joints is not None:
        check_shape(target_joints, "B 21 3", name="target_joints", dims=dims, fn=fn)
    terms: dict[str, torch.Tensor] = {}
    dtype = rotation_6d.dtype

    def masked_mse(pred: torch.Tensor, target: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
        # pred (..., B, *), target (B, *), ok (B,)
        target = torch.where(ok.view(B, *[1] * (target.dim() - 1)), target, torch.zeros_like(target))
        error = F.mse_loss(pred, target.to(dtype).expand_as(pred), reduction="none")
        error = error.flatten(len(lead) + 1).mean(-1)  # (..., B)
        weight = ok.to(dtype).expand_as(error)
        return (error * weight).sum() / weight.sum().clamp(min=1)

    pose_ok = shape_ok = None
    if target_pose is not None:
        pose_ok = torch.isfinite(target_pose).flatten(1).all(1)
        safe_pose = torch.where(pose_ok[:, None, None], target_pose, torch.zeros_like(target_pose)).to(dtype)
        pred_R = rotation_6d_to_matrix(rotation_6d)  # (..., B, 16, 3, 3)
        terms["mano_pose"] = masked_mse(pred_R, axis_angle_to_matrix(safe_pose), pose_ok)
    if target_shape is not None:
        shape_ok = torch.isfinite(target_shape).all(1)
        terms["mano_shape"] = masked_mse(shape, target_shape, shape_ok)
    has_params = pose_ok is not None and shape_ok is not None
    if not has_params and target_joints is None:
        return terms
    flat = hand_from_rotation_6d(hand_layer, rotation_6d.reshape(-1, 16, 6), shape.reshape(-1, S))
    pred_joints = flat.joints.reshape(*lead, B, *flat.joints.shape[1:])
    if has_params:
        ok = pose_ok & shape_ok
        safe_shape = torch.where(shape_ok[:, None], target_shape, torch.zeros_like(target_shape)).to(dtype)
        with torch.no_grad():
            gt = hand_layer(safe_pose, safe_shape, safe_shape.new_zeros(B, 3))
        root = gt.joints[:, :1]
        pred_vertices = flat.vertices.reshape(*lead, B, *flat.vertices.shape[1:])
        terms["mano_vertices"] = masked_mse(pred_vertices, gt.vertices - root, ok)
        terms["mano_joints"] = masked_mse(pred_joints, gt.joints - root, ok)
    else:
        ok = torch.isfinite(target_joints).flatten(1).all(1)
        rel = target_joints - target_joints[:, :1]
        terms["mano_joints"] = masked_mse(pred_joints, torch.where(ok[:, None, None], rel, torch.zeros_like(rel)), ok)
    return terms
