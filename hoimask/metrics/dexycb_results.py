"""Result files for the DexYCB toolkit's evaluators: 3D hand pose (HPE ``.txt``) and 6D object pose (BOP ``.csv``).

The official DexYCB toolkit (``NVlabs/dex-ycb-toolkit``) scores predictions
read from files, never from a model:

* ``python examples/evaluate_hpe.py --name s0_test --res_file results.txt``
  (``dex_ycb_toolkit/hpe_eval.py``, ``HPEEvaluator._load_results``): every line
  split on ``,`` must give exactly 64 fields: the image index (an ``int``: the
  sample's index in the toolkit's ``get_dataset("s0_test")``), then the 21
  joints ``x1, y1, z1, ..., x21, y21, z21`` in **millimetres** in the image's
  camera frame, in DexYCB's joint order (hoimask's canonical order). Every
  image whose ``joint_3d`` label is not all ``-1`` must have a line (the
  evaluator asserts it); lines for other images are ignored.
* ``python examples/evaluate_bop.py --name s0_test --res_file results.csv``
  (``dex_ycb_toolkit/bop_eval.py``, reading with ``bop_toolkit_lib.inout.load_bop_results``
  of the toolkit's ``bop_toolkit`` submodule): an optional first line
  ``scene_id,im_id,obj_id,score,R,t,time``, then one estimate per line with
  exactly 7 comma-separated fields: ``scene_id``, ``im_id`` (ints, from the
  toolkit's ``get_bop_id_from_idx``), ``obj_id`` (the YCB id 1-21), ``score``,
  ``R`` (9 space-separated numbers, row-major, model -> camera), ``t`` (3
  space-separated numbers, **millimetres**) and ``time`` (``-1``, or the same
  value for every estimate of one image). Poses are in the frame of DexYCB's
  models (``models/<name>/textured_simple.obj``, the frame of the ``pose_y``
  labels); the toolkit converts them to the BOP YCB-V models itself. Only the
  keyframes (``frame % 4 == 0``, ``is_bop_target``) are scored.

hoimask keeps metres and can mirror left hands into right hands
(``DexYCB(hands="mirror")``); the writers convert to millimetres and undo the
mirror (``x -> -x``; ``R -> M R M``, ``t -> M t`` with ``M = diag(-1, 1, 1)``)
for the samples flagged ``mirrored``. The ids come from
:func:`hoimask.data.dexycb_ids.dexycb_toolkit_ids`. Both files are written atomically.
"""

from __future__ import annotations

import os

import numpy as np

from hoimask._checks import DTypeError, ShapeError, ValueRangeError, check_choice, check_shape
from hoimask._io import atomic_replace
from hoimask.metrics._arrays import ArrayLike, to_tensors
from hoimask.skeleton.joints import JOINT_ORDERS, order_indices

__all__ = ["BOP_RESULTS_HEADER", "write_dexycb_bop_results", "write_dexycb_hpe_results"]

#: First line of a BOP19 result file (``bop_toolkit_lib.inout``).
BOP_RESULTS_HEADER = "scene_id,im_id,obj_id,score,R,t,time"
_TO_MM = {"m": 1000.0, "mm": 1.0}
_MIRROR = np.diag([-1.0, 1.0, 1.0])


def _int_ids(values, name: str, fn: str, n: int, *, low: int = 0, high: int | None = None) -> np.ndarray:
    ids = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values)
    if ids.dtype == bool or not np.issubdtype(ids.dtype, np.integer):
        raise DTypeError(f"{fn}(): argument '{name}' expected integers, got dtype {ids.dtype}")
    if ids.shape != (n,):
        raise ShapeError(f"{fn}(): argument '{name}' expected shape ({n},), got {tuple(ids.shape)}")
    if n and (ids.min() < low or (high is not None and ids.max() > high)):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueRangeError(f"{fn}(): argument '{name}' expected values {bound}, got {ids.min()}..{ids.max()}")
    return ids.astype(np.int64)


