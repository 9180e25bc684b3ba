"""A restricted, bounded unpickler for MANO's ``.pkl`` files: chumpy-free, unable to run code or exhaust the machine.

The official ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` are Python 2 pickles of a
dict holding NumPy arrays, ``chumpy.ch.Ch`` objects (chumpy is unmaintained and
breaks on modern NumPy) and a ``scipy.sparse`` CSC matrix (``J_regressor``).
HO3D's ``meta/*.pkl`` are dicts of arrays. :func:`restricted_load` reads them
without importing chumpy or scipy:

* ``chumpy.*`` classes become inert stand-ins that only record their pickled
  state; :func:`resolve` turns them into arrays afterwards (``Ch`` -> its ``x``;
  ``Select``/``Reshape``/``Transpose`` applied to their ``a``);
* ``scipy.sparse`` CSC/CSR/COO matrices become a stand-in rebuilt as a dense
  array from ``data``/``indices``/``indptr``/``shape`` (no scipy needed);
* only NumPy's array, dtype and scalar reconstruction and inert builtin
  containers (``set``, ``frozenset``, ``slice``, ...) may be called, each
  through a wrapper that checks its arguments (``bytearray(n)`` with an integer,
  an array shape larger than the memory budget, ``numpy.ndarray(...)`` called
  directly are refused);
* every other global (``os.system``, ``builtins.eval``, ...) is refused with
  :class:`UnsafePickleError` before anything is called; so are ``BUILD`` on
  anything but a stand-in, an array or a fresh dtype, item assignment on
  anything but a dict, and dict keys or set items other than ``str``/``bytes``/
  small ``int``/``bool``/``None`` (hashing a nested tuple can take ``2**depth``
  steps; crafted ints collide).

Resources are bounded by :class:`~hoimask.hand._pickle_budget.PickleLimits`
(file size, memory, operations, nesting, time): the stream is interpreted by
Python's pure-Python unpickler (``pickle._Unpickler``) with every opcode
metered, so a limit is enforced *before* the memory is allocated or the work is
done, and the result is checked once, bottom-up, to bound what callers will
walk. Anything over a limit raises
:class:`~hoimask.hand._pickle_budget.PickleLimitError`; a damaged stream raises
:class:`~hoimask._checks.FileFormatError`. The parts: ``_pickle_budget``
(errors, limits, the budget), ``_pickle_calls`` (the allowed callables),
``_pickle_standins`` (stand-ins and :func:`resolve`), ``_pickle_tree`` (the
check of the result); ``docs/reliability.md`` lists the guarantees and tests.
"""

from __future__ import annotations

import io
import itertools
import pickle
import struct
from typing import Any, BinaryIO

import numpy as np

from hoimask._checks import FileFormatError
from hoimask.hand._pickle_budget import (
    DEFAULT_PICKLE_LIMITS,
    MAX_INT_DIGITS,
    PickleBudget,
    PickleLimitError,
    PickleLimits,
    UnsafePickleError,
)
from hoimask.hand._pickle_calls import NDARRAY, AllowedCalls, check_key, element_count
from hoimask.hand._pickle_calls import (
    _np_reconstruct as _np_reconstruct,  # used by hoimask.hand.testing
)
from hoimask.hand._pickle_standins import ChumpyStandIn, SparseStandIn, StandIn, resolve
from hoimask.hand._pickle_tree import check_tree

__all__ = ["PickleLimitError", "PickleLimits", "UnsafePickleError", "restricted_load", "resolve"]

_MULTIARRAY = ("numpy.core.multiarray", "numpy._core.multiarray")
_NUMERIC = ("numpy.core.numeric", "numpy._core.numeric")
_BUILTINS = ("__builtin__", "builtins")
_SPARSE = ("csc_matrix", "csr_matrix", "coo_matrix")
_MAX_STAND_IN_CLASSES = 256


def _metered(load: Any) -> Any:
    def op(self: _BoundedUnpickler) -> None:
        self.budget.operation()
        load(self)

    op.__name__ = load.__name__
    return op


