"""Parameter losses (MaskHOI L_h and L_o): MANO parameters, hand joints/vertices, object pose.

Rotations are predicted in the 6D representation (first two columns of R);
predictions are orthonormalised by Gram–Schmidt before they are compared, so
the losses measure rotations, not the unconstrained raw outputs.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from hoimask._checks import check_shape
from hoimask.geometry import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_rotation_6d,
    rotation_6d_to_matrix,
)
from hoimask.losses._reduce import finite_rows, masked_mean, zero_unknown

__all__ = [
    "mano_parameter_loss",
    "global_rotation_loss",
    "hand_from_rotation_6d",
    "hand_mesh_loss",
    "HandMeshLoss",
    "object_pose_loss",
]


def _normalise_6d(d6: torch.Tensor) -> torch.Tensor:
    return matrix_to_rotation_6d(rotation_6d_to_matrix(d6))


def mano_parameter_loss(
    pred_rotation_6d: torch.Tensor,
    pred_shape: torch.Tensor,
    target_pose: torch.Tensor,
    target_shape: torch.Tensor,
) -> torch.Tensor:
    """MSE on the MANO rotations (as 6D) plus MSE on the shape coefficients.

    Args:
        pred_rotation_6d: ``(B, 16, 6)`` predicted rotations (raw 6D).
        pred_shape: ``(B, S)`` predicted β.
        target_pose: ``(B, 16, 3)`` ground-truth axis-angle rotations.
        target_shape: ``(B, S)`` ground-truth β.

    Returns:
        Scalar ``mse(6D) + mse(β)`` over the samples whose targets are finite
        (unannotated samples carry NaN and do not count; 0 when none does).

    Shape:
        ``(B, 16, 6), (B, S), (B, 16, 3), (B, S)`` -> ``()``.
    """
    dims = check_shape(pred_rotation_6d, "B R 6", name="pred_rotation_6d")
    check_shape(target_pose, "B R 3", name="target_pose", dims=dims)
    check_shape(pred_shape, "B S", name="pred_shape", dims=dims)
    check_shape(target_shape, "B S", name="target_shape", dims=dims)
    known = finite_rows(target_pose) & finite_rows(target_shape)  # (B,)
    target_pose, target_shape = zero_unknown(target_pose, known), zero_unknown(target_shape, known)
    target_6d = matrix_to_rotation_6d(axis_angle_to_matrix(target_pose.to(pred_rotation_6d.dtype)))
    rot = (_normalise_6d(pred_rotation_6d) - target_6d).pow(2).flatten(1).mean(dim=1)  # (B,)
    beta = (pred_shape - target_shape.to(pred_shape.dtype)).pow(2).mean(dim=1)
    return masked_mean(rot, known) + masked_mean(beta, known)


def global_rotation_loss(pred_rotation_6d: torch.Tensor, target_axis_angle: torch.Tensor) -> torch.Tensor:
    """L1 between the orthonormalised predicted 6D rotation and the target's 6D (the hand's global rotation).

    Inside :func:`mano_parameter_loss` the global rotation is 6 of 16 × 6 + 10
    numbers and the shape coefficients dominate, so a pose model that learns
    the fingers but not the hand's orientation still lowers that loss. This
    term supervises the orientation on its own (PoseRegressionModel weighs it 1).

    Args:
        pred_rotation_6d: ``(B, 6)`` predicted rotation (raw 6D).
        target_axis_angle: ``(B, 3)`` ground-truth rotation, axis-angle.

    Returns:
        Scalar ``mean |6D(pred) - 6D(target)|`` over the samples with a finite target.

    Shape:
        ``(B, 6), (B, 3) -> ()``.

    Example:
        >>> aa = torch.tensor([[0.0, 0.0, 1.0]])
        >>> float(global_rotation_loss(matrix_to_rotation_6d(axis_angle_to_matrix(aa)), aa)) < 1e-6
        True
    """
    dims = check_shape(pred_rotation_6d, "B 6", name="pred_rotation_6d")
    check_shape(target_axis_angle, "B 3", name="target_axis_angle", dims=dims)
    known = finite_rows(target_axis_angle)
    target_axis_angle = zero_unknown(target_axis_angle, known)
    target = matrix_to_rotation_6d(axis_angle_to_matrix(target_axis_angle.to(pred_rotation_6d.dtype)))
    return masked_mean((_normalise_6d(pred_rotation_6d) - target).abs().mean(dim=1), known)


class HandMesh(NamedTuple):
    """Joints and vertices of a hand layer, wrist-relative."""

    joints: torch.Tensor  #: (B, 21, 3)
    vertices: torch.Tensor  #: (B, V, 3)


def hand_from_rotation_6d(hand_layer: Any, rotation_6d: torch.Tensor, shape: torch.Tensor) -> HandMesh:
    """Run a hand layer (``ProceduralHand`` / ``MANOLayer``) on 6D rotations; wrist-relative output.

    Args:
        hand_layer: callable ``(pose (B,16,3) axis-angle, shape (B,S), trans (B,3))``
            returning an object with ``joints (B, 21, 3)`` (canonical order) and ``vertices (B, V, 3)``.
        rotation_6d: ``(B, 16, 6)``.
        shape: ``(B, S)``.

    Returns:
        :class:`HandMesh` with the wrist (joint 0) moved to the origin.

    Shape:
        ``(B, 16, 6), (B, S)`` -> joints ``(B, 21, 3)``, vertices ``(B, V, 3)``.
    """
    dims = check_shape(rotation_6d, "B 16 6", name="rotation_6d")
    check_shape(shape, "B S", name="shape", dims=dims)
    pose = matrix_to_axis_angle(rotation_6d_to_matrix(rotation_6d))  # (B, 16, 3)
    out = hand_layer(pose, shape, shape.new_zeros(dims["B"], 3))
    root = out.joints[:, :1]  # (B, 1, 3)
    return HandMesh(out.joints - root, out.vertices - root)


def hand_mesh_loss(
    pred: HandMesh,
    *,
    target_joints: torch.Tensor | None = None,
    target_vertices: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Wrist-relative L1 losses on joints and vertices (metres).

    Args:
        pred: wrist-relative prediction from :func:`hand_from_rotation_6d`.
        target_joints: ``(B, 21, 3)`` ground-truth joints (any translation; made
            wrist-relative here), or None to skip. Joints that are not finite,
            and every joint of a sample whose wrist is not, do not count.
        target_vertices: ``(B, V, 3)`` ground-truth vertices, **already** relative
            to the ground-truth wrist, or None to skip. Samples with a
            non-finite vertex do not count.

    Returns:
        ``{"hand_joints": (), "hand_vertices": ()}`` for the targets given.

    Shape:
        joints ``(B, 21, 3)``, vertices ``(B, V, 3)`` -> scalars.
    """
    terms: dict[str, torch.Tensor] = {}
    if target_joints is not None:
        check_shape(target_joints, "B J 3", name="target_joints", dims={"B": pred.joints.shape[0], "J": pred.joints.shape[1]})
        known = torch.isfinite(target_joints).all(dim=-1)  # (B, J)
        known = known & known[:, :1]
        target_joints = zero_unknown(target_joints, known)
        rel = target_joints - target_joints[:, :1]
        terms["hand_joints"] = masked_mean((pred.joints - rel.to(pred.joints.dtype)).abs().mean(dim=-1), known)
    if target_vertices is not None:
        check_shape(target_vertices, "B V 3", name="target_vertices", dims={"B": pred.vertices.shape[0], "V": pred.vertices.shape[1]})
        known = finite_rows(target_vertices)
        err = (pred.vertices - zero_unknown(target_vertices, known).to(pred.vertices.dtype)).abs()
        terms["hand_vertices"] = masked_mean(err.flatten(1).mean(dim=1), known)
    return terms


