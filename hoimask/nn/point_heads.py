"""Point-wise pose read-outs of HOISDF (§3.2.5): joint voting and per-point object pose.

* :class:`JointVotingHead` — every hand point predicts an offset to every
  joint and a per-joint logit; a joint is the softmax(logit)-weighted mean
  over points of ``point + offset`` (:func:`vote_joints`). Train with
  :func:`hoimask.losses.joint_vote_loss`.
* :class:`PointObjectPoseHead` — every object point predicts the object's
  rotation (axis-angle) and translation relative to the object centre; the
  predictions are averaged over points (:func:`average_object_pose`). Train
  the per-point predictions with :func:`hoimask.losses.point_object_pose_loss`.

Both accept any number of leading dimensions on the features, e.g. the
``(L, B, N, D)`` per-layer encoder outputs of
:class:`~hoimask.nn.PointPoseTransformer`, with points broadcast against them.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from hoimask._checks import ShapeError, check_choice, check_finite, check_int, check_shape
from hoimask.geometry import axis_angle_to_matrix, matrix_to_axis_angle
from hoimask.nn._mlp import relu_mlp

__all__ = [
    "JointVotes",
    "JointVotingHead",
    "vote_joints",
    "PointObjectPose",
    "PointObjectPoseHead",
    "average_object_pose",
]


def vote_joints(points: torch.Tensor, offsets: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Joints as the softmax-weighted mean of the votes ``point + offset`` over points.

    ``joint_j = Σ_n softmax_n(logits[n, j]) · (points[n] + offsets[n, j])``.

    Args:
        points: ``(..., N, 3)`` point positions, broadcastable against ``offsets``.
        offsets: ``(..., N, J, 3)`` predicted offsets from each point to each joint.
        logits: ``(..., N, J)`` per-point, per-joint confidence logits.

    Returns:
        ``(..., J, 3)`` joints, in the frame of ``points``.

    Example:
        >>> points = torch.tensor([[0.0, 0, 0], [1.0, 0, 0]])
        >>> vote_joints(points, torch.zeros(2, 1, 3), torch.zeros(2, 1))  # equal weights: the mean
        tensor([[0.5000, 0.0000, 0.0000]])
    """
    dims = check_shape(offsets, "... N J 3", name="offsets", fn="vote_joints")
    check_shape(logits, "... N J", name="logits", dims=dims, fn="vote_joints")
    check_shape(points, "... N 3", name="points", dims=dims, fn="vote_joints")
    if dims["N"] == 0:
        raise ShapeError("vote_joints(): argument 'points' expected at least one point, got N=0")
    votes = points.unsqueeze(-2) + offsets  # (..., N, J, 3)
    weights = torch.softmax(logits, dim=-2).unsqueeze(-1)  # (..., N, J, 1), sums to 1 over N
    return (votes * weights).sum(dim=-3)  # (..., J, 3)


class JointVotes(NamedTuple):
    """What :class:`JointVotingHead` returns."""

    joints: torch.Tensor  #: (..., J, 3) voted joints
    votes: torch.Tensor  #: (..., N, J, 3) point + offset
    offsets: torch.Tensor  #: (..., N, J, 3)
    logits: torch.Tensor  #: (..., N, J) classification logits (a point is "near" the joint)


