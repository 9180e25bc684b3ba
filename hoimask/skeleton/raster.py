"""Rasterise 2D joints and bones onto the patch grid of a ViT.

Pixel convention (OpenCV): integer coordinates are pixel centres, so pixel
``(u, v)`` covers ``[u - 0.5, u + 0.5) x [v - 0.5, v + 0.5)`` and an image of
``W x H`` pixels spans ``[-0.5, W - 0.5) x [-0.5, H - 0.5)``. Patch ``(r, c)``
of size ``(ph, pw)`` covers pixel columns ``c*pw .. c*pw + pw - 1`` and rows
``r*ph .. r*ph + ph - 1``; patches are numbered row-major, ``n = r * gw + c``.

Coverage rule. A bone is drawn with a square brush of side ``thickness``
pixels: it covers a patch when the brush, swept along the segment, touches the
patch's square (boundaries included). Equivalently, the segment intersects the
patch square grown by ``thickness / 2`` on every side, which is an exact,
cheap slab test. With ``thickness = 0`` a bone covers exactly the patches its
line passes through. A joint is the same test for a zero-length segment.

Invalid joints, an explicit rule instead of crashing or wrapping around:

* a joint whose ``visibility`` is ``False`` covers nothing, and neither does
  any bone with such an endpoint;
* a joint outside the image covers nothing; a bone with an endpoint outside the
  image still covers the in-image patches its brush touches (it is clipped by
  the image border, never wrapped to the other side);
* NaN or infinite coordinates are an error (:class:`ValueRangeError`) — mark
  such joints invisible and give any finite placeholder instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hoimask._checks import (
    DTypeError,
    ShapeError,
    ValueRangeError,
    check_dtype,
    check_finite,
    check_floating,
    check_in_range,
    check_same_device,
    check_shape,
)
from hoimask.skeleton.joints import PARENTS
from hoimask.skeleton.tree import bones, validate_parents

__all__ = ["patch_centers", "rasterize_segments", "rasterize_joints", "rasterize_bones"]


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    """Turn an int or a pair of ints into a validated ``(rows, cols)`` pair of positive ints."""
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else tuple(value)
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in pair):
        raise DTypeError(f"argument '{name}': expected an int or a pair of ints, got {value!r}")
    if pair[0] <= 0 or pair[1] <= 0:
        raise ValueRangeError(f"argument '{name}': expected positive sizes, got {value!r}")
    return int(pair[0]), int(pair[1])


def patch_centers(
    grid_size: int | Sequence[int],
    patch_size: int | Sequence[int],
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Pixel coordinates ``(x, y)`` of the centre of every patch, row-major.

    Args:
        grid_size: ``(gh, gw)`` patches (or one int for a square grid).
        patch_size: ``(ph, pw)`` pixels (or one int).
        device: device of the result.
        dtype: floating dtype of the result.

    Returns:
        Patch centres in pixels.

    Shape:
        ``(gh * gw, 2)``.

    Example:
        >>> patch_centers((1, 2), 16).tolist()
        [[7.5, 7.5], [23.5, 7.5]]
    """
    gh, gw = _pair(grid_size, "grid_size")
    ph, pw = _pair(patch_size, "patch_size")
    ys = torch.arange(gh, device=device, dtype=dtype) * ph + (ph - 1) / 2
    xs = torch.arange(gw, device=device, dtype=dtype) * pw + (pw - 1) / 2
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=-1)