class HandMeshLoss(torch.nn.Module):
    """Module holding a hand layer: MANO-parameter, joint and vertex losses in one call.

    Args:
        hand_layer: ``ProceduralHand`` or ``MANOLayer`` (any module with that call signature).

    Shape:
        rotation_6d ``(B, 16, 6)``, shape ``(B, S)``, target_pose ``(B, 16, 3)``,
        target_shape ``(B, S)``, target_joints ``(B, 21, 3)`` -> dict of scalars.
    """

    def __init__(self, hand_layer: torch.nn.Module) -> None:
        super().__init__()
        self.hand_layer = hand_layer

    def forward(
        self,
        rotation_6d: torch.Tensor,
        shape: torch.Tensor,
        *,
        target_pose: torch.Tensor | None = None,
        target_shape: torch.Tensor | None = None,
        target_joints: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Return ``mano_params`` (if pose and shape targets are given), ``hand_joints``, ``hand_vertices``.

        Vertex targets are produced by the same hand layer from the ground-truth
        pose and shape (without gradient), so they need both.
        """
        terms: dict[str, torch.Tensor] = {}
        has_params = target_pose is not None and target_shape is not None
        if has_params:
            terms["mano_params"] = mano_parameter_loss(rotation_6d, shape, target_pose, target_shape)
        if not has_params and target_joints is None:
            return terms
        pred = hand_from_rotation_6d(self.hand_layer, rotation_6d, shape)
        target_vertices = None
        if has_params:
            with torch.no_grad():
                B = target_pose.shape[0]
                known = finite_rows(target_pose) & finite_rows(target_shape)  # unannotated samples: NaN targets
                pose, beta = zero_unknown(target_pose, known), zero_unknown(target_shape, known)
                gt = self.hand_layer(pose.to(shape.dtype), beta.to(shape.dtype), shape.new_zeros(B, 3))
                target_vertices = gt.vertices - gt.joints[:, :1]
                target_vertices = torch.where(known[:, None, None], target_vertices, torch.nan)
        terms.update(hand_mesh_loss(pred, target_joints=target_joints, target_vertices=target_vertices))
        return terms


def object_pose_loss(
    pred_rotation_6d: torch.Tensor,
    pred_translation: torch.Tensor,
    target_rotation: torch.Tensor,
    target_translation: torch.Tensor,
) -> torch.Tensor:
    """L1 on the object's rotation (6D of the orthonormalised prediction) plus L1 on its translation.

    Symmetric objects are not treated specially (MaskHOI uses a plain L1).

    Args:
        pred_rotation_6d: ``(B, 6)``.
        pred_translation: ``(B, 3)`` m.
        target_rotation: ``(B, 3, 3)`` rotation matrix (object to camera).
        target_translation: ``(B, 3)`` m.

    Returns:
        Scalar ``mean|6D - 6D*| + mean|t - t*|``.

    Shape:
        ``(B, 6), (B, 3), (B, 3, 3), (B, 3)`` -> ``()``.
    """
    dims = check_shape(pred_rotation_6d, "B 6", name="pred_rotation_6d")
    check_shape(pred_translation, "B 3", name="pred_translation", dims=dims)
    check_shape(target_rotation, "B 3 3", name="target_rotation", dims=dims)
    check_shape(target_translation, "B 3", name="target_translation", dims=dims)
    target_6d = matrix_to_rotation_6d(target_rotation.to(pred_rotation_6d.dtype))
    rot = (_normalise_6d(pred_rotation_6d) - target_6d).abs().mean()
    return rot + (pred_translation - target_translation.to(pred_translation.dtype)).abs().mean()
