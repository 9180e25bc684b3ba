"""Sign rule of ``hoimask::mesh_sdf``: angle-weighted pseudo-normals, winding number at open boundaries.

For a closed 2-manifold mesh, the sign of ``(p - c) . n`` with ``c`` the
closest point and ``n`` the angle-weighted pseudo-normal of the feature that
contains ``c`` (the face normal inside a face, the sum of the two face normals
on an edge, the angle-weighted sum of the incident face normals at a vertex)
is exactly the inside/outside test (Baerentzen & Aanaes, IEEE TVCG 2005).
It costs O(1) per point once the closest triangle is known.

It is not defined where ``c`` lies on an *open boundary* (an edge used by one
triangle, such as MANO's wrist rim, or a non-manifold edge used by three or
more) or at a vertex touching one. Those points are signed by the generalised
winding number ``w`` instead (inside when ``|w| > 0.5``; Jacobson et al.,
SIGGRAPH 2013), which degrades gracefully with holes.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .table import sliver

__all__ = ["MeshTopology", "mesh_topology", "pseudo_normal_sign"]


class MeshTopology:
    """Edge adjacency of a triangle list (shared by every mesh of a batch).

    Attributes:
        face_edge: ``(T, 3)`` edge id of the edges opposite corners 0, 1, 2
            (edges ``12``, ``20``, ``01``).
        boundary_edge: ``(E,)`` True for edges not shared by exactly two triangles.
        boundary_vertex: ``(V,)`` True for vertices on such an edge.
        num_edges: ``E``.
    """

    def __init__(self, face_edge: Tensor, boundary_edge: Tensor, boundary_vertex: Tensor) -> None:
        self.face_edge = face_edge
        self.boundary_edge = boundary_edge
        self.boundary_vertex = boundary_vertex
        self.num_edges = int(boundary_edge.shape[0])


def mesh_topology(faces: Tensor, num_vertices: int) -> MeshTopology:
    """Edges, open-boundary edges and boundary vertices of ``faces``.

    Args:
        faces: triangles (int64).
        num_vertices: ``V``.

    Returns:
        The :class:`MeshTopology`.

    Shape:
        - faces: ``(T, 3)``
    """
    T = faces.shape[0]
    # Edge opposite corner k: (1, 2), (2, 0), (0, 1).
    edges = torch.cat([faces[:, [1, 2]], faces[:, [2, 0]], faces[:, [0, 1]]], dim=0).sort(dim=1).values
    key = edges[:, 0] * num_vertices + edges[:, 1]  # one int64 per undirected edge
    unique, inverse, counts = torch.unique(key, return_inverse=True, return_counts=True)
    boundary_edge = counts != 2
    boundary_vertex = torch.zeros(num_vertices, dtype=torch.bool, device=faces.device)
    open_keys = unique[boundary_edge]
    boundary_vertex[open_keys // num_vertices] = True
    boundary_vertex[open_keys % num_vertices] = True
    return MeshTopology(inverse.view(3, T).t().contiguous(), boundary_edge, boundary_vertex)


def pseudo_normal_sign(
    points: Tensor,
    closest: Tensor,
    vertices: Tensor,
    faces: Tensor,
    face_index: Tensor,
    bary: Tensor,
    topology: MeshTopology,
) -> tuple[Tensor, Tensor]:
    """Sign of each point from the pseudo-normal of its closest feature.

    Args:
        points: query points.
        closest: closest points on the mesh.
        vertices: mesh vertices.
        faces: triangles (int64).
        face_index: closest triangle per point.
        bary: barycentric coordinates of ``closest`` in that triangle (exact
            zeros/ones mark edge and vertex regions, as produced by
            :func:`hoimask.ops.mesh_sdf.reference.closest_point_on_triangle`).
        topology: :func:`mesh_topology` of ``faces``.

    Returns:
        ``(sign, on_boundary)``: ``sign`` is +1 outside, -1 inside (+1 where
        the point is on the surface); ``on_boundary`` flags points whose closest
        feature touches an open boundary, whose sign must come from the
        winding number instead.

    Shape:
        - points, closest: ``(B, Q, 3)``; vertices: ``(B, V, 3)``; faces: ``(T, 3)``
        - face_index: ``(B, Q)``; bary: ``(B, Q, 3)``; outputs: ``(B, Q)``
    """
    B, V, _ = vertices.shape
    tri = vertices[:, faces]  # (B, T, 3, 3)
    e0 = tri[:, :, 1] - tri[:, :, 0]
    e1 = tri[:, :, 2] - tri[:, :, 0]
    n = torch.linalg.cross(e0, e1, dim=-1)
    degenerate = sliver((n * n).sum(-1), (e0 * e0).sum(-1), (e1 * e1).sum(-1)).unsqueeze(-1)
    # Unit face normals; 0 for degenerate triangles and slivers, whose direction is rounding noise.
    n = torch.where(degenerate, 0.0, n / n.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(n.dtype).tiny))
    # Edge pseudo-normals: sum of the adjacent face normals.
    E = topology.num_edges
    edge_n = n.new_zeros(B, E, 3)
    edge_n.index_add_(1, topology.face_edge.t().reshape(-1), n.repeat(1, 3, 1))
    # Vertex pseudo-normals: face normals weighted by the incident angle.
    angles = []
    for k in range(3):
        u = tri[:, :, (k + 1) % 3] - tri[:, :, k]
        w = tri[:, :, (k + 2) % 3] - tri[:, :, k]
        cos = (u * w).sum(-1) / (u.norm(dim=-1) * w.norm(dim=-1)).clamp_min(torch.finfo(n.dtype).tiny)
        angles.append(torch.arccos(cos.clamp(-1, 1)))
    vert_n = n.new_zeros(B, V, 3)
    weighted = torch.stack(angles, dim=2).unsqueeze(-1) * n.unsqueeze(2)  # (B, T, 3 corners, 3)
    vert_n.index_add_(1, faces.reshape(-1), weighted.reshape(B, -1, 3))

    zero = bary == 0  # (B, Q, 3)
    n_zero = zero.sum(-1)
    batch = torch.arange(B, device=points.device).view(B, 1)
    # Face region.
    normal = n[batch, face_index]
    boundary = torch.zeros_like(face_index, dtype=torch.bool)
    # Edge region: the corner with weight 0 is opposite the edge.
    corner0 = zero.to(torch.int8).argmax(-1)
    edge_id = topology.face_edge[face_index, corner0]
    is_edge = n_zero == 1
    normal = torch.where(is_edge.unsqueeze(-1), edge_n[batch, edge_id], normal)
    boundary = torch.where(is_edge, topology.boundary_edge[edge_id], boundary)
    # Vertex region: the corner with weight 1.
    corner1 = (bary == 1).to(torch.int8).argmax(-1)
    vid = faces[face_index, corner1]
    is_vertex = n_zero >= 2
    normal = torch.where(is_vertex.unsqueeze(-1), vert_n[batch, vid], normal)
    boundary = torch.where(is_vertex, topology.boundary_vertex[vid], boundary)
    side = ((points - closest) * normal).sum(-1)
    sign = torch.where(side < 0, -1.0, 1.0).to(points.dtype)
    return sign, boundary
