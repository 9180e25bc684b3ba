"""Accept torch tensors or NumPy arrays, compute in torch, return the caller's type.

Every public metric converts its array arguments with :func:`to_tensors`, does
the maths in torch, and converts the result back with :func:`like_input`. The
rule is simple: if the *first* array argument is a NumPy array, results come
back as NumPy arrays; otherwise they stay torch tensors on the input's device.
NumPy inputs are wrapped without copying when possible (``torch.from_numpy``)
and keep their dtype.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import torch

from hoimask._checks import DTypeError, check_floating, check_same_device

__all__ = ["to_tensors", "like_input", "ArrayLike"]

ArrayLike = torch.Tensor | np.ndarray


def _as_tensor(x: Any, name: str, fn: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        if x.dtype == np.float16 or not np.issubdtype(x.dtype, np.floating):
            raise DTypeError(
                f"{fn}(): argument '{name}' expected a float32 or float64 array, got dtype {x.dtype}"
            )
        return torch.from_numpy(np.ascontiguousarray(x))
    raise DTypeError(
        f"{fn}(): argument '{name}' expected a torch.Tensor or numpy.ndarray, got {type(x).__name__}"
    )


def to_tensors(fn: str | None = None, **arrays: Any) -> tuple[bool, dict[str, torch.Tensor]]:
    """Convert named array arguments to floating tensors on one device.

    Args:
        fn: function name for error messages (defaults to the caller).
        **arrays: the arguments, by name; ``None`` values are passed through.

    Returns:
        ``(was_numpy, tensors)``: whether the first argument was a NumPy array,
        and the dictionary of tensors (``None`` kept as ``None``), all cast to
        their common promoted dtype (float32 with float64 gives float64).

    Raises:
        DTypeError: an argument is neither a tensor nor an array, or not floating.
        DeviceError: the tensors live on different devices.
    """
    fn = fn or sys._getframe(1).f_code.co_name
    first = next((v for v in arrays.values() if v is not None), None)
    was_numpy = isinstance(first, np.ndarray)
    out: dict[str, torch.Tensor] = {}
    for name, value in arrays.items():
        if value is None:
            out[name] = None  # type: ignore[assignment]
            continue
        t = _as_tensor(value, name, fn)
        check_floating(t, name=name, fn=fn)
        out[name] = t
    present = [v for v in out.values() if v is not None]
    check_same_device({k: v for k, v in out.items() if v is not None}, fn=fn)
    if present:
        common = present[0].dtype
        for v in present[1:]:
            common = torch.promote_types(common, v.dtype)
        out = {k: (v if v is None or v.dtype == common else v.to(common)) for k, v in out.items()}
    return was_numpy, out


def like_input(was_numpy: bool, value: torch.Tensor) -> ArrayLike:
    """Return ``value`` as a NumPy array when the input was NumPy, else unchanged."""
    if was_numpy:
        return value.detach().cpu().numpy()
    return value
