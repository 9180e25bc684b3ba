"""The last check of a restricted load: the result, expanded as a tree, within the limits."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import numpy as np

from hoimask.hand._pickle_budget import PickleBudget, PickleLimitError
from hoimask.hand._pickle_standins import StandIn

__all__ = ["check_tree"]

_END = object()


def _children(obj: Any) -> tuple[Iterable[Any] | None, int]:
    """The objects ``obj`` refers to (``None`` for an atom) and the bytes of data it holds itself."""
    if isinstance(obj, dict):
        return itertools.chain(obj.keys(), obj.values()), 8 * len(obj)
    if isinstance(obj, (list, tuple, set, frozenset)):
        return obj, 8 * len(obj)
    if isinstance(obj, StandIn):
        return (obj.args, obj.state), 0
    if isinstance(obj, slice):
        return (obj.start, obj.stop, obj.step), 0
    if isinstance(obj, np.ndarray):
        return (obj.flat if obj.dtype.hasobject else None), int(obj.nbytes)
    if isinstance(obj, (str, bytes, bytearray)):
        return None, len(obj)
    if isinstance(obj, int):
        return None, obj.bit_length() // 8
    return None, 0


def check_tree(obj: Any, budget: PickleBudget) -> None:
    """Refuse a result that, expanded as a tree, is too large, too deep or cyclic.

    Shared references count every time they occur, because :func:`resolve` and
    any code walking the result visits them that often: fifty tuples each
    holding the previous one twice expand to ``2**50`` nodes. The expansion is
    never walked: each distinct object's expanded size and height are computed
    once, bottom-up, from its children's (time linear in the objects and
    references actually loaded), iteratively, with ``O(max_depth)`` open frames.
    """
    limits = budget.limits
    done: dict[int, tuple[int, int, int]] = {}  # id -> (nodes, data bytes, height) of the expanded object
    open_ids: set[int] = set()
    stack: list[list] = []  # [object, children iterator, nodes, data bytes, height of the tallest child]

    def add(frame: list, nodes: int, nbytes: int, height: int) -> None:
        frame[2] += nodes
        frame[3] += nbytes
        frame[4] = max(frame[4], height)
        if frame[2] > limits.max_objects:
            raise PickleLimitError(
                f"pickle refused: its result expands to more than max_objects={limits.max_objects} objects "
                "(shared references counted each time they occur)"
            )
        if frame[3] > limits.max_memory_bytes:
            raise PickleLimitError(
                f"pickle refused: its result expands to more than max_memory_bytes={limits.max_memory_bytes} "
                "bytes of data (shared references counted each time they occur)"
            )
        budget.check_depth(len(stack) - 1 + height, "the result is")  # the top frame holds depth len(stack) - 1

    root = [None, iter((obj,)), 0, 0, 0]
    stack.append(root)
    edges = 0
    while stack:
        frame = stack[-1]
        child = next(frame[1], _END)
        if child is _END:
            stack.pop()
            if frame is not root:
                open_ids.discard(id(frame[0]))
                done[id(frame[0])] = result = (frame[2], frame[3], frame[4] + 1)
                add(stack[-1], *result)
            continue
        edges += 1
        if not edges % 4096:
            budget.check_time()
        key = id(child)
        if key in done:
            add(frame, *done[key])
            continue
        if key in open_ids:
            raise PickleLimitError("pickle refused: its result contains a reference cycle (an infinitely deep tree)")
        children, nbytes = _children(child)
        if children is None:
            add(frame, 1, nbytes, 1)
            continue
        budget.check_depth(len(stack), "the result is")
        open_ids.add(key)
        stack.append([child, iter(children), 1, nbytes, 0])
