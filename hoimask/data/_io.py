"""File reading helpers shared by the dataset loaders; every failure names the file.

Reading (``read_*``) checks the container: the file exists, decodes, holds a
mapping with the required keys, arrays of the required shapes. The ``*_field``
helpers check one value read from a file (``number_field``, ``list_field``,
``array_field``, ``name_field``, ``intrinsics_field``). All of them raise
:class:`~hoimask._checks.FileFormatError` with a message that starts with the
file's path and names the field, what was expected and what was found::

    >>> from hoimask.data._io import number_field
    >>> number_field("meta.yml", -2, "num_frames", integer=True, minimum=1)
    Traceback (most recent call last):
    ...
    hoimask._checks.FileFormatError: meta.yml: field 'num_frames' expected an int >= 1, got -2
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hoimask._checks import FileFormatError

__all__ = [
    "array_field",
    "intrinsics_field",
    "list_field",
    "name_field",
    "number_field",
    "read_depth_png",
    "read_image",
    "read_mask_png",
    "read_npz",
    "read_obj",
    "read_pickle",
    "read_text",
    "read_yaml",
    "require_file",
]


def require_file(path: str | os.PathLike, what: str) -> Path:
    """Return ``path`` as a ``Path`` or raise :class:`FileFormatError` naming it and ``what`` it should hold."""
    p = Path(path)
    if not p.is_file():
        raise FileFormatError(f"{p}: file not found; expected {what}")
    return p


def read_text(path: str | os.PathLike, what: str) -> str:
    """The UTF-8 text of ``path`` (``what`` it should hold names it when missing or not text)."""
    p = require_file(path, what)
    try:
        return p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise FileFormatError(f"{p}: not UTF-8 text ({e}); expected {what}") from e


def _show(value: Any) -> str:
    """``repr(value)`` cut to 60 characters, with its type."""
    r = " ".join(repr(value).split())
    return f"{r if len(r) <= 60 else r[:57] + '...'} ({type(value).__name__})"


def number_field(
    path: str | os.PathLike,
    value: Any,
    field: str,
    *,
    integer: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    positive: bool = False,
) -> int | float:
    """A number read from ``path``: finite, a real number (an ``int`` when ``integer``), within the bounds.

    Strings (``"2"``), bools, lists and ``None`` are refused, and so is a
    float where an int is expected (``2.5`` is never truncated).

    Args:
        path: the file the value was read from (named in errors).
        value: the value as read.
        field: its name in the file (e.g. ``"num_frames"``, ``"color.fx"``).
        integer: require an integer.
        minimum: inclusive lower bound. maximum: inclusive upper bound.
        positive: require ``value > 0``.

    Returns:
        ``value`` as ``int`` or ``float``.

    Raises:
        FileFormatError: anything else.
    """
    want = "an int" if integer else "a finite number"
    bounds = [f">= {minimum}"] * (minimum is not None) + [f"<= {maximum}"] * (maximum is not None) + ["> 0"] * positive
    want += f" {' and '.join(bounds)}" if bounds else ""
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, kinds):
        raise FileFormatError(f"{path}: field {field!r} expected {want}, got {_show(value)}")
    v = int(value) if integer else float(value)
    if not math.isfinite(v) or (minimum is not None and v < minimum) or (maximum is not None and v > maximum) \
            or (positive and v <= 0):
        raise FileFormatError(f"{path}: field {field!r} expected {want}, got {value!r}")
    return v


def list_field(path: str | os.PathLike, value: Any, field: str, *, nonempty: bool = True) -> list:
    """A list read from ``path`` (not a string, a mapping or a scalar), non-empty unless told.

    Raises:
        FileFormatError: naming the file and ``field``.
    """
    if not isinstance(value, (list, tuple)):
        raise FileFormatError(f"{path}: field {field!r} expected a list, got {_show(value)}")
    if nonempty and not value:
        raise FileFormatError(f"{path}: field {field!r} expected a non-empty list, got []")
    return list(value)


def array_field(
    path: str | os.PathLike,
    value: Any,
    field: str,
    shape: tuple[int, ...],
    *,
    any_layout: bool = False,
    finite: bool = True,
) -> np.ndarray:
    """A numeric array read from ``path`` (an array or nested lists of numbers), as float64 of ``shape``.

    Args:
        path: the file (named in errors).
        value: the value as read.
        field: its name in the file.
        shape: the expected shape.
        any_layout: accept any shape with ``prod(shape)`` elements and reshape
            (HO3D stores ``handPose`` as ``(48,)`` and ``objRot`` as ``(3, 1)``).
        finite: refuse NaN and infinity.

    Returns:
        The array, float64, of ``shape``.

    Raises:
        FileFormatError: ``None``, strings, objects or bools, a ragged list, the
            wrong shape or size, or a non-finite entry (its index is given).
    """
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as e:  # ragged nested lists
        raise FileFormatError(f"{path}: field {field!r} expected a numeric array of shape {shape}, got {_show(value)} "
                              f"({e})") from e
    if arr.dtype.kind not in "iuf":
        raise FileFormatError(f"{path}: field {field!r} expected a numeric array of shape {shape}, got {_show(value)} "
                              f"of dtype {arr.dtype}")
    if arr.shape != tuple(shape) and not (any_layout and arr.size == math.prod(shape)):
        layout = f"{math.prod(shape)} numbers, shape {shape}" if any_layout else f"shape {shape}"
        raise FileFormatError(f"{path}: field {field!r} expected {layout}, got shape {arr.shape}")
    arr = arr.astype(np.float64).reshape(shape)
    if finite:
        _check_finite(path, arr, f"field {field!r}")
    return arr


def _check_finite(path: str | os.PathLike, arr: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise FileFormatError(f"{path}: {what} holds {int(bad.sum())} non-finite value(s) (NaN or inf), the first "
                              f"at index {first}; expected finite numbers")


def name_field(path: str | os.PathLike, value: Any, field: str) -> str:
    """A file or folder name read from ``path``: a non-empty string, no separator, not ``.`` or ``..``.

    A name read from a file is joined to a folder of the dataset; refusing
    separators keeps an edited file from pointing outside that folder.

    Raises:
        FileFormatError: naming the file and ``field``.
    """
    if not isinstance(value, str) or not value.strip() or value in (".", "..") or any(c in value for c in "/\\\0"):
        raise FileFormatError(f"{path}: field {field!r} expected a file or folder name (no '/', '\\', '..'), "
                              f"got {_show(value)}")
    return value


def intrinsics_field(path: str | os.PathLike, K: np.ndarray, field: str) -> np.ndarray:
    """Check a pinhole intrinsics matrix read from ``path``: finite, ``fx, fy > 0``, last row ``(0, 0, 1)``.

    Args:
        path: the file (named in errors).
        K: ``(3, 3)`` float array (e.g. from :func:`array_field`).
        field: its name in the file.

    Returns:
        ``K``.

    Raises:
        FileFormatError: naming the file and ``field``.
    """
    _check_finite(path, K, f"field {field!r}")
    if not (K[0, 0] > 0 and K[1, 1] > 0):
        raise FileFormatError(f"{path}: field {field!r} expected focal lengths fx = K[0, 0] > 0 and fy = K[1, 1] > 0, "
                              f"got fx = {K[0, 0]}, fy = {K[1, 1]}")
    if K[2].tolist() != [0.0, 0.0, 1.0] or K[1, 0] != 0:
        raise FileFormatError(f"{path}: field {field!r} expected an intrinsics matrix with K[1, 0] = 0 and last row "
                              f"(0, 0, 1), got {K.tolist()}")
    return K


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """Read an RGB image as ``(3, H, W)`` float32 in ``[0, 1]``."""
    from PIL import Image

    p = require_file(path, "an RGB image (jpg/png)")
    try:
        with Image.open(p) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Exception as e:  # noqa: BLE001 - any decoder error is a format error of this file
        raise FileFormatError(f"{p}: could not decode as an image ({e})") from e
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).to(torch.float32) / 255


def read_mask_png(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as a NumPy array (any mode; colour stays ``(H, W, 3)``)."""
    from PIL import Image

    p = require_file(path, "a segmentation image")
    try:
        with Image.open(p) as im:
            return np.asarray(im.convert("RGB") if im.mode not in ("L", "I", "I;16", "P") else im)
    except Exception as e:  # noqa: BLE001
        raise FileFormatError(f"{p}: could not decode as an image ({e})") from e


