"""Custom torch operators registered under the ``hoimask`` namespace.

Each op lives in ``hoimask/ops/<name>/`` with ``reference.py`` (pure torch,
differentiable, the source of truth), ``kernel.py`` (Triton, imported only when
Triton is importable) and ``op.py`` (``torch.library.custom_op`` registration);
``mesh_sdf/bvh.py`` is the CPU bounding-volume hierarchy (numba, the ``fast``
extra). Importing this package registers ``torch.ops.hoimask.mesh_sdf``.
"""

from .mesh_sdf import (
    MeshBVH,
    closest_point_on_triangle,
    mesh_sdf,
    mesh_sdf_reference,
    winding_number,
)

__all__ = ["MeshBVH", "closest_point_on_triangle", "mesh_sdf", "mesh_sdf_reference", "winding_number"]
