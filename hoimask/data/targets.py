"""On-the-fly SDF supervision: query points near the hand and object surfaces, and their distances.

HOISDF supervises its hand and object SDF decoders with query points sampled
mostly near the two surfaces (HOISDF §3.1, §4: ``N_s = 1000`` training
points). Instead of precomputed files, hoimask samples them per sample:

* ``near_fraction`` of the ``Q`` points are surface samples plus Gaussian
  noise (the ``sigmas`` of :func:`hoimask.sdf.samplers.sample_near_surface`),
  split between the hand and the object in proportion ``hand_share``;
* the rest are uniform in the box around both surfaces, padded by ``margin``.

Signed distances are exact distances to the meshes
(:func:`hoimask.ops.mesh_sdf`) for real datasets; the synthetic scenes use
their analytic SDFs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from hoimask._checks import (
    ValueRangeError,
    check_in_range,
    check_positive,
    check_probability,
    check_shape,
)
from hoimask.sdf.samplers import DEFAULT_SIGMAS, _randn, sample_surface, sample_uniform

__all__ = ["mesh_sdf_targets", "query_points"]


def _noisy(points: torch.Tensor, sigmas: tuple[float, ...], generator: torch.Generator | None) -> torch.Tensor:
    n = points.shape[0]
    counts = [n // len(sigmas) + (1 if k < n % len(sigmas) else 0) for k in range(len(sigmas))]
    scale = torch.cat([points.new_full((c,), s) for c, s in zip(counts, sigmas)])
    return points + _randn(points.shape, points, generator) * scale[:, None]


def query_points(
    num: int,
    hand_surface: Callable[[int], torch.Tensor],
    object_surface: Callable[[int], torch.Tensor] | None = None,
    *,
    near_fraction: float = 0.85,
    hand_share: float = 0.5,
    margin: float = 0.02,
    sigmas: tuple[float, ...] = DEFAULT_SIGMAS,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw ``Q`` SDF query points near the hand and object surfaces plus uniform ones.

    Args:
        num: ``Q``.
        hand_surface: ``n -> (n, 3)`` area-uniform hand surface samples (camera frame).
        object_surface: the same for the object, or ``None`` (then every near
            point is near the hand).
        near_fraction: fraction of near-surface points.
        hand_share: fraction of the near points taken near the hand when there is an object.
        margin: padding of the uniform box in metres.
        sigmas: noise standard deviations of the near points (split evenly).
        generator: source of randomness.

    Returns:
        ``(Q, 3)`` points, near-hand first, then near-object, then uniform.

    Shape:
        ``-> (Q, 3)``
    """
    check_in_range(num, name="num", low=0)
    check_probability(near_fraction, name="near_fraction")
    check_probability(hand_share, name="hand_share")
    sigmas = tuple(check_positive(s, name="sigmas", fn="query_points") for s in sigmas)
    if not sigmas:
        raise ValueRangeError("query_points(): argument 'sigmas' expected at least one value, got none")
    n_near = round(num * near_fraction)
    n_hand = n_near if object_surface is None else round(n_near * hand_share)
    n_obj = n_near - n_hand
    # Surface samples used both as near points and to bound the uniform box.
    hand = hand_surface(max(n_hand, 64))
    parts = [_noisy(hand[:n_hand], sigmas, generator)]
    bound = [hand]
    if object_surface is not None:
        obj = object_surface(max(n_obj, 64))
        parts.append(_noisy(obj[:n_obj], sigmas, generator))
        bound.append(obj)
    allp = torch.cat(bound)
    lo, hi = allp.amin(0) - margin, allp.amax(0) + margin
    parts.append(sample_uniform(lo, hi, num - n_near, generator=generator))
    return torch.cat(parts).to(hand.dtype)


def mesh_sdf_targets(
    hand_vertices: torch.Tensor,
    hand_faces: torch.Tensor,
    object_vertices: torch.Tensor | None,
    object_faces: torch.Tensor | None,
    num: int,
    *,
    generator: torch.Generator | None = None,
    object_sdf: Callable[[torch.Tensor], torch.Tensor] | None = None,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Query points and exact signed distances to a hand mesh and an object mesh.

    Args:
        hand_vertices: ``(V, 3)`` camera-frame hand vertices (e.g. MANO).
        hand_faces: ``(T, 3)`` hand triangles.
        object_vertices: ``(V', 3)`` camera-frame object vertices, or ``None``.
        object_faces: ``(T', 3)`` object triangles, or ``None``.
        num: ``Q``.
        generator: source of randomness.
        object_sdf: ``(Q, 3) camera-frame points -> (Q,)`` signed distances to
            the posed object, replacing :func:`hoimask.ops.mesh_sdf` on
            ``object_vertices`` (which still give the surface samples): e.g.
            :func:`hoimask.data.posed_model_sdf` of a :class:`~hoimask.ops.MeshBVH`
            built once per object model, so that no per-frame structure is built
            for a 20k-triangle model.
        **kwargs: passed to :func:`query_points`.

    Returns:
        ``(points (Q, 3), sdf_hand (Q,), sdf_object (Q,))``; ``sdf_object`` is
        NaN without an object.

    Shape:
        ``-> (Q, 3), (Q,), (Q,)``
    """
    from hoimask.ops import mesh_sdf

    check_shape(hand_vertices, "V 3", name="hand_vertices")
    check_shape(hand_faces, "T 3", name="hand_faces")
    hv = hand_vertices.to(torch.float32)

    def hand_surface(n: int) -> torch.Tensor:
        return sample_surface(hv[None], hand_faces, n, generator=generator)[0][0]

    obj_surface = None
    if object_vertices is not None:
        check_shape(object_vertices, "V 3", name="object_vertices")
        check_shape(object_faces, "T 3", name="object_faces")
        ov = object_vertices.to(torch.float32)

        def obj_surface(n: int) -> torch.Tensor:
            return sample_surface(ov[None], object_faces, n, generator=generator)[0][0]

    points = query_points(num, hand_surface, obj_surface, generator=generator, **kwargs)
    sdf_hand = mesh_sdf(points[None], hv[None], hand_faces)[0]
    if obj_surface is None:
        sdf_obj = torch.full_like(sdf_hand, float("nan"))
    elif object_sdf is not None:
        sdf_obj = object_sdf(points).to(sdf_hand.dtype)
        check_shape(sdf_obj, "Q", name="object_sdf(points)", dims={"Q": points.shape[0]}, fn="mesh_sdf_targets")
    else:
        sdf_obj = mesh_sdf(points[None], ov[None], object_faces)[0]
    return points, sdf_hand, sdf_obj
