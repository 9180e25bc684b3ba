"""AlignSDF-style SDF samples of one hand–object frame, with exact signed distances.

HOISDF, AlignSDF, gSDF and grasping_field train their SDF decoders on samples
precomputed per frame by grasping_field's ``PreprocessMesh`` (a C++/OpenGL
program). :func:`sample_frame_sdf` draws the same samples and computes their
targets with :func:`hoimask.ops.mesh_sdf`. Facts taken from the official code
(read, not copied):

* **Normalisation** (AlignSDF ``scripts/sample_points/src/PreprocessMesh.cpp``,
  ``main``): hand and object share one frame; ``center`` is the centre of the
  axis-aligned bounding box of both meshes, ``scale = 1 / (1.03 · r)`` with
  ``r`` the largest distance from ``center`` to a vertex of either mesh. The
  ``norm/*.npz`` file stores ``offset = -center`` and ``scale``, and a point
  is normalised as ``(x + offset) · scale`` (HOISDF ``tool/pre_process_sdf.py``
  inverts it as ``x / scale - offset``). The C++ takes the union's largest z
  from the hand's *y* (a typo); hoimask uses the z extent.
* **Sampling** (``sample_point``, ``SampleFromSurface``, ``SampleSDFNearSurface``):
  per mesh ``num_sample = 20000``; ``int(47 · num_sample / 50) // 2 = 9400``
  area-weighted surface points, each perturbed twice by isotropic Gaussian
  noise of variance 0.005 and 0.0005 (``--var`` and ``var / 10``, normalised
  units), stored interleaved; then ``num_sample - int(47 · num_sample / 50) =
  1200`` points uniform in the normalised cube ``[-1, 1]^3``. Hand samples are
  drawn on the hand, object samples on the object; every sample gets its
  distance to both meshes (``pos_other`` / ``neg_other``).
* **Differences, on purpose.** The C++ signs distances by voting over the 11
  nearest rendered surface points and *drops* samples with mixed votes, and it
  takes cross-mesh distances from one nearest rendered point. Here every
  distance is the exact signed distance to the triangle mesh
  (:func:`~hoimask.ops.mesh_sdf`: pseudo-normals, winding number at MANO's open
  wrist) and no sample is dropped, so a frame has exactly ``2 · num_samples``
  rows. The hand mesh is MANO's open mesh (the loaders' mesh); the official
  pipelines use a "sealed" MANO with 16 wrist faces.
* **Part labels**: the official labels are those of the triangle a sample was
  drawn from (or of the nearest rendered point), looked up in grasping_field's
  face table; here every sample takes the labels of its **nearest MANO
  vertex** (exact search), derived from MANO's skinning weights
  (:mod:`hoimask.hand.parts`).

The file layouts are in :mod:`hoimask.data.sdf_files`; the exporter is
:mod:`hoimask.data.export_sdf`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from hoimask._checks import ValueRangeError, check_int, check_shape
from hoimask.hand.parts import vertex_part_labels

__all__ = [
    "ALIGNSDF_NUM_SAMPLES",
    "ALIGNSDF_VARIANCES",
    "FrameSDFSamples",
    "nearest_vertex",
    "normalization",
    "sample_frame_sdf",
    "sample_mesh_queries",
]

#: Samples per mesh of AlignSDF / grasping_field (``num_sample``).
ALIGNSDF_NUM_SAMPLES = 20_000
#: Variances of the two near-surface perturbations, in normalised units.
ALIGNSDF_VARIANCES = (0.005, 0.0005)
#: ``max_dist`` is enlarged by this factor before normalising (``buffer_dist``).
ALIGNSDF_BUFFER = 1.03


@dataclass(frozen=True)
class FrameSDFSamples:
    """SDF samples of one frame: hand samples first, then object samples.

    Attributes:
        points: camera-frame points (metres, the frame of the meshes given).
        sdf_hand: signed distance to the hand mesh (metres, negative inside).
        sdf_object: signed distance to the object mesh.
        coarse_part: coarse part label of the nearest hand vertex (0 palm, 1–5 thumb…little).
        fine_part: fine part label of the nearest hand vertex (0–15, see :mod:`hoimask.hand.parts`).
        num_hand: number of hand samples (the first rows).
        offset: ``-center`` of the normalisation.
        scale: ``1 / (1.03 r)`` of the normalisation.

    Shape:
        points ``(N, 3)`` float32; sdf_hand, sdf_object ``(N,)`` float32;
        coarse_part, fine_part ``(N,)`` int64; offset ``(3,)`` float64.
    """

    points: Tensor
    sdf_hand: Tensor
    sdf_object: Tensor
    coarse_part: Tensor
    fine_part: Tensor
    num_hand: int
    offset: Tensor
    scale: float

    @property
    def num_object(self) -> int:
        """Number of object samples (the rows after the hand's)."""
        return self.points.shape[0] - self.num_hand


def normalization(hand_vertices: Tensor, object_vertices: Tensor) -> tuple[Tensor, float]:
    """AlignSDF's joint normalisation of a hand and an object: ``(offset, scale)``.

    ``center`` is the centre of the bounding box of both vertex sets and
    ``scale = 1 / (1.03 · max |v - center|)``; a point ``x`` maps to
    ``(x + offset) · scale`` with ``offset = -center``.

    Args:
        hand_vertices: hand vertices (metres).
        object_vertices: object vertices.

    Returns:
        ``(offset (3,) float64, scale)``.

    Shape:
        ``(V, 3), (V', 3) -> (3,), float``

    Raises:
        ValueRangeError: all vertices coincide (no extent to normalise).

    Example:
        >>> off, s = normalization(torch.tensor([[0.0, 0, 0], [1, 0, 0]]), torch.tensor([[0.0, 1, 0]]))
        >>> off.tolist(), round(s * 1.03, 6)
        ([-0.5, -0.5, -0.0], 1.414214)
    """
    check_shape(hand_vertices, "V 3", name="hand_vertices", fn="normalization")
    check_shape(object_vertices, "W 3", name="object_vertices", fn="normalization")
    both = torch.cat([hand_vertices, object_vertices]).to(torch.float64)
    center = (both.amin(0) + both.amax(0)) / 2
    radius = float((both - center).norm(dim=1).max()) * ALIGNSDF_BUFFER
    if not radius > 0:
        raise ValueRangeError("normalization(): the hand and object vertices span no volume")
    return -center, 1.0 / radius


def sample_mesh_queries(
    vertices: Tensor,
    faces: Tensor,
    num: int,
    *,
    center: Tensor,
    scale: float,
    generator: torch.Generator | None = None,
) -> Tensor:
    """AlignSDF's query points for one mesh, in the camera frame.

    ``int(47 num / 50) // 2`` area-weighted surface points, each perturbed
    twice (variances :data:`ALIGNSDF_VARIANCES` in normalised units, i.e.
    standard deviations ``sqrt(var) / scale`` metres), interleaved as the C++
    stores them; then the rest uniform in the normalised cube ``[-1, 1]^3``
    (``center ± 1 / scale``). An odd near count leaves one more uniform point.

    Args:
        vertices: mesh vertices (metres).
        faces: triangles.
        num: ``num_sample`` (rows returned).
        center: normalisation centre (``-offset``).
        scale: normalisation scale.
        generator: source of randomness.

    Returns:
        Query points, float32.

    Shape:
        ``(V, 3), (T, 3) -> (num, 3)``
    """
    from hoimask.sdf.samplers import sample_surface

    check_int(num, name="num", low=0, fn="sample_mesh_queries")
    pairs = int(47 * num / 50) // 2
    v = vertices.to(torch.float32)
    surface = sample_surface(v[None], faces, pairs, generator=generator)[0][0]  # (pairs, 3)
    sigmas = torch.tensor([math.sqrt(var) / scale for var in ALIGNSDF_VARIANCES], dtype=torch.float32)
    noise = torch.randn(pairs, 2, 3, generator=generator) * sigmas[None, :, None]
    near = (surface[:, None] + noise).reshape(-1, 3)  # (2 pairs, 3): first then second perturbation
    u = torch.rand(num - 2 * pairs, 3, generator=generator) * 2 - 1
    uniform = center.to(torch.float32) + u / scale
    return torch.cat([near, uniform])


def nearest_vertex(points: Tensor, vertices: Tensor) -> Tensor:
    """Index of the nearest vertex of every point (exact; lowest index on exact ties).

    Runs the closest-triangle search of ``hoimask::mesh_sdf`` (the CPU BVH
    when numba is installed, else the clustered search) on degenerate
    triangles ``(i, i, i)``, whose distance is the distance to vertex ``i``
    (brute force below 64 vertices).

    Args:
        points: query points.
        vertices: candidate vertices (same dtype).

    Returns:
        int64 indices into ``vertices``.

    Shape:
        ``(Q, 3), (V, 3) -> (Q,)``
    """
    from hoimask.ops.mesh_sdf.bvh import bvh_enabled, bvh_nearest_triangle
    from hoimask.ops.mesh_sdf.clustered import CLUSTER_MIN_TRIANGLES, clustered_search

    check_shape(points, "Q 3", name="points", fn="nearest_vertex")
    check_shape(vertices, "V 3", name="vertices", fn="nearest_vertex")
    V = vertices.shape[0]
    if points.shape[0] == 0:
        return torch.zeros(0, dtype=torch.int64)
    if V < CLUSTER_MIN_TRIANGLES:
        return torch.cdist(points.to(torch.float64), vertices.to(torch.float64)).argmin(dim=1)
    faces = torch.arange(V, device=vertices.device)[:, None].expand(V, 3).contiguous()
    if bvh_enabled(points.device):
        return bvh_nearest_triangle(points, vertices.to(points.dtype), faces)
    return clustered_search(points[None], vertices.to(points.dtype)[None], faces)[0]


def sample_frame_sdf(
    hand_vertices: Tensor,
    hand_faces: Tensor,
    hand_weights: Tensor,
    object_vertices: Tensor,
    object_faces: Tensor,
    *,
    num_samples: int = ALIGNSDF_NUM_SAMPLES,
    generator: torch.Generator | None = None,
) -> FrameSDFSamples:
    """AlignSDF's SDF samples of one frame with exact signed distances and part labels.

    ``num_samples`` samples are drawn for the hand, then ``num_samples`` for
    the object (:func:`sample_mesh_queries` in their joint normalisation,
    :func:`normalization`); every sample gets its exact signed distance to both
    meshes (:func:`hoimask.ops.mesh_sdf`, float32) and the part labels of its
    nearest hand vertex (:func:`hoimask.hand.vertex_part_labels`). Nothing is
    dropped.

    Args:
        hand_vertices: MANO vertices, camera frame (metres).
        hand_faces: MANO triangles.
        hand_weights: MANO skinning weights (for the part labels).
        object_vertices: posed object vertices, same frame.
        object_faces: object triangles.
        num_samples: samples per mesh (AlignSDF: 20000).
        generator: source of randomness.

    Returns:
        :class:`FrameSDFSamples` with ``2 · num_samples`` rows.

    Shape:
        ``(V, 3), (T, 3), (V, 16), (V', 3), (T', 3) -> (2 num_samples, ...)``

    Example:
        >>> from hoimask.sdf.meshes import icosphere
        >>> hv, hf = icosphere(2, 0.05)
        >>> w = torch.zeros(hv.shape[0], 16); w[:, 0] = 1
        >>> ov, of = icosphere(2, 0.03)
        >>> s = sample_frame_sdf(hv, hf, w, ov + 0.06, of, num_samples=100, generator=torch.Generator().manual_seed(0))
        >>> s.points.shape, s.num_hand, bool((s.fine_part == 0).all())
        (torch.Size([200, 3]), 100, True)
    """
    from hoimask.ops import mesh_sdf

    fn = "sample_frame_sdf"
    check_int(num_samples, name="num_samples", low=1, fn=fn)
    dims = check_shape(hand_vertices, "V 3", name="hand_vertices", fn=fn)
    check_shape(hand_weights, "V 16", name="hand_weights", dims=dims, fn=fn)
    check_shape(object_vertices, "W 3", name="object_vertices", fn=fn)
    offset, scale = normalization(hand_vertices, object_vertices)
    center = -offset
    hv, ov = hand_vertices.to(torch.float32), object_vertices.to(torch.float32)
    hand_q = sample_mesh_queries(hv, hand_faces, num_samples, center=center, scale=scale, generator=generator)
    obj_q = sample_mesh_queries(ov, object_faces, num_samples, center=center, scale=scale, generator=generator)
    points = torch.cat([hand_q, obj_q])  # (2 num_samples, 3)
    sdf_hand = mesh_sdf(points[None], hv[None], hand_faces)[0]
    sdf_object = mesh_sdf(points[None], ov[None], object_faces)[0]
    coarse, fine = vertex_part_labels(hand_weights.to(torch.float64))
    nearest = nearest_vertex(points, hv)
    return FrameSDFSamples(
        points=points, sdf_hand=sdf_hand, sdf_object=sdf_object, coarse_part=coarse[nearest],
        fine_part=fine[nearest], num_hand=num_samples, offset=offset, scale=scale,
    )  # fmt: skip