def _slab(a: torch.Tensor, d: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Parameter interval ``[tmin, tmax]`` where ``a + t d`` lies in ``[lo, hi]`` (1D slab test).

    ``a``, ``d``: ``(..., 1)``; ``lo``, ``hi``: ``(G,)``; returns two ``(..., G)`` tensors.
    """
    parallel = d == 0
    safe = torch.where(parallel, torch.ones_like(d), d)
    t1 = (lo - a) / safe  # (..., G)
    t2 = (hi - a) / safe
    tmin = torch.minimum(t1, t2)
    tmax = torch.maximum(t1, t2)
    inside = (a >= lo) & (a <= hi)  # only used where parallel
    inf = torch.full_like(tmin, float("inf"))
    tmin = torch.where(parallel, torch.where(inside, -inf, inf), tmin)
    tmax = torch.where(parallel, torch.where(inside, inf, -inf), tmax)
    return tmin, tmax


def _rasterize(
    starts: torch.Tensor, ends: torch.Tensor, grid: tuple[int, int], patch: tuple[int, int], thickness: float
) -> torch.Tensor:
    """Unchecked core of :func:`rasterize_segments`: ``(B, S, 2)`` x2 -> ``(B, S, N)`` bool."""
    gh, gw = grid
    ph, pw = patch
    B, S, _ = starts.shape
    dtype, device = starts.dtype, starts.device
    half = thickness / 2
    col = torch.arange(gw, device=device, dtype=dtype) * pw - 0.5  # (gw,) left edges
    row = torch.arange(gh, device=device, dtype=dtype) * ph - 0.5  # (gh,) top edges
    delta = ends - starts  # (B, S, 2)
    tmin_x, tmax_x = _slab(starts[..., :1], delta[..., :1], col - half, col + pw + half)  # (B, S, gw)
    tmin_y, tmax_y = _slab(starts[..., 1:], delta[..., 1:], row - half, row + ph + half)  # (B, S, gh)
    # max(tmin_y, tmin_x, 0) <= min(tmax_y, tmax_x, 1), split into per-axis and cross terms so
    # that only two comparisons run on the full (B, S, gh, gw) grid.
    ok_y = (tmin_y <= tmax_y) & (tmin_y <= 1.0) & (tmax_y >= 0.0)  # (B, S, gh)
    ok_x = (tmin_x <= tmax_x) & (tmin_x <= 1.0) & (tmax_x >= 0.0)  # (B, S, gw)
    hit = (tmin_y.unsqueeze(-1) <= tmax_x.unsqueeze(-2)) & (tmin_x.unsqueeze(-2) <= tmax_y.unsqueeze(-1))
    hit &= ok_y.unsqueeze(-1) & ok_x.unsqueeze(-2)  # (B, S, gh, gw)
    return hit.reshape(B, S, gh * gw)


def _check_thickness(value: float, name: str) -> float:
    return check_in_range(value, name=name, low=0.0)


def rasterize_segments(
    starts: torch.Tensor,
    ends: torch.Tensor,
    grid_size: int | Sequence[int],
    patch_size: int | Sequence[int],
    *,
    thickness: float = 0.0,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Which patches each 2D segment covers (square brush of side ``thickness``).

    Args:
        starts: segment start points in pixels ``(x, y)``.
        ends: segment end points in pixels; equal to ``starts`` for points.
        grid_size: ``(gh, gw)`` patches (or one int).
        patch_size: ``(ph, pw)`` pixels (or one int).
        thickness: brush side in pixels, ``>= 0``.
        valid: optional bool mask; invalid segments cover nothing.

    Returns:
        Bool coverage, ``True`` where the segment's brush touches the patch.

    Shape:
        starts, ends ``(B, S, 2)``, valid ``(B, S)`` -> ``(B, S, N)`` with ``N = gh * gw``.
    """
    dims = check_shape(starts, "B S 2", name="starts")
    check_shape(ends, "B S 2", name="ends", dims=dims)
    check_floating(starts, name="starts")
    check_floating(ends, name="ends")
    check_finite(starts, name="starts")
    check_finite(ends, name="ends")
    check_same_device({"starts": starts, "ends": ends, "valid": valid})
    thickness = _check_thickness(thickness, "thickness")
    grid, patch = _pair(grid_size, "grid_size"), _pair(patch_size, "patch_size")
    out = _rasterize(starts, ends.to(starts.dtype), grid, patch, thickness)
    if valid is not None:
        check_shape(valid, "B S", name="valid", dims=dims)
        check_dtype(valid, torch.bool, name="valid")
        out = out & valid.unsqueeze(-1)
    return out


def _check_joints(
    joints_2d: torch.Tensor, visibility: torch.Tensor | None, num_joints: int | None
) -> dict[str, int]:
    dims = check_shape(joints_2d, "B J 2", name="joints_2d")
    if num_joints is not None and dims["J"] != num_joints:
        raise ShapeError(
            f"argument 'joints_2d': expected shape (B, {num_joints}, 2) to match 'parents', "
            f"got {tuple(joints_2d.shape)}"
        )
    check_floating(joints_2d, name="joints_2d")
    check_finite(joints_2d, name="joints_2d")
    if visibility is not None:
        check_shape(visibility, "B J", name="visibility", dims=dims)
        check_dtype(visibility, torch.bool, name="visibility")
        check_same_device({"joints_2d": joints_2d, "visibility": visibility})
    return dims


def _inside_image(joints_2d: torch.Tensor, grid: tuple[int, int], patch: tuple[int, int]) -> torch.Tensor:
    """``(B, J)`` bool: joint lies in ``[-0.5, W - 0.5) x [-0.5, H - 0.5)``."""
    width, height = grid[1] * patch[1], grid[0] * patch[0]
    x, y = joints_2d[..., 0], joints_2d[..., 1]
    return (x >= -0.5) & (x < width - 0.5) & (y >= -0.5) & (y < height - 0.5)


def rasterize_joints(
    joints_2d: torch.Tensor,
    grid_size: int | Sequence[int],
    patch_size: int | Sequence[int],
    *,
    radius: float = 0.0,
    visibility: torch.Tensor | None = None,
) -> torch.Tensor:
    """Which patches each joint covers: the patch it lies in, grown by ``radius`` pixels.

    Args:
        joints_2d: joints in pixels ``(x, y)``, any number ``J`` of joints.
        grid_size: ``(gh, gw)`` patches (or one int).
        patch_size: ``(ph, pw)`` pixels (or one int).
        radius: half side of the square brush in pixels, ``>= 0``.
        visibility: optional bool mask; invisible joints cover nothing.

    Returns:
        Bool coverage. Joints outside the image cover nothing.

    Shape:
        joints_2d ``(B, J, 2)``, visibility ``(B, J)`` -> ``(B, J, N)``.

    Example:
        >>> import torch
        >>> cover = rasterize_joints(torch.tensor([[[20.0, 3.0]]]), (2, 2), 16)
        >>> cover.int().tolist()
        [[[0, 1, 0, 0]]]
    """
    _check_joints(joints_2d, visibility, None)
    radius = check_in_range(radius, name="radius", low=0.0)
    grid, patch = _pair(grid_size, "grid_size"), _pair(patch_size, "patch_size")
    out = _rasterize(joints_2d, joints_2d, grid, patch, 2 * radius)  # (B, J, N)
    ok = _inside_image(joints_2d, grid, patch)
    if visibility is not None:
        ok = ok & visibility
    return out & ok.unsqueeze(-1)


def rasterize_bones(
    joints_2d: torch.Tensor,
    grid_size: int | Sequence[int],
    patch_size: int | Sequence[int],
    *,
    thickness: float = 0.0,
    visibility: torch.Tensor | None = None,
    parents: Sequence[int] = PARENTS,
) -> torch.Tensor:
    """Which patches each bone ``parent -> child`` covers.

    Bones are ordered by child index (as :data:`hoimask.skeleton.BONES` for the
    hand): bone ``k`` joins ``parents[c]`` and ``c``, the ``k``-th non-root joint.

    Args:
        joints_2d: joints in pixels ``(x, y)`` in the order ``parents`` is written in.
        grid_size: ``(gh, gw)`` patches (or one int).
        patch_size: ``(ph, pw)`` pixels (or one int).
        thickness: brush side in pixels, ``>= 0``.
        visibility: optional bool mask; a bone with an invisible endpoint covers nothing.
        parents: the kinematic tree (default: the canonical hand).

    Returns:
        Bool coverage per bone. Bones leaving the image are clipped by its border.

    Shape:
        joints_2d ``(B, J, 2)``, visibility ``(B, J)`` -> ``(B, J - 1, N)``.
    """
    par = validate_parents(parents)
    _check_joints(joints_2d, visibility, len(par))
    thickness = _check_thickness(thickness, "thickness")
    grid, patch = _pair(grid_size, "grid_size"), _pair(patch_size, "patch_size")
    pairs = torch.tensor(bones(par), dtype=torch.int64, device=joints_2d.device).reshape(-1, 2)  # (J-1, 2)
    parent_t, child_t = pairs.unbind(-1)
    out = _rasterize(joints_2d[:, parent_t], joints_2d[:, child_t], grid, patch, thickness)  # (B, J-1, N)
    if visibility is not None:
        ok = visibility[:, parent_t] & visibility[:, child_t]  # (B, J-1)
        out = out & ok.unsqueeze(-1)
    return out
