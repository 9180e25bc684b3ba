"""Pinhole camera: projection, back-projection, and intrinsics updates for image edits.

Conventions (see ``docs/conventions.md``):

* OpenCV camera frame: x right, y down, z forward; points in metres.
* ``K`` is the 3×3 intrinsics matrix in pixels.
* Continuous pixel coordinates: pixel ``(row i, column j)`` covers
  ``[j, j+1) × [i, i+1)`` and its centre is at ``(j + 0.5, i + 0.5)``. With this
  convention resizing an image by ``s`` scales coordinates by exactly ``s`` and
  cropping shifts them by the crop's corner; it matches
  ``F.grid_sample(..., align_corners=False)``.
* ``K``'s batch dimensions line up with the *leading* dimensions of the points:
  ``K (B, 3, 3)`` with ``points (B, N, 3)`` uses ``K[b]`` for every ``points[b, n]``.

Every image edit is an affine map ``A`` of pixel coordinates, and the matching
intrinsics are ``A @ K`` (crop, resize) or ``A @ K @ R_zᵀ`` together with a
rotation ``R_z`` of the 3D points about the optical axis (in-plane rotation).
"""

from __future__ import annotations

import math

import torch

from hoimask._checks import (
    ShapeError,
    ValueRangeError,
    check_floating,
    check_in_range,
    check_positive,
    check_shape,
    check_size,
)

__all__ = [
    "affine_intrinsics",
    "crop_intrinsics",
    "project",
    "resize_intrinsics",
    "rotate_intrinsics",
    "translation_from_image",
    "unproject",
]


def _align_k(K: torch.Tensor, lead: int) -> torch.Tensor:
    """View ``K (*Kb, 3, 3)`` as ``(*Kb, 1, ..., 1, 3, 3)`` to broadcast against ``lead`` dims."""
    kb = K.dim() - 2
    if kb > lead:
        raise ShapeError(
            f"K has {kb} batch dims but the points have only {lead} leading dims; "
            f"K's batch dims must line up with the points' leading dims (K {tuple(K.shape)})"
        )
    return K.reshape(K.shape[:-2] + (1,) * (lead - kb) + (3, 3))


