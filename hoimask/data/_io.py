"""File reading helpers shared by the dataset loaders; every failure names the file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hoimask._checks import FileFormatError

__all__ = ["read_depth_png", "read_image", "read_mask_png", "read_npz", "read_obj", "read_pickle", "read_yaml", "require_file"]


def require_file(path: str | os.PathLike, what: str) -> Path:
    """Return ``path`` as a ``Path`` or raise :class:`FileFormatError` naming it and ``what`` it should hold."""
    p = Path(path)
    if not p.is_file():
        raise FileFormatError(f"{p}: file not found; expected {what}")
    return p


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
    """Read a 16-bit depth PNG and convert to metres (``value * scale``); ``(H, W)`` float32."""
    from PIL import Image

    p = require_file(path, "a 16-bit depth PNG")
    try:
        with Image.open(p) as im:
            arr = np.asarray(im).astype(np.float32)
    except Exception as e:  # noqa: BLE001
        raise FileFormatError(f"{p}: could not decode as a depth PNG ({e})") from e
    if arr.ndim != 2:
        raise FileFormatError(f"{p}: expected a single-channel depth image, got shape {arr.shape}")
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

    p = require_file(path, f"a YAML file with keys {list(required)}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise FileFormatError(f"{p}: invalid YAML ({e})") from e
    return _checked_mapping(p, data, required, "a YAML mapping")


def read_npz(path: str | os.PathLike, shapes: dict[str, tuple[int | None, ...]]) -> dict[str, np.ndarray]:
    """Read an ``.npz`` and check each key in ``shapes`` (``None`` = any size)."""
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


def read_obj(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a triangle mesh (``.obj``/``.ply``) as ``(vertices (V, 3) float32, faces (T, 3) int64)``."""
    import trimesh

    p = require_file(path, "a triangle mesh (e.g. YCB textured_simple.obj)")
    try:
        mesh = trimesh.load(p, force="mesh", process=False)
    except Exception as e:  # noqa: BLE001
        raise FileFormatError(f"{p}: could not read as a mesh ({e})") from e
    if len(mesh.faces) == 0:
        raise FileFormatError(f"{p}: the mesh has no triangles")
    return torch.as_tensor(np.asarray(mesh.vertices), dtype=torch.float32), torch.as_tensor(
        np.asarray(mesh.faces), dtype=torch.int64
    )
