"""The 21-joint hand: canonical order, names, parents, and conversions between orders.

Canonical order (DexYCB, FreiHAND): wrist, then thumb, index, middle, ring,
little, each MCP -> PIP -> DIP -> tip. For the thumb the four joints are
CMC, MCP, IP and tip anatomically; we keep the uniform names ``*_mcp``,
``*_pip``, ``*_dip``, ``*_tip`` so code can address every finger alike.

MANO's internal order has 16 joints (wrist; index, middle, little, ring, thumb
with three joints each) and the five fingertips, taken from mesh vertices, are
appended thumb, index, middle, ring, little (manopth, HO3D). That 21-joint
order is named ``"mano"``; HO3D's annotations use the same order (``"ho3d"``).
"""

from __future__ import annotations

import torch

from hoimask._checks import check_choice, check_shape

#: Finger names in the canonical order, thumb to little.
FINGERS: tuple[str, ...] = ("thumb", "index", "middle", "ring", "little")
#: Joint names along one finger, from the knuckle to the tip.
PHALANGES: tuple[str, ...] = ("mcp", "pip", "dip", "tip")

#: Joint names in the canonical order.
JOINT_NAMES: tuple[str, ...] = ("wrist",) + tuple(f"{f}_{p}" for f in FINGERS for p in PHALANGES)
#: Number of joints of the canonical skeleton.
NUM_JOINTS: int = 21

#: Parent of each canonical joint (-1 for the wrist, the root).
PARENTS: tuple[int, ...] = (-1,) + tuple(
    0 if k == 0 else 1 + 4 * f + k - 1 for f in range(5) for k in range(4)
)

#: Canonical indices of each finger's chain, MCP -> tip.
FINGER_CHAINS: dict[str, tuple[int, ...]] = {
    f: tuple(1 + 4 * i + k for k in range(4)) for i, f in enumerate(FINGERS)
}

#: Depth of each canonical joint in the kinematic tree (wrist 0, MCP 1, PIP 2, DIP 3, tip 4).
JOINT_DEPTH: tuple[int, ...] = (0,) + tuple(k + 1 for _ in FINGERS for k in range(4))

#: The 20 bones ``(parent, child)`` of the canonical tree, ordered by child index.
BONES: tuple[tuple[int, int], ...] = tuple((p, j) for j, p in enumerate(PARENTS) if p >= 0)

#: Name -> canonical index.
JOINT_INDEX: dict[str, int] = {n: i for i, n in enumerate(JOINT_NAMES)}

#: MANO's 16 kinematic joints: wrist, index(3), middle(3), little(3), ring(3), thumb(3).
MANO_JOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "index_mcp", "index_pip", "index_dip",
    "middle_mcp", "middle_pip", "middle_dip",
    "little_mcp", "little_pip", "little_dip",
    "ring_mcp", "ring_pip", "ring_dip",
    "thumb_mcp", "thumb_pip", "thumb_dip",
)  # fmt: skip
#: MANO's kinematic parents of its 16 joints.
MANO_PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)
#: 21-joint MANO order: the 16 MANO joints, then tips thumb, index, middle, ring, little.
MANO21_JOINT_NAMES: tuple[str, ...] = MANO_JOINT_NAMES + tuple(f"{f}_tip" for f in FINGERS)

#: HO3D's annotation order (identical to the 21-joint MANO order).
HO3D_JOINT_NAMES: tuple[str, ...] = MANO21_JOINT_NAMES

#: Named joint orders. Each entry lists the joint names in that order.
JOINT_ORDERS: dict[str, tuple[str, ...]] = {
    "canonical": JOINT_NAMES,
    "mano": MANO21_JOINT_NAMES,
    "ho3d": HO3D_JOINT_NAMES,
}


def order_indices(source: str, target: str) -> list[int]:
    """Indices ``idx`` such that ``joints_target = joints_source[..., idx, :]``.

    Args:
        source: name of the order the joints are in (see :data:`JOINT_ORDERS`).
        target: name of the order wanted.

    Returns:
        21 indices into the source order.

    Example:
        >>> idx = order_indices("mano", "canonical")
        >>> JOINT_ORDERS["mano"][idx[4]]
        'thumb_tip'
    """
    check_choice(source, JOINT_ORDERS, name="source")
    check_choice(target, JOINT_ORDERS, name="target")
    src = {n: i for i, n in enumerate(JOINT_ORDERS[source])}
    return [src[n] for n in JOINT_ORDERS[target]]


def convert_joint_order(joints: torch.Tensor, source: str, target: str) -> torch.Tensor:
    """Reorder joints from the ``source`` order to the ``target`` order.

    Args:
        joints: per-joint values (coordinates, heatmaps, ...) in the ``source`` order.
        source: name of the order ``joints`` is in (``"canonical"``, ``"mano"``, ``"ho3d"``).
        target: name of the order wanted.

    Returns:
        The same values reordered; a new tensor of the same shape, dtype and device.

    Shape:
        joints ``(..., 21, C)`` -> ``(..., 21, C)``.
    """
    check_shape(joints, "... 21 _", name="joints")
    idx = order_indices(source, target)
    return joints[..., idx, :]
