"""Query-point samplers for SDF learning.

* :func:`sample_surface` — area-weighted points on a triangle mesh.
* :func:`sample_near_surface` — surface points perturbed by isotropic
  Gaussians (DeepSDF / AlignSDF style).
* :func:`sample_uniform` — uniform points in an axis-aligned box.
* :func:`field_guided_points` — HOISDF's field-informed sampling (voxel grid,
  2D box filter, k smallest ``|SDF|``), batched and memory-bounded.

Every sampler takes ``generator: torch.Generator | None``; with ``None`` the
default generator of the device is used (nothing global is seeded or stored).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .._checks import (
    DTypeError,
    ShapeError,
    ValueRangeError,
    check_finite,
    check_floating,
    check_int,
    check_positive,
    check_same_device,
    check_shape,
)

__all__ = [
    "DEFAULT_SIGMAS",
    "sample_surface",
    "sample_near_surface",
    "sample_uniform",
    "field_guided_points",
]

#: Standard deviations (metres) of the near-surface perturbations: DeepSDF's
#: variances 0.0025 and 0.00025 on unit-radius shapes, rescaled to a hand-sized
#: radius of 0.1 m (sigma = 0.1 * sqrt(var)).
DEFAULT_SIGMAS = (0.005, 0.0016)


def _rand(shape: Sequence[int], like: Tensor, generator: torch.Generator | None) -> Tensor:
    """Uniform [0, 1) numbers drawn on the generator's device, then moved to ``like``."""
    device = generator.device if generator is not None else like.device
    return torch.rand(tuple(shape), generator=generator, device=device, dtype=like.dtype).to(like.device)


def _randn(shape: Sequence[int], like: Tensor, generator: torch.Generator | None) -> Tensor:
    device = generator.device if generator is not None else like.device
    return torch.randn(tuple(shape), generator=generator, device=device, dtype=like.dtype).to(like.device)


def _check_mesh(vertices: Tensor, faces: Tensor, fn: str) -> dict[str, int]:
    dims = check_shape(vertices, "B V 3", name="vertices", fn=fn)
    check_shape(faces, "T 3", name="faces", dims=dims, fn=fn)
    check_floating(vertices, name="vertices", fn=fn)
    check_finite(vertices, name="vertices", fn=fn)
    if faces.dtype not in (torch.int64, torch.int32):
        raise DTypeError(f"{fn}(): argument 'faces' expected an int64 or int32 tensor, got dtype {faces.dtype}")
    check_same_device({"vertices": vertices, "faces": faces}, fn=fn)
    if dims["T"] == 0 or dims["V"] == 0:
        raise ShapeError(f"{fn}(): expected a non-empty mesh, got V={dims['V']}, T={dims['T']}")
    lo, hi = int(faces.min()), int(faces.max())
    if lo < 0 or hi >= dims["V"]:
        raise ValueRangeError(
            f"{fn}(): argument 'faces' expected indices in [0, {dims['V'] - 1}], got values in [{lo}, {hi}]"
        )
    return dims


