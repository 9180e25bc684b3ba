"""Input validation helpers and the library's error types.

Every public entry point validates its inputs with these helpers so that bad
input fails early with a message naming the function, the argument, what was
expected and what was given::

    >>> import torch
    >>> from hoimask._checks import check_shape
    >>> dims = check_shape(torch.zeros(2, 5, 3), "B N 3", name="points")
    >>> dims["B"], dims["N"]
    (2, 5)

Shape specs are whitespace-separated tokens:

* an integer (``3``) must match exactly;
* a name (``B``, ``N``) binds the size; the same name must bind the same size
  everywhere in one call and across calls sharing a ``dims`` dictionary;
* ``_`` or ``*`` matches any single dimension;
* ``...`` matches zero or more leading dimensions (only as the first token).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch

__all__ = [
    "HoimaskError",
    "ShapeError",
    "DTypeError",
    "DeviceError",
    "ValueRangeError",
    "FileFormatError",
    "FileWriteError",
    "check_shape",
    "check_dtype",
    "check_floating",
    "check_device",
    "check_same_device",
    "compiling",
    "check_finite",
    "check_in_range",
    "check_int",
    "check_probability",
    "check_positive",
    "check_loss_weights",
    "check_choice",
    "check_size",
    "check_tensor",
]


class HoimaskError(Exception):
    """Base class of every error hoimask raises on bad input."""


class ShapeError(HoimaskError, ValueError):
    """A tensor has the wrong number or size of dimensions."""


class DTypeError(HoimaskError, TypeError):
    """A tensor has the wrong dtype, or an argument has the wrong type."""


class DeviceError(HoimaskError, ValueError):
    """Tensors that must share a device do not."""


class ValueRangeError(HoimaskError, ValueError):
    """A value lies outside its allowed range, or is not finite."""


class FileFormatError(HoimaskError, ValueError):
    """A file is missing, corrupt, or not in the expected layout."""


class FileWriteError(HoimaskError, OSError):
    """A file could not be written (disk full, read-only folder, no permission); the message names the file.

    The operating system's error (with its ``errno``) is the ``__cause__``.
    """


def _caller() -> str:
    """Name of the public function that called the check (best effort)."""
    frame = inspect.currentframe()
    try:
        f = frame.f_back if frame is not None else None
        # Walk out of this module to the first foreign frame.
        while f is not None and f.f_globals.get("__name__") == __name__:
            f = f.f_back
        if f is None:
            return "<unknown>"
        name = f.f_code.co_name
        self_obj = f.f_locals.get("self")
        if self_obj is not None and name in ("forward", "__init__", "__call__"):
            return f"{type(self_obj).__name__}.{name}"
        return name
    finally:
        del frame


def _where(name: str, fn: str | None) -> str:
    return f"{fn or _caller()}(): argument '{name}'"


def _parse(spec: str) -> list[str]:
    tokens = spec.split()
    if "..." in tokens[1:]:
        raise ValueError(f"shape spec {spec!r}: '...' may only appear first")
    return tokens


def check_shape(
    x: Any,
    spec: str,
    *,
    name: str,
    dims: dict[str, int] | None = None,
    fn: str | None = None,
) -> dict[str, int]:
    """Check that ``x`` is a tensor whose shape matches ``spec``.

    Args:
        x: the value to check.
        spec: shape spec such as ``"B N 3"`` or ``"... 3 3"`` (see module docs).
        name: argument name used in the error message.
        dims: optional dictionary of already bound names; it is updated in place
            so several arguments can be checked against each other.
        fn: function name for the message; defaults to the calling function.

    Returns:
        The dictionary of bound dimension names (``dims`` if given).

    Raises:
        DTypeError: ``x`` is not a tensor.
        ShapeError: the shape does not match.
    """
    if not isinstance(x, torch.Tensor):
        raise DTypeError(f"{_where(name, fn)} expected a torch.Tensor of shape ({spec}), got {type(x).__name__}")
    tokens = _parse(spec)
    bound: dict[str, int] = dims if dims is not None else {}
    shape = tuple(x.shape)
    ellipsis = bool(tokens) and tokens[0] == "..."
    body = tokens[1:] if ellipsis else tokens
    if (ellipsis and len(shape) < len(body)) or (not ellipsis and len(shape) != len(body)):
        raise ShapeError(
            f"{_where(name, fn)} expected shape ({spec}) with {'at least ' if ellipsis else ''}"
            f"{len(body)} dims, got shape {shape}"
        )
    actual = shape[len(shape) - len(body) :]
    new: dict[str, int] = {}
    for tok, size in zip(body, actual):
        if tok in ("_", "*"):
            continue
        if tok.lstrip("-").isdigit():
            if size != int(tok):
                raise ShapeError(f"{_where(name, fn)} expected shape ({spec}), got shape {shape}")
            continue
        want = new.get(tok, bound.get(tok))
        if want is not None and want != size:
            raise ShapeError(
                f"{_where(name, fn)} expected shape ({spec}) with {tok}={want}, got shape {shape} ({tok}={size})"
            )
        new[tok] = size
    bound.update(new)
    return bound


def check_dtype(x: torch.Tensor, allowed: torch.dtype | Iterable[torch.dtype], *, name: str,
                fn: str | None = None) -> None:
    """Raise :class:`DTypeError` unless ``x.dtype`` is one of ``allowed``."""
    allowed_set = {allowed} if isinstance(allowed, torch.dtype) else set(allowed)
    if not isinstance(x, torch.Tensor):
        raise DTypeError(f"{_where(name, fn)} expected a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in allowed_set:
        names = ", ".join(sorted(str(d) for d in allowed_set))
        raise DTypeError(f"{_where(name, fn)} expected dtype in {{{names}}}, got {x.dtype}")


def check_floating(x: torch.Tensor, *, name: str, fn: str | None = None) -> None:
    """Raise :class:`DTypeError` unless ``x`` is a floating-point tensor."""
    if not isinstance(x, torch.Tensor):
        raise DTypeError(f"{_where(name, fn)} expected a floating-point torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise DTypeError(f"{_where(name, fn)} expected a floating-point tensor, got dtype {x.dtype}")


def check_device(x: torch.Tensor, device: torch.device | str, *, name: str, fn: str | None = None) -> None:
    """Raise :class:`DeviceError` unless ``x`` lives on ``device`` (type and index)."""
    if not isinstance(x, torch.Tensor):
        raise DTypeError(f"{_where(name, fn)} expected a torch.Tensor, got {type(x).__name__}")
    want = torch.device(device)
    got = x.device
    if want.type != got.type or (want.index is not None and want.index != got.index):
        raise DeviceError(f"{_where(name, fn)} expected a tensor on {want}, got one on {got}")


def check_same_device(tensors: Mapping[str, torch.Tensor], *, fn: str | None = None) -> None:
    """Raise :class:`DeviceError` unless all named tensors share one device."""
    items = [(k, v) for k, v in tensors.items() if isinstance(v, torch.Tensor)]
    if not items:
        return
    ref_name, ref = items[0]
    for k, v in items[1:]:
        if v.device != ref.device:
            raise DeviceError(
                f"{_where(k, fn)} is on {v.device} but '{ref_name}' is on {ref.device}; "
                "all inputs must share a device"
            )


def compiling() -> bool:
    """Whether ``torch.compile`` is tracing the calling code.

    Checks of tensor *values* (finite, in range) read the values on the host,
    which would split a compiled graph at every check; they are skipped while
    tracing (:func:`check_finite`, the image range of
    :class:`~hoimask.nn.PixelNormalization`, ...). Checks of shapes, dtypes and
    Python arguments stay: they cost nothing in a graph. Run a batch eagerly
    first to have its values checked.
    """
    return torch.compiler.is_compiling()


def check_finite(x: torch.Tensor, *, name: str, fn: str | None = None) -> None:
    """Raise :class:`ValueRangeError` if ``x`` contains NaN or infinity.

    The message names the argument, the number of non-finite values and the
    index of the first one (row-major order). Skipped while ``torch.compile``
    traces (:func:`compiling`).
    """
    if not isinstance(x, torch.Tensor):
        raise DTypeError(f"{_where(name, fn)} expected a torch.Tensor, got {type(x).__name__}")
    if (x.is_floating_point() or x.is_complex()) and not compiling():
        bad = ~torch.isfinite(x)
        if bool(bad.any()):
            n = int(bad.sum())
            first = tuple(int(i) for i in bad.nonzero()[0].tolist())
            raise ValueRangeError(
                f"{_where(name, fn)} must be finite, got {n} non-finite value(s) (NaN or inf), "
                f"the first at index {first}"
            )


def check_in_range(
    value: float,
    *,
    name: str,
    low: float = -math.inf,
    high: float = math.inf,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    fn: str | None = None,
) -> float:
    """Check a Python scalar lies in an interval; return it as ``float``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DTypeError(f"{_where(name, fn)} expected a real number, got {type(value).__name__}")
    v = float(value)
    lo_ok = v >= low if low_inclusive else v > low
    hi_ok = v <= high if high_inclusive else v < high
    if math.isnan(v) or not (lo_ok and hi_ok):
        lb = "[" if low_inclusive else "("
        rb = "]" if high_inclusive else ")"
        raise ValueRangeError(f"{_where(name, fn)} expected a value in {lb}{low}, {high}{rb}, got {value!r}")
    return v


