"""Kinematic tree: traversals, depths, joint orders."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.skeleton import (
    BONES,
    FINGER_CHAINS,
    HO3D_JOINT_NAMES,
    JOINT_DEPTH,
    JOINT_INDEX,
    JOINT_NAMES,
    MANO_PARENTS,
    PARENTS,
    bfs,
    bones,
    children,
    convert_joint_order,
    depths,
    dfs,
    levels,
    order_indices,
    subtree,
    validate_parents,
)


@st.composite
def trees(draw, max_nodes: int = 30):
    """Random rooted trees: node j > 0 picks a parent among earlier nodes, then labels are shuffled."""
    num = draw(st.integers(1, max_nodes))
    raw = [-1] + [draw(st.integers(0, j - 1)) for j in range(1, num)]
    perm = draw(st.permutations(list(range(num))))
    parents = [0] * num
    for j, p in enumerate(raw):
        parents[perm[j]] = -1 if p < 0 else perm[p]
    return parents


def test_hand_tree_constants():
    assert JOINT_NAMES[0] == "wrist" and len(JOINT_NAMES) == 21
    assert depths(PARENTS) == JOINT_DEPTH
    assert bones(PARENTS) == BONES and len(BONES) == 20
    assert children(PARENTS)[0] == (1, 5, 9, 13, 17)
    assert [JOINT_NAMES[j] for j in levels(PARENTS)[4]] == [f"{f}_tip" for f in ("thumb", "index", "middle", "ring", "little")]
    assert dfs(PARENTS, root=JOINT_INDEX["index_mcp"]) == list(FINGER_CHAINS["index"])
    assert bfs(PARENTS)[:6] == [0, 1, 5, 9, 13, 17]
    assert subtree(PARENTS, JOINT_INDEX["ring_pip"]) == [JOINT_INDEX[n] for n in ("ring_pip", "ring_dip", "ring_tip")]
    assert dfs(MANO_PARENTS)[:4] == [0, 1, 2, 3]


@given(trees())
def test_bfs_visits_parents_before_children(parents):
    order = bfs(parents)
    assert sorted(order) == list(range(len(parents)))
    position = {node: i for i, node in enumerate(order)}
    for node, parent in enumerate(parents):
        if parent >= 0:
            assert position[parent] < position[node]
    # BFS is level by level: depths never decrease along the order.
    d = depths(parents)
    assert all(d[a] <= d[b] for a, b in zip(order, order[1:]))


@given(trees(), st.data())
def test_dfs_visits_each_subtree_node_once_contiguously(parents, data):
    root = data.draw(st.integers(0, len(parents) - 1))
    order = dfs(parents, root)
    assert len(order) == len(set(order)) and order[0] == root
    # The nodes of the subtree are exactly those whose ancestor chain meets root.
    expected = []
    for j in range(len(parents)):
        k = j
        while k != -1 and k != root:
            k = parents[k]
        if k == root:
            expected.append(j)
    assert sorted(order) == expected == subtree(parents, root)
    # Pre-order: every child's own subtree is a contiguous block right after it.
    for i, node in enumerate(order):
        block = subtree(parents, node)
        assert sorted(order[i : i + len(block)]) == block


@given(trees())
def test_levels_partition_by_depth(parents):
    d = depths(parents)
    lv = levels(parents)
    assert sum(len(x) for x in lv) == len(parents)
    for depth, nodes in enumerate(lv):
        assert all(d[n] == depth for n in nodes)


@pytest.mark.parametrize(
    "parents, error",
    [([], ValueRangeError), ([-1, -1], ValueRangeError), ([-1, 5], ValueRangeError), ([1, 2, 1, -1], ValueRangeError),
     ([-1, 0.5], DTypeError), ([-1, 1], ValueRangeError)],
)
def test_invalid_trees_raise(parents, error):
    with pytest.raises(error, match="parents"):
        validate_parents(parents)


def test_hand_tree_is_the_default_and_array_parents_work():
    import numpy as np

    assert dfs(root=JOINT_INDEX["index_mcp"]) == list(FINGER_CHAINS["index"])
    assert bfs() == bfs(PARENTS) == bfs(np.array(PARENTS)) == bfs(torch.tensor(PARENTS))
    assert levels()[1] == [1, 5, 9, 13, 17]
    with pytest.raises(DTypeError, match="parents"):
        bfs(5)


def test_bad_root_raises():
    with pytest.raises(ValueRangeError, match="root"):
        bfs(PARENTS, root=21)
    with pytest.raises(DTypeError, match="root"):
        dfs(PARENTS, root="wrist")


def test_joint_order_round_trip_and_names():
    x = torch.randn(3, 21, 2)
    mano = convert_joint_order(x, "canonical", "mano")
    assert torch.equal(convert_joint_order(mano, "mano", "canonical"), x)
    assert torch.equal(convert_joint_order(x, "canonical", "ho3d"), mano)
    for i, name in enumerate(HO3D_JOINT_NAMES):
        assert torch.equal(mano[:, i], x[:, JOINT_INDEX[name]])
    # HO3D evaluation's known MANO -> simple (canonical) mapping.
    assert order_indices("ho3d", "canonical") == [0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20]
    with pytest.raises(ShapeError, match="joints"):
        convert_joint_order(torch.zeros(3, 20, 2), "canonical", "mano")
    with pytest.raises(ValueRangeError, match="source"):
        order_indices("openpose", "canonical")
