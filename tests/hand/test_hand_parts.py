"""Hand-part labels of MANO vertices (grasping_field / AlignSDF / HOISDF convention)."""

from __future__ import annotations

import pytest
import torch

from hoimask._checks import ShapeError, ValueRangeError
from hoimask.hand import HAND_PART_NAMES, NUM_FINE_PARTS, joint_part_labels, vertex_part_labels
from hoimask.hand.testing import synthetic_mano_arrays
from hoimask.skeleton import MANO_JOINT_NAMES

SEGMENT = {"mcp": "proximal", "pip": "middle", "dip": "distal"}


def test_joints_map_one_to_one_onto_the_fine_parts():
    coarse, fine = joint_part_labels()
    assert sorted(fine.tolist()) == list(range(NUM_FINE_PARTS))  # 16 joints, 16 parts
    for name, c, f in zip(MANO_JOINT_NAMES, coarse.tolist(), fine.tolist()):
        if name == "wrist":
            assert (c, f, HAND_PART_NAMES[f]) == (0, 0, "palm")
            continue
        finger, joint = name.split("_")
        i = ("thumb", "index", "middle", "ring", "little").index(finger)
        assert c == i + 1 and HAND_PART_NAMES[f] == f"{finger}_{SEGMENT[joint]}"
        assert (f - 1) // 3 == i  # grasping_field's 3 i + j + 1, j = 0 distal


def test_vertices_take_the_part_of_their_heaviest_joint():
    weights = torch.from_numpy(synthetic_mano_arrays("right")["weights"])
    coarse, fine = vertex_part_labels(weights)
    j_coarse, j_fine = joint_part_labels()
    heaviest = weights.argmax(1)
    assert torch.equal(fine, j_fine[heaviest]) and torch.equal(coarse, j_coarse[heaviest])
    assert fine.shape == (778,) and fine.dtype == torch.int64
    tie = torch.zeros(1, 16, dtype=torch.float64)
    tie[0, [3, 13]] = 0.5  # index DIP and thumb MCP tie: the lower joint index wins
    assert vertex_part_labels(tie)[1].tolist() == [j_fine[3].item()]


def test_bad_weights_raise_typed_errors():
    with pytest.raises(ShapeError, match="weights"):
        vertex_part_labels(torch.ones(5, 15))
    with pytest.raises(ValueRangeError, match="row 1 has no positive weight"):
        vertex_part_labels(torch.tensor([[1.0] + [0.0] * 15, [0.0] * 16]))
