"""The output record shared by every hand model."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

__all__ = ["HandOutput"]


class HandOutput(NamedTuple):
    """Posed hand, in metres.

    Attributes:
        vertices: mesh vertices ``(B, V, 3)`` (778 for MANO).
        joints: 21 joints ``(B, 21, 3)`` in the canonical order
            (:data:`hoimask.skeleton.JOINT_NAMES`: wrist, then thumb, index,
            middle, ring, little, each MCP -> PIP -> DIP -> tip).
        mano_joints: the 16 kinematic joints ``(B, 16, 3)`` in MANO's internal
            order (:data:`hoimask.skeleton.MANO_JOINT_NAMES`), no fingertips.
    """

    vertices: Tensor
    joints: Tensor
    mano_joints: Tensor