class _BoundedUnpickler(AllowedCalls, pickle._Unpickler):  # type: ignore[name-defined]
    """``pickle._Unpickler`` with an allow-list of globals, checked operations and a :class:`PickleBudget`."""

    def __init__(self, data: bytes, budget: PickleBudget) -> None:
        super().__init__(io.BytesIO(data), encoding="latin1")
        self.budget = budget
        self.size = len(data)
        self.stand_ins: dict[tuple[str, str], type] = {}
        self.fresh_dtypes: dict[int, np.dtype] = {}  # dtypes built here and not yet given their state
        self.globals: dict[tuple[str, str], Any] = {("collections", "OrderedDict"): self._ordered_dict}
        for module in ("copy_reg", "copyreg"):
            self.globals[module, "_reconstructor"] = self._reconstructor
        builtins = {"object": object, "slice": slice, "set": self._set, "frozenset": self._frozenset,
                    "list": self._list, "tuple": self._tuple, "dict": self._dict, "bytearray": self._bytearray,
                    "complex": self._complex}  # fmt: skip
        for module, (name, value) in itertools.product(_BUILTINS, builtins.items()):
            self.globals[module, name] = value
        for module in _MULTIARRAY:
            self.globals[module, "_reconstruct"] = self._reconstruct
            self.globals[module, "scalar"] = self._scalar
        for module in _NUMERIC:
            self.globals[module, "_frombuffer"] = self._frombuffer
        self.globals["_codecs", "encode"] = self._latin1_encode  # Python 3 pickles (protocol <= 2) store bytes so
        self.globals["numpy", "ndarray"] = NDARRAY
        self.globals["numpy", "dtype"] = self._dtype
        self.callables = {id(v) for v in self.globals.values() if v is not NDARRAY}
        self.classes: set[int] = set()  # stand-in classes: may be instantiated by NEWOBJ / copyreg

    # ------------------------------------------------------------------ globals
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.globals:
            return self.globals[module, name]
        if module == "chumpy" or module.startswith("chumpy."):
            return self._stand_in(module, name, ChumpyStandIn)
        if (module == "scipy.sparse" or module.startswith("scipy.sparse.")) and name in _SPARSE:
            return self._stand_in(module, name, SparseStandIn)
        raise UnsafePickleError(
            f"refusing to load global '{module}.{name}': only NumPy arrays, chumpy objects and "
            "scipy.sparse matrices are allowed in a MANO pickle"
        )

    def _stand_in(self, module: str, name: str, base: type) -> type:
        key = (module, name)
        if key not in self.stand_ins:
            if len(self.stand_ins) >= _MAX_STAND_IN_CLASSES or not name.isidentifier():
                raise UnsafePickleError(f"refusing stand-in class {module}.{name!r} (bad name or too many classes)")
            self.budget.charge(4096, "a stand-in class")
            cls = type(name, (base,), {"pickled_class": f"{module}.{name}"})
            self.stand_ins[key] = cls
            self.callables.add(id(cls))
            self.classes.add(id(cls))
        return self.stand_ins[key]

    # ------------------------------------------------------------------ opcodes
    def load_reduce(self) -> None:
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args, "REDUCE")

    def _instantiate(self, klass: Any, args: list) -> None:  # INST and OBJ
        self.append(self._call(klass, args, "INST/OBJ"))

    def _new(self, cls: Any, args: Any, kwargs: Any) -> None:
        if id(cls) not in self.classes or type(args) is not tuple or (kwargs and type(kwargs) is not dict):
            raise UnsafePickleError(f"NEWOBJ of a {type(cls).__name__} refused: only chumpy/scipy stand-ins")
        obj = cls.__new__(cls)
        obj.args = args
        self.append(obj)

    def load_newobj(self) -> None:
        args = self.stack.pop()
        self._new(self.stack.pop(), args, None)

    def load_newobj_ex(self) -> None:
        kwargs, args = self.stack.pop(), self.stack.pop()
        self._new(self.stack.pop(), args, kwargs)

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, StandIn):
            inst.__setstate__(state)
        elif type(inst) is np.ndarray:
            self._check_array_state(state)
            inst.__setstate__(state)
        elif isinstance(inst, np.dtype) and self.fresh_dtypes.pop(id(inst), None) is inst:
            inst.__setstate__(state)
        else:
            raise UnsafePickleError(f"BUILD of a {type(inst).__name__} refused")

    def _check_array_state(self, state: Any) -> None:
        if type(state) is not tuple or len(state) not in (4, 5):
            raise FileFormatError("numpy array state must be a tuple of 4 or 5 items")
        shape, dtype, data = state[-4], state[-3], state[-1]
        if not isinstance(dtype, np.dtype):
            raise UnsafePickleError(f"numpy array state with a {type(dtype).__name__} dtype refused")
        count = element_count(shape, "numpy array state")
        if dtype.hasobject:
            if type(data) is not list or len(data) != count:
                raise FileFormatError(f"numpy object array state: expected a list of {count} items")
        elif not isinstance(data, (bytes, bytearray, str)) or len(data) != count * dtype.itemsize:
            raise FileFormatError(f"numpy array state: expected {count * dtype.itemsize} bytes of data for "
                                  f"shape {tuple(shape) if type(shape) is not int else shape} and {dtype}")  # fmt: skip
        self.budget.charge(64 + count * dtype.itemsize, "numpy array data")

    def _set_items(self, target: Any, items: list, what: str) -> None:
        if not isinstance(target, dict):
            raise UnsafePickleError(f"{what} on a {type(target).__name__} refused: only dicts")
        if len(items) % 2:
            raise FileFormatError(f"{what}: odd number of keys and values")
        for i in range(0, len(items), 2):
            check_key(items[i], what)
            target[items[i]] = items[i + 1]

    def load_setitem(self) -> None:
        value, key = self.stack.pop(), self.stack.pop()
        self._set_items(self.stack[-1], [key, value], "SETITEM")

    def load_setitems(self) -> None:
        items = self.pop_mark()
        self._set_items(self.stack[-1], items, "SETITEMS")

    def load_dict(self) -> None:
        items = self.pop_mark()
        self.append({})
        self._set_items(self.stack[-1], items, "DICT")

    def load_append(self) -> None:
        value = self.stack.pop()
        self._add_items(self.stack[-1], [value], list, "APPEND")

    def load_appends(self) -> None:
        items = self.pop_mark()
        self._add_items(self.stack[-1], items, list, "APPENDS")

    def load_additems(self) -> None:
        items = self.pop_mark()
        self._add_items(self.stack[-1], items, set, "ADDITEMS")

    def load_frozenset(self) -> None:
        items = self.pop_mark()
        self.append(self._frozenset(items))

    def _add_items(self, target: Any, items: list, kind: type, what: str) -> None:
        if not isinstance(target, kind):
            raise UnsafePickleError(f"{what} on a {type(target).__name__} refused: only a {kind.__name__}")
        if kind is set:
            for item in items:
                check_key(item, what)
            target.update(items)
        else:
            target.extend(items)

    def load_mark(self) -> None:
        self.budget.check_depth(len(self.metastack) + 1, "MARK frames are")
        super().load_mark()

    def _sized(self, fmt: str, what: str, extra: int = 0) -> int:
        """Read a length prefix; refuse one larger than the whole file before anything is allocated.

        The bytes read are already charged (twice the file size, up front);
        ``extra`` charges ``extra * n`` more for what is built from them (a
        frame's copy, a wide string, an integer).
        """
        (n,) = struct.unpack(fmt, self.read(struct.calcsize(fmt)))
        if n < 0 or n > self.size:
            raise PickleLimitError(f"pickle refused: {what} claims {n} bytes, the whole file has {self.size}")
        self.budget.charge(n * extra, what)
        return n

    def load_binstring(self) -> None:
        self.append(self._decode_string(self.read(self._sized("<i", "BINSTRING"))))

    def load_binbytes(self) -> None:
        self.append(self.read(self._sized("<I", "BINBYTES")))

    def load_binbytes8(self) -> None:
        self.append(self.read(self._sized("<Q", "BINBYTES8")))

    def load_bytearray8(self) -> None:
        self.append(bytearray(self.read(self._sized("<Q", "BYTEARRAY8", 1))))

    def load_binunicode(self) -> None:
        self.append(str(self.read(self._sized("<I", "BINUNICODE", 3)), "utf-8", "surrogatepass"))

    def load_binunicode8(self) -> None:
        self.append(str(self.read(self._sized("<Q", "BINUNICODE8", 3)), "utf-8", "surrogatepass"))

    def load_long4(self) -> None:
        self.append(pickle.decode_long(self.read(self._sized("<i", "LONG4", 1))))

    def load_frame(self) -> None:
        self._unframer.load_frame(self._sized("<Q", "FRAME", 1))

    def _numeric_line(self, what: str) -> bytes:
        line = self.readline()
        if len(line) > MAX_INT_DIGITS + 3:
            raise PickleLimitError(f"pickle refused: {what} argument longer than {MAX_INT_DIGITS} digits")
        return line

    def load_int(self) -> None:
        line = self._numeric_line("INT")
        self.append(False if line == pickle.FALSE[1:] else True if line == pickle.TRUE[1:] else int(line, 0))

    def load_long(self) -> None:
        text = self._numeric_line("LONG")[:-1]
        self.append(int(text[:-1] if text.endswith(b"L") else text, 0))

    def _memo_index(self, what: str) -> int:
        index = int(self._numeric_line(what)[:-1])
        if not 0 <= index < 2**32:
            raise FileFormatError(f"{what} index {index} out of range")
        return index

    def load_get(self) -> None:
        index = self._memo_index("GET")
        if index not in self.memo:
            raise FileFormatError(f"GET of memo index {index}, which was never stored")
        self.append(self.memo[index])

    def load_put(self) -> None:
        self.memo[self._memo_index("PUT")] = self.stack[-1]

    dispatch = {}  # filled below: every opcode of pickle._Unpickler, metered, with the overrides above