class JointVotingHead(nn.Module):
    """Per-point joint offsets and confidences, voted into joints (HOISDF ``linear_handvote/handcls``).

    Offsets: a 4-layer ReLU MLP ``D → hidden → hidden → hidden → 3J``;
    logits: a 3-layer ReLU MLP ``D → hidden → hidden → J``. The logits are
    trained as "the point lies within 4 cm of the joint" (binary) and, via a
    softmax over points, weight the votes (:func:`vote_joints`).

    HOISDF votes for **20** joints: its points are relative to the hand root
    (wrist), which is the origin and needs no vote, and its targets are
    ``joints[:, 1:]``. The default here is all **21** joints of the canonical
    order (the wrist vote is then learned too, trivially 0 for root-relative
    points); pass ``num_joints=20`` and ``joints[:, 1:]`` for the code's form.

    Args:
        dim: point feature width D (256).
        num_joints: J (21; HOISDF 20).
        hidden: hidden width of both MLPs (256).

    Shape:
        points ``(..., N, 3)`` (broadcast against the features' leading dims),
        features ``(..., N, D)`` -> :class:`JointVotes` with joints ``(..., J, 3)``.

    Example:
        >>> head = JointVotingHead(32, hidden=16)
        >>> out = head(torch.rand(2, 50, 3), torch.randn(4, 2, 50, 32))  # 4 layers of features
        >>> out.joints.shape, out.votes.shape, out.logits.shape
        (torch.Size([4, 2, 21, 3]), torch.Size([4, 2, 50, 21, 3]), torch.Size([4, 2, 50, 21]))
    """

    def __init__(self, dim: int = 256, num_joints: int = 21, *, hidden: int = 256, device=None, dtype=None) -> None:
        super().__init__()
        fn = "JointVotingHead.__init__"
        self.dim = check_int(dim, name="dim", low=1, fn=fn)
        self.num_joints = check_int(num_joints, name="num_joints", low=1, fn=fn)
        check_int(hidden, name="hidden", low=1, fn=fn)
        self.offset_mlp = relu_mlp([dim, hidden, hidden, hidden, 3 * num_joints], device=device, dtype=dtype)
        self.logit_mlp = relu_mlp([dim, hidden, hidden, num_joints], device=device, dtype=dtype)

    def forward(self, points: torch.Tensor, features: torch.Tensor) -> JointVotes:
        """Predict offsets and logits per point and vote the joints."""
        dims = check_shape(features, f"... N {self.dim}", name="features")
        check_shape(points, "... N 3", name="points", dims=dims)
        if dims["N"] == 0:
            raise ShapeError("JointVotingHead.forward(): argument 'points' expected at least one point, got N=0")
        try:
            lead = torch.broadcast_shapes(points.shape[:-2], features.shape[:-2])
        except RuntimeError as err:
            raise ShapeError(
                f"JointVotingHead.forward(): argument 'points' of shape {tuple(points.shape)} does not broadcast "
                f"against 'features' of shape {tuple(features.shape)}"
            ) from err
        check_finite(points, name="points")
        points = points.expand(*lead, dims["N"], 3)
        offsets = self.offset_mlp(features).unflatten(-1, (self.num_joints, 3))  # (..., N, J, 3)
        logits = self.logit_mlp(features)  # (..., N, J)
        return JointVotes(vote_joints(points, offsets, logits), points.unsqueeze(-2) + offsets, offsets, logits)


