"""CPU bounding-volume hierarchy for ``hoimask::mesh_sdf``: exact closest triangles and fast winding numbers.

Used when `numba <https://numba.pydata.org>`_ is importable (the ``fast``
extra) and ``HOIMASK_DISABLE_NUMBA`` is not ``1``; otherwise the CPU falls
back to the pure-torch cluster search (``clustered.py``). Two ways in:

* :class:`MeshBVH` — an explicit structure for one mesh, built once and
  queried many times (an object model in its own frame: move the query points
  into that frame, distances are invariant under rigid motion);
* :func:`bvh_mesh_sdf` — what the op runs on CPU: one tree per batch element,
  built per call (about a millisecond for MANO's 1538 triangles).

**Tree.** Triangles are split recursively in two (leaves of at most
``leaf_size`` triangles), each node keeping the bounding box of its
triangles; triangles are stored in tree order. A node of several connected
components splits between components, so each component is a node; within a
component the split is the surface-area heuristic's best of ``SAH_BINS - 1``
centroid-bin boundaries per axis (cost: each side's box surface times its
triangle count), which prunes more of the search than the median split
(0.8-0.9x its search time on the benchmark meshes); below depth 32 nodes
split at the median. A tree deeper than the traversal stack allows (very
uneven components) is rebuilt as one component.

**Closest triangle.** Depth-first, nearer child first, skipping every node
whose box is farther than the best distance so far; leaves run Ericson's
closest-point test (the same region rules as the torch reference). Nothing
closer than the best is ever skipped, so the result is exact (lowest triangle
index on exact ties, like the torch path). Computed in float64 whatever the
input dtype.

**Sign.** The angle-weighted pseudo-normal of the closest feature, and where
that feature touches an open boundary (or for every point with
``sign="winding"``), the generalised winding number, inside when ``|w| > 0.5``.

**Fast winding numbers** (Barill, Dickson, Schmidt, Levin & Jacobson, SIGGRAPH
2018). Each node stores its area-weighted normal sum ``N``, its area-weighted
centroid ``c`` and the radius ``r`` of its corners about ``c``. A node with
``|c - p| > beta * r`` contributes its dipole ``N . (c - p) / |c - p|^3`` to
``4 pi w``; nearer nodes are opened, and leaves sum exact solid angles. Where
the result lies within ``band`` of the threshold 0.5 it is recomputed exactly
(every triangle), so the inside/outside decision only differs from the brute
force where the far-field error exceeds ``band``.
"""

from __future__ import annotations

import numbers
import os
import threading

import numpy as np
import torch
from torch import Tensor

from ..._checks import (
    DeviceError,
    DTypeError,
    ValueRangeError,
    check_choice,
    check_finite,
    check_floating,
    check_int,
    check_shape,
)
from ..._numba import numba_available, run_ranges, split_ranges
from .sign import mesh_topology

__all__ = [
    "DEFAULT_BAND",
    "DEFAULT_BETA",
    "DEFAULT_LEAF_SIZE",
    "MeshBVH",
    "bvh_enabled",
    "bvh_mesh_sdf",
    "bvh_nearest_triangle",
    "numba_available",
]

#: Triangles per leaf.
DEFAULT_LEAF_SIZE = 4
#: Centroid bins per axis of the surface-area split (0: median splits).
SAH_BINS = 8
#: Far-field criterion of the fast winding number: a node is one dipole beyond ``beta`` radii.
DEFAULT_BETA = 1.5
#: Winding numbers within this of 0.5 are recomputed exactly.
DEFAULT_BAND = 0.25
#: Below this many points per call a query runs on one thread.
MIN_PARALLEL_POINTS = 4096


def bvh_enabled(device: torch.device) -> bool:
    """Whether ``hoimask::mesh_sdf`` uses the BVH for tensors on ``device``.

    True on CPU when numba is importable and ``HOIMASK_DISABLE_NUMBA`` is not ``1``.
    """
    return device.type == "cpu" and os.environ.get("HOIMASK_DISABLE_NUMBA", "0") != "1" and numba_available()


def _kernels():
    from . import _bvh_kernels

    return _bvh_kernels


def _builders():
    from . import _bvh_build

    return _bvh_build


def _ranges(count: int) -> list[tuple[int, int]]:
    """One contiguous range of ``range(count)`` per torch thread (one range below ``MIN_PARALLEL_POINTS``)."""
    return split_ranges(count, MIN_PARALLEL_POINTS)


def _run(kernel, count: int, *args) -> None:
    """Run ``kernel(q0, q1, ...)`` over ``range(count)``, in parallel threads where it pays (the kernels drop the GIL)."""
    run_ranges(kernel, count, MIN_PARALLEL_POINTS, *args)