for _code, _load in pickle._Unpickler.dispatch.items():  # type: ignore[attr-defined]
    _BoundedUnpickler.dispatch[_code] = _metered(getattr(_BoundedUnpickler, _load.__name__))


def _read_at_most(file: BinaryIO, limit: int) -> bytes:
    """All of ``file``, read in chunks (``read(limit)`` would allocate ``limit`` bytes up front)."""
    chunks, size = [], 0
    while chunk := file.read(min(1 << 20, limit + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise PickleLimitError(f"pickle refused: the file is larger than max_file_bytes={limit}")
    return b"".join(chunks)


def restricted_load(file: BinaryIO, *, limits: PickleLimits | None = None) -> Any:
    """Unpickle ``file`` with the restricted, bounded unpickler (Python 2 strings read as latin-1).

    Args:
        file: a binary file object positioned at the start of the pickle.
        limits: resource bounds (default :data:`~hoimask.hand._pickle_budget.DEFAULT_PICKLE_LIMITS`).

    Returns:
        The unpickled object, with chumpy and scipy objects still as stand-ins
        (pass it to :func:`resolve`).

    Raises:
        UnsafePickleError: the pickle names a global outside the allow-list or
            asks for a refused operation.
        PickleLimitError: the file, its memory, operations, nesting or loading
            time exceed ``limits``.
        FileFormatError: the stream is truncated or malformed.
    """
    limits = limits or DEFAULT_PICKLE_LIMITS
    budget = PickleBudget(limits)
    data = _read_at_most(file, limits.max_file_bytes)
    budget.charge(2 * len(data), "the file and the bytes read from it")
    try:
        obj = _BoundedUnpickler(data, budget).load()
    except FileFormatError:
        raise
    except (MemoryError, RecursionError) as exc:
        raise PickleLimitError(f"pickle refused: {type(exc).__name__} while loading") from exc
    except Exception as exc:  # noqa: BLE001 - pickle raises many types on damaged input
        raise FileFormatError(f"not a readable pickle ({type(exc).__name__}: {exc})") from exc
    check_tree(obj, budget)
    return obj