def project(points: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Perspective projection ``π(p, K) = (K p)_{xy} / (K p)_z``.

    Points on or behind the image plane (``z <= 0``) are not clamped: they give
    ``inf`` or mirrored coordinates, and callers that can meet them must check
    ``points[..., 2] > 0`` themselves (``hoimask.geometry.pixel_aligned_features``
    does).

    Args:
        points: ``(..., 3)`` camera-frame points.
        K: ``(*Kb, 3, 3)`` intrinsics; ``Kb`` lines up with the points' leading dims.

    Returns:
        ``(..., 2)`` pixel coordinates ``(u, v)``.

    Example:
        >>> K = torch.tensor([[100.0, 0, 64], [0, 100.0, 64], [0, 0, 1]])
        >>> project(torch.tensor([[0.0, 0.0, 1.0]]), K)
        tensor([[64., 64.]])
    """
    check_shape(points, "... 3", name="points")
    check_shape(K, "... 3 3", name="K")
    check_floating(points, name="points")
    Kb = _align_k(K, points.dim() - 1)
    ph = (Kb @ points.unsqueeze(-1)).squeeze(-1)  # (..., 3)
    return ph[..., :2] / ph[..., 2:3]


def unproject(uv: torch.Tensor, depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Back-project pixels with their depth (camera-frame z) to 3D points.

    Args:
        uv: ``(..., 2)`` pixel coordinates.
        depth: ``(...)`` z of each point in metres.
        K: ``(*Kb, 3, 3)`` intrinsics (any invertible 3×3).

    Returns:
        ``(..., 3)`` points with ``project(points, K) == uv`` and ``points[..., 2] == depth``.
    """
    check_shape(uv, "... 2", name="uv")
    check_shape(K, "... 3 3", name="K")
    check_floating(uv, name="uv")
    check_shape(depth, "...", name="depth")  # a tensor
    if depth.shape != uv.shape[:-1]:
        raise ShapeError(
            f"unproject(): argument 'depth' expected shape {tuple(uv.shape[:-1])} "
            f"(uv without its last dim), got {tuple(depth.shape)}"
        )
    Kb = _align_k(K, uv.dim() - 1)
    ones = torch.ones_like(uv[..., :1])
    rays = torch.linalg.solve(Kb, torch.cat([uv, ones], -1).unsqueeze(-1)).squeeze(-1)  # (..., 3)
    return rays / rays[..., 2:3] * depth.unsqueeze(-1)


def affine_intrinsics(K: torch.Tensor, affine: torch.Tensor) -> torch.Tensor:
    """Intrinsics after an affine pixel map ``p' = A p`` (``A`` as 2×3 or 3×3).

    Shape:
        K ``(..., 3, 3)``, affine ``(..., 2, 3)`` or ``(..., 3, 3)`` -> ``(..., 3, 3)``.
    """
    check_shape(K, "... 3 3", name="K")
    check_shape(affine, "... _ 3", name="affine")
    if affine.shape[-2:] == (2, 3):
        last = affine.new_tensor([0.0, 0.0, 1.0]).expand(affine.shape[:-2] + (1, 3))
        affine = torch.cat([affine, last], dim=-2)
    check_shape(affine, "... 3 3", name="affine")
    return affine.to(K.dtype) @ K


def crop_intrinsics(K: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """Intrinsics of the crop ``box = (x0, y0, x1, y1)`` (pixels, continuous coordinates).

    Only the corner matters: the principal point moves by ``-(x0, y0)``.

    Shape:
        K ``(..., 3, 3)``, box ``(..., 4)`` -> ``(..., 3, 3)``.
    """
    check_shape(K, "... 3 3", name="K")
    check_shape(box, "... 4", name="box")
    out = K.clone()
    x0 = box[..., 0].to(K.dtype)
    y0 = box[..., 1].to(K.dtype)
    # The last row of K is (0, 0, 1) for a pinhole; use it so general K stays exact.
    out[..., 0, :] = K[..., 0, :] - x0[..., None] * K[..., 2, :]
    out[..., 1, :] = K[..., 1, :] - y0[..., None] * K[..., 2, :]
    return out


def resize_intrinsics(
    K: torch.Tensor, scale_x: float | torch.Tensor, scale_y: float | torch.Tensor | None = None
) -> torch.Tensor:
    """Intrinsics after resizing the image by ``(scale_x, scale_y)`` (new size / old size).

    Shape:
        K ``(..., 3, 3)``, scales scalars or ``(...)`` -> ``(..., 3, 3)``.
    """
    check_shape(K, "... 3 3", name="K")
    sx = torch.as_tensor(scale_x, dtype=K.dtype, device=K.device)
    sy = sx if scale_y is None else torch.as_tensor(scale_y, dtype=K.dtype, device=K.device)
    if not (bool((sx > 0).all()) and bool((sy > 0).all())):  # NaN fails too
        raise ValueRangeError(
            f"resize_intrinsics(): arguments 'scale_x', 'scale_y' must be > 0, got scale_x={scale_x}, scale_y={scale_y}"
        )
    out = K.clone()
    out[..., 0, :] = K[..., 0, :] * sx[..., None]
    out[..., 1, :] = K[..., 1, :] * sy[..., None]
    return out


def rotate_intrinsics(
    K: torch.Tensor, angle: float | torch.Tensor, center: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Intrinsics and 3D rotation for an in-plane image rotation about ``center``.

    The image is rotated by ``angle`` radians about the pixel ``center``:
    ``p' = R2 (p - c) + c`` with ``R2 = [[cos, -sin], [sin, cos]]`` in pixel
    coordinates (x right, y down), i.e. *clockwise* on screen for a positive
    angle. The scene is rotated by ``R_z``, the same rotation about the camera's
    z axis, so that ``project(R_z @ X, K_new) == R2 (project(X, K) - c) + c``.
    3D targets (joints, object pose) must be rotated by ``R_z``.

    ``K_new = A @ K @ R_zᵀ`` stays a standard upper-triangular intrinsics matrix
    when ``fx == fy`` and there is no skew (the principal point moves by
    ``(I - R2)(c - pp)``); otherwise it is a valid, non-triangular projection matrix.

    Args:
        K: ``(..., 3, 3)`` intrinsics.
        angle: scalar or ``(...)`` radians.
        center: ``(..., 2)`` rotation centre in pixels.

    Returns:
        ``(K_new (..., 3, 3), R_z (..., 3, 3))``.
    """
    check_shape(K, "... 3 3", name="K")
    check_shape(center, "... 2", name="center")
    if not isinstance(angle, torch.Tensor):
        check_in_range(angle, name="angle", low=-math.inf, high=math.inf, low_inclusive=False, high_inclusive=False)
    a = torch.as_tensor(angle, dtype=K.dtype, device=K.device)
    c, s = torch.cos(a), torch.sin(a)
    o, one = torch.zeros_like(c), torch.ones_like(c)
    R_z = torch.stack([c, -s, o, s, c, o, o, o, one], dim=-1).unflatten(-1, (3, 3))
    R2 = R_z[..., :2, :2]
    ctr = center.to(K.dtype)
    shift = ctr - (R2 @ ctr.unsqueeze(-1)).squeeze(-1)  # c - R2 c, (..., 2)
    batch = torch.broadcast_shapes(R2.shape[:-2], shift.shape[:-1])
    A = torch.cat([R2.expand(batch + (2, 2)), shift.expand(batch + (2,)).unsqueeze(-1)], dim=-1)
    K_new = affine_intrinsics(K, A) @ R_z.transpose(-1, -2)
    return K_new, R_z


def translation_from_image(
    raw: torch.Tensor,
    K: torch.Tensor,
    image_size: tuple[int, int],
    *,
    reference_depth: float = 0.5,
) -> torch.Tensor:
    """Camera-aware translation: a network's image-frame output ``(a, b, c)`` to a 3D point.

    Absolute depth cannot be read from a picture without its camera: a hand
    twice as far away, seen with twice the focal length, gives the same image.
    A network therefore predicts where the point is *in the image* and how far
    away it is *relative to the focal length*, and ``K`` turns that into metres:

    * pixel ``u = W (1/2 + a)``, ``v = H (1/2 + b)`` (``a = b = 0``: the image centre);
    * depth ``z = reference_depth · e^c · f / S`` with ``f = (f_x + f_y) / 2`` and
      ``S = max(H, W)`` (``c = 0``: ``reference_depth`` for a camera whose focal
      length equals the image side, i.e. a 53° field of view);
    * the point ``unproject((u, v), z, K)``.

    The map is smooth, so a loss on the returned point trains ``raw``.
    (I2L-MeshNet and HandOccNet use the same idea for the root depth.)

    Args:
        raw: ``(B, 3)`` network output ``(a, b, c)``.
        K: ``(B, 3, 3)`` intrinsics of the image the network saw.
        image_size: ``(H, W)`` of that image.
        reference_depth: metres, > 0.

    Returns:
        ``(B, 3)`` camera-frame point in metres (dtype of ``raw``).

    Shape:
        ``(B, 3), (B, 3, 3) -> (B, 3)``

    Example:
        >>> K = torch.tensor([[[128.0, 0, 64], [0, 128.0, 64], [0, 0, 1]]])
        >>> translation_from_image(torch.zeros(1, 3), K, (128, 128))
        tensor([[0.0000, 0.0000, 0.5000]])
    """
    dims = check_shape(raw, "B 3", name="raw")
    check_shape(K, "B 3 3", name="K", dims=dims)
    check_floating(raw, name="raw")
    H, W = check_size(image_size, name="image_size")
    check_positive(reference_depth, name="reference_depth")
    K = K.to(raw.dtype)
    uv = torch.stack([W * (0.5 + raw[:, 0]), H * (0.5 + raw[:, 1])], dim=-1)  # (B, 2) pixels
    focal = (K[:, 0, 0] + K[:, 1, 1]) / 2
    depth = reference_depth * torch.exp(raw[:, 2]) * focal / max(H, W)  # (B,)
    return unproject(uv, depth, K)