def read_depth_png(path: str | os.PathLike, scale: float) -> torch.Tensor:
    """Read a 16-bit depth PNG and convert to metres (``value * scale``); ``(H, W)`` float32.

    Raises:
        FileFormatError: missing, undecodable, or not a single-channel 16-bit image
            (an 8-bit or colour image is not a depth map in this encoding).
    """
    from PIL import Image

    p = require_file(path, "a 16-bit depth PNG")
    try:
        with Image.open(p) as im:
            mode = im.mode
            arr = np.asarray(im).astype(np.float32)
    except Exception as e:  # noqa: BLE001
        raise FileFormatError(f"{p}: could not decode as a depth PNG ({e})") from e
    if arr.ndim != 2 or not mode.startswith("I"):
        raise FileFormatError(f"{p}: expected a single-channel 16-bit depth image, got mode {mode!r} of shape {arr.shape}")
    return torch.from_numpy(arr * scale)


def _checked_mapping(path: Path, data: Any, required: tuple[str, ...], what: str) -> dict[str, Any]:
    """``data`` after checking it is a dict holding the ``required`` keys.

    Args:
        path: the file ``data`` was read from (named in errors).
        data: the loaded content.
        required: keys that must be present.
        what: what the file should hold, for the error (e.g. ``"a YAML mapping"``).

    Returns:
        ``data``.

    Raises:
        FileFormatError: not a dict, or a required key missing.
    """
    if not isinstance(data, dict):
        raise FileFormatError(f"{path}: expected {what}, got {type(data).__name__}")
    missing = [k for k in required if k not in data]
    if missing:
        raise FileFormatError(f"{path}: missing key(s) {missing}; expected {list(required)}")
    return data


