"""Inert stand-ins for the chumpy and scipy objects in MANO pickles, and :func:`resolve` that densifies them.

The restricted unpickler (:mod:`hoimask.hand._unpickle`) never imports chumpy
or scipy: their classes load as subclasses of :class:`StandIn`, which only
record the pickled arguments and state. :func:`resolve` then turns them into
NumPy arrays (``Ch`` -> its ``x``; ``Select``/``Reshape``/``Transpose`` applied
to their ``a``; CSC/CSR/COO matrices -> dense), charging every array it builds
to a :class:`~hoimask.hand._pickle_budget.PickleBudget`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hoimask._checks import FileFormatError
from hoimask.hand._pickle_budget import DEFAULT_PICKLE_LIMITS, PickleBudget, PickleLimits

__all__ = ["ChumpyStandIn", "SparseStandIn", "StandIn", "resolve"]


class StandIn:
    """Base of the inert stand-ins: records the pickled arguments and state, runs nothing."""

    pickled_class = "?"
    args: tuple = ()
    state: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.state = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def state_dict(self) -> dict[str, Any]:
        state = self.state
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], (dict, type(None))):
            merged = dict(state[0] or {})
            merged.update(state[1] or {})
            return merged
        if isinstance(state, dict):
            return state
        raise FileFormatError(f"pickled {self.pickled_class} object has unexpected state {type(state).__name__}")


class ChumpyStandIn(StandIn):
    """Stand-in for any ``chumpy`` class."""


class SparseStandIn(StandIn):
    """Stand-in for ``scipy.sparse`` CSC / CSR / COO matrices."""


def _sparse_to_dense(obj: SparseStandIn, budget: PickleBudget) -> np.ndarray:
    st = obj.state_dict()
    shape = st.get("_shape", st.get("shape"))
    if shape is None or "data" not in st:
        raise FileFormatError(f"pickled {obj.pickled_class} lacks 'data' or '_shape' in its state")
    rows, cols = (int(s) for s in shape)
    data = np.asarray(_resolve(st["data"], budget))
    if rows < 0 or cols < 0 or data.ndim != 1:
        raise FileFormatError(f"pickled {obj.pickled_class} has a negative shape or non-vector data")
    budget.charge(rows * cols * data.dtype.itemsize, f"the dense {rows}x{cols} {obj.pickled_class}")
    dense = np.zeros((rows, cols), dtype=data.dtype)
    kind = obj.pickled_class.rsplit(".", 1)[-1]
    if kind == "coo_matrix":
        if "coords" in st:  # scipy >= 1.13
            r, c = (np.asarray(x, dtype=np.int64) for x in _resolve(st["coords"], budget))
        else:
            r = np.asarray(_resolve(st["row"], budget), dtype=np.int64)
            c = np.asarray(_resolve(st["col"], budget), dtype=np.int64)
        if r.shape != data.shape or c.shape != data.shape or r.size and (
                r.min() < 0 or r.max() >= rows or c.min() < 0 or c.max() >= cols):  # fmt: skip
            raise FileFormatError(f"pickled {obj.pickled_class} has coordinates outside its shape")
        np.add.at(dense, (r, c), data)
        return dense
    indices = np.asarray(_resolve(st["indices"], budget), dtype=np.int64)
    indptr = np.asarray(_resolve(st["indptr"], budget), dtype=np.int64)
    outer, inner = (cols, rows) if kind == "csc_matrix" else (rows, cols)
    if (indptr.shape != (outer + 1,) or indices.shape != data.shape or indptr[0] != 0 or indptr[-1] != data.size
            or (np.diff(indptr) < 0).any() or indices.size and (indices.min() < 0 or indices.max() >= inner)):
        raise FileFormatError(f"pickled {obj.pickled_class} has inconsistent data/indices/indptr")
    major = np.repeat(np.arange(outer), np.diff(indptr))  # column (CSC) or row (CSR) of every entry
    if kind == "csc_matrix":
        np.add.at(dense, (indices, major), data)
    else:
        np.add.at(dense, (major, indices), data)
    return dense


def _chumpy_to_array(obj: ChumpyStandIn, budget: PickleBudget) -> np.ndarray:
    st = obj.state_dict()
    kind = obj.pickled_class.rsplit(".", 1)[-1]
    if "x" in st and kind == "Ch":
        return np.asarray(_resolve(st["x"], budget))
    if "a" in st:
        a = np.asarray(_resolve(st["a"], budget))
        if kind == "Select":
            idxs = np.asarray(_resolve(st["idxs"], budget), dtype=np.int64)
            budget.charge(idxs.size * a.itemsize, f"pickled {obj.pickled_class}")
            out = a.ravel()[idxs]
            shape = st.get("preferred_shape")
            return out.reshape(shape) if shape is not None else out
        if kind == "Reshape":
            return a.reshape(_resolve(st["newshape"], budget))
        if kind == "Transpose":
            return a.transpose(_resolve(st.get("axes"), budget))
    if "x" in st:
        return np.asarray(_resolve(st["x"], budget))
    raise FileFormatError(
        f"cannot turn pickled chumpy object {obj.pickled_class} into an array "
        f"(state keys {sorted(st)}); convert the file with chumpy installed"
    )


def _resolve(obj: Any, budget: PickleBudget) -> Any:
    if isinstance(obj, ChumpyStandIn):
        return _chumpy_to_array(obj, budget)
    if isinstance(obj, SparseStandIn):
        return _sparse_to_dense(obj, budget)
    if isinstance(obj, dict):
        return {k: _resolve(v, budget) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_resolve(v, budget) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_resolve(v, budget) for v in obj)
    return obj


def resolve(obj: Any, *, limits: PickleLimits | None = None) -> Any:
    """Replace the stand-ins inside ``obj`` (dicts, lists, tuples) by NumPy arrays.

    Args:
        obj: the result of :func:`restricted_load` or any part of it (already
            bounded in size and depth by it).
        limits: bounds the memory of the arrays built here (dense sparse
            matrices, chumpy selections); default as :func:`restricted_load`.

    Returns:
        The same structure with chumpy objects and sparse matrices as dense arrays.

    Raises:
        PickleLimitError: a dense matrix would exceed ``limits.max_memory_bytes``.
        FileFormatError: a stand-in's state is inconsistent.
    """
    return _resolve(obj, PickleBudget(limits or DEFAULT_PICKLE_LIMITS))
