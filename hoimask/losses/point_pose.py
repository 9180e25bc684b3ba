"""Point-wise pose losses of HOISDF (§3.2.5): joint votes and per-point object pose.

Conventions follow the official code (``JointvoteLoss`` and the object terms
of ``Model.forward``): predictions may carry any leading dimensions (one per
supervised layer, e.g. ``(L, B, …)``) and the targets ``(B, …)`` are
broadcast against them.

Missing annotations are masked, as in the other hoimask losses: a target joint
with a non-finite coordinate does not count in any joint term, and a sample
whose object target is non-finite (or whose ``has_object`` is False) has no
object term. A term over which nothing counts is an exact 0 (HOISDF's code
divides by zero there). Non-finite query points are an error.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from hoimask._checks import ShapeError, check_finite, check_positive, check_shape
from hoimask.losses._reduce import masked_mean

__all__ = ["JointVoteLoss", "joint_vote_loss", "PointObjectPoseLoss", "point_object_pose_loss"]


class JointVoteLoss(NamedTuple):
    """The three joint-voting terms (HOISDF weights: 0.1, 1, 0.1)."""

    offset: torch.Tensor  #: SmoothL1 of the votes of points near each joint
    classification: torch.Tensor  #: BCE of the "near the joint" logits
    joints: torch.Tensor  #: SmoothL1 of the voted joints


def _broadcast(target: torch.Tensor, like: torch.Tensor, name: str, fn: str) -> torch.Tensor:
    try:
        return target.to(like.dtype).expand_as(like)
    except RuntimeError as err:
        raise ShapeError(
            f"{fn}(): argument '{name}' of shape {tuple(target.shape)} does not broadcast against the "
            f"predictions of shape {tuple(like.shape)}"
        ) from err


def joint_vote_loss(
    points: torch.Tensor,
    votes: torch.Tensor,
    logits: torch.Tensor,
    joints: torch.Tensor,
    target: torch.Tensor,
    *,
    radius: float = 0.04,
    beta: float = 1.0,
    scale: float = 1000.0,
) -> JointVoteLoss:
    """Losses of :class:`~hoimask.nn.JointVotingHead` against ground-truth joints.

    * classification: a point is "near" joint ``j`` when ``‖p - joint_j‖ <
      radius`` (4 cm); BCE-with-logits, mean over every (layer, sample,
      point, annotated joint);
    * offset: SmoothL1 (``beta``) between ``scale · vote`` and ``scale ·
      joint`` summed over the near (point, joint) pairs and coordinates,
      divided by the number of near pairs (0 when there is none; HOISDF
      divides by zero then);
    * joints: SmoothL1 between ``scale · voted joints`` and ``scale ·
      target``, mean over the annotated joints and coordinates.

    Joints whose target has a NaN/inf coordinate are not annotated: they
    count in no term (with every joint annotated, each term equals HOISDF's).

    With the defaults the regression terms are in millimetres with a 1 mm
    SmoothL1 transition, exactly HOISDF's (metres × 1000, ``beta = 1``), so its
    weights (0.1, 1, 0.1) apply unchanged. Pass ``scale=1`` and ``beta`` in
    metres for metric losses.

    Args:
        points: ``(B, N, 3)`` point positions in the joints' frame (m).
        votes: ``(..., B, N, J, 3)`` ``point + offset`` (``JointVotes.votes``).
        logits: ``(..., B, N, J)`` (``JointVotes.logits``).
        joints: ``(..., B, J, 3)`` voted joints (``JointVotes.joints``).
        target: ``(B, J, 3)`` ground-truth joints (m); non-finite = not annotated.
        radius: "near" distance (m), > 0.
        beta: SmoothL1 transition in the scaled units, > 0.
        scale: factor applied to coordinates before the SmoothL1 terms, > 0.

    Returns:
        :class:`JointVoteLoss` of scalars.

    Raises:
        ShapeError: inconsistent shapes, or no point.
        ValueRangeError: non-finite ``points``; non-positive ``radius``, ``beta`` or ``scale``.

    Shape:
        ``(B, N, 3), (..., B, N, J, 3), (..., B, N, J), (..., B, J, 3), (B, J, 3)`` -> three ``()``.

    Example:
        >>> points = torch.zeros(1, 2, 3)
        >>> target = torch.tensor([[[0.01, 0.0, 0.0]]])
        >>> votes = target.unsqueeze(1).expand(1, 2, 1, 3)   # every vote exact
        >>> loss = joint_vote_loss(points, votes, torch.full((1, 2, 1), 20.0), target, target)
        >>> float(loss.offset), float(loss.joints), float(loss.classification) < 1e-6
        (0.0, 0.0, True)
    """
    fn = "joint_vote_loss"
    dims = check_shape(target, "B J 3", name="target", fn=fn)
    check_shape(points, "B N 3", name="points", dims=dims, fn=fn)
    check_shape(votes, "... B N J 3", name="votes", dims=dims, fn=fn)
    check_shape(logits, "... B N J", name="logits", dims=dims, fn=fn)
    check_shape(joints, "... B J 3", name="joints", dims=dims, fn=fn)
    check_positive(radius, name="radius", fn=fn)
    check_positive(beta, name="beta", fn=fn)
    check_positive(scale, name="scale", fn=fn)
    if dims["N"] == 0:
        raise ShapeError(f"{fn}(): argument 'points' expected at least one point, got N=0")
    check_finite(points, name="points", fn=fn)
    known = torch.isfinite(target).all(dim=-1)  # (B, J) annotated joints
    target = torch.where(known.unsqueeze(-1), target, torch.zeros_like(target)).to(votes.dtype)
    distance = torch.linalg.vector_norm(points.to(votes.dtype).unsqueeze(2) - target.unsqueeze(1), dim=-1)  # (B, N, J)
    near = (distance < radius) & known.unsqueeze(1)  # (B, N, J)
    near_all = near.to(votes.dtype).expand_as(logits)  # (..., B, N, J)
    per_coord = F.smooth_l1_loss(
        votes * scale, _broadcast(target.unsqueeze(1), votes, "target", fn) * scale, beta=beta, reduction="none"
    )  # (..., B, N, J, 3)
    offset = masked_mean(per_coord.sum(dim=-1), near.expand_as(logits))  # per near pair, summed over x, y, z
    bce = F.binary_cross_entropy_with_logits(logits, near_all, reduction="none")  # (..., B, N, J)
    classification = masked_mean(bce, known.unsqueeze(1).expand_as(logits))
    per_joint = F.smooth_l1_loss(
        joints * scale, _broadcast(target, joints, "target", fn) * scale, beta=beta, reduction="none"
    )  # (..., B, J, 3)
    joint_term = masked_mean(per_joint, known.unsqueeze(-1).expand_as(per_joint))
    return JointVoteLoss(offset, classification, joint_term)


class PointObjectPoseLoss(NamedTuple):
    """The two per-point object terms (HOISDF weights: rotation 0.7, translation 100)."""

    rotation: torch.Tensor  #: SmoothL1 of the per-point axis-angle rotations
    translation: torch.Tensor  #: SmoothL1 of the per-point relative translations (m)


def point_object_pose_loss(
    point_rotation: torch.Tensor,
    point_translation: torch.Tensor,
    target_rotation: torch.Tensor,
    target_translation: torch.Tensor,
    *,
    has_object: torch.Tensor | None = None,
    beta: float = 1.0,
) -> PointObjectPoseLoss:
    """SmoothL1 of every point's object pose against the ground truth (HOISDF).

    Each point (and each supervised layer) is compared with the same target:
    axis-angle rotation (radians) and translation relative to the object
    centre (metres), mean over everything, SmoothL1 with ``beta`` (1, as
    ``nn.SmoothL1Loss``; with metre-sized errors the translation term is then
    effectively an MSE / 2, hence HOISDF's weight of 100).

    Samples with ``has_object`` False, or with a non-finite target rotation
    or translation (an unannotated object), do not count; with none left
    both terms are an exact 0.

    Args:
        point_rotation: ``(..., B, N, 3)`` axis-angle per point.
        point_translation: ``(..., B, N, 3)`` translation per point (m).
        target_rotation: ``(B, 3)`` axis-angle.
        target_translation: ``(B, 3)`` relative translation (m).
        has_object: optional ``(B,)`` bool; default: every sample has an object.
        beta: SmoothL1 transition, > 0.

    Returns:
        :class:`PointObjectPoseLoss` of scalars.

    Raises:
        ShapeError: inconsistent shapes.
        ValueRangeError: non-positive ``beta``.

    Shape:
        ``(..., B, N, 3), (..., B, N, 3), (B, 3), (B, 3)`` -> two ``()``.

    Example:
        >>> r = torch.zeros(1, 4, 3)
        >>> point_object_pose_loss(r, r, torch.zeros(1, 3), torch.full((1, 3), 0.1)).translation
        tensor(0.0050)
    """
    fn = "point_object_pose_loss"
    dims = check_shape(target_rotation, "B 3", name="target_rotation", fn=fn)
    check_shape(target_translation, "B 3", name="target_translation", dims=dims, fn=fn)
    check_shape(point_rotation, "... B N 3", name="point_rotation", dims=dims, fn=fn)
    check_shape(point_translation, "... B N 3", name="point_translation", dims=dims, fn=fn)
    check_positive(beta, name="beta", fn=fn)
    use = torch.isfinite(target_rotation).all(dim=-1) & torch.isfinite(target_translation).all(dim=-1)  # (B,)
    if has_object is not None:
        check_shape(has_object, "B", name="has_object", dims=dims, fn=fn)
        use = use & has_object.to(device=use.device, dtype=torch.bool)
    use = use[:, None, None]  # (B, 1, 1) against (..., B, N, 3)

    def term(pred: torch.Tensor, target: torch.Tensor, name: str) -> torch.Tensor:
        target = torch.where(use[:, 0], target, torch.zeros_like(target))  # (B, 3), unannotated -> 0
        error = F.smooth_l1_loss(pred, _broadcast(target.unsqueeze(1), pred, name, fn), beta=beta, reduction="none")
        return masked_mean(error, use.expand_as(error))

    return PointObjectPoseLoss(
        term(point_rotation, target_rotation, "target_rotation"),
        term(point_translation, target_translation, "target_translation"),
    )