def _components_closed(faces: Tensor, group: Tensor) -> Tensor:
    """``(C,)`` bool per component of ``group (T,)``: every directed edge of its triangles matched by its reverse."""
    f = faces.to(torch.int64)
    a, b = f.reshape(-1), f.roll(-1, dims=1).reshape(-1)
    n = int(f.max()) + 1
    keys, inverse = torch.unique(torch.cat([a * n + b, b * n + a]), return_inverse=True)
    balance = torch.zeros(keys.shape[0], dtype=torch.int64).index_add_(
        0, inverse, torch.cat([torch.ones_like(a), -torch.ones_like(a)]))
    closed = torch.ones(int(group.max()) + 1, dtype=torch.bool)
    edge_group = group.repeat_interleave(3)  # the component of each directed edge a -> b
    open_edges = balance[inverse[: a.shape[0]]] != 0
    closed[edge_group[open_edges]] = False
    return closed


def edges_balanced(faces: Tensor) -> bool:
    """Whether every directed edge ``(a, b)`` of ``faces (T, 3)`` occurs as often as ``(b, a)``.

    Then the mesh has no boundary, counted with orientation (closed surfaces, also
    overlapping or nested ones), and its winding number is constant on each piece of
    space the surface cuts off: what lets :func:`sdf_range` reuse a sign inside an
    empty ball. An open mesh (MANO's wrist) or a mis-oriented triangle makes it False.
    """
    return bool(_components_closed(faces, torch.zeros(faces.shape[0], dtype=torch.int64)).all())


