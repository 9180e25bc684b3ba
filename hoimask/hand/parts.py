"""Hand-part labels of MANO vertices, in the convention of grasping_field / AlignSDF / HOISDF.

The SDF pipelines of grasping_field, AlignSDF, gSDF and HOISDF label every
hand SDF sample with the hand part it lies nearest to. Their labels come from
a per-*face* table of the sealed MANO mesh (grasping_field,
``scripts/sample_points/hand_model_seg/face2label.py``, 1554 faces × 4 columns):

* column 0, *coarse*: 0 palm, 1 thumb, 2 index, 3 middle, 4 ring, 5 little
  (finger ``i`` in the order thumb, index, middle, ring, little gets ``i + 1``);
* column 1, *fine*: 0 palm, ``3 i + j + 1`` for finger ``i`` and segment ``j``
  — 16 classes; HOISDF's ``tool/pre_process_sdf.py`` keeps this column;
* column 2, a contact region (fingertip pads and palm), column 3 a flag for the
  16 faces that seal the wrist.

That table lists hand-picked face indices; hoimask does not copy it. It derives
the same two label columns from MANO's **skinning weights**: a vertex belongs
to the joint with the largest weight, the wrist joint to the palm and the
three joints of a finger (MANO's ``*_mcp``, ``*_pip``, ``*_dip``, which move
its proximal, middle and distal segments) to that finger's segments. Segment
``j = 0`` is the *distal* one: grasping_field's fingertip contact faces all lie
in each finger's first face list (an inference from the table, stated here
because the script does not name the segments). The boundaries therefore
follow MANO's skinning, not the hand-drawn ones; contact regions and the seal
flag are not derived.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hoimask._checks import ValueRangeError, check_floating, check_shape
from hoimask.skeleton import MANO_JOINT_NAMES

__all__ = ["HAND_PART_FINGERS", "HAND_PART_NAMES", "NUM_FINE_PARTS", "joint_part_labels", "vertex_part_labels"]

#: Finger order of the part labels (grasping_field's ``hand = [thumb, index, middle, ring, little]``).
HAND_PART_FINGERS: tuple[str, ...] = ("thumb", "index", "middle", "ring", "little")
#: Segment order within a finger: ``j = 0`` distal, 1 middle, 2 proximal.
_SEGMENT_OF_JOINT = {"dip": 0, "pip": 1, "mcp": 2}
#: Number of fine labels (palm + 5 fingers × 3 segments).
NUM_FINE_PARTS = 16
#: Name of each fine label.
HAND_PART_NAMES: tuple[str, ...] = ("palm",) + tuple(
    f"{finger}_{segment}" for finger in HAND_PART_FINGERS for segment in ("distal", "middle", "proximal")
)


def joint_part_labels() -> tuple[Tensor, Tensor]:
    """Coarse and fine part label of each of MANO's 16 kinematic joints.

    Returns:
        ``(coarse, fine)``, int64: coarse 0 palm (the wrist joint), ``i + 1``
        for finger ``i`` of :data:`HAND_PART_FINGERS`; fine 0 palm,
        ``3 i + j + 1`` with segment ``j`` (0 distal, 1 middle, 2 proximal).

    Shape:
        ``-> (16,), (16,)``

    Example:
        >>> coarse, fine = joint_part_labels()
        >>> coarse.tolist()[:4], fine.tolist()[:4]  # wrist, index MCP, PIP, DIP
        ([0, 2, 2, 2], [0, 6, 5, 4])
    """
    coarse, fine = [], []
    for name in MANO_JOINT_NAMES:
        if name == "wrist":
            coarse.append(0)
            fine.append(0)
            continue
        finger, joint = name.split("_")
        i = HAND_PART_FINGERS.index(finger)
        coarse.append(i + 1)
        fine.append(3 * i + _SEGMENT_OF_JOINT[joint] + 1)
    return torch.tensor(coarse), torch.tensor(fine)


def vertex_part_labels(weights: Tensor) -> tuple[Tensor, Tensor]:
    """Coarse and fine hand-part label of every MANO vertex from its skinning weights.

    A vertex takes the label of the joint with its largest weight (the lowest
    joint index on ties); see the module docstring for the convention.

    Args:
        weights: MANO's linear-blend-skinning weights (``MANOLayer.weights``),
            joints in MANO's kinematic order.

    Returns:
        ``(coarse, fine)`` int64 labels.

    Shape:
        - weights: ``(V, 16)``
        - coarse, fine: ``(V,)``

    Raises:
        ShapeError: not ``(V, 16)``. DTypeError: not floating.
        ValueRangeError: a row without a positive weight.

    Example:
        >>> w = torch.zeros(3, 16)
        >>> w[0, 0], w[1, 15], w[2, 7] = 1.0, 1.0, 1.0   # wrist, thumb DIP, little MCP
        >>> [t.tolist() for t in vertex_part_labels(w)]
        [[0, 1, 5], [0, 1, 15]]
    """
    check_shape(weights, "V 16", name="weights", fn="vertex_part_labels")
    check_floating(weights, name="weights", fn="vertex_part_labels")
    best = weights.max(dim=1)
    if bool((~(best.values > 0)).any()):
        bad = int((~(best.values > 0)).nonzero()[0, 0])
        raise ValueRangeError(f"vertex_part_labels(): argument 'weights' row {bad} has no positive weight")
    coarse, fine = joint_part_labels()
    joint = best.indices.cpu()
    return coarse[joint].to(weights.device), fine[joint].to(weights.device)