def average_object_pose(
    point_rotation: torch.Tensor,
    point_translation: torch.Tensor,
    *,
    method: str = "axis_angle",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Average per-point object poses into one pose.

    Translation: the arithmetic mean. Rotation:

    * ``"axis_angle"`` (default, HOISDF's test code): the arithmetic mean of
      the axis-angle vectors. Cheap and exact when the points agree; biased
      when they spread, and wrong near angles of π where ``r`` and
      ``-r`` describe almost the same rotation.
    * ``"matrix"``: the chordal L2 mean — the mean of the rotation matrices
      projected back to SO(3) by SVD (``U diag(1, 1, det(UVᵀ)) Vᵀ``), then
      converted to axis-angle. Consistent for any spread; needs an SVD.

    Args:
        point_rotation: ``(..., N, 3)`` axis-angle per point.
        point_translation: ``(..., N, 3)`` translation per point.
        method: ``"axis_angle"`` or ``"matrix"``.

    Returns:
        ``(rotation, translation)``, each ``(..., 3)``.

    Example:
        >>> r = torch.tensor([[0.0, 0.0, 0.1], [0.0, 0.0, 0.3]])
        >>> rot, t = average_object_pose(r, torch.ones(2, 3), method="matrix")
        >>> torch.allclose(rot, torch.tensor([0.0, 0.0, 0.2])), t
        (True, tensor([1., 1., 1.]))
    """
    fn = "average_object_pose"
    dims = check_shape(point_rotation, "... N 3", name="point_rotation", fn=fn)
    check_shape(point_translation, "... N 3", name="point_translation", dims=dims, fn=fn)
    check_choice(method, ("axis_angle", "matrix"), name="method", fn=fn)
    if dims["N"] == 0:
        raise ShapeError(f"{fn}(): argument 'point_rotation' expected at least one point, got N=0")
    translation = point_translation.mean(dim=-2)
    if method == "axis_angle":
        return point_rotation.mean(dim=-2), translation
    mean = axis_angle_to_matrix(point_rotation).mean(dim=-3)  # (..., 3, 3), not a rotation
    u, _, vh = torch.linalg.svd(mean)
    det = torch.linalg.det(u @ vh)  # ±1
    fix = torch.ones_like(mean[..., 0])  # (..., 3)
    fix = torch.cat([fix[..., :2], det.unsqueeze(-1)], dim=-1)
    rotation = (u * fix.unsqueeze(-2)) @ vh  # U diag(1, 1, det) Vᵀ
    return matrix_to_axis_angle(rotation), translation


class PointObjectPose(NamedTuple):
    """What :class:`PointObjectPoseHead` returns."""

    rotation: torch.Tensor  #: (..., 3) averaged axis-angle rotation
    translation: torch.Tensor  #: (..., 3) averaged translation relative to the object centre (m)
    point_rotation: torch.Tensor  #: (..., N, 3) per-point axis-angle (supervise these)
    point_translation: torch.Tensor  #: (..., N, 3) per-point translation relative to the centre


class PointObjectPoseHead(nn.Module):
    """Per-point object rotation and translation, averaged over points (HOISDF ``linear_obj_rot/rel_trans``).

    Two 3-layer ReLU MLPs ``D → hidden → hidden → 3`` give, for every object
    point, an axis-angle rotation and the translation of the object relative
    to the object centre the points were expressed around (HOISDF's
    ``obj_center_cam``; the absolute translation is ``center + translation``).
    HOISDF supervises every point (and every encoder layer) and averages at
    test time; :class:`PointObjectPose` carries both.

    Args:
        dim: point feature width D (256).
        hidden: hidden width (256).
        rotation_average: ``"axis_angle"`` (HOISDF) or ``"matrix"``, see
            :func:`average_object_pose`.

    Shape:
        features ``(..., N, D)`` -> :class:`PointObjectPose` with rotation and
        translation ``(..., 3)``.

    Example:
        >>> head = PointObjectPoseHead(32, hidden=16)
        >>> out = head(torch.randn(2, 40, 32))
        >>> out.rotation.shape, out.point_translation.shape
        (torch.Size([2, 3]), torch.Size([2, 40, 3]))
    """

    def __init__(
        self, dim: int = 256, *, hidden: int = 256, rotation_average: str = "axis_angle", device=None, dtype=None
    ) -> None:
        super().__init__()
        fn = "PointObjectPoseHead.__init__"
        self.dim = check_int(dim, name="dim", low=1, fn=fn)
        check_int(hidden, name="hidden", low=1, fn=fn)
        self.rotation_average = check_choice(rotation_average, ("axis_angle", "matrix"), name="rotation_average", fn=fn)
        self.rotation_mlp = relu_mlp([dim, hidden, hidden, 3], device=device, dtype=dtype)
        self.translation_mlp = relu_mlp([dim, hidden, hidden, 3], device=device, dtype=dtype)

    def forward(self, features: torch.Tensor) -> PointObjectPose:
        """Predict a pose per point and average it."""
        dims = check_shape(features, f"... N {self.dim}", name="features")
        if dims["N"] == 0:
            raise ShapeError("PointObjectPoseHead.forward(): argument 'features' expected at least one point, got N=0")
        rotation = self.rotation_mlp(features)  # (..., N, 3)
        translation = self.translation_mlp(features)  # (..., N, 3)
        mean_rotation, mean_translation = average_object_pose(rotation, translation, method=self.rotation_average)
        return PointObjectPose(mean_rotation, mean_translation, rotation, translation)