class _Tree:
    """The arrays of one mesh's BVH (float64 NumPy, triangles in tree order).

    The search needs only the tree; the sign data (pseudo-normals, dipoles) are
    computed on the first signed query.
    """

    def __init__(self, vertices: Tensor, faces: Tensor, leaf_size: int, topology=None) -> None:
        k, build = _kernels(), _builders()
        self._input_tri = vertices.detach().to(torch.float64)[faces].numpy()  # (T, 3, 3), input order
        self.num_vertices = vertices.shape[0]
        faces_np = faces.contiguous().numpy()
        self.group = build.triangle_components(faces_np, vertices.shape[0])  # (T,) connected component per triangle
        tree = build.build_tree(self._input_tri, leaf_size, self.group, SAH_BINS)
        if build.tree_depth(tree[2]) > k.MAX_DEPTH:  # very uneven components: one group (depth <= 32 + log2 T)
            self.group = np.zeros_like(self.group)
            tree = build.build_tree(self._input_tri, leaf_size, self.group, SAH_BINS)
        self.perm, self.box, self.left, self.start, self.stop = tree
        self.tri = self._input_tri[self.perm]
        self.tab = k.search_table(self.tri)
        self.faces = faces.contiguous()
        self._topology = topology
        self._signs = None
        self.closed = False  # edges_balanced(faces), with the sign data
        self._lock = threading.Lock()  # the sign data are built once, also when threads share the tree

    def _sign_data(self) -> tuple:
        """``(pseudo-normal arrays, dipole arrays)``, computed on first use."""
        with self._lock:
            if self._signs is None:
                k, build = _kernels(), _builders()
                topology = self._topology or mesh_topology(self.faces, self.num_vertices)
                faces, face_edge = self.faces.numpy(), topology.face_edge.numpy()
                normals = k.pseudo_normals(self._input_tri, faces, face_edge, topology.num_edges, self.num_vertices)
                signs = (faces, face_edge, *normals, topology.boundary_edge.numpy(),
                         topology.boundary_vertex.numpy())  # fmt: skip
                group_closed = _components_closed(self.faces, torch.from_numpy(self.group))
                self.closed = bool(group_closed.all())
                closed_node = build.closed_nodes(self.perm, self.group, np.bincount(self.group), group_closed.numpy(),
                                             self.start, self.stop)
                self._signs = (signs, (*build.dipoles(self.tri, self.left, self.start, self.stop), closed_node))
            return self._signs

    def nearest(self, points) -> Tensor:
        """Closest triangle (input index, lowest on exact ties) of ``points`` (float64 array)."""
        index = torch.empty(points.shape[0], dtype=torch.int64)
        if points.shape[0] == 0:
            return index
        order = _kernels().morton_order(points)
        search = (self.tab, self.perm, self.box, self.left, self.start, self.stop, index.numpy())
        _run(lambda q0, q1: _kernels().nearest_range(points, order, q0, q1, *search), points.shape[0])
        return index

    def sdf(self, points, winding_sign: bool, beta: float, band: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(sdf (Q,), face_index (Q,), barycentric (Q, 3), closest (Q, 3))`` of ``points`` (float64 array)."""
        Q = points.shape[0]
        sdf = torch.empty(Q, dtype=torch.float64)
        index = torch.empty(Q, dtype=torch.int64)
        bary = torch.empty(Q, 3, dtype=torch.float64)
        closest = torch.empty(Q, 3, dtype=torch.float64)
        if Q == 0:
            return sdf, index, bary, closest
        order = _kernels().morton_order(points)  # neighbours in a row: each search starts from the last answer
        arrays = (sdf.numpy(), index.numpy(), bary.numpy(), closest.numpy())

        signs, dipoles = self._sign_data()

        def kernel(q0, q1):
            _kernels().sdf_range(
                points, order, q0, q1, self.tri, self.tab, self.perm, self.box, self.left, self.start, self.stop,
                *signs, *dipoles, beta, band, winding_sign, self.closed, *arrays,
            )  # fmt: skip

        _run(kernel, Q)
        return sdf, index, bary, closest

    def winding(self, points, beta: float, band: float) -> Tensor:
        """Fast winding numbers of ``points`` (float64 array)."""
        dipoles = self._sign_data()[1]
        out = torch.empty(points.shape[0], dtype=torch.float64)
        tree = (self.tri, self.box, self.left, self.start, self.stop, *dipoles, beta, band, out.numpy())
        _run(lambda q0, q1: _kernels().winding_range(points, q0, q1, *tree), points.shape[0])
        return out


def _as_array(points: Tensor):
    return points.detach().to(torch.float64).contiguous().numpy()


def bvh_mesh_sdf(
    points: Tensor, vertices: Tensor, faces: Tensor, *, winding_sign: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """The op's CPU path: ``(sdf, face_index, barycentric)`` with one tree per batch element.

    Inputs are validated by the caller. Not differentiable (the op's backward
    is analytic).

    Shape:
        points ``(B, Q, 3)``, vertices ``(B, V, 3)``, faces ``(T, 3)`` int64 ->
        ``(B, Q)``, ``(B, Q)`` int64, ``(B, Q, 3)`` in the points' dtype.
    """
    B, Q, _ = points.shape
    topology = mesh_topology(faces, vertices.shape[1])
    results = [
        _Tree(vertices[b], faces, DEFAULT_LEAF_SIZE, topology).sdf(
            _as_array(points[b]), winding_sign, DEFAULT_BETA, DEFAULT_BAND
        )
        for b in range(B)
    ]
    sdf, index, bary = (torch.stack([r[k] for r in results]) for k in range(3))
    return sdf.to(points.dtype), index, bary.to(points.dtype)


def bvh_nearest_triangle(points: Tensor, vertices: Tensor, faces: Tensor) -> Tensor:
    """Closest triangle of each point (lowest index on exact ties), through a tree built for this call.

    Inputs are validated by the caller; degenerate triangles ``(i, i, i)`` make
    this a nearest-vertex search.

    Shape:
        points ``(Q, 3)``, vertices ``(V, 3)``, faces ``(T, 3)`` int64 -> ``(Q,)`` int64.
    """
    return _Tree(vertices, faces, DEFAULT_LEAF_SIZE).nearest(_as_array(points))


class MeshBVH:
    """A bounding-volume hierarchy over one triangle mesh: signed distances and winding numbers on CPU.

    Built once (it keeps its own float64 copy of the mesh, so later changes to
    the tensors passed in do not reach it) and queried any number of times:
    cache one per object model, in the model's own frame, and move the query
    points into that frame (``(p - t) @ R`` for ``p = R x + t``). Needs numba
    (the ``fast`` extra). Results equal :func:`hoimask.ops.mesh_sdf` on the
    same mesh (the same search, sign rule and float64 arithmetic).

    Args:
        vertices: mesh vertices (metres), any floating dtype.
        faces: triangles, int64 or int32, counter-clockwise seen from outside.
            Degenerate triangles are allowed (a segment, a point, or a sliver
            whose area is lost to rounding: their distance is to their nearest
            edge, and they carry no face normal); unreferenced vertices are
            ignored.
        leaf_size: triangles per leaf.
        beta: far-field criterion of the fast winding number (larger: more
            exact, slower).
        band: winding numbers within this of 0.5 are recomputed exactly.

    Shape:
        vertices ``(V, 3)``; faces ``(T, 3)``.

    Raises:
        ImportError: numba is not installed.
        ShapeError, DTypeError, DeviceError, ValueRangeError: bad mesh (the
            rules of :func:`hoimask.ops.mesh_sdf.op.validate_mesh_sdf_inputs`,
            without a batch dimension), or bad ``leaf_size`` / ``beta`` / ``band``.

    Example:
        >>> from hoimask.sdf.meshes import icosphere
        >>> v, f = icosphere(3, radius=0.05)
        >>> bvh = MeshBVH(v, f)
        >>> bvh.sdf(torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0]])).round(decimals=3)
        tensor([-0.0500,  0.0500])
    """

    def __init__(
        self,
        vertices: Tensor,
        faces: Tensor,
        *,
        leaf_size: int = DEFAULT_LEAF_SIZE,
        beta: float = DEFAULT_BETA,
        band: float = DEFAULT_BAND,
    ) -> None:
        fn = "MeshBVH"
        if not numba_available():
            raise ImportError(f"{fn} needs numba: pip install 'hoimask[fast]'")
        check_int(leaf_size, name="leaf_size", low=1, high=1 << 20, fn=fn)
        for name, value, low in (("beta", beta, 1.0), ("band", band, 0.0)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise DTypeError(f"{fn}(): argument '{name}' expected a float, got {type(value).__name__}")
            if not low <= value < float("inf"):
                raise ValueRangeError(f"{fn}(): argument '{name}' expected a finite value >= {low}, got {value}")
        from .op import check_mesh

        check_shape(vertices, "V 3", name="vertices", fn=fn)
        check_shape(faces, "T 3", name="faces", fn=fn)
        check_floating(vertices, name="vertices", fn=fn)
        for name, x in (("vertices", vertices), ("faces", faces)):
            if x.device.type != "cpu":
                raise DeviceError(f"{fn}(): argument '{name}' expected a CPU tensor, got device {x.device}")
        faces = check_mesh(vertices, faces, fn=fn)
        self.vertices = vertices.detach().to(torch.float64).clone()
        self.faces = faces.clone()
        self.beta = float(beta)
        self.band = float(band)
        self._tree = _Tree(self.vertices, self.faces, leaf_size)

    @property
    def num_nodes(self) -> int:
        """Number of tree nodes."""
        return int(self._tree.left.shape[0])

    def _points(self, points: Tensor, fn: str):
        check_shape(points, "Q 3", name="points", fn=fn)
        check_floating(points, name="points", fn=fn)
        if points.device.type != "cpu":
            raise DeviceError(f"{fn}(): argument 'points' expected a CPU tensor, got device {points.device}")
        check_finite(points, name="points", fn=fn)
        return _as_array(points)

    def sdf(
        self, points: Tensor, *, sign: str = "auto", return_index: bool = False
    ) -> Tensor | tuple[Tensor, Tensor, Tensor]:
        """Signed distance of each point (negative inside), in the points' dtype.

        Args:
            points: query points in the mesh's frame.
            sign: ``"auto"`` (pseudo-normals, winding number at open
                boundaries) or ``"winding"`` (winding number for every point),
                as in :func:`hoimask.ops.mesh_sdf`.
            return_index: also return the closest triangle and closest point.

        Returns:
            ``sdf``, or ``(sdf, face_index, closest_point)``. ``sdf`` is
            differentiable w.r.t. ``points`` (``d sdf / d p = s (p - c) / |p - c|``);
            the mesh is fixed.

        Shape:
            points ``(Q, 3)`` -> sdf ``(Q,)``, face_index ``(Q,)`` int64, closest_point ``(Q, 3)``
        """
        fn = "MeshBVH.sdf"
        check_choice(sign, ("auto", "winding"), name="sign", fn=fn)
        if not isinstance(return_index, bool):
            raise DTypeError(f"{fn}(): argument 'return_index' expected a bool, got {type(return_index).__name__}")
        sdf, index, _, closest = self._tree.sdf(self._points(points, fn), sign == "winding", self.beta, self.band)
        result = sdf
        if points.requires_grad and torch.is_grad_enabled():
            # The same value with the gradient of sign * |p - c| (c fixed; 0 on the surface), in float64.
            diff = points.to(torch.float64) - closest
            dist_sq = (diff * diff).sum(-1)
            on = dist_sq > 0
            dist = torch.where(on, torch.where(on, dist_sq, torch.ones_like(dist_sq)).sqrt(), torch.zeros_like(dist_sq))
            signed = torch.where(sdf < 0, -dist, dist)
            result = sdf + (signed - signed.detach())
        result = result.to(points.dtype)
        closest = closest.to(points.dtype)
        if not return_index:
            return result
        return result, index, closest

    def winding_number(self, points: Tensor) -> Tensor:
        """Fast generalised winding number of each point (float64; exact within ``band`` of 0.5).

        Shape:
            points ``(Q, 3)`` -> ``(Q,)``
        """
        return self._tree.winding(self._points(points, "MeshBVH.winding_number"), self.beta, self.band)
