"""Synthetic MANO model files for tests: MANO's exact pickle layout, random but valid numbers.

The licensed MANO assets cannot ship with hoimask, so tests (ours and other
subpackages', e.g. the DexYCB/HO3D loaders) write a stand-in with
:func:`write_synthetic_mano`. The pickle has the structure of the official
Python 2 files, so that the readers people use on the real files read it too
(plain ``pickle.load(f, encoding="latin1")`` with chumpy and SciPy installed,
as smplx and manopth's ``ready_arguments`` do): protocol 2; every string a
Python 2 ``str`` (``SHORT_BINSTRING``/``BINSTRING``, no unicode opcodes); NumPy
arrays reconstructed through ``numpy.core.multiarray._reconstruct`` with their
raw data as ``str`` and dtypes as ``numpy.dtype('f8', 0, 1)``; ``shapedirs`` a
``chumpy.ch.Ch`` built by ``copy_reg.__newobj__`` whose state is what chumpy's
``Ch.__getstate__`` writes (``x``, ``_dirty_vars`` — a ``__builtin__.set`` —,
``_itr``, ``_make_dense``, ``_make_sparse``, ``_depends_on_deps``,
``_status``; no ``_cache``/``_parents``); ``J_regressor`` a
``scipy.sparse.csc.csc_matrix`` (state ``_shape``, ``maxprint``, ``format``,
``data``, ``indices``, ``indptr``); every other value a NumPy array or a
``str``. Neither chumpy nor SciPy is needed to write it or to read it with
hoimask's restricted unpickler.

Every float is exactly representable in float32, so loaders that go through
float32 (smplx) see the same numbers as float64 code. The left file is the
mirror image (x -> -x) of the right one *with the official left file's known
defect reproduced*: its ``shapedirs`` are those of the right hand, not mirrored.
"""

from __future__ import annotations

import copyreg
import os
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

from hoimask._checks import check_choice
from hoimask._io import atomic_replace
from hoimask.hand._unpickle import _np_reconstruct
from hoimask.skeleton import MANO_PARENTS

__all__ = ["synthetic_mano_arrays", "write_synthetic_mano"]


def _f32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def synthetic_mano_arrays(side: str = "right", seed: int = 0) -> dict[str, np.ndarray]:
    """The arrays of a synthetic MANO model (random, valid, float32-exact).

    Args:
        side: ``"right"`` or ``"left"`` (mirror of the right model with the
            official left file's un-mirrored ``shapedirs``).
        seed: NumPy seed; the same seed gives mirror-image right/left models.

    Returns:
        Dict with MANO's keys: ``v_template (778,3)``, ``f (1538,3) uint32``,
        ``shapedirs (778,3,10)``, ``posedirs (778,3,135)``, ``J_regressor (16,778)``
        (dense here), ``weights (778,16)``, ``kintree_table (2,16)``,
        ``hands_components (45,45)``, ``hands_mean (45,)``, ``hands_coeffs
        (1554,45)``, ``J (16,3)``, ``bs_style``, ``bs_type``.

    Shape:
        see Returns.
    """
    check_choice(side, ("right", "left"), name="side")
    rng = np.random.default_rng(seed)
    num_v, num_j = 778, 16
    # A rough hand-sized point cloud: wrist near +x, fingers towards -x (MANO's frame).
    v_template = _f32(rng.uniform([-0.09, -0.015, -0.05], [0.1, 0.015, 0.05], size=(num_v, 3)))
    faces = np.stack([rng.choice(num_v, size=3, replace=False) for _ in range(1538)]).astype(np.uint32)
    shapedirs = _f32(rng.normal(0.0, 4e-3, size=(num_v, 3, 10)))
    posedirs = _f32(rng.normal(0.0, 2e-3, size=(num_v, 3, 135)))
    # Regressor rows and skinning weights are dyadic (k / 2^n) so that every row sums to
    # exactly one in float32 and float64 alike, like the real files in float64.
    j_reg = np.zeros((num_j, num_v))
    for j in range(num_j):
        idx = rng.choice(num_v, size=12, replace=False)
        j_reg[j, idx] = rng.multinomial(256 - 12, np.full(12, 1 / 12)) + 1
    j_reg = j_reg / 256.0
    logits = 3.0 * rng.normal(size=(num_v, num_j))
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs = probs / probs.sum(1, keepdims=True)
    weights = np.stack([rng.multinomial(1024, p) for p in probs]) / 1024.0
    components = _f32(np.linalg.qr(rng.normal(size=(45, 45)))[0].T)
    hands_mean = _f32(rng.normal(0.0, 0.15, size=45))
    hands_coeffs = _f32(rng.normal(0.0, 0.5, size=(1554, 45)))
    kintree = np.stack([np.array(MANO_PARENTS, dtype=np.int64), np.arange(num_j, dtype=np.int64)])
    kintree[0, 0] = 4294967295  # the official files store uint32(-1) for the root's parent
    if side == "left":
        mirror = np.array([-1.0, 1.0, 1.0])
        v_template = v_template * mirror
        faces = faces[:, [0, 2, 1]]
        # Pose blend shapes: R -> M R M, so entry (i, k) of (R - I) picks up m_i m_k.
        sign_rot = np.outer(mirror, mirror).reshape(9)  # (9,)
        posedirs = posedirs * mirror[None, :, None] * np.tile(sign_rot, 15)[None, None, :]
        aa_sign = np.tile(np.array([1.0, -1.0, -1.0]), 15)  # axis-angle mirrors as (x, -y, -z)
        components = components * aa_sign[None, :]
        hands_mean = hands_mean * aa_sign
        hands_coeffs = hands_coeffs * aa_sign[None, :]
        # shapedirs left as the right hand's: the defect of the official MANO_LEFT.pkl.
    return {
        "hands_components": components,
        "f": faces,
        "J_regressor": j_reg,
        "kintree_table": kintree,
        "J": j_reg @ v_template,
        "bs_style": "lbs",
        "hands_coeffs": hands_coeffs,
        "weights": weights,
        "posedirs": posedirs,
        "hands_mean": hands_mean,
        "v_template": v_template,
        "shapedirs": shapedirs,
        "bs_type": "lrotmin",
    }