def _flags(values, name: str, fn: str, n: int) -> np.ndarray:
    if values is None:
        return np.zeros(n, dtype=bool)
    flags = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values)
    if flags.dtype != bool or flags.shape != (n,):
        raise ShapeError(f"{fn}(): argument '{name}' expected ({n},) bools, got {flags.dtype} {tuple(flags.shape)}")
    return flags


def _finite(x: np.ndarray, name: str, fn: str) -> None:
    if not np.isfinite(x).all():
        bad = int(np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(1))[0])
        raise ValueRangeError(f"{fn}(): argument '{name}' holds non-finite values (first at sample {bad})")


def write_dexycb_hpe_results(
    path: str | os.PathLike,
    image_ids: ArrayLike,
    joints: ArrayLike,
    *,
    joint_order: str = "canonical",
    units: str = "m",
    mirrored: ArrayLike | None = None,
    decimals: int = 6,
) -> str:
    """Write the DexYCB toolkit's HPE result file (``evaluate_hpe.py --res_file``).

    One line per image: ``image_id,x1,y1,z1,...,x21,y21,z21`` (64 fields),
    millimetres, camera frame, DexYCB's joint order, ``decimals`` digits after
    the point (the default, 1 nm, changes no reported number).

    Args:
        path: output ``.txt`` file.
        image_ids: ``(N,)`` toolkit image indices (``dexycb_toolkit_ids(...)["image_id"]``), unique.
        joints: ``(N, 21, 3)`` predicted joints in ``units``, OpenCV camera frame, in ``joint_order``.
        joint_order: order of ``joints`` (a key of ``JOINT_ORDERS``).
        units: ``"m"`` or ``"mm"``: the units of ``joints``.
        mirrored: ``(N,)`` bools: ``True`` where the sample was mirrored into a
            right hand (left hands of ``DexYCB(hands="mirror")``); undone here.
        decimals: digits after the decimal point (>= 3).

    Returns:
        The path written, as a string.

    Raises:
        ShapeError, DTypeError: wrong shapes or types.
        ValueRangeError: duplicate or negative ids, non-finite joints.

    Shape:
        image_ids ``(N,)``, joints ``(N, 21, 3)``, mirrored ``(N,)``.
    """
    fn = "write_dexycb_hpe_results"
    check_choice(joint_order, JOINT_ORDERS, name="joint_order", fn=fn)
    check_choice(units, _TO_MM, name="units", fn=fn)
    if isinstance(decimals, bool) or not isinstance(decimals, int) or decimals < 3:
        raise ValueRangeError(f"{fn}(): argument 'decimals' expected an int >= 3, got {decimals!r}")
    _, t = to_tensors(fn, joints=joints)
    dims = check_shape(t["joints"], "N 21 3", name="joints", fn=fn)
    n = dims["N"]
    ids = _int_ids(image_ids, "image_ids", fn, n)
    if len(np.unique(ids)) != n:
        raise ValueRangeError(f"{fn}(): argument 'image_ids' holds duplicates (the toolkit would keep the last line)")
    flip = _flags(mirrored, "mirrored", fn, n)
    xyz = t["joints"].detach().cpu().double().numpy()[:, order_indices(joint_order, "canonical")] * _TO_MM[units]
    _finite(xyz, "joints", fn)
    xyz[flip, :, 0] *= -1.0  # (N, 21, 3) mm, un-mirrored
    fmt = f"{{:.{decimals}f}}"
    lines = [f"{i}," + ",".join(fmt.format(v) for v in row) + "\n" for i, row in zip(ids.tolist(), xyz.reshape(n, 63))]
    with atomic_replace(path) as tmp, open(tmp, "w", encoding="ascii", newline="\n") as fh:
        fh.writelines(lines)
    return os.fspath(path)


