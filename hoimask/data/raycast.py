"""Batched ray casting of analytic shapes: the core of the synthetic-scene renderer.

Every camera ray starts at the camera centre (the origin of the OpenCV camera
frame) and has a unit direction ``d``; a hit at distance ``t`` is the point
``t * d`` and its depth is ``t * d_z``. Each function returns ``t`` per ray,
``inf`` for a miss, and evaluates all rays against all primitives in one
batched tensor expression (no Python loop over rays or pixels).

Closed-form intersections exist for the shapes the synthetic scenes use
(capsule unions for the hand, spheres, boxes, capped cylinders, capsules for
the objects, and triangle meshes for user objects); :func:`sphere_trace`
handles any other signed distance function.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from hoimask._checks import check_floating, check_positive, check_shape

__all__ = [
    "camera_rays",
    "intersect_box",
    "intersect_capsules",
    "intersect_cylinder",
    "intersect_mesh",
    "intersect_spheres",
    "sdf_normals",
    "sphere_trace",
]


def camera_rays(K: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Unit ray directions through the pixel centres ``(j + 0.5, i + 0.5)``.

    Args:
        K: ``(3, 3)`` intrinsics (pixels).
        height: image height ``H``.
        width: image width ``W``.

    Returns:
        ``(H * W, 3)`` unit directions in row-major pixel order, dtype/device of ``K``.

    Shape:
        ``K (3, 3) -> (H*W, 3)``
    """
    check_shape(K, "3 3", name="K")
    check_floating(K, name="K")
    check_positive(height, name="height")
    check_positive(width, name="width")
    v, u = torch.meshgrid(
        torch.arange(height, dtype=K.dtype, device=K.device) + 0.5,
        torch.arange(width, dtype=K.dtype, device=K.device) + 0.5,
        indexing="ij",
    )
    pix = torch.stack([u.reshape(-1), v.reshape(-1), torch.ones_like(u).reshape(-1)], dim=-1)  # (R, 3)
    rays = pix @ torch.linalg.inv(K).T  # (R, 3)
    return rays / rays.norm(dim=-1, keepdim=True)


