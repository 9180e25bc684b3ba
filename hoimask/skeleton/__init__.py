"""The hand's kinematic tree, joint orders, traversals and bone rasterisation."""

from hoimask.skeleton.joints import (
    FINGER_CHAINS,
    FINGERS,
    JOINT_INDEX,
    JOINT_NAMES,
    JOINT_ORDERS,
    MANO21_JOINT_NAMES,
    MANO_JOINT_NAMES,
    MANO_PARENTS,
    NUM_JOINTS,
    PARENTS,
    convert_joint_order,
    order_indices,
)

__all__ = [
    "FINGER_CHAINS",
    "FINGERS",
    "JOINT_INDEX",
    "JOINT_NAMES",
    "JOINT_ORDERS",
    "MANO21_JOINT_NAMES",
    "MANO_JOINT_NAMES",
    "MANO_PARENTS",
    "NUM_JOINTS",
    "PARENTS",
    "convert_joint_order",
    "order_indices",
]
