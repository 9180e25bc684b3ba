"""Signed distance fields: analytic primitives, mesh generators, query samplers, volume density,
projection onto the zero level set.

The mesh SDF itself is the custom op :func:`hoimask.ops.mesh_sdf`, re-exported
here for convenience (importing it registers ``torch.ops.hoimask.mesh_sdf``).
"""

from ..ops.mesh_sdf import mesh_sdf, mesh_sdf_reference
from .density import VolumeDensity, volume_density
from .meshes import box_mesh, icosphere, open_mesh, torus_mesh
from .primitives import (
    box_sdf,
    capsule_sdf,
    cylinder_sdf,
    smooth_union,
    sphere_sdf,
    to_local,
    transformed_sdf,
    union,
)
from .samplers import (
    DEFAULT_SIGMAS,
    field_guided_points,
    sample_near_surface,
    sample_surface,
    sample_uniform,
)
from .surface import SurfacePoints, project_to_surface

__all__ = [
    "mesh_sdf",
    "mesh_sdf_reference",
    "sphere_sdf",
    "box_sdf",
    "capsule_sdf",
    "cylinder_sdf",
    "to_local",
    "transformed_sdf",
    "union",
    "smooth_union",
    "icosphere",
    "torus_mesh",
    "box_mesh",
    "open_mesh",
    "DEFAULT_SIGMAS",
    "sample_surface",
    "sample_near_surface",
    "sample_uniform",
    "field_guided_points",
    "volume_density",
    "VolumeDensity",
    "SurfacePoints",
    "project_to_surface",
]