def _positive_root_min(t: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    inf = torch.full_like(t, float("inf"))
    return torch.where(valid & (t > 0), t, inf)


def intersect_spheres(dirs: torch.Tensor, centers: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """Nearest hit of rays from the origin with a union of spheres.

    Args:
        dirs: ``(R, 3)`` unit directions.
        centers: ``(S, 3)`` sphere centres.
        radii: ``(S,)`` radii.

    Returns:
        ``(R,)`` distance to the first hit (``inf`` for a miss).

    Shape:
        ``dirs (R, 3), centers (S, 3), radii (S,) -> (R,)``
    """
    dims = check_shape(dirs, "R 3", name="dirs")
    check_shape(centers, "S 3", name="centers", dims=dims)
    check_shape(radii, "S", name="radii", dims=dims)
    dc = dirs @ centers.T  # (R, S)
    c = (centers * centers).sum(-1) - radii * radii  # (S,)
    h = dc * dc - c
    t = dc - h.clamp_min(0).sqrt()
    return _positive_root_min(t, h >= 0).amin(dim=1)


def intersect_capsules(
    dirs: torch.Tensor, a: torch.Tensor, b: torch.Tensor, radii: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest hit of rays from the origin with a union of capsules (segment ``a→b``, radius ``r``).

    Each capsule is its cylinder body and its two end spheres; the body root
    counts only where it falls between the end planes.

    Args:
        dirs: ``(R, 3)`` unit directions.
        a: ``(S, 3)`` segment starts.
        b: ``(S, 3)`` segment ends.
        radii: ``(S,)`` radii.

    Returns:
        ``(t (R,), index (R,))``: distance to the first hit (``inf`` for a miss)
        and the index of the capsule hit (arbitrary for a miss).

    Shape:
        ``dirs (R, 3), a (S, 3), b (S, 3), radii (S,) -> (R,), (R,)``
    """
    dims = check_shape(dirs, "R 3", name="dirs")
    check_shape(a, "S 3", name="a", dims=dims)
    check_shape(b, "S 3", name="b", dims=dims)
    check_shape(radii, "S", name="radii", dims=dims)
    ba = b - a  # (S, 3)
    oa = -a  # ray origin (0) minus a
    baba = (ba * ba).sum(-1)  # (S,)
    baoa = (ba * oa).sum(-1)
    oaoa = (oa * oa).sum(-1)
    r2 = radii * radii
    bard = dirs @ ba.T  # (R, S)
    rdoa = dirs @ oa.T  # (R, S)
    qa = baba - bard * bard
    qb = baba * rdoa - baoa * bard
    qc = baba * oaoa - baoa * baoa - r2 * baba
    h = qb * qb - qa * qc
    ok = (h >= 0) & (qa > 1e-12 * baba.clamp_min(1e-30))
    t_body = (-qb - h.clamp_min(0).sqrt()) / torch.where(ok, qa, torch.ones_like(qa))
    y = baoa + t_body * bard
    body = _positive_root_min(t_body, ok & (y > 0) & (y < baba))
    ends = []
    for c in (a, b):  # end spheres
        dc = dirs @ c.T
        hc = dc * dc - ((c * c).sum(-1) - r2)
        ends.append(_positive_root_min(dc - hc.clamp_min(0).sqrt(), hc >= 0))
    t_all = torch.minimum(body, torch.minimum(ends[0], ends[1]))  # (R, S)
    t, index = t_all.min(dim=1)
    return t, index


def _to_local(dirs: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor):
    # Object frame: x_local = R^T (x - t). The origin maps to -R^T t; directions to R^T d.
    return -(rotation.T @ translation), dirs @ rotation


def intersect_box(
    dirs: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor, half_extents: torch.Tensor
) -> torch.Tensor:
    """Hit distance of rays from the origin with an oriented box (slab method).

    Args:
        dirs: ``(R, 3)`` unit directions.
        rotation: ``(3, 3)`` box-to-camera rotation.
        translation: ``(3,)`` box centre in the camera frame.
        half_extents: ``(3,)`` half side lengths.

    Returns:
        ``(R,)`` distance to the first hit (``inf`` for a miss).

    Shape:
        ``dirs (R, 3) -> (R,)``
    """
    check_shape(dirs, "R 3", name="dirs")
    check_shape(rotation, "3 3", name="rotation")
    check_shape(translation, "3", name="translation")
    check_shape(half_extents, "3", name="half_extents")
    o, d = _to_local(dirs, rotation, translation)
    tiny = torch.finfo(d.dtype).tiny
    d = torch.where(d.abs() < tiny, torch.full_like(d, tiny), d)
    t1 = (-half_extents - o) / d  # (R, 3)
    t2 = (half_extents - o) / d
    t_near = torch.minimum(t1, t2).amax(dim=1)
    t_far = torch.maximum(t1, t2).amin(dim=1)
    return _positive_root_min(t_near, t_far >= t_near)


def intersect_cylinder(
    dirs: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor, radius: float, half_height: float
) -> torch.Tensor:
    """Hit distance of rays from the origin with a capped cylinder along its local z axis.

    Args:
        dirs: ``(R, 3)`` unit directions.
        rotation: ``(3, 3)`` cylinder-to-camera rotation.
        translation: ``(3,)`` cylinder centre in the camera frame.
        radius: cylinder radius.
        half_height: half the length along local z.

    Returns:
        ``(R,)`` distance to the first hit (``inf`` for a miss).

    Shape:
        ``dirs (R, 3) -> (R,)``
    """
    check_shape(dirs, "R 3", name="dirs")
    check_shape(rotation, "3 3", name="rotation")
    check_shape(translation, "3", name="translation")
    o, d = _to_local(dirs, rotation, translation)
    qa = d[:, 0] ** 2 + d[:, 1] ** 2
    qb = o[0] * d[:, 0] + o[1] * d[:, 1]
    qc = o[0] ** 2 + o[1] ** 2 - radius * radius
    h = qb * qb - qa * qc
    ok = (h >= 0) & (qa > 1e-12)
    t_body = (-qb - h.clamp_min(0).sqrt()) / torch.where(ok, qa, torch.ones_like(qa))
    z = o[2] + t_body * d[:, 2]
    body = _positive_root_min(t_body, ok & (z.abs() <= half_height))
    dz = torch.where(d[:, 2].abs() < 1e-12, torch.full_like(d[:, 2], 1e-12), d[:, 2])
    caps = []
    for zc in (-half_height, half_height):
        tc = (zc - o[2]) / dz
        x = o[0] + tc * d[:, 0]
        y = o[1] + tc * d[:, 1]
        caps.append(_positive_root_min(tc, x * x + y * y <= radius * radius))
    return torch.minimum(body, torch.minimum(caps[0], caps[1]))


def intersect_mesh(
    dirs: torch.Tensor, vertices: torch.Tensor, faces: torch.Tensor, *, chunk: int = 4096
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hit distance of rays from the origin with a triangle mesh (Möller–Trumbore, both sides).

    Memory is ``chunk × T``; rays are processed in chunks of ``chunk``.

    Args:
        dirs: ``(R, 3)`` unit directions.
        vertices: ``(V, 3)`` camera-frame vertices.
        faces: ``(T, 3)`` int64 vertex indices.
        chunk: rays per chunk.

    Returns:
        ``(t (R,), face (R,))``: distance to the first hit (``inf`` for a miss)
        and the face hit (arbitrary for a miss).

    Shape:
        ``dirs (R, 3), vertices (V, 3), faces (T, 3) -> (R,), (R,)``
    """
    check_shape(dirs, "R 3", name="dirs")
    check_shape(vertices, "V 3", name="vertices")
    check_shape(faces, "T 3", name="faces")
    check_positive(chunk, name="chunk")
    v0, v1, v2 = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]  # (T, 3)
    e1, e2 = v1 - v0, v2 - v0
    s = -v0  # ray origin (0) minus v0
    # Möller–Trumbore with every triple product written as a matmul against per-triangle vectors:
    # det = d.(e2 x e1)... with p = d x e2: det = e1.p = -d.(e1 x e2), u = s.p / det = d.(e2 x s) / det,
    # q = s x e1: v = d.q / det, t = e2.q / det.
    neg_normal = -torch.linalg.cross(e1, e2)  # (T, 3)
    e2_s = torch.linalg.cross(e2, s)
    q = torch.linalg.cross(s, e1)
    e2q = (e2 * q).sum(-1)  # (T,)
    # Early-out: only rays through the mesh's bounding sphere are tested.
    center = (vertices.amin(0) + vertices.amax(0)) / 2
    radius = (vertices - center).norm(dim=-1).max()
    dc = dirs @ center
    active = torch.nonzero(dc * dc - (center @ center - radius * radius) >= 0).squeeze(1)
    t_out = torch.full((dirs.shape[0],), float("inf"), dtype=dirs.dtype, device=dirs.device)
    f_out = torch.zeros(dirs.shape[0], dtype=torch.int64, device=dirs.device)
    for start in range(0, active.shape[0], chunk):
        rows = active[start : start + chunk]
        d = dirs[rows]  # (C, 3)
        det = d @ neg_normal.T  # (C, T)
        ok = det.abs() > 1e-14
        inv = 1.0 / torch.where(ok, det, torch.ones_like(det))
        u = (d @ e2_s.T) * inv
        v = (d @ q.T) * inv
        t = e2q[None] * inv
        hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1)
        t_out[rows], f_out[rows] = _positive_root_min(t, hit).min(dim=1)
    return t_out, f_out


def sphere_trace(
    sdf: Callable[[torch.Tensor], torch.Tensor],
    dirs: torch.Tensor,
    *,
    center: torch.Tensor,
    radius: float,
    max_steps: int = 48,
    eps: float = 2e-4,
) -> torch.Tensor:
    """Sphere-trace any signed distance function inside a bounding sphere.

    Rays that miss the bounding sphere are never evaluated; the others start at
    its entry and step by the SDF value until it is below ``eps`` (hit) or the
    ray leaves the sphere (miss). Only the still-active rays are evaluated at
    each step.

    Args:
        sdf: maps ``(M, 3)`` camera-frame points to ``(M,)`` signed distances
            (a lower bound on the true distance is enough).
        dirs: ``(R, 3)`` unit directions from the origin.
        center: ``(3,)`` bounding-sphere centre.
        radius: bounding-sphere radius (must contain the whole surface).
        max_steps: step budget; rays still marching after it count as misses.
        eps: hit threshold in metres.

    Returns:
        ``(R,)`` hit distances, ``inf`` for misses.

    Shape:
        ``dirs (R, 3) -> (R,)``
    """
    check_shape(dirs, "R 3", name="dirs")
    check_shape(center, "3", name="center")
    check_positive(radius, name="radius")
    dc = dirs @ center
    h = dc * dc - (center @ center - radius * radius)
    t_out = torch.full_like(dc, float("inf"))
    active = torch.nonzero(h > 0).squeeze(1)
    sq = h[active].sqrt()
    t = (dc[active] - sq).clamp_min(0)
    t_exit = dc[active] + sq
    for _ in range(max_steps):
        if active.numel() == 0:
            break
        d = sdf(dirs[active] * t[:, None])
        hit = d < eps
        t_out[active[hit]] = t[hit]
        t = t + d
        keep = ~hit & (t < t_exit)
        active, t, t_exit = active[keep], t[keep], t_exit[keep]
    return t_out


def sdf_normals(sdf: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor, *, step: float = 1e-4) -> torch.Tensor:
    """Unit outward normals as the central-difference gradient of ``sdf``.

    Args:
        sdf: maps ``(M, 3)`` points to ``(M,)`` signed distances.
        points: ``(M, 3)`` surface points.
        step: finite-difference step in metres.

    Returns:
        ``(M, 3)`` unit normals.

    Shape:
        ``(M, 3) -> (M, 3)``
    """
    check_shape(points, "M 3", name="points")
    M = points.shape[0]
    offsets = torch.eye(3, dtype=points.dtype, device=points.device) * step  # (3, 3)
    probe = torch.cat([points[:, None, :] + offsets, points[:, None, :] - offsets], dim=1)  # (M, 6, 3)
    values = sdf(probe.reshape(-1, 3)).reshape(M, 6)
    grad = values[:, :3] - values[:, 3:]
    return grad / grad.norm(dim=-1, keepdim=True).clamp_min(1e-12)
