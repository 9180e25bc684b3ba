"""Traversals over a kinematic tree given as a parent list.

A tree over ``J`` nodes is written as a sequence ``parents`` of length ``J``
where ``parents[j]`` is the parent of node ``j`` and exactly one node (the root
of the whole tree) has parent ``-1``. Every function here works on any such
tree; ``parents`` defaults to the hand's tree, :data:`hoimask.skeleton.PARENTS`,
so ``dfs(root=5)`` is the index finger.

Children are always visited in increasing index order, so every traversal is
deterministic. For the canonical hand this means BFS from the wrist visits the
five MCPs (thumb ... little), then the five PIPs, and so on, and DFS visits
whole fingers one after another (MaskHOI §III-B uses both to build occlusion
patterns).

    >>> from hoimask.skeleton import PARENTS, bfs, dfs
    >>> bfs(PARENTS)[:6]
    [0, 1, 5, 9, 13, 17]
    >>> dfs(PARENTS, root=5)
    [5, 6, 7, 8]
"""

from __future__ import annotations

import operator
from collections import deque
from collections.abc import Sequence

from hoimask._checks import DTypeError, ValueRangeError, check_int
from hoimask.skeleton.joints import PARENTS

__all__ = [
    "validate_parents",
    "children",
    "bfs",
    "dfs",
    "depths",
    "levels",
    "subtree",
    "bones",
]


def validate_parents(parents: Sequence[int], *, name: str = "parents") -> tuple[int, ...]:
    """Check that ``parents`` describes a single rooted tree and return it as a tuple.

    Args:
        parents: ``parents[j]`` is the parent index of node ``j``; ``-1`` marks the root.
        name: argument name used in error messages.

    Returns:
        ``parents`` as a tuple of ints.

    Raises:
        DTypeError: an entry is not an integer.
        ValueRangeError: an index is out of range, there is not exactly one root,
            or the parent links contain a cycle.
    """
    if isinstance(parents, (str, bytes)) or not hasattr(parents, "__len__") or not hasattr(parents, "__iter__"):
        raise DTypeError(f"argument '{name}': expected a sequence of parent indices, got {type(parents).__name__}")
    out = []
    for j, p in enumerate(parents):
        if isinstance(p, bool) or not isinstance(p, int):
            try:
                p = operator.index(p)  # numpy / torch integer scalars; floats are refused
            except TypeError:
                raise DTypeError(f"argument '{name}': entry {j} must be an int, got {type(p).__name__}") from None
        out.append(p)
    num = len(out)
    if num == 0:
        raise ValueRangeError(f"argument '{name}': expected at least one node, got an empty sequence")
    roots = [j for j, p in enumerate(out) if p == -1]
    if len(roots) != 1:
        raise ValueRangeError(f"argument '{name}': expected exactly one root (parent -1), got {len(roots)}")
    for j, p in enumerate(out):
        if p != -1 and not 0 <= p < num:
            raise ValueRangeError(f"argument '{name}': parent of node {j} must be -1 or in [0, {num}), got {p}")
        if p == j:
            raise ValueRangeError(f"argument '{name}': node {j} is its own parent")
    # Every node must reach the root: walking up at most J steps.
    for j in range(num):
        k, steps = j, 0
        while out[k] != -1:
            k = out[k]
            steps += 1
            if steps > num:
                raise ValueRangeError(f"argument '{name}': the parent links of node {j} form a cycle")
    return tuple(out)


def _check_root(root: int, num: int) -> int:
    return check_int(root, name="root", low=0, high=num - 1)


def children(parents: Sequence[int] = PARENTS) -> tuple[tuple[int, ...], ...]:
    """Children of every node, in increasing index order.

    Args:
        parents: parent list of a tree over ``J`` nodes (default: the canonical hand).

    Returns:
        A tuple of length ``J``; entry ``j`` lists the children of node ``j``.
    """
    par = validate_parents(parents)
    kids: list[list[int]] = [[] for _ in par]
    for j, p in enumerate(par):
        if p >= 0:
            kids[p].append(j)
    return tuple(tuple(k) for k in kids)


def bfs(parents: Sequence[int] = PARENTS, root: int | None = None) -> list[int]:
    """Breadth-first order of the subtree under ``root``.

    Args:
        parents: parent list of a tree over ``J`` nodes (default: the canonical hand).
        root: start node; defaults to the tree's root.

    Returns:
        Node indices, every parent before its children, level by level.
    """
    par = validate_parents(parents)
    kids = children(par)
    start = par.index(-1) if root is None else _check_root(root, len(par))
    order: list[int] = []
    queue = deque([start])
    while queue:
        node = queue.popleft()
        order.append(node)
        queue.extend(kids[node])
    return order


def dfs(parents: Sequence[int] = PARENTS, root: int | None = None) -> list[int]:
    """Depth-first (pre-order) order of the subtree under ``root``.

    Args:
        parents: parent list of a tree over ``J`` nodes (default: the canonical hand).
        root: start node; defaults to the tree's root.

    Returns:
        Node indices; each node is followed by its whole subtree before its next sibling.
    """
    par = validate_parents(parents)
    kids = children(par)
    start = par.index(-1) if root is None else _check_root(root, len(par))
    order: list[int] = []
    stack = [start]
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(reversed(kids[node]))  # smallest child on top
    return order


def depths(parents: Sequence[int] = PARENTS) -> tuple[int, ...]:
    """Depth of every node (the root has depth 0).

    Args:
        parents: parent list of a tree over ``J`` nodes (default: the canonical hand).

    Returns:
        A tuple of length ``J``.
    """
    par = validate_parents(parents)
    out = [0] * len(par)
    for node in bfs(par):
        if par[node] >= 0:
            out[node] = out[par[node]] + 1
    return tuple(out)


def levels(parents: Sequence[int] = PARENTS, root: int | None = None) -> list[list[int]]:
    """Nodes of the subtree under ``root`` grouped by distance from ``root``.

    Args:
        parents: parent list of a tree over ``J`` nodes (default: the canonical hand).
        root: start node; defaults to the tree's root.

    Returns:
        ``levels[d]`` lists, in BFS order, the nodes ``d`` edges below ``root``.
    """
    par = validate_parents(parents)
    order = bfs(par, root)
    dist = {order[0]: 0}
    out: list[list[int]] = [[order[0]]]
    for node in order[1:]:
        d = dist[par[node]] + 1
        dist[node] = d
        if d == len(out):
            out.append([])
        out[d].append(node)
    return out


def subtree(parents: Sequence[int] = PARENTS, root: int = 0) -> list[int]:
    """The nodes of the subtree rooted at ``root`` (itself included), sorted.

    Args:
        parents: parent list of a tree over ``J`` nodes (default: the canonical hand).
        root: the subtree's root.

    Returns:
        Sorted node indices.
    """
    return sorted(dfs(parents, root))


def bones(parents: Sequence[int] = PARENTS) -> tuple[tuple[int, int], ...]:
    """Edges ``(parent, child)`` of the tree, ordered by child index.

    Args:
        parents: parent list of a tree over ``J`` nodes (default: the canonical hand).

    Returns:
        ``J - 1`` pairs ``(parents[j], j)``.
    """
    par = validate_parents(parents)
    return tuple((p, j) for j, p in enumerate(par) if p >= 0)