def _pickled_as(module: str, name: str, state: dict[str, Any]) -> Any:
    """An object that pickles as an instance of ``module.name`` with ``state`` (NEWOBJ + BUILD)."""

    def reduce_ex(self: Any, protocol: int) -> tuple[Any, ...]:
        return copyreg.__newobj__, (type(self),), state

    cls = type(name, (), {"_pickle_as": (module, name), "__reduce_ex__": reduce_ex})
    return cls()


class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Pure-Python pickler writing Python 2 style globals and ``str`` byte strings."""

    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def _write_global(self, module: str, name: str, obj: Any) -> None:
        self.write(pickle.GLOBAL + module.encode() + b"\n" + name.encode() + b"\n")
        self.memoize(obj)

    def save_global(self, obj: Any, name: str | None = None) -> None:
        target = getattr(obj, "_pickle_as", None)
        if isinstance(obj, type) and target is not None:
            self._write_global(target[0], target[1], obj)
        elif obj is _np_reconstruct:
            self._write_global("numpy.core.multiarray", "_reconstruct", obj)
        elif obj is np.ndarray:
            self._write_global("numpy", "ndarray", obj)
        elif obj is np.dtype:
            self._write_global("numpy", "dtype", obj)
        elif obj is copyreg.__newobj__:
            self._write_global("copy_reg", "__newobj__", obj)
        else:
            super().save_global(obj, name)

    def save_py2_str(self, obj: bytes | str) -> None:
        data = obj.encode("latin-1") if isinstance(obj, str) else obj
        n = len(data)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + data)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str  # Python 2 had no unicode keys or values in these files

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, np.dtype):  # Python 2 NumPy: dtype('f8', 0, 1), ints rather than bools
            _, (code, _, _), state = obj.__reduce__()
            return np.dtype, (code, 0, 1), state
        return NotImplemented

    def save_type(self, obj: type) -> None:
        self.save_global(obj)

    dispatch[type] = save_type


def _chumpy_state(x: np.ndarray) -> dict[str, Any]:
    """What ``chumpy.ch.Ch.__getstate__`` returns for an evaluated ``Ch(x)``: ``__dict__`` minus ``_parents``/``_cache``.

    ``chumpy.ch.Ch.__setstate__`` restores ``_parents``/``_cache`` itself and then
    needs ``_dirty_vars`` and ``_itr`` to be in the state.
    """
    return {
        "_dirty_vars": set(),
        "_itr": None,
        "_make_dense": False,
        "_make_sparse": False,
        "_depends_on_deps": {},
        "x": x,
        "_status": "new",
    }


def _csc_state(dense: np.ndarray) -> dict[str, Any]:
    rows, cols = dense.shape
    data, indices, indptr = [], [], [0]
    for c in range(cols):
        nz = np.nonzero(dense[:, c])[0]
        data.extend(dense[nz, c])
        indices.extend(nz)
        indptr.append(indptr[-1] + len(nz))
    return {
        "_shape": (rows, cols),
        "maxprint": 50,
        "format": "csc",
        "data": np.asarray(data, dtype=np.float64),
        "indices": np.asarray(indices, dtype=np.int32),
        "indptr": np.asarray(indptr, dtype=np.int32),
    }


def write_synthetic_mano(path: str | os.PathLike[str], side: str = "right", seed: int = 0) -> Path:
    """Write a synthetic MANO model in the official pickle layout (atomically).

    Args:
        path: output file, e.g. ``tmp_path / "MANO_RIGHT.pkl"``.
        side: ``"right"`` or ``"left"`` (see :func:`synthetic_mano_arrays`).
        seed: NumPy seed of the random arrays.

    Returns:
        The path written.

    Shape:
        not applicable (writes a file).

    Example:
        >>> import tempfile, pathlib
        >>> from hoimask.hand import MANOLayer
        >>> from hoimask.hand.testing import write_synthetic_mano
        >>> p = write_synthetic_mano(pathlib.Path(tempfile.mkdtemp()) / "MANO_RIGHT.pkl")
        >>> MANOLayer(p).faces.shape
        torch.Size([1538, 3])
    """
    arrays = synthetic_mano_arrays(side, seed)
    payload: dict[str, Any] = dict(arrays)
    payload["shapedirs"] = _pickled_as("chumpy.ch", "Ch", _chumpy_state(arrays["shapedirs"]))
    payload["J_regressor"] = _pickled_as("scipy.sparse.csc", "csc_matrix", _csc_state(arrays["J_regressor"]))
    out = Path(path)
    with atomic_replace(out) as tmp, open(tmp, "wb") as fh:
        _Py2Pickler(fh, protocol=2).dump(payload)
    return out
