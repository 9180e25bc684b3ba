"""Reading MANO's model files (official ``.pkl`` or a converted ``.npz``) into checked NumPy arrays.

MANO's assets are licensed: download ``mano_v1_2.zip`` from https://mano.is.tue.mpg.de
and point hoimask at ``mano_v1_2/models/MANO_RIGHT.pkl`` (or ``MANO_LEFT.pkl``).
Nothing is ever downloaded by hoimask. :func:`to_npz` converts a pickle once
into a plain ``.npz`` (no pickle at all on later loads).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from hoimask._checks import FileFormatError
from hoimask._io import atomic_replace
from hoimask.hand._unpickle import resolve, restricted_load

__all__ = ["MANO_ARRAY_SPECS", "load_mano_arrays", "to_npz"]

#: Arrays a MANO model file must hold: key -> (shape, kind) with kind "f" float or "i" integer.
MANO_ARRAY_SPECS: dict[str, tuple[tuple[int, ...], str]] = {
    "v_template": ((778, 3), "f"),
    "f": ((1538, 3), "i"),
    "shapedirs": ((778, 3, 10), "f"),
    "posedirs": ((778, 3, 135), "f"),
    "J_regressor": ((16, 778), "f"),
    "weights": ((778, 16), "f"),
    "kintree_table": ((2, 16), "i"),
    "hands_components": ((45, 45), "f"),
    "hands_mean": ((45,), "f"),
}
_OPTIONAL = ("hands_coeffs", "J")


def _check_arrays(raw: Any, path: Path) -> dict[str, np.ndarray]:
    if not isinstance(raw, dict):
        raise FileFormatError(
            f"MANO file '{path}' should hold a dict of arrays, got {type(raw).__name__}"
        )
    missing = [k for k in MANO_ARRAY_SPECS if k not in raw]
    if missing:
        raise FileFormatError(
            f"MANO file '{path}' lacks the key(s) {missing}; expected the keys of MANO_RIGHT.pkl / "
            f"MANO_LEFT.pkl: {sorted(MANO_ARRAY_SPECS)}"
        )
    out: dict[str, np.ndarray] = {}
    for key, (shape, kind) in MANO_ARRAY_SPECS.items():
        try:
            arr = np.asarray(raw[key])
        except Exception as exc:  # noqa: BLE001 - anything unconvertible is a format error
            raise FileFormatError(f"MANO file '{path}': '{key}' is not an array ({exc})") from exc
        if arr.shape != shape:
            raise FileFormatError(f"MANO file '{path}': '{key}' expected shape {shape}, got {arr.shape}")
        ok = np.issubdtype(arr.dtype, np.floating if kind == "f" else np.integer)
        if not ok:
            raise FileFormatError(
                f"MANO file '{path}': '{key}' expected a {'float' if kind == 'f' else 'integer'} array, "
                f"got dtype {arr.dtype}"
            )
        if kind == "f" and not np.isfinite(arr).all():
            raise FileFormatError(f"MANO file '{path}': '{key}' holds non-finite values")
        out[key] = arr
    faces = out["f"].astype(np.int64)
    if faces.min() < 0 or faces.max() >= 778:
        raise FileFormatError(f"MANO file '{path}': face indices must lie in [0, 778), got {faces.min()}..{faces.max()}")
    out["f"] = faces
    for key in _OPTIONAL:
        if key in raw:
            out[key] = np.asarray(raw[key])
    return out


def load_mano_arrays(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Load a MANO model file without chumpy and without running pickled code.

    Args:
        path: ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` (official) or an ``.npz``
            written by :func:`to_npz`.

    Returns:
        Dict of NumPy arrays: ``v_template (778,3)``, ``f (1538,3) int64``,
        ``shapedirs (778,3,10)``, ``posedirs (778,3,135)``, ``J_regressor
        (16,778)`` (dense), ``weights (778,16)``, ``kintree_table (2,16)``,
        ``hands_components (45,45)``, ``hands_mean (45,)`` (plus ``hands_coeffs``
        and ``J`` when present). Left-hand files are returned as stored.

    Raises:
        FileFormatError: the file is missing, not a MANO model, corrupt,
            (:class:`UnsafePickleError`) names a global outside the allow-list,
            or (:class:`PickleLimitError`) asks for more memory, objects,
            nesting or time than the restricted unpickler allows.

    Shape:
        see Returns.
    """
    p = Path(path)
    if not p.is_file():
        raise FileFormatError(
            f"MANO model file '{p}' does not exist; expected MANO_RIGHT.pkl / MANO_LEFT.pkl from "
            "https://mano.is.tue.mpg.de (mano_v1_2/models/) or an .npz written by hoimask.hand.to_npz"
        )
    if p.suffix == ".npz":
        try:
            with np.load(p, allow_pickle=False) as data:
                raw: Any = {k: data[k] for k in data.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise FileFormatError(f"MANO file '{p}' is not a readable .npz ({exc})") from exc
    else:
        try:
            with open(p, "rb") as fh:
                raw = resolve(restricted_load(fh))
        except FileFormatError as exc:  # unsafe global, resource limit, damaged stream: keep the type
            raise type(exc)(f"MANO file '{p}': {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - pickle raises many types on corrupt input
            raise FileFormatError(
                f"MANO file '{p}' is not a readable MANO pickle ({type(exc).__name__}: {exc})"
            ) from exc
    return _check_arrays(raw, p)


def to_npz(pkl_path: str | os.PathLike[str], npz_path: str | os.PathLike[str]) -> Path:
    """Convert a MANO ``.pkl`` once into a pickle-free ``.npz`` (written atomically).

    The arrays are stored exactly as in the pickle (``J_regressor`` dense,
    faces int64); a left-hand file keeps its original ``shapedirs`` and the
    layer applies the same fix to both formats.

    Args:
        pkl_path: official MANO pickle.
        npz_path: output path (``.npz`` is appended by NumPy when missing; the
            returned path is the file actually written).

    Returns:
        Path of the written ``.npz``.

    Shape:
        not applicable (file conversion).
    """
    arrays = load_mano_arrays(pkl_path)
    out = Path(npz_path)
    if out.suffix != ".npz":
        out = out.with_name(out.name + ".npz")
    with atomic_replace(out) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **{k: np.ascontiguousarray(v) for k, v in arrays.items()})
    return out
