"""HOISDF's anchors, 2D boxes and ground-truth pose query points (its loaders and ``Model.forward``).

* :func:`hand_box` — the hand box of field-guided sampling: the 2D joints'
  box scaled by 1.1 about its centre.
* :func:`object_box` — the box of the projected object points ``K (R p + t)``
  (HOISDF projects the object's 3D bounding-box corners; the extreme
  projected points of a dense surface sample give nearly the same box).
* :func:`box_center_at_depth` — HOISDF's object anchor ``obj_center_cam``:
  the 2D box centre lifted to a depth (DexYCB: the ground-truth hand-root depth).
* :func:`near_surface_points` — HOISDF's training "pre-points": points whose
  ground-truth |SDF| is below 0.05 m, drawn per sample, plus uniform noise.
* :func:`noise_range` — the noise half-width of the schedule: it grows with
  the position inside the epoch (thresholds 0.3 and 0.7 -> 0.03, 0.05, 0.07
  scaled units).
* :func:`field_guided_query_points` — :func:`hoimask.sdf.field_guided_points`
  with HOISDF's model-side fallbacks: empty boxes -> the whole image, missing
  slots -> repeats of the valid points (marked invalid).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import torch

from hoimask._checks import ShapeError, ValueRangeError, check_finite, check_int, check_shape
from hoimask.geometry import project, unproject
from hoimask.models._batch import object_present, optional

logger = logging.getLogger("hoimask.models.hoisdf")

__all__ = [
    "QueryPoints",
    "batch_anchors",
    "box_center_at_depth",
    "field_guided_query_points",
    "full_image_box",
    "hand_box",
    "near_surface_points",
    "noise_range",
    "object_anchor",
    "object_box",
]


def full_image_box(batch_size: int, image_size: tuple[int, int], *, like: torch.Tensor) -> torch.Tensor:
    """``(B, 4)`` boxes ``(0, 0, W, H)`` covering the whole image."""
    H, W = image_size
    return like.new_tensor([0.0, 0.0, float(W), float(H)]).expand(batch_size, 4).clone()


def _bound(points_2d: torch.Tensor) -> torch.Tensor:
    """Box ``(x0, y0, x1, y1)`` of the finite points; NaN where a sample has none."""
    ok = torch.isfinite(points_2d).all(-1, keepdim=True)  # (B, N, 1)
    lo = torch.where(ok, points_2d, torch.full_like(points_2d, float("inf"))).amin(1)
    hi = torch.where(ok, points_2d, torch.full_like(points_2d, -float("inf"))).amax(1)
    box = torch.cat([lo, hi], dim=-1)  # (B, 4)
    return torch.where(torch.isfinite(box).all(-1, keepdim=True), box, torch.full_like(box, float("nan")))


def hand_box(joints_2d: torch.Tensor, scale: float = 1.1) -> torch.Tensor:
    """The 2D joints' box, scaled about its centre (HOISDF's ``bbox_hand``: ×1.1).

    Non-finite joints are ignored; a sample without a finite joint gets a NaN box.

    Shape:
        joints_2d ``(B, J, 2)`` pixels -> ``(B, 4)`` ``(x0, y0, x1, y1)``.
    """
    check_shape(joints_2d, "B J 2", name="joints_2d", fn="hand_box")
    box = _bound(joints_2d)
    center, half = (box[:, :2] + box[:, 2:]) / 2, (box[:, 2:] - box[:, :2]) / 2 * scale
    return torch.cat([center - half, center + half], dim=-1)


def object_box(points: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Box of the projected object points ``K (R p + t)``; NaN where no point projects finitely.

    Shape:
        points ``(B, P, 3)`` object frame, rotation ``(B, 3, 3)``, translation ``(B, 3)``, K ``(B, 3, 3)``
        -> ``(B, 4)``.
    """
    dims = check_shape(points, "B P 3", name="points", fn="object_box")
    check_shape(rotation, "B 3 3", name="rotation", dims=dims, fn="object_box")
    check_shape(translation, "B 3", name="translation", dims=dims, fn="object_box")
    camera = points @ rotation.transpose(1, 2) + translation[:, None]  # (B, P, 3)
    in_front = camera[..., 2:] > 0
    uv = project(torch.where(in_front, camera, torch.ones_like(camera)), K)  # (B, P, 2)
    return _bound(torch.where(in_front, uv, torch.full_like(uv, float("nan"))))