def read_yaml(path: str | os.PathLike, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read a YAML mapping and check that it has the ``required`` keys."""
    import yaml

    text = read_text(path, f"a YAML file with keys {list(required)}")
    p = Path(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise FileFormatError(f"{p}: invalid YAML ({e})") from e
    return _checked_mapping(p, data, required, "a YAML mapping")


def read_npz(
    path: str | os.PathLike,
    shapes: dict[str, tuple[int | None, ...]],
    *,
    finite: tuple[str, ...] = (),
    integer: tuple[str, ...] = (),
) -> dict[str, np.ndarray]:
    """Read an ``.npz`` and check each key in ``shapes``: present, numeric, of that shape (``None`` = any size).

    Args:
        path: the file.
        shapes: key -> expected shape.
        finite: keys whose values must all be finite (no NaN, no infinity).
        integer: keys that must hold integers (e.g. label maps).

    Returns:
        Every array of the file.

    Raises:
        FileFormatError: naming the file and the array.
    """
    p = require_file(path, f"an .npz with keys {sorted(shapes)}")
    try:
        with np.load(p, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001
        raise FileFormatError(f"{p}: could not read as .npz ({e})") from e
    for key, shape in shapes.items():
        if key not in data:
            raise FileFormatError(f"{p}: missing array {key!r}; expected keys {sorted(shapes)}")
        got = data[key].shape
        if len(got) != len(shape) or any(w is not None and w != g for w, g in zip(shape, got)):
            raise FileFormatError(f"{p}: array {key!r} expected shape {shape} (None = any), got {got}")
        kinds = "iu" if key in integer else "iuf"
        if data[key].dtype.kind not in kinds:
            raise FileFormatError(f"{p}: array {key!r} expected {'integers' if key in integer else 'numbers'}, "
                                  f"got dtype {data[key].dtype}")
        if key in finite:
            _check_finite(p, data[key], f"array {key!r}")
    return data


def read_pickle(path: str | os.PathLike, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read a pickled dict of arrays with the restricted unpickler (no arbitrary code)."""
    from hoimask.hand._unpickle import resolve, restricted_load

    p = require_file(path, f"a pickle with keys {list(required)}")
    try:
        with open(p, "rb") as f:
            data = resolve(restricted_load(f))
    except FileFormatError as e:  # unsafe global, resource limit, damaged stream: keep the type
        raise type(e)(f"{p}: {e}") from e
    except Exception as e:  # noqa: BLE001
        raise FileFormatError(f"{p}: could not unpickle ({e})") from e
    return _checked_mapping(p, data, required, "a pickled dict")


def _check_obj_text(p: Path) -> None:
    """Check the ``v`` and ``f`` lines of a Wavefront OBJ file (what a mesh reader silently skips or misreads).

    Every vertex line has 3, 4 or 6 finite numbers; every face line has at
    least 3 vertex references, each a non-zero integer that refers to an
    existing vertex (negative = relative to the last one, as OBJ allows).
    This catches files cut mid-line, non-numeric or non-finite coordinates and
    dangling faces. A file cut exactly at a line end between faces is a valid
    smaller mesh and cannot be told from one.
    """
    text = p.read_bytes().decode("utf-8", errors="replace")
    seen, largest = 0, (0, 0, "")  # vertices so far; the largest positive reference (index, line number, line)
    for n, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts or parts[0] not in ("v", "f"):
            continue
        if parts[0] == "v":
            try:
                xyz = [float(x) for x in parts[1:]]
            except ValueError:
                xyz = None
            if xyz is None or len(xyz) not in (3, 4, 6) or not all(math.isfinite(x) for x in xyz):
                raise FileFormatError(f"{p}:{n}: vertex line expected 3 (4 or 6) finite numbers, got {line.strip()!r}")
            seen += 1
            continue
        try:
            idx = [int(ref.split("/")[0]) for ref in parts[1:]]
        except ValueError:
            idx = []
        if len(idx) < 3 or 0 in idx:
            raise FileFormatError(f"{p}:{n}: face line expected at least 3 vertex numbers (1-based, or negative), "
                                  f"got {line.strip()!r}")
        if min(idx) < -seen:  # relative to the vertices read so far
            raise FileFormatError(f"{p}:{n}: face {line.strip()!r} refers to vertex {min(idx)}, but only {seen} "
                                  "vertices precede it")
        if max(idx) > largest[0]:
            largest = (max(idx), n, line)
    if largest[0] > seen:
        i, n, line = largest
        raise FileFormatError(f"{p}:{n}: face {line.strip()!r} refers to vertex {i}, but the file has {seen} vertices")


def read_obj(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a triangle mesh (``.obj``/``.ply``) as ``(vertices (V, 3) float32, faces (T, 3) int64)``.

    Raises:
        FileFormatError: missing or unreadable, an ``.obj`` line that is cut or
            not numbers (:func:`_check_obj_text`), no triangles, non-finite
            vertices or face indices outside the vertices.
    """
    import trimesh

    p = require_file(path, "a triangle mesh (e.g. YCB textured_simple.obj)")
    if p.suffix.lower() == ".obj":
        _check_obj_text(p)
    try:
        mesh = trimesh.load(p, force="mesh", process=False)
        vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    except Exception as e:  # noqa: BLE001
        raise FileFormatError(f"{p}: could not read as a mesh ({e})") from e
    if len(faces) == 0:
        raise FileFormatError(f"{p}: the mesh has no triangles")
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise FileFormatError(f"{p}: expected vertices of shape (V, 3), got {vertices.shape}")
    _check_finite(p, vertices, "the vertex array")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise FileFormatError(f"{p}: face indices must lie in [0, {len(vertices)}), got {faces.min()}..{faces.max()}")
    return torch.as_tensor(vertices, dtype=torch.float32), torch.as_tensor(faces, dtype=torch.int64)
