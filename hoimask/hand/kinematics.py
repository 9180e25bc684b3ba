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

__all__ = [
    "forward_kinematics",
    "layer_pose_from_rotations",
    "linear_blend_skinning",
    "rotations_from_joints",
    "swing_inverse_kinematics",
    "swing_rotation",
]


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


def swing_rotation(source: Tensor, target: Tensor, *, eps: float = 1e-9) -> Tensor:
    """The smallest rotation that turns direction ``source`` into direction ``target`` (a "swing", no twist).

    ``R = I + [v]_x + [v]_x² / (1 + c)`` with ``v = a × b`` and ``c = a · b`` for
    the unit vectors ``a``, ``b``. Opposite directions have no unique smallest
    rotation: the result is then the half turn about an axis perpendicular to
    ``a``. A zero vector gives the identity (there is nothing to align).

    Args:
        source: ``(..., 3)`` directions (need not be unit length).
        target: ``(..., 3)`` directions.
        eps: length below which a vector counts as zero.

    Returns:
        ``(..., 3, 3)`` rotation matrices with ``R @ source ∥ target``.

    Example:
        >>> R = swing_rotation(torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 2, 0]))
        >>> (R @ torch.tensor([1.0, 0, 0])).round(decimals=6).tolist()
        [0.0, 1.0, 0.0]
    """
    check_floating(source, name="source")
    check_floating(target, name="target")
    a_len = source.norm(dim=-1, keepdim=True)
    b_len = target.norm(dim=-1, keepdim=True)
    degenerate = ((a_len <= eps) | (b_len <= eps)).squeeze(-1)  # (...,)
    a = source / a_len.clamp_min(eps)
    b = target / b_len.clamp_min(eps)
    a, b = torch.broadcast_tensors(a, b)
    c = (a * b).sum(-1)  # (...,) cosine
    opposite = (c < -1.0 + 1e-6) & ~degenerate
    # a perpendicular axis for the half turn: a x e, e the world axis least aligned with a
    e = torch.nn.functional.one_hot(a.abs().argmin(dim=-1), 3).to(a.dtype)
    perp = torch.linalg.cross(a, e)
    perp = perp / perp.norm(dim=-1, keepdim=True).clamp_min(eps)
    v = torch.linalg.cross(a, b)  # (..., 3)
    zero = torch.zeros_like(c)
    vx = torch.stack([zero, -v[..., 2], v[..., 1], v[..., 2], zero, -v[..., 0], -v[..., 1], v[..., 0], zero],
                     dim=-1).unflatten(-1, (3, 3))  # (..., 3, 3)
    eye = torch.eye(3, dtype=a.dtype, device=a.device).expand(vx.shape)
    swing = eye + vx + (vx @ vx) / (1.0 + c).clamp_min(1e-6)[..., None, None]
    half_turn = 2.0 * perp[..., :, None] * perp[..., None, :] - eye  # rotation by pi about perp
    out = torch.where(opposite[..., None, None], half_turn, swing)
    return torch.where(degenerate[..., None, None], eye, out)


def _palm_and_bones() -> tuple[list[int], list[tuple[int, int, int]], list[int]]:
    """Canonical palm joints (wrist + MCPs), the (joint, parent, child) triples of the 15 finger joints in
    topological order, and the canonical index of each of MANO's 16 kinematic joints."""
    from hoimask.skeleton import FINGER_CHAINS, PARENTS, order_indices

    chains = list(FINGER_CHAINS.values())
    palm = [0] + [chain[0] for chain in chains]
    bones = [(j, PARENTS[j], j + 1) for k in range(3) for chain in chains for j in [chain[k]]]
    return palm, bones, order_indices("canonical", "mano")[:16]


