"""``hoimask::mesh_sdf``: signed distance from points to a triangle mesh.

``reference.py`` is the pure-torch source of truth, ``kernel.py`` the Triton
search (imported only when Triton is importable and used for CUDA tensors),
``op.py`` the ``torch.library`` registration and the validated public wrapper,
``bvh.py`` the CPU bounding-volume hierarchy (numba kernels: ``_bvh_build.py``
builds the tree, ``_bvh_kernels.py`` answers queries; imported only when numba
is importable).
"""

from .bvh import MeshBVH, bvh_enabled
from .op import mesh_sdf, triton_enabled, winding_number
from .reference import closest_point_on_triangle, mesh_sdf_reference

__all__ = [
    "MeshBVH",
    "bvh_enabled",
    "closest_point_on_triangle",
    "mesh_sdf",
    "mesh_sdf_reference",
    "triton_enabled",
    "winding_number",
]