def check_int(
    value: int,
    *,
    name: str,
    low: int | None = None,
    high: int | None = None,
    fn: str | None = None,
) -> int:
    """Check that ``value`` is a Python ``int`` (not a bool, not a float) in ``[low, high]``.

    Raises:
        DTypeError: ``value`` is not an int (``2.5`` is refused, never truncated).
        ValueRangeError: ``value`` lies outside the inclusive bounds given.

    Returns:
        ``value``.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise DTypeError(f"{_where(name, fn)} expected an int, got {value!r} ({type(value).__name__})")
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueRangeError(f"{_where(name, fn)} expected an int in [{lo}, {hi}], got {value}")
    return value


def check_probability(value: float, *, name: str, fn: str | None = None) -> float:
    """Check that ``value`` is a probability in [0, 1]."""
    return check_in_range(value, name=name, low=0.0, high=1.0, fn=fn)


def check_loss_weights(given: Mapping[str, float], known: Mapping[str, float], *, name: str,
                       fn: str | None = None) -> dict[str, float]:
    """``known`` updated by ``given`` (floats), after checking that ``given`` names only keys of ``known``, each >= 0.

    Raises:
        ValueRangeError: an unknown name (listing the known ones) or a negative / NaN weight, naming ``name``.
    """
    given = dict(given)
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ValueRangeError(f"{_where(name, fn)} has unknown names {unknown}; known {sorted(known)}")
    for key, value in given.items():
        check_positive(value, name=f"{name}[{key!r}]", strict=False, fn=fn)
    return {**known, **{k: float(v) for k, v in given.items()}}


def check_positive(value: float, *, name: str, strict: bool = True, fn: str | None = None) -> float:
    """Check that ``value`` is > 0 (or >= 0 when ``strict=False``)."""
    return check_in_range(value, name=name, low=0.0, low_inclusive=not strict, fn=fn)


def check_choice(value: Any, choices: Iterable[Any], *, name: str, fn: str | None = None) -> Any:
    """Raise :class:`ValueRangeError` unless ``value`` is one of ``choices``."""
    options = list(choices)
    if value not in options:
        raise ValueRangeError(f"{_where(name, fn)} expected one of {options}, got {value!r}")
    return value


def check_size(
    value: Any,
    *,
    name: str,
    length: int = 2,
    low: int = 1,
    allow_int: bool = False,
    fn: str | None = None,
) -> tuple[int, ...]:
    """Check a size such as ``image_size = (H, W)``: ``length`` Python ints, each ``>= low``.

    With ``allow_int=True`` one int ``S`` stands for ``(S,) * length``. Floats
    (``32.5``), bools and NumPy scalars are refused, never truncated.
    ``torch.SymInt`` entries (sizes traced by ``torch.compile``) are accepted.

    Raises:
        DTypeError: ``value`` is not a tuple/list (or an int when allowed), or an entry is not an int.
        ShapeError: ``value`` does not have ``length`` entries.
        ValueRangeError: an entry is below ``low``.

    Returns:
        The size as a tuple.
    """
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        value = (value,) * length
    if not isinstance(value, (tuple, list)):
        what = f"an int or {length} ints" if allow_int else f"a tuple of {length} ints"
        raise DTypeError(f"{_where(name, fn)} expected {what}, got {value!r} ({type(value).__name__})")
    if len(value) != length:
        raise ShapeError(f"{_where(name, fn)} expected {length} entries, got {len(value)}: {tuple(value)!r}")
    for i, v in enumerate(value):
        if isinstance(v, torch.SymInt):
            continue
        if isinstance(v, bool) or not isinstance(v, int):
            raise DTypeError(f"{_where(f'{name}[{i}]', fn)} expected an int, got {v!r} ({type(v).__name__}) "
                             f"in {name}={tuple(value)!r}")
        if v < low:
            raise ValueRangeError(f"{_where(f'{name}[{i}]', fn)} expected an int >= {low}, got {v} "
                                  f"in {name}={tuple(value)!r}")
    return tuple(value)


def check_tensor(
    x: Any,
    spec: str,
    *,
    name: str,
    dims: dict[str, int] | None = None,
    floating: bool = False,
    finite: bool = False,
    fn: str | None = None,
) -> dict[str, int]:
    """Shape check plus optional floating-point and finiteness checks in one call."""
    out = check_shape(x, spec, name=name, dims=dims, fn=fn)
    if floating:
        check_floating(x, name=name, fn=fn)
    if finite:
        check_finite(x, name=name, fn=fn)
    return out