def write_dexycb_bop_results(
    path: str | os.PathLike,
    scene_ids: ArrayLike,
    im_ids: ArrayLike,
    obj_ids: ArrayLike,
    rotations: ArrayLike,
    translations: ArrayLike,
    *,
    units: str = "m",
    scores: ArrayLike | None = None,
    times: ArrayLike | None = None,
    mirrored: ArrayLike | None = None,
) -> str:
    """Write a BOP19 result file for the DexYCB toolkit (``evaluate_bop.py --res_file``).

    A header line ``scene_id,im_id,obj_id,score,R,t,time``, then one line per
    estimate; numbers are written with Python's shortest round-trip ``repr``,
    so the toolkit reads back exactly the float64 values given (after the
    conversion to millimetres).

    Args:
        path: output ``.csv`` file.
        scene_ids: ``(N,)`` BOP scene ids (``dexycb_toolkit_ids(...)["scene_id"]``).
        im_ids: ``(N,)`` BOP image ids (the frame number).
        obj_ids: ``(N,)`` YCB object ids, 1-21 (the grasped object: ``["obj_id"]``).
        rotations: ``(N, 3, 3)`` model -> camera rotations (DexYCB model frame).
        translations: ``(N, 3)`` translations in ``units``.
        units: ``"m"`` or ``"mm"``: the units of ``translations``.
        scores: ``(N,)`` confidences (default 1); with several estimates of one
            object in one image, BOP keeps the best-scored ones.
        times: ``(N,)`` seconds per image (default ``-1``: unknown); must be equal
            for all estimates of one image, as ``eval_bop19.py`` requires.
        mirrored: ``(N,)`` bools: samples mirrored by ``DexYCB(hands="mirror")``; undone here.

    Returns:
        The path written, as a string.

    Raises:
        ShapeError, DTypeError: wrong shapes or types.
        ValueRangeError: ids out of range, non-finite poses or scores, times
            that differ within one image.

    Shape:
        ids ``(N,)``, rotations ``(N, 3, 3)``, translations ``(N, 3)``, scores/times/mirrored ``(N,)``.
    """
    fn = "write_dexycb_bop_results"
    check_choice(units, _TO_MM, name="units", fn=fn)
    _, t = to_tensors(fn, rotations=rotations, translations=translations, scores=scores, times=times)
    dims = check_shape(t["rotations"], "N 3 3", name="rotations", fn=fn)
    check_shape(t["translations"], "N 3", name="translations", dims=dims, fn=fn)
    n = dims["N"]
    scene = _int_ids(scene_ids, "scene_ids", fn, n)
    image = _int_ids(im_ids, "im_ids", fn, n)
    obj = _int_ids(obj_ids, "obj_ids", fn, n, low=1, high=21)
    flip = _flags(mirrored, "mirrored", fn, n)
    R = t["rotations"].detach().cpu().double().numpy().copy()
    tr = t["translations"].detach().cpu().double().numpy() * _TO_MM[units]
    _finite(R, "rotations", fn)
    _finite(tr, "translations", fn)
    R[flip] = _MIRROR @ R[flip] @ _MIRROR
    tr[flip] = tr[flip] @ _MIRROR
    extra = {}
    for name, default in (("scores", 1.0), ("times", -1.0)):
        if t[name] is None:
            extra[name] = np.full(n, default)
            continue
        check_shape(t[name], "N", name=name, dims=dims, fn=fn)
        extra[name] = t[name].detach().cpu().double().numpy()
        _finite(extra[name][:, None], name, fn)
    seen: dict[tuple[int, int], float] = {}
    for s, i, tm in zip(scene.tolist(), image.tolist(), extra["times"].tolist()):
        if abs(seen.setdefault((s, i), tm) - tm) > 0.001:
            raise ValueRangeError(f"{fn}(): argument 'times' differs within scene {s} image {i} (BOP requires one time per image)")
    lines = [BOP_RESULTS_HEADER + "\n"]
    for k in range(n):
        rot = " ".join(repr(float(v)) for v in R[k].reshape(9))  # row-major r11 r12 r13 r21 ...
        trans = " ".join(repr(float(v)) for v in tr[k])
        lines.append(f"{scene[k]},{image[k]},{obj[k]},{float(extra['scores'][k])!r},{rot},{trans},"
                     f"{float(extra['times'][k])!r}\n")  # fmt: skip
    with atomic_replace(path) as tmp, open(tmp, "w", encoding="ascii", newline="\n") as fh:
        fh.writelines(lines)
    return os.fspath(path)