def sample_surface(
    vertices: Tensor, faces: Tensor, n: int, *, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Area-weighted uniform samples on the surface of a triangle mesh.

    Triangles are drawn with probability proportional to their area
    (with replacement), then a point uniformly inside the triangle with the
    square-root parametrisation ``(1 - sqrt(u), sqrt(u) (1 - v), sqrt(u) v)``.

    Args:
        vertices: one mesh per batch element.
        faces: shared triangles.
        n: number of samples per batch element.
        generator: random generator (CPU or the vertices' device).

    Returns:
        ``(points, face_index)``.

    Shape:
        - vertices: ``(B, V, 3)``; faces: ``(T, 3)``
        - points: ``(B, n, 3)``; face_index: ``(B, n)`` int64

    Raises:
        ValueRangeError: a mesh has zero total area.
    """
    fn = "sample_surface"
    dims = _check_mesh(vertices, faces, fn)
    check_int(n, name="n", low=0, fn=fn)
    faces = faces.long()
    tri = vertices[:, faces]  # (B, T, 3, 3)
    area = torch.linalg.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1).norm(dim=-1)
    total = area.sum(dim=1)
    if bool((total <= 0).any()):
        raise ValueRangeError(f"{fn}(): argument 'vertices' gives a mesh of zero area")
    B = dims["B"]
    if n == 0:
        return vertices.new_empty(B, 0, 3), torch.empty(B, 0, dtype=torch.int64, device=vertices.device)
    # Inverse-CDF draw of the triangles (works with any generator device).
    cdf = torch.cumsum(area / total.unsqueeze(1), dim=1)
    u = _rand((B, n), vertices, generator) * cdf[:, -1:]
    index = torch.searchsorted(cdf.contiguous(), u.contiguous(), right=True).clamp_max(dims["T"] - 1)
    r = _rand((B, n, 2), vertices, generator)
    s = r[..., 0].sqrt()
    w = torch.stack([1 - s, s * (1 - r[..., 1]), s * r[..., 1]], dim=-1)  # (B, n, 3)
    corners = torch.gather(tri, 1, index[..., None, None].expand(-1, -1, 3, 3))  # (B, n, 3, 3)
    return (w.unsqueeze(-1) * corners).sum(dim=2), index


def sample_near_surface(
    vertices: Tensor,
    faces: Tensor,
    n: int,
    *,
    sigmas: Sequence[float] = DEFAULT_SIGMAS,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Near-surface query points: surface samples plus isotropic Gaussian noise.

    The ``n`` points are split as evenly as possible over ``sigmas`` (the
    first ``n % len(sigmas)`` scales get one extra point), in the order of
    ``sigmas``. Each point is an area-weighted surface sample plus
    ``N(0, sigma^2 I)``, so its distance to the surface is at most
    ``|noise|`` (a chi distribution with 3 degrees of freedom scaled by sigma).

    Args:
        vertices: one mesh per batch element (metres).
        faces: shared triangles.
        n: number of points per batch element.
        sigmas: noise standard deviations, each > 0 (default
            :data:`DEFAULT_SIGMAS`).
        generator: random generator.

    Returns:
        Query points.

    Shape:
        - vertices: ``(B, V, 3)``; faces: ``(T, 3)``; output: ``(B, n, 3)``

    Example:
        >>> from hoimask.sdf.meshes import icosphere
        >>> v, f = icosphere(2)
        >>> sample_near_surface(v[None], f, 10, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([1, 10, 3])
    """
    fn = "sample_near_surface"
    check_int(n, name="n", low=0, fn=fn)
    sig = [check_positive(s, name="sigmas", fn=fn) for s in sigmas]
    if not sig:
        raise ValueRangeError(f"{fn}(): argument 'sigmas' expected at least one value, got none")
    points, _ = sample_surface(vertices, faces, n, generator=generator)
    counts = [n // len(sig) + (1 if k < n % len(sig) else 0) for k in range(len(sig))]
    scale = torch.cat([vertices.new_full((c,), s) for c, s in zip(counts, sig)])  # (n,)
    noise = _randn(points.shape, vertices, generator)
    return points + noise * scale[:, None]


def sample_uniform(
    box_min: Tensor, box_max: Tensor, n: int, *, generator: torch.Generator | None = None
) -> Tensor:
    """Uniform query points in axis-aligned boxes.

    Args:
        box_min: lower corners.
        box_max: upper corners, strictly greater than ``box_min``.
        n: points per box.
        generator: random generator.

    Returns:
        Points with ``box_min <= p < box_max`` (up to rounding at the upper end).

    Shape:
        - box_min, box_max: ``(B, 3)`` or ``(3,)``; output: ``(B, n, 3)`` or ``(n, 3)``

    Example:
        >>> p = sample_uniform(torch.zeros(3), torch.ones(3), 5, generator=torch.Generator().manual_seed(0))
        >>> p.shape, bool(((p >= 0) & (p < 1)).all())
        (torch.Size([5, 3]), True)
    """
    fn = "sample_uniform"
    dims = check_shape(box_min, "... 3", name="box_min", fn=fn)
    check_shape(box_max, "... 3", name="box_max", dims=dims, fn=fn)
    check_floating(box_min, name="box_min", fn=fn)
    check_floating(box_max, name="box_max", fn=fn)
    if box_min.shape != box_max.shape or box_min.dim() > 2:
        raise ShapeError(
            f"{fn}(): arguments 'box_min'/'box_max' expected equal shapes (B, 3) or (3,), "
            f"got {tuple(box_min.shape)} and {tuple(box_max.shape)}"
        )
    check_same_device({"box_min": box_min, "box_max": box_max}, fn=fn)
    check_finite(box_min, name="box_min", fn=fn)
    check_finite(box_max, name="box_max", fn=fn)
    if bool((box_max <= box_min).any()):
        raise ValueRangeError(f"{fn}(): argument 'box_max' must be > 'box_min' on every axis")
    check_int(n, name="n", low=0, fn=fn)
    lo = box_min.unsqueeze(-2)
    hi = box_max.to(box_min.dtype).unsqueeze(-2)
    u = _rand(box_min.shape[:-1] + (n, 3), box_min, generator)
    return lo + u * (hi - lo)


def _grid_chunk(center: Tensor, extent: Tensor, resolution: int, start: int, stop: int) -> Tensor:
    """Voxel centres ``start:stop`` (flat x-fastest... z-slowest order) of each sample: (B, M, 3)."""
    flat = torch.arange(start, stop, device=center.device)
    ijk = torch.stack([flat % resolution, (flat // resolution) % resolution, flat // (resolution * resolution)], -1)
    unit = (ijk.to(center.dtype) + 0.5) / resolution - 0.5  # (M, 3) in (-0.5, 0.5)
    return center.unsqueeze(1) + unit.unsqueeze(0) * extent.view(-1, 1, 1)


def field_guided_points(
    sdf_fn: Callable[[Tensor], Tensor],
    center: Tensor,
    extent: Tensor | float,
    resolution: int,
    K: Tensor,
    box_2d: Tensor,
    k: int,
    *,
    chunk_size: int = 32768,
) -> tuple[Tensor, Tensor, Tensor]:
    """HOISDF field-informed sampling: the ``k`` voxel centres with smallest ``|SDF|`` in a 2D box.

    For every sample: voxelise the cube of side ``extent`` around ``center``
    into ``resolution**3`` voxel centres, keep those in front of the camera
    (``z > 0``) whose projection ``pi(p, K)`` lies in ``box_2d`` (inclusive),
    evaluate ``sdf_fn`` on them and return the ``k`` with the smallest absolute
    distance, sorted by ``|SDF|``. The grid is processed in chunks of
    ``chunk_size`` voxels with a running top-k, and ``sdf_fn`` only sees the
    in-box points of a chunk (padded to the largest in-box count in the
    batch), so memory is ``O(B * (chunk_size + k))``.

    When fewer than ``k`` voxels of a sample fall in its box, the missing slots
    hold ``center``, an SDF of 0 and ``valid = False``.

    Args:
        sdf_fn: maps points ``(B, M, 3)`` to signed distances ``(B, M)``; for
            example a network head or ``lambda p: mesh_sdf(p, v, f)``.
        center: centres of the voxelised cubes (camera frame, metres).
        extent: side length of the cubes, > 0 (float or one per sample).
        resolution: voxels per side ``N_v`` (HOISDF uses 64).
        K: camera intrinsics.
        box_2d: pixel boxes ``(x0, y0, x1, y1)``.
        k: number of points to return (HOISDF: 600 hand, 200 object).
        chunk_size: voxels evaluated per step.

    Returns:
        ``(points, sdf, valid)``.

    Shape:
        - center: ``(B, 3)``; extent: float or ``(B,)``; K: ``(B, 3, 3)``; box_2d: ``(B, 4)``
        - points: ``(B, k, 3)``; sdf: ``(B, k)``; valid: ``(B, k)`` bool
    """
    from ..geometry.camera import project

    fn = "field_guided_points"
    if not callable(sdf_fn):
        raise DTypeError(f"{fn}(): argument 'sdf_fn' expected a callable, got {type(sdf_fn).__name__}")
    dims = check_shape(center, "B 3", name="center", fn=fn)
    check_shape(K, "B 3 3", name="K", dims=dims, fn=fn)
    check_shape(box_2d, "B 4", name="box_2d", dims=dims, fn=fn)
    check_floating(center, name="center", fn=fn)
    check_same_device({"center": center, "K": K, "box_2d": box_2d}, fn=fn)
    check_int(resolution, name="resolution", low=1, fn=fn)
    check_int(k, name="k", low=1, fn=fn)
    check_int(chunk_size, name="chunk_size", low=1, fn=fn)
    total = resolution**3
    if k > total:
        raise ValueRangeError(f"{fn}(): argument 'k' expected at most resolution**3 = {total}, got {k}")
    B = dims["B"]
    ext = torch.as_tensor(extent, dtype=center.dtype, device=center.device).reshape(-1)
    if ext.numel() not in (1, B) or not bool((ext > 0).all()):  # NaN fails too
        raise ValueRangeError(f"{fn}(): argument 'extent' expected a positive float or (B,) positive values")
    ext = ext.expand(B)
    K = K.to(center.dtype)
    box = box_2d.to(center.dtype)

    best_key = center.new_full((B, k), float("inf"))
    best_sdf = center.new_zeros(B, k)
    best_pts = center.unsqueeze(1).expand(B, k, 3).clone()
    for start in range(0, total, chunk_size):
        stop = min(total, start + chunk_size)
        pts = _grid_chunk(center, ext, resolution, start, stop)  # (B, M, 3)
        z = pts[..., 2]
        front = z > 0
        uv = project(torch.where(front.unsqueeze(-1), pts, torch.ones_like(pts)), K)
        inside = front & (uv[..., 0] >= box[:, None, 0]) & (uv[..., 0] <= box[:, None, 2])
        inside &= (uv[..., 1] >= box[:, None, 1]) & (uv[..., 1] <= box[:, None, 3])
        count = int(inside.sum(dim=1).max())
        if count == 0:
            continue
        # Compact the in-box voxels to the front (stable), pad to the largest count.
        order = torch.argsort((~inside).to(torch.int8), dim=1, stable=True)[:, :count]
        cand = torch.gather(pts, 1, order.unsqueeze(-1).expand(-1, -1, 3))
        cand_ok = torch.gather(inside, 1, order)
        d = sdf_fn(cand)
        check_shape(d, "B M", name="sdf_fn(points)", dims={"B": B, "M": count}, fn=fn)
        d = d.to(center.dtype)
        key = torch.where(cand_ok, d.abs(), torch.full_like(d, float("inf")))
        all_key = torch.cat([best_key, key], dim=1)
        all_sdf = torch.cat([best_sdf, torch.where(cand_ok, d, torch.zeros_like(d))], dim=1)
        all_pts = torch.cat([best_pts, cand], dim=1)
        best_key, idx = torch.topk(all_key, k, dim=1, largest=False, sorted=True)
        best_sdf = torch.gather(all_sdf, 1, idx)
        best_pts = torch.gather(all_pts, 1, idx.unsqueeze(-1).expand(-1, -1, 3))
    valid = torch.isfinite(best_key)
    best_pts = torch.where(valid.unsqueeze(-1), best_pts, center.unsqueeze(1).expand_as(best_pts))
    best_sdf = torch.where(valid, best_sdf, torch.zeros_like(best_sdf))
    return best_pts, best_sdf, valid