def box_center_at_depth(box: torch.Tensor, depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """The box centre lifted to ``depth`` (HOISDF's ``obj_center_cam``).

    Shape:
        box ``(B, 4)``, depth ``(B,)`` m, K ``(B, 3, 3)`` -> ``(B, 3)`` camera frame.
    """
    check_shape(box, "B 4", name="box", fn="box_center_at_depth")
    center = (box[:, :2] + box[:, 2:]) / 2  # (B, 2)
    return unproject(center, depth.to(center.dtype), K.to(center.dtype))


def object_anchor(box: torch.Tensor, hand_root: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """HOISDF's ``obj_center_cam`` (the box centre at the root depth); the hand root where the box is not finite.

    Shape:
        box ``(B, 4)``, hand_root ``(B, 3)``, K ``(B, 3, 3)`` -> ``(B, 3)``.
    """
    center = box_center_at_depth(box.to(hand_root.dtype), hand_root[:, 2], K.to(hand_root.dtype))
    return torch.where(torch.isfinite(center).all(-1, keepdim=True), center, hand_root)


def batch_anchors(batch: Mapping[str, Any], K: torch.Tensor, image_size: tuple[int, int], *,
                  hand_box_scale: float, fn: str):
    """HOISDF's anchors and sampling boxes from a batch's ground truth (or its explicit entries).

    The hand root is ``batch["hand_root"]`` or ``batch["joints_3d"][:, 0]``;
    the hand box ``batch["hand_box"]`` or the 2D joints' box × ``hand_box_scale``
    (the whole image without joints); the object box ``batch["object_box"]`` or
    the box of the projected ``object_points`` where an object is present (the
    hand box elsewhere); the object centre ``batch["object_center"]`` or
    :func:`object_anchor` of the object box.

    Returns:
        ``(hand_root (B, 3), object_center (B, 3), [hand_box, object_box] (B, 4) each, has_object (B,) or None)``.

    Raises:
        ValueRangeError: neither ``hand_root`` nor ``joints_3d`` in the batch.
    """
    joints = optional(batch, "joints_3d")
    hand_root = optional(batch, "hand_root")
    if hand_root is None:
        if joints is None:
            raise ValueRangeError(
                f"{fn}(): HOISDF centres the hand field on the ground-truth hand root; argument 'batch' needs "
                "'joints_3d' (B, 21, 3) or 'hand_root' (B, 3)")
        check_shape(joints, "B 21 3", name="batch['joints_3d']", fn=fn)
        hand_root = joints[:, 0]
    full = full_image_box(hand_root.shape[0], image_size, like=hand_root.float())
    j2d = optional(batch, "joints_2d")
    if j2d is None and joints is not None:
        j2d = project(joints.to(K.dtype), K)
    h_box = optional(batch, "hand_box")
    if h_box is None:
        h_box = full if j2d is None else hand_box(j2d.float(), hand_box_scale)
    R, t, pts = (optional(batch, k) for k in ("object_rotation", "object_translation", "object_points"))
    has_object = object_present(batch, R, t) if R is not None and t is not None else None
    o_box = optional(batch, "object_box")
    if o_box is None:
        o_box = h_box.clone()
        if pts is not None and has_object is not None:
            projected = object_box(pts.float(), R.float(), t.float(), K.float())
            o_box = torch.where(has_object[:, None], projected, o_box)
    center = optional(batch, "object_center")
    if center is None:
        center = object_anchor(o_box, hand_root.float(), K)
    return hand_root, center, [h_box, o_box], has_object


def noise_range(epoch_progress: float, ranges: Sequence[float], thresholds: Sequence[float]) -> float:
    """HOISDF's ``random_move_dist[#{t in random_ratio : batch_ratio > t}]``.

    Example:
        >>> [noise_range(p, (0.03, 0.05, 0.07), (0.3, 0.7)) for p in (0.0, 0.5, 0.9)]
        [0.03, 0.05, 0.07]
    """
    return float(ranges[sum(epoch_progress > t for t in thresholds)])


def near_surface_points(
    points: torch.Tensor,
    sdf: torch.Tensor,
    num: int,
    *,
    max_distance: float = 0.05,
    noise: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``num`` points with ``|sdf| < max_distance`` per sample, then add uniform noise in ``±noise``.

    Without replacement while a sample has enough such points, then repeated
    (drawn with replacement). A sample with no near-surface point draws from its
    finite-SDF points, and one without any from all its points; ``fallback``
    marks both.

    Args:
        points: ``(B, Q, 3)`` query points (m).
        sdf: ``(B, Q)`` their ground-truth signed distances (m); NaN/inf never count as near.
        num: points per sample, >= 1.
        max_distance: the near-surface threshold (m).
        noise: half-width of the uniform noise added to every coordinate (m).
        generator: RNG.

    Returns:
        ``(points (B, num, 3), fallback (B,) bool)``.
    """
    fn = "near_surface_points"
    dims = check_shape(points, "B Q 3", name="points", fn=fn)
    check_shape(sdf, "B Q", name="sdf", dims=dims, fn=fn)
    check_int(num, name="num", low=1, fn=fn)
    if dims["Q"] == 0:
        raise ShapeError(f"{fn}(): argument 'points' expected at least one point, got Q=0")
    check_finite(points, name="points", fn=fn)
    B, Q = dims["B"], dims["Q"]
    finite = torch.isfinite(sdf)
    near = finite & (sdf.abs() < max_distance)
    count = near.sum(1)  # (B,)
    fallback = count == 0
    pool = torch.where(fallback[:, None], finite, near)
    pool = torch.where(pool.any(1, keepdim=True), pool, torch.ones_like(pool))
    count = pool.sum(1)
    keys = torch.rand(B, Q, generator=generator, device=points.device)
    keys = torch.where(pool, keys, torch.full_like(keys, 2.0))  # pool members first, in random order
    take = min(num, Q)
    order = keys.argsort(dim=1)[:, :take]  # (B, take)
    if take < num:  # fewer query points than slots: those slots are repeats below
        order = order.repeat(1, (num + take - 1) // take)[:, :num]
    repeat = torch.multinomial(pool.to(points.dtype), num, replacement=True, generator=generator)  # (B, num)
    slot = torch.arange(num, device=points.device)
    index = torch.where(slot[None] < count[:, None], order, repeat)  # (B, num)
    chosen = torch.gather(points, 1, index[..., None].expand(-1, -1, 3))
    if noise > 0:
        chosen = chosen + (torch.rand(chosen.shape, generator=generator, device=points.device,
                                      dtype=points.dtype) * 2 - 1) * noise
    return chosen, fallback


class QueryPoints(NamedTuple):
    """Pose query points of one field, camera frame."""

    points: torch.Tensor  #: (B, N, 3) m
    sdf: torch.Tensor  #: (B, N) predicted SDF in scaled units (detached)
    valid: torch.Tensor  #: (B, N) bool; False = a slot filled by repeating a valid point
    box_fallbacks: int  #: samples whose 2D box was empty / missing or held no voxel (whole image used)


def field_guided_query_points(
    sdf_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    center: torch.Tensor,
    K: torch.Tensor,
    box: torch.Tensor,
    k: int,
    image_size: tuple[int, int],
    *,
    extent: float,
    resolution: int,
    chunk_size: int = 32768,
) -> QueryPoints:
    """Field-guided points with fallbacks, without gradient (HOISDF's ``sdf_infer``).

    Runs :func:`hoimask.sdf.field_guided_points` on the ``resolution³`` voxel
    centres of the cube of side ``extent`` (m) around ``center``, keeping the
    ``k`` smallest ``|SDF|`` in ``box``. A box that is not finite or has no
    area, and a box that holds no voxel, is replaced by the whole image and
    counted in ``box_fallbacks``; a sample whose grid projects nowhere into
    the image raises. Slots left empty (fewer in-box voxels than ``k``) repeat
    the valid points cyclically and are marked ``valid = False``.

    Args:
        sdf_fn: ``(points (b, M, 3), rows (b,)) -> sdf (b, M)`` for the batch rows ``rows``.
        center: ``(B, 3)`` cube centres (m).
        K: ``(B, 3, 3)`` intrinsics.
        box: ``(B, 4)`` pixel boxes ``(x0, y0, x1, y1)``.
        k: points per sample.
        image_size: ``(H, W)``.
        extent: cube side (m).
        resolution: voxels per side.
        chunk_size: voxels per SDF evaluation.

    Returns:
        :class:`QueryPoints` with ``(B, k, 3)`` points.

    Raises:
        ValueRangeError: no voxel of some sample's grid projects into the image.
    """
    from hoimask.sdf import field_guided_points

    B = center.shape[0]
    full = full_image_box(B, image_size, like=center)
    box = box.to(center.dtype)
    empty = ~torch.isfinite(box).all(-1) | (box[:, 2] <= box[:, 0]) | (box[:, 3] <= box[:, 1])
    box = torch.where(empty[:, None], full, box)

    def run(rows: torch.Tensor):
        return field_guided_points(lambda p: sdf_fn(p, rows), center[rows], extent, resolution, K[rows], box[rows],
                                   k, chunk_size=chunk_size)

    with torch.no_grad():
        points, sdf, valid = run(torch.arange(B, device=center.device))
        none = ~valid.any(1)
        if bool(none.any()):  # the box held no voxel: the whole image instead
            rows = none.nonzero().squeeze(1)
            box[rows] = full[rows]
            p2, s2, v2 = run(rows)
            points[rows], sdf[rows], valid[rows] = p2, s2, v2
            if not bool(v2.any(1).all()):
                raise ValueRangeError(
                    f"field_guided_query_points(): no voxel of the grid (side {extent:.3f} m) around "
                    f"{center[rows].tolist()} projects into the image; check the anchors and K")
        # Valid points come first (sorted by |SDF|); repeat them into the missing slots.
        index = torch.arange(k, device=center.device)[None] % valid.sum(1, keepdim=True)  # (B, k)
        points = torch.gather(points, 1, index[..., None].expand(-1, -1, 3))
        sdf = torch.gather(sdf, 1, index)
    fallbacks = int(empty.sum()) + int(none.sum())
    if fallbacks:
        logger.warning("HOISDF field-guided sampling: %d box(es) empty or without voxels; used the whole image",
                       fallbacks)
    return QueryPoints(points, sdf, valid, fallbacks)
