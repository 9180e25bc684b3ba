"""Forward kinematics and linear blend skinning shared by the MANO layer and the procedural hand.

Conventions (those of MANO / SMPL): every joint ``j`` has a rest position
``J_j`` and a local rotation ``R_j`` expressed in the rest frame, whose axes are
the world axes (the rest joints carry no orientation of their own). The global
transform of a joint is ``G_j = G_parent(j) · [R_j | J_j - J_parent(j)]`` (the
root uses ``J_0``), so a point ``x`` of the rest pose that moves rigidly with
joint ``j`` ends up at ``G_j.R (x - J_j) + G_j.t``. The root rotation therefore
turns the hand about its rest wrist position, and the wrist does not move.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from hoimask._checks import ShapeError, check_floating, check_shape

__all__ = ["forward_kinematics", "linear_blend_skinning"]


def _check_parents(parents: Sequence[int], num_joints: int) -> None:
    if len(parents) != num_joints:
        raise ShapeError(
            f"forward_kinematics(): argument 'parents' expected {num_joints} entries, got {len(parents)}"
        )
    for j, p in enumerate(parents):
        if (j == 0 and p != -1) or (j > 0 and not 0 <= p < j):
            raise ShapeError(
                "forward_kinematics(): argument 'parents' must list -1 for joint 0 and a smaller "
                f"index for every other joint (topological order), got parents[{j}]={p}"
            )


def forward_kinematics(
    rotations: Tensor, rest_joints: Tensor, parents: Sequence[int]
) -> tuple[Tensor, Tensor]:
    """Pose a kinematic tree: global joint rotations and posed joint positions.

    Args:
        rotations: local rotation matrices of every joint (joint 0 is the global orientation).
        rest_joints: joint positions in the rest pose.
        parents: parent index of every joint, ``-1`` for the root, parents before children.

    Returns:
        ``(global_rotations (B, J, 3, 3), posed_joints (B, J, 3))``.

    Shape:
        rotations ``(B, J, 3, 3)``, rest_joints ``(B, J, 3)`` ->
        ``(B, J, 3, 3)``, ``(B, J, 3)``.
    """
    dims = check_shape(rotations, "B J 3 3", name="rotations")
    check_shape(rest_joints, "B J 3", name="rest_joints", dims=dims)
    check_floating(rotations, name="rotations")
    check_floating(rest_joints, name="rest_joints")
    _check_parents(parents, dims["J"])
    glob_r: list[Tensor] = []
    glob_t: list[Tensor] = []
    for j, p in enumerate(parents):
        if p < 0:
            glob_r.append(rotations[:, j])  # (B, 3, 3)
            glob_t.append(rest_joints[:, j])  # (B, 3)
            continue
        offset = rest_joints[:, j] - rest_joints[:, p]  # (B, 3)
        glob_r.append(glob_r[p] @ rotations[:, j])
        glob_t.append(glob_t[p] + (glob_r[p] @ offset.unsqueeze(-1)).squeeze(-1))
    return torch.stack(glob_r, dim=1), torch.stack(glob_t, dim=1)


def linear_blend_skinning(
    points: Tensor,
    weights: Tensor,
    rest_joints: Tensor,
    global_rotations: Tensor,
    posed_joints: Tensor,
) -> Tensor:
    """Move rest-pose points by the weighted sum of the joints' rigid transforms.

    Each point is mapped by ``Σ_j w_pj (G_j.R (x - J_j) + G_j.t)``.

    Args:
        points: rest-pose points (vertices after shape and pose blend shapes).
        weights: skinning weights, rows summing to one.
        rest_joints: rest joint positions ``J``.
        global_rotations: ``G.R`` from :func:`forward_kinematics`.
        posed_joints: ``G.t`` from :func:`forward_kinematics`.

    Returns:
        Posed points ``(B, V, 3)``.

    Shape:
        points ``(B, V, 3)``, weights ``(V, J)``, rest_joints ``(B, J, 3)``,
        global_rotations ``(B, J, 3, 3)``, posed_joints ``(B, J, 3)`` -> ``(B, V, 3)``.
    """
    dims = check_shape(points, "B V 3", name="points")
    check_shape(weights, "V J", name="weights", dims=dims)
    check_shape(rest_joints, "B J 3", name="rest_joints", dims=dims)
    check_shape(global_rotations, "B J 3 3", name="global_rotations", dims=dims)
    check_shape(posed_joints, "B J 3", name="posed_joints", dims=dims)
    # Affine transform per joint: x -> R x + (t - R J).
    shift = posed_joints - (global_rotations @ rest_joints.unsqueeze(-1)).squeeze(-1)  # (B, J, 3)
    affine = torch.cat([global_rotations.flatten(2), shift], dim=-1)  # (B, J, 12)
    blended = torch.einsum("vj,bjk->bvk", weights, affine).unflatten(-1, (4, 3))  # (B, V, 4, 3)
    rot = blended[..., :3, :]  # (B, V, 3 rows, 3 cols) of the blended rotation part
    return torch.einsum("bvij,bvj->bvi", rot, points) + blended[..., 3, :]
