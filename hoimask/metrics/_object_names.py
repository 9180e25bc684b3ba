"""Object names of the evaluator: which objects to leave out of the object metrics (HOISDF's HO3D protocol).

Kept apart from :mod:`hoimask.metrics.evaluator` so that file holds only the
accumulation logic. A batch names its objects with the samples'
``object_name`` key (a list of ``B`` strings after :func:`hoimask.data.collate`;
``""`` for an unnamed object).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from hoimask._checks import DTypeError, ShapeError, ValueRangeError

__all__ = ["HOISDF_HO3D_EXCLUDED_OBJECTS", "batch_object_names", "check_exclude_objects", "excluded_by_name"]

#: Objects HOISDF's HO3D evaluation leaves out of the object metrics (its ``main/test.py``; anchors §2, "MME (HO3D)").
HOISDF_HO3D_EXCLUDED_OBJECTS: tuple[str, ...] = ("019_pitcher_base",)


def check_exclude_objects(names: Iterable[str], *, fn: str) -> tuple[str, ...]:
    """``names`` as a tuple of distinct, non-empty object names, in the order given.

    Args:
        names: an iterable of names such as ``("019_pitcher_base",)``; not a
            bare string (it would be read letter by letter).
        fn: the calling function for error messages.

    Returns:
        The names, duplicates dropped.

    Raises:
        DTypeError: ``names`` is a string or not iterable, or holds a non-string.
        ValueRangeError: an empty name (``""`` marks an *unnamed* object).
    """
    if isinstance(names, (str, bytes)) or not isinstance(names, Iterable):
        raise DTypeError(f"{fn}(): argument 'exclude_objects' expected an iterable of object names, e.g. "
                         f"('019_pitcher_base',), got {names!r}")
    out = []
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise DTypeError(f"{fn}(): argument 'exclude_objects' expected object names (str), got "
                             f"{type(name).__name__} {name!r} at index {i}")
        if not name:
            raise ValueRangeError(f"{fn}(): argument 'exclude_objects' expected non-empty names ('' marks an "
                                  f"unnamed object), got '' at index {i}")
        out.append(name)
    return tuple(dict.fromkeys(out))


def batch_object_names(object_name: Sequence[str] | None, B: int, *, fn: str) -> list[str] | None:
    """A batch's object names, checked (``None`` passes through).

    Args:
        object_name: ``B`` names (a batch's ``object_name``: a list or tuple of str), or ``None``.
        B: the batch size.
        fn: the calling function for error messages.

    Returns:
        The names as a list, or ``None``.

    Raises:
        DTypeError: ``object_name`` is a string or not a sequence, or holds a non-string.
        ShapeError: ``object_name`` does not hold ``B`` names.
    """
    if object_name is None:
        return None
    if isinstance(object_name, (str, bytes)) or not isinstance(object_name, (Sequence, np.ndarray)):
        raise DTypeError(f"{fn}(): argument 'object_name' expected a list of B object names (a batch's "
                         f"'object_name'), got {type(object_name).__name__}")
    names = list(object_name)
    if len(names) != B:
        raise ShapeError(f"{fn}(): argument 'object_name' expected B={B} names, got {len(names)}")
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise DTypeError(f"{fn}(): argument 'object_name' expected str names, got "
                             f"{type(name).__name__} {name!r} at index {i}")
    return names


def excluded_by_name(names: list[str], exclude: Sequence[str], valid: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """Which samples with an object carry an excluded one, and how many per excluded name.

    Args:
        names: the batch's ``B`` object names (:func:`batch_object_names`).
        exclude: the evaluator's ``exclude_objects``.
        valid: ``(B,)`` bool, the samples that have an object (not ``hand_only``).

    Returns:
        ``(mask (B,) bool, {name: count})``: ``mask`` is ``valid`` and named in
        ``exclude``; every name of ``exclude`` is a key of the counts.
    """
    wanted = set(exclude)
    mask = np.array([name in wanted for name in names], dtype=bool) & valid
    return mask, {name: sum(1 for n, m in zip(names, mask) if m and n == name) for name in exclude}
