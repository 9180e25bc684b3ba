"""The callables a MANO / HO3D pickle may invoke, each a checked, budgeted wrapper.

:class:`AllowedCalls` is a mixin of the restricted unpickler
(:mod:`hoimask.hand._unpickle`): ``find_class`` hands out these bound methods
instead of the real ``set``, ``bytearray``, ``numpy.dtype``, NumPy's
``_reconstruct`` and so on, so every call checks its arguments (no
``bytearray(n)`` with a length, no array shape beyond the memory budget, no
dict key whose hash is slow or can be made to collide) and charges what it
builds to the unpickler's :class:`~hoimask.hand._pickle_budget.PickleBudget`
before building it.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import numpy as np

from hoimask._checks import FileFormatError
from hoimask.hand._pickle_budget import MAX_KEY_INT, PickleBudget, UnsafePickleError

__all__ = ["NDARRAY", "AllowedCalls", "check_key", "element_count"]


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


class _NdarrayMarker:
    """What the global ``numpy.ndarray`` loads as: accepted as ``_reconstruct``'s first argument, never called."""


NDARRAY = _NdarrayMarker()


def check_key(key: Any, where: str) -> None:
    """Refuse a dict key or set item whose hash could be slow or crafted to collide."""
    if type(key) in (str, bytes, bool, type(None)):
        return
    if type(key) is int and -MAX_KEY_INT < key < MAX_KEY_INT:
        return
    raise UnsafePickleError(
        f"{where}: key of type {type(key).__name__} refused (dict keys and set items may only be str, bytes, "
        "bool, None or ints below 2**60)"
    )


def element_count(shape: Any, where: str) -> int:
    """Number of elements of an array ``shape`` (exact Python ints: no overflow)."""
    dims = (shape,) if type(shape) is int else shape
    if type(dims) not in (tuple, list) or len(dims) > 32 or any(type(d) is not int or d < 0 for d in dims):
        raise FileFormatError(f"{where}: array shape must be a tuple of at most 32 non-negative ints")
    return math.prod(dims)