def swing_inverse_kinematics(joints: Tensor, rest_joints: Tensor) -> Tensor:
    """Local joint rotations that pose a rest hand like ``joints`` (analytic swing IK, as HybrIK's swing part).

    The global rotation aligns the rest palm (wrist and the five MCPs, which
    move rigidly with the wrist) with the given one (Kabsch, no reflection);
    then, parents before children, every finger joint gets the smallest
    rotation (:func:`swing_rotation`) that points its bone (joint -> child, in
    the parent's frame) along the given bone. Twist about a bone is not
    observable from joint positions and is left at zero. Posing the rest hand
    with the result (:func:`forward_kinematics`) reproduces every given bone
    direction exactly when the palm is rigid-consistent; the bone lengths stay
    the rest hand's. (A MANO fingertip is a skinned vertex, not a joint that
    moves rigidly with its DIP, so MANO's posed tips follow the given ones only
    approximately.)

    Args:
        joints: ``(B, 21, 3)`` joint positions in the canonical order (any
            origin; only directions and the palm's shape matter).
        rest_joints: ``(B, 21, 3)`` the hand's rest joints in the canonical order
            (e.g. a hand layer's joints at zero pose for the wanted shape).

    Returns:
        ``(B, 16, 3, 3)`` local rotations in MANO's joint order (joint 0 the
        global orientation), the input of a hand layer after
        :func:`~hoimask.geometry.matrix_to_axis_angle`.

    Shape:
        joints, rest_joints ``(B, 21, 3)`` -> ``(B, 16, 3, 3)``.
    """
    from hoimask.geometry import similarity_procrustes

    dims = check_shape(joints, "B 21 3", name="joints", fn="swing_inverse_kinematics")
    check_shape(rest_joints, "B 21 3", name="rest_joints", dims=dims, fn="swing_inverse_kinematics")
    check_floating(joints, name="joints")
    check_floating(rest_joints, name="rest_joints")
    rest_joints = rest_joints.to(joints.dtype)
    palm, bones, mano_to_canonical = _palm_and_bones()
    _, root, _ = similarity_procrustes(rest_joints[:, palm], joints[:, palm], allow_reflection=False)
    world = {0: root}  # canonical joint -> global rotation
    local = {0: root}
    for j, parent, child in bones:
        rest_bone = rest_joints[:, child] - rest_joints[:, j]  # (B, 3)
        bone = joints[:, child] - joints[:, j]
        in_parent = (world[parent].transpose(1, 2) @ bone.unsqueeze(-1)).squeeze(-1)  # (B, 3)
        local[j] = swing_rotation(rest_bone, in_parent)
        world[j] = world[parent] @ local[j]
    return torch.stack([local[j] for j in mano_to_canonical], dim=1)  # (B, 16, 3, 3)


def layer_pose_from_rotations(hand_layer: torch.nn.Module, rotations: Tensor) -> Tensor:
    """The axis-angle pose input under which ``hand_layer`` applies the local rotations ``rotations``.

    The layers take axis-angle poses; a :class:`~hoimask.hand.MANOLayer` with
    ``flat_hand_mean=False`` adds its mean finger pose to them, which this
    subtracts (the procedural hand and flat-mean MANO take the rotations as they are).

    Args:
        hand_layer: ``ProceduralHand`` or ``MANOLayer``.
        rotations: ``(B, 16, 3, 3)`` final local rotations in MANO's joint order.

    Returns:
        ``(B, 16, 3)`` axis-angle pose for ``hand_layer(pose, shape)``.
    """
    from hoimask.geometry import matrix_to_axis_angle

    check_shape(rotations, "B 16 3 3", name="rotations", fn="layer_pose_from_rotations")
    pose = matrix_to_axis_angle(rotations)  # (B, 16, 3)
    mean = getattr(hand_layer, "hands_mean", None)
    if isinstance(mean, Tensor) and mean.numel() == 45:
        pose = pose - torch.cat([mean.new_zeros(3), mean.reshape(45)]).view(16, 3).to(pose)
    return pose


def rotations_from_joints(hand_layer: torch.nn.Module, joints: Tensor) -> Tensor:
    """Rotation matrices, in ``hand_layer``'s input convention, that pose its mean-shape rest hand along ``joints``.

    :func:`swing_inverse_kinematics` onto the layer's rest hand (β = 0),
    expressed as the layer's axis-angle input would be (MANO's mean pose
    subtracted, :func:`layer_pose_from_rotations`), as matrices — the start a
    pose model's 6D rotations can be a residual on
    (:class:`~hoimask.models.HandMIMPoseModel`, :class:`~hoimask.models.UniHOPE`).
    Computed in float32 (or the layer's dtype) without gradients.

    Args:
        hand_layer: ``ProceduralHand`` or ``MANOLayer``.
        joints: ``(B, 21, 3)`` joints in the canonical order (any origin), e.g. lifted 2.5D keypoints.

    Returns:
        ``(B, 16, 3, 3)``; ``hand_layer(matrix_to_axis_angle(R), 0)`` follows the joints' bones.
    """
    from hoimask.geometry import axis_angle_to_matrix

    check_shape(joints, "B 21 3", name="joints", fn="rotations_from_joints")
    with torch.no_grad(), torch.autocast(device_type=joints.device.type, enabled=False):
        dtype = next((b.dtype for b in hand_layer.buffers() if b.is_floating_point()), torch.float32)
        dtype = torch.promote_types(dtype, torch.float32)
        j = joints.to(dtype)
        identity = torch.eye(3, dtype=dtype, device=j.device).expand(1, 16, 3, 3)
        rest_pose = layer_pose_from_rotations(hand_layer, identity)  # (1, 16, 3): the rest hand
        rest = hand_layer(rest_pose, rest_pose.new_zeros(1, 10)).joints.to(dtype)  # (1, 21, 3)
        rotations = swing_inverse_kinematics(j - j[:, :1], rest.expand(j.shape[0], -1, -1))
        return axis_angle_to_matrix(layer_pose_from_rotations(hand_layer, rotations))
