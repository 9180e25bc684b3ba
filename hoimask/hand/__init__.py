"""Hand models: the MANO layer (official assets, no chumpy) and a licence-free procedural hand.

``import hoimask.hand`` stays light: it imports torch and NumPy only.
"""

from hoimask.hand._unpickle import PickleLimitError, PickleLimits, UnsafePickleError
from hoimask.hand.assets import MANO_ARRAY_SPECS, load_mano_arrays, to_npz
from hoimask.hand.capsules import (
    capsule_mesh_template,
    capsule_mesh_vertices,
    capsule_sdf,
    sample_capsule_surface,
)
from hoimask.hand.kinematics import (
    forward_kinematics,
    layer_pose_from_rotations,
    linear_blend_skinning,
    rotations_from_joints,
    swing_inverse_kinematics,
    swing_rotation,
)
from hoimask.hand.mano import FINGERTIP_VERTEX_IDS, LEFT_FINGERTIP_VERTEX_IDS, MANOLayer, mano_skin
from hoimask.hand.output import HandOutput
from hoimask.hand.parts import (
    HAND_PART_NAMES,
    NUM_FINE_PARTS,
    joint_part_labels,
    vertex_part_labels,
)
from hoimask.hand.procedural import NUM_CAPSULES, HandCapsules, ProceduralHand

__all__ = [
    "FINGERTIP_VERTEX_IDS",
    "HAND_PART_NAMES",
    "HandCapsules",
    "HandOutput",
    "LEFT_FINGERTIP_VERTEX_IDS",
    "MANOLayer",
    "MANO_ARRAY_SPECS",
    "NUM_CAPSULES",
    "NUM_FINE_PARTS",
    "PickleLimitError",
    "PickleLimits",
    "ProceduralHand",
    "UnsafePickleError",
    "capsule_mesh_template",
    "capsule_mesh_vertices",
    "capsule_sdf",
    "forward_kinematics",
    "joint_part_labels",
    "layer_pose_from_rotations",
    "linear_blend_skinning",
    "load_mano_arrays",
    "rotations_from_joints",
    "sample_capsule_surface",
    "swing_inverse_kinematics",
    "swing_rotation",
    "mano_skin",
    "to_npz",
    "vertex_part_labels",
]