class AllowedCalls:
    """The allow-listed callables as bound methods of the unpickler; it provides the attributes below.

    Attributes:
        budget: the load's :class:`PickleBudget`.
        classes: ids of the stand-in classes (the only classes ``copyreg._reconstructor`` may build).
        callables: ids of everything a pickle may call (these methods and the stand-in classes).
        fresh_dtypes: dtypes built by :meth:`_dtype` that may still receive their state (``BUILD``).
    """

    budget: PickleBudget
    classes: set[int]
    callables: set[int]
    fresh_dtypes: dict[int, np.dtype]

    def _reconstructor(self, cls: Any, base: Any, state: Any = None) -> Any:
        """``copyreg._reconstructor`` limited to stand-ins with base ``object``."""
        if id(cls) not in self.classes or base is not object:
            raise UnsafePickleError(
                f"copyreg._reconstructor of a {type(cls).__name__} with base {type(base).__name__} refused"
            )
        return cls()

    def _items(self, items: Any, where: str, *, hashed: bool) -> list | tuple:
        if type(items) not in (list, tuple, set, frozenset):
            raise UnsafePickleError(f"{where} of a {type(items).__name__} refused (only lists, tuples and sets)")
        if hashed:
            for item in items:
                check_key(item, where)
        self.budget.charge(64 + (64 if hashed else 8) * len(items), where)
        return items

    def _set(self, items: Any = ()) -> set:
        return set(self._items(items, "set()", hashed=True))

    def _frozenset(self, items: Any = ()) -> frozenset:
        return frozenset(self._items(items, "frozenset()", hashed=True))

    def _list(self, items: Any = ()) -> list:
        return list(self._items(items, "list()", hashed=False))

    def _tuple(self, items: Any = ()) -> tuple:
        return tuple(self._items(items, "tuple()", hashed=False))

    def _mapping(self, kind: type, where: str, pairs: Any, kwargs: dict) -> dict:
        items = list(pairs.items()) if isinstance(pairs, dict) else list(self._items(pairs, where, hashed=False))
        if any(type(p) not in (list, tuple) or len(p) != 2 for p in items):
            raise FileFormatError(f"{where}: expected (key, value) pairs")
        items.extend(kwargs.items())
        for key, _ in items:
            check_key(key, where)
        self.budget.charge(64 + 100 * len(items), where)
        return kind(items)

    def _dict(self, pairs: Any = (), **kwargs: Any) -> dict:
        return self._mapping(dict, "dict()", pairs, kwargs)

    def _ordered_dict(self, pairs: Any = (), **kwargs: Any) -> OrderedDict:
        return self._mapping(OrderedDict, "OrderedDict()", pairs, kwargs)

    def _bytearray(self, source: Any = b"", encoding: Any = None, errors: Any = None) -> bytearray:
        if isinstance(source, (bytes, bytearray)) and encoding is None:
            data = bytes(source)
        elif isinstance(source, str) and encoding in ("latin1", "latin-1"):
            data = source.encode("latin1")
        else:
            raise UnsafePickleError(
                f"bytearray({type(source).__name__}, {type(encoding).__name__}) refused: only bytes or latin-1 "
                "text, never a length"
            )
        self.budget.charge(64 + len(data), "bytearray()")
        return bytearray(data)

    def _complex(self, *args: Any) -> complex:
        if len(args) > 2 or any(not isinstance(a, (int, float, str)) or isinstance(a, str) and len(a) > 64
                                for a in args):  # fmt: skip
            raise UnsafePickleError("complex() refused: only up to two numbers or short strings")
        return complex(*args)

    def _latin1_encode(self, text: Any, encoding: Any = "latin1") -> bytes:
        """``_codecs.encode`` limited to the text encodings pickle itself uses for bytes."""
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise UnsafePickleError(f"_codecs.encode({type(text).__name__}, {type(encoding).__name__}) refused")
        self.budget.charge(64 + len(text), "_codecs.encode()")
        return text.encode("latin1")

    def _dtype(self, spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
        """``numpy.dtype`` from a type string; always a fresh object, so ``BUILD`` cannot touch NumPy's own."""
        if not isinstance(spec, (str, bytes)) or len(spec) > 64:
            raise UnsafePickleError(f"numpy.dtype({type(spec).__name__}) refused: only a type string")
        dtype = np.dtype(spec, align=bool(align), copy=True)
        self.fresh_dtypes[id(dtype)] = dtype
        return dtype

    def _as_dtype(self, dtype: Any, where: str) -> np.dtype:
        if isinstance(dtype, np.dtype):
            return dtype
        if isinstance(dtype, (str, bytes)) and len(dtype) <= 64:
            return np.dtype(dtype)
        raise UnsafePickleError(f"{where}: dtype given as a {type(dtype).__name__} refused")

    def _reconstruct(self, subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
        if subtype is not NDARRAY:
            raise UnsafePickleError(f"numpy _reconstruct of a {type(subtype).__name__} refused; only numpy.ndarray")
        dt = self._as_dtype(dtype, "numpy _reconstruct")
        self.budget.charge(64 + element_count(shape, "numpy _reconstruct") * dt.itemsize, "numpy _reconstruct")
        return _np_reconstruct(np.ndarray, shape, dt)

    def _scalar(self, dtype: Any, data: Any = None) -> Any:
        if not isinstance(dtype, np.dtype):
            raise UnsafePickleError(f"numpy scalar of a {type(dtype).__name__} dtype refused")
        if not dtype.hasobject:
            if not isinstance(data, (bytes, str)) or len(data) != dtype.itemsize:
                raise FileFormatError(f"numpy scalar: expected {dtype.itemsize} bytes of data for {dtype}")
            self.budget.charge(64 + dtype.itemsize, "numpy scalar")
        return _np_scalar(dtype, data)

    def _frombuffer(self, buf: Any, dtype: Any, shape: Any, order: Any = "C") -> np.ndarray:
        if not isinstance(buf, (bytes, bytearray)) or not isinstance(dtype, np.dtype) or dtype.hasobject:
            raise UnsafePickleError("numpy _frombuffer refused: expected in-band bytes and a plain dtype")
        if element_count(shape, "numpy _frombuffer") * dtype.itemsize != len(buf) or order not in ("C", "F"):
            raise FileFormatError("numpy _frombuffer: data size does not match shape and dtype")
        self.budget.charge(64 + len(buf), "numpy _frombuffer")
        return _np_frombuffer(buf, dtype, shape, order)

    def _call(self, func: Any, args: Any, what: str) -> Any:
        if id(func) not in self.callables:
            raise UnsafePickleError(f"{what} of a {type(func).__name__} refused: only allowed globals may be called")
        if type(args) not in (tuple, list):
            raise UnsafePickleError(f"{what} with arguments of type {type(args).__name__} refused")
        return func(*args)
