"""A restricted unpickler for MANO's ``.pkl`` files: chumpy-free and unable to run code.

The official ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` are Python 2 pickles of a
dict holding NumPy arrays, ``chumpy.ch.Ch`` objects (chumpy is unmaintained and
breaks on modern NumPy) and a ``scipy.sparse`` CSC matrix (``J_regressor``).
:func:`restricted_load` reads them without importing chumpy or scipy:

* ``chumpy.*`` classes become inert stand-ins that only record their pickled
  state; :func:`resolve` turns them into arrays afterwards (``Ch`` -> its ``x``;
  ``Select``/``Reshape``/``Transpose`` applied to their ``a``);
* ``scipy.sparse`` CSC/CSR/COO matrices become a stand-in rebuilt as a dense
  array from ``data``/``indices``/``indptr``/``shape`` (no scipy needed);
* only NumPy's array, dtype and scalar reconstruction functions and inert
  builtin containers (``set``, ``frozenset``, ``slice``, ...) are allowed;
* every other global (``os.system``, ``builtins.eval``, ...) is refused with
  :class:`UnsafePickleError` before anything is called.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from typing import Any, BinaryIO

import numpy as np

from hoimask._checks import FileFormatError

__all__ = ["UnsafePickleError", "restricted_load", "resolve"]


class UnsafePickleError(FileFormatError):
    """A pickle refers to a global that the restricted unpickler does not allow."""


def _numpy_attr(name: str, *modules: str) -> Any:
    import importlib

    for mod in modules:
        try:
            return getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"numpy has no {name} in {modules}")


_np_reconstruct = _numpy_attr("_reconstruct", "numpy._core.multiarray", "numpy.core.multiarray")
_np_scalar = _numpy_attr("scalar", "numpy._core.multiarray", "numpy.core.multiarray")
_np_frombuffer = _numpy_attr("_frombuffer", "numpy._core.numeric", "numpy.core.numeric")


def _safe_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not np.ndarray:
        raise UnsafePickleError(f"numpy _reconstruct of {subtype!r} refused; only numpy.ndarray is allowed")
    return _np_reconstruct(np.ndarray, shape, dtype)


class _StandIn:
    """Base of the inert stand-ins: records the pickled state, runs nothing."""

    pickled_class = "?"
    state: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.state: Any = None

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


class _ChumpyStandIn(_StandIn):
    """Stand-in for any ``chumpy`` class."""


class _SparseStandIn(_StandIn):
    """Stand-in for ``scipy.sparse`` CSC / CSR / COO matrices."""


def _safe_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """Replacement of ``copyreg._reconstructor`` that only builds the stand-ins."""
    if not (isinstance(cls, type) and issubclass(cls, _StandIn)) or base is not object:
        raise UnsafePickleError(f"copyreg._reconstructor({cls!r}, {base!r}) refused")
    return cls()


def _latin1_encode(text: Any, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` limited to the text encodings pickle itself uses for bytes."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"_codecs.encode({type(text).__name__}, {encoding!r}) refused")
    return text.encode("latin1")


_BUILTINS: dict[str, Any] = {
    "object": object,
    "set": set,
    "frozenset": frozenset,
    "list": list,
    "dict": dict,
    "tuple": tuple,
    "slice": slice,
    "complex": complex,
    "bytearray": bytearray,
}
_SPARSE = ("csc_matrix", "csr_matrix", "coo_matrix")


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO) -> None:
        super().__init__(file, encoding="latin1")
        self._stand_ins: dict[tuple[str, str], type] = {}

    def _stand_in(self, module: str, name: str, base: type) -> type:
        key = (module, name)
        if key not in self._stand_ins:
            self._stand_ins[key] = type(name, (base,), {"pickled_class": f"{module}.{name}"})
        return self._stand_ins[key]

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in {("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor")}:
            return _safe_reconstructor
        if module in {"__builtin__", "builtins"} and name in _BUILTINS:
            return _BUILTINS[name]  # inert constructors that pickles of chumpy state may use
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module in {"numpy.core.multiarray", "numpy._core.multiarray"}:
            if name == "_reconstruct":
                return _safe_reconstruct
            if name == "scalar":
                return _np_scalar
        if module in {"numpy.core.numeric", "numpy._core.numeric"} and name == "_frombuffer":
            return _np_frombuffer
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode  # Python 3 pickles (protocol <= 2) store bytes this way
        if module == "numpy" and name == "ndarray":
            return np.ndarray
        if module == "numpy" and name == "dtype":
            return np.dtype
        if module == "chumpy" or module.startswith("chumpy."):
            return self._stand_in(module, name, _ChumpyStandIn)
        if (module == "scipy.sparse" or module.startswith("scipy.sparse.")) and name in _SPARSE:
            return self._stand_in(module, name, _SparseStandIn)
        raise UnsafePickleError(
            f"refusing to load global '{module}.{name}': only NumPy arrays, chumpy objects and "
            "scipy.sparse matrices are allowed in a MANO pickle"
        )


def restricted_load(file: BinaryIO) -> Any:
    """Unpickle ``file`` with the restricted unpickler (Python 2 pickles read as latin-1).

    Args:
        file: a binary file object positioned at the start of the pickle.

    Returns:
        The unpickled object, with chumpy and scipy objects still as stand-ins
        (pass it to :func:`resolve`).

    Raises:
        UnsafePickleError: the pickle names a global outside the allow-list.
    """
    return _RestrictedUnpickler(file).load()


def _sparse_to_dense(obj: _SparseStandIn) -> np.ndarray:
    st = obj.state_dict()
    shape = st.get("_shape", st.get("shape"))
    if shape is None or "data" not in st:
        raise FileFormatError(f"pickled {obj.pickled_class} lacks 'data' or '_shape' in its state")
    rows, cols = (int(s) for s in shape)
    data = np.asarray(resolve(st["data"]))
    dense = np.zeros((rows, cols), dtype=data.dtype)
    kind = obj.pickled_class.rsplit(".", 1)[-1]
    if kind == "coo_matrix":
        if "coords" in st:  # scipy >= 1.13
            r, c = (np.asarray(x, dtype=np.int64) for x in resolve(st["coords"]))
        else:
            r = np.asarray(resolve(st["row"]), dtype=np.int64)
            c = np.asarray(resolve(st["col"]), dtype=np.int64)
        np.add.at(dense, (r, c), data)
        return dense
    indices = np.asarray(resolve(st["indices"]), dtype=np.int64)
    indptr = np.asarray(resolve(st["indptr"]), dtype=np.int64)
    outer = cols if kind == "csc_matrix" else rows
    if indptr.shape != (outer + 1,) or indices.shape != data.shape or indptr[-1] != data.size:
        raise FileFormatError(f"pickled {obj.pickled_class} has inconsistent data/indices/indptr")
    major = np.repeat(np.arange(outer), np.diff(indptr))  # column (CSC) or row (CSR) of every entry
    if kind == "csc_matrix":
        np.add.at(dense, (indices, major), data)
    else:
        np.add.at(dense, (major, indices), data)
    return dense


def _chumpy_to_array(obj: _ChumpyStandIn) -> np.ndarray:
    st = obj.state_dict()
    kind = obj.pickled_class.rsplit(".", 1)[-1]
    if "x" in st and kind == "Ch":
        return np.asarray(resolve(st["x"]))
    if "a" in st:
        a = np.asarray(resolve(st["a"]))
        if kind == "Select":
            out = a.ravel()[np.asarray(resolve(st["idxs"]), dtype=np.int64)]
            shape = st.get("preferred_shape")
            return out.reshape(shape) if shape is not None else out
        if kind == "Reshape":
            return a.reshape(resolve(st["newshape"]))
        if kind == "Transpose":
            return a.transpose(resolve(st.get("axes")))
    if "x" in st:
        return np.asarray(resolve(st["x"]))
    raise FileFormatError(
        f"cannot turn pickled chumpy object {obj.pickled_class} into an array "
        f"(state keys {sorted(st)}); convert the file with chumpy installed"
    )


def resolve(obj: Any) -> Any:
    """Replace the stand-ins inside ``obj`` (dicts, lists, tuples) by NumPy arrays.

    Args:
        obj: the result of :func:`restricted_load` or any part of it.

    Returns:
        The same structure with chumpy objects and sparse matrices as dense arrays.
    """
    if isinstance(obj, _ChumpyStandIn):
        return _chumpy_to_array(obj)
    if isinstance(obj, _SparseStandIn):
        return _sparse_to_dense(obj)
    if isinstance(obj, dict):
        return {k: resolve(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [resolve(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(resolve(v) for v in obj)
    return obj
