"""Registration of ``torch.ops.hoimask.mesh_sdf`` and its public wrapper.

The op ``hoimask::mesh_sdf(points, vertices, faces) -> (sdf, face_index,
barycentric)`` is a ``torch.library.custom_op`` with a fake (meta) kernel for
``torch.compile`` and an analytic backward:

* ``d sdf / d p = s * (p - c) / |p - c|`` with ``s`` the sign and ``c`` the
  closest point (0 where ``p`` lies exactly on the surface);
* ``d sdf / d v_i = -s * w_i * (p - c) / |p - c|`` for the three corners of
  the closest triangle with barycentric weights ``w_i`` (envelope theorem:
  the closest point is a minimiser over the triangle, so moving it along the
  triangle does not change the distance to first order).

The face index and barycentric coordinates are not differentiable. The forward
uses, for CPU tensors, the numba BVH (``bvh.py``: exact search, fast winding
numbers exact near the 0.5 threshold) when numba is importable and
``HOIMASK_DISABLE_NUMBA`` is not ``1``; for CUDA tensors, the Triton kernel
when Triton is importable and ``HOIMASK_DISABLE_TRITON`` is not ``1``;
otherwise the pure-torch search: brute force for small meshes, the
cluster-accelerated exact search (``clustered.py``) from
``CLUSTER_MIN_TRIANGLES`` triangles on, with winding numbers by the
pure-torch brute force. Winding numbers are computed only for the points
whose sign needs them (every point with ``winding_sign``).
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from ..._checks import (
    DTypeError,
    ShapeError,
    ValueRangeError,
    check_choice,
    check_dtype,
    check_finite,
    check_floating,
    check_same_device,
    check_shape,
)
from .bvh import bvh_enabled, bvh_mesh_sdf
from .clustered import CLUSTER_MIN_TRIANGLES, clustered_search
from .reference import (
    brute_force_winding,
    closest_points_from_barycentric,
    finish_from_search,
    triangle_search,
)

__all__ = ["mesh_sdf", "validate_mesh_sdf_inputs", "triton_enabled", "bvh_enabled"]


def triton_enabled(device: torch.device) -> bool:
    """Whether the forward uses the Triton kernel for tensors on ``device``.

    True for CUDA devices when Triton is importable and ``HOIMASK_DISABLE_TRITON``
    is not set to ``1``.
    """
    if device.type != "cuda" or os.environ.get("HOIMASK_DISABLE_TRITON", "0") == "1":
        return False
    from . import kernel

    return kernel.TRITON_AVAILABLE


def validate_mesh_sdf_inputs(points: Tensor, vertices: Tensor, faces: Tensor, *, fn: str) -> Tensor:
    """Check the inputs of ``mesh_sdf`` and return ``faces`` as int64.

    Raises:
        ShapeError: wrong shapes, mismatched batch, empty mesh.
        DTypeError: non-floating points/vertices, mismatched dtypes, non-integer faces.
        DeviceError: inputs on different devices.
        ValueRangeError: non-finite points or vertices, face indices out of range.
    """
    dims = check_shape(points, "B Q 3", name="points", fn=fn)
    check_shape(vertices, "B V 3", name="vertices", dims=dims, fn=fn)
    check_shape(faces, "T 3", name="faces", dims=dims, fn=fn)
    check_floating(points, name="points", fn=fn)
    check_dtype(vertices, points.dtype, name="vertices", fn=fn)
    check_same_device({"points": points, "vertices": vertices, "faces": faces}, fn=fn)
    check_finite(points, name="points", fn=fn)
    return check_mesh(vertices, faces, fn=fn)


def check_mesh(vertices: Tensor, faces: Tensor, *, fn: str) -> Tensor:
    """The mesh checks shared by the op and :class:`~hoimask.ops.MeshBVH`; ``faces`` as int64.

    Shapes are checked by the caller (``(..., V, 3)``, ``(T, 3)``); this checks the
    face dtype, a non-empty mesh, finite vertices and face indices in ``[0, V)``.
    """
    V, T = vertices.shape[-2], faces.shape[0]
    if faces.dtype not in (torch.int64, torch.int32):
        raise DTypeError(f"{fn}(): argument 'faces' expected an int64 or int32 tensor, got dtype {faces.dtype}")
    if V == 0 or T == 0:
        raise ShapeError(f"{fn}(): arguments 'vertices'/'faces' expected a non-empty mesh, got V={V}, T={T}")
    check_finite(vertices, name="vertices", fn=fn)
    lo, hi = int(faces.min()), int(faces.max())
    if lo < 0 or hi >= V:
        raise ValueRangeError(
            f"{fn}(): argument 'faces' expected indices in [0, {V - 1}] (V={V}), got values in [{lo}, {hi}]"
        )
    return faces.to(torch.int64)


@torch.library.custom_op("hoimask::mesh_sdf", mutates_args=())
def mesh_sdf_op(
    points: Tensor, vertices: Tensor, faces: Tensor, winding_sign: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """Raw op: ``(sdf (B,Q), face_index (B,Q) int64, barycentric (B,Q,3))``; no validation.

    ``winding_sign`` takes every point's sign from the winding number (``sign="winding"``).
    """
    B, Q, _ = points.shape
    if B == 0 or Q == 0:
        return points.new_zeros(B, Q), points.new_zeros(B, Q, dtype=torch.int64), points.new_zeros(B, Q, 3)
    if bvh_enabled(points.device):
        return bvh_mesh_sdf(points, vertices, faces, winding_sign=winding_sign)
    if triton_enabled(points.device):
        from .kernel import mesh_sdf_search_triton

        index, _ = mesh_sdf_search_triton(points, vertices, faces, with_winding=False)
    elif faces.shape[0] >= CLUSTER_MIN_TRIANGLES:
        index = clustered_search(points, vertices, faces)
    else:
        index, _ = triangle_search(points, vertices, faces, with_winding=False)
    # Winding numbers only for points whose closest feature touches an open boundary.
    sdf, bary = finish_from_search(points, vertices, faces, index, brute_force_winding(points, vertices, faces))
    if winding_sign:
        inside = _winding(points, vertices, faces).abs() > 0.5
        sdf = torch.where(inside, -sdf.abs(), sdf.abs())
    return sdf, index, bary


@mesh_sdf_op.register_fake
def _(points: Tensor, vertices: Tensor, faces: Tensor, winding_sign: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    B, Q, _ = points.shape
    return (
        points.new_empty(B, Q),
        points.new_empty(B, Q, dtype=torch.int64),
        points.new_empty(B, Q, 3),
    )


def _setup_context(ctx, inputs, output) -> None:
    points, vertices, faces, _ = inputs
    sdf, index, bary = output
    ctx.save_for_backward(points, vertices, faces, sdf, index, bary)
    ctx.mark_non_differentiable(index, bary)


def _backward(ctx, grad_sdf: Tensor, grad_index, grad_bary):
    points, vertices, faces, sdf, index, bary = ctx.saved_tensors
    grad_points = grad_vertices = None
    closest = closest_points_from_barycentric(vertices, faces, index, bary)
    diff = points - closest  # (B, Q, 3)
    # (p - c) / |p - c| * sign == (p - c) / sdf, with 0 where the point is on the surface.
    on_surface = sdf == 0
    scale = grad_sdf / torch.where(on_surface, torch.ones_like(sdf), sdf)
    scale = torch.where(on_surface, torch.zeros_like(scale), scale)
    g = diff * scale.unsqueeze(-1)  # (B, Q, 3) = grad_sdf * s * n
    if ctx.needs_input_grad[0]:
        grad_points = g
    if ctx.needs_input_grad[1]:
        B, V, _ = vertices.shape
        corner = faces[index]  # (B, Q, 3)
        contrib = -bary.unsqueeze(-1) * g.unsqueeze(-2)  # (B, Q, 3 corners, 3 xyz)
        grad_vertices = vertices.new_zeros(B, V, 3)
        grad_vertices.scatter_add_(1, corner.reshape(B, -1, 1).expand(-1, -1, 3), contrib.reshape(B, -1, 3))
    return grad_points, grad_vertices, None, None


mesh_sdf_op.register_autograd(_backward, setup_context=_setup_context)


def winding_number(points: Tensor, vertices: Tensor, faces: Tensor) -> Tensor:
    """Generalised winding number of each point with respect to a triangle mesh.

    ``w = Σ_t Ω_t(p) / 4π`` over all triangles (solid angles, Van Oosterom and
    Strackee). ``w ≈ 1`` inside a closed outward-oriented mesh, ``0`` outside,
    ``≥ 1`` inside overlapping closed components, and degrades gracefully
    (towards 0.5) near holes. Not differentiable (a piecewise-constant field);
    cost ``O(Q · T)``, chunked.

    Shape:
        points ``(B, Q, 3)``, vertices ``(B, V, 3)``, faces ``(T, 3)`` -> ``(B, Q)``.
    """
    faces = validate_mesh_sdf_inputs(points, vertices, faces, fn="winding_number")
    return _winding(points, vertices, faces)


def _winding(points: Tensor, vertices: Tensor, faces: Tensor) -> Tensor:
    """:func:`winding_number` of validated inputs."""
    with torch.no_grad():
        return triangle_search(points.detach(), vertices.detach(), faces, with_winding=True)[1]


def mesh_sdf(
    points: Tensor, vertices: Tensor, faces: Tensor, *, return_index: bool = False, sign: str = "auto"
) -> Tensor | tuple[Tensor, Tensor, Tensor]:
    """Signed distance from query points to a triangle mesh (negative inside).

    Exact Euclidean distance to the nearest triangle. The sign comes from the
    angle-weighted pseudo-normal of the closest feature (exact for closed,
    outward-oriented meshes) and, where that feature touches an open boundary
    such as MANO's wrist, from the generalised winding number (inside when
    ``|w| > 0.5``); see ``docs/ops.md``.
    Runs ``torch.ops.hoimask.mesh_sdf``: the numba BVH on CPU (unless numba
    is missing or ``HOIMASK_DISABLE_NUMBA=1``), Triton on CUDA (unless
    ``HOIMASK_DISABLE_TRITON=1``), the chunked pure-torch search otherwise.

    Args:
        points: query points (metres).
        vertices: one mesh per batch element; triangles must be consistently
            oriented, counter-clockwise seen from outside (flipping every
            triangle flips the sign).
        faces: triangle corner indices shared by the batch, int64 or int32.
        return_index: also return the closest triangle and closest point.
        sign: ``"auto"`` (default) — pseudo-normals, with the winding number at
            open boundaries (above); ``"winding"`` — the generalised winding
            number for every point (inside when ``|w| > 0.5``; on the CPU BVH the
            fast winding number, exact within 0.25 of the threshold; elsewhere
            a full ``O(Q · T)`` pass). ``"winding"`` is right for meshes made of
            overlapping closed components (e.g. ``ProceduralHand``'s capsules),
            where the closest triangle may be a hidden inner face whose
            pseudo-normal points the wrong way. The distance is the same.

    Returns:
        ``sdf``, or ``(sdf, face_index, closest_point)``. ``sdf`` is
        differentiable w.r.t. ``points`` and ``vertices``; ``closest_point``
        w.r.t. ``vertices`` with its barycentric coordinates held fixed.

    Shape:
        - points: ``(B, Q, 3)``; vertices: ``(B, V, 3)``; faces: ``(T, 3)``
        - sdf: ``(B, Q)``; face_index: ``(B, Q)`` int64; closest_point: ``(B, Q, 3)``

    Raises:
        ShapeError, DTypeError, DeviceError, ValueRangeError: bad input (see
            :func:`validate_mesh_sdf_inputs`).

    Example:
        >>> from hoimask.sdf.meshes import box_mesh
        >>> v, f = box_mesh((0.5, 0.5, 0.5))
        >>> p = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]], dtype=v.dtype)
        >>> mesh_sdf(p, v[None], f)
        tensor([[-0.5000,  0.5000]], dtype=torch.float64)
    """
    faces = validate_mesh_sdf_inputs(points, vertices, faces, fn="mesh_sdf")
    if not isinstance(return_index, bool):
        raise DTypeError(f"mesh_sdf(): argument 'return_index' expected a bool, got {type(return_index).__name__}")
    check_choice(sign, ("auto", "winding"), name="sign", fn="mesh_sdf")
    sdf, index, bary = torch.ops.hoimask.mesh_sdf(points, vertices, faces, sign == "winding")
    if not return_index:
        return sdf
    return sdf, index, closest_points_from_barycentric(vertices, faces, index, bary)
