"""Objects of synthetic scenes: primitives (sphere, box, cylinder, capsule) and user meshes.

An :class:`SceneObject` is a shape in its own *model* frame (centred at the
origin) plus a pose ``(R, t)`` mapping model to camera coordinates,
``x_cam = R @ x_model + t``. It can be ray cast (for rendering), queried for
signed distances (for SDF targets, via :mod:`hoimask.sdf` and
:func:`hoimask.ops.mesh_sdf`) and sampled on its surface (model points for
the object metrics, near-surface SDF query points).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch

from hoimask._checks import check_choice, check_positive, check_shape

from .raycast import (
    intersect_box,
    intersect_capsules,
    intersect_cylinder,
    intersect_mesh,
    intersect_spheres,
)

__all__ = ["PRIMITIVE_KINDS", "SceneObject", "sample_primitive"]

#: Primitive kinds the scene sampler draws from.
PRIMITIVE_KINDS: tuple[str, ...] = ("box", "cylinder", "sphere", "capsule")


@dataclass
class SceneObject:
    """A rigid object: shape parameters in the model frame plus a model-to-camera pose.

    Attributes:
        kind: ``"sphere"`` (``size = (r,)``), ``"box"`` (``size`` = half extents
            ``(3,)``), ``"cylinder"`` (``size = (r, half_height)``, axis z),
            ``"capsule"`` (``size = (r, half_length)``, axis z) or ``"mesh"``.
        size: ``(k,)`` shape parameters in metres (unused for meshes).
        rotation: ``(3, 3)`` model-to-camera rotation.
        translation: ``(3,)`` model origin in the camera frame.
        vertices: ``(V, 3)`` model-frame vertices (meshes only).
        faces: ``(T, 3)`` int64 faces, outward counter-clockwise (meshes only).
        texture: colour parameters (see :func:`hoimask.data.textures.sample_texture`).
    """

    kind: str
    size: torch.Tensor
    rotation: torch.Tensor = field(default_factory=lambda: torch.eye(3))
    translation: torch.Tensor = field(default_factory=lambda: torch.zeros(3))
    vertices: torch.Tensor | None = None
    faces: torch.Tensor | None = None
    texture: dict | None = None

    def __post_init__(self) -> None:
        check_choice(self.kind, PRIMITIVE_KINDS + ("mesh",), name="kind", fn="SceneObject")
        check_shape(self.rotation, "3 3", name="rotation", fn="SceneObject")
        check_shape(self.translation, "3", name="translation", fn="SceneObject")
        if self.kind == "mesh":
            check_shape(self.vertices, "V 3", name="vertices", fn="SceneObject")
            check_shape(self.faces, "T 3", name="faces", fn="SceneObject")
        else:
            want = {"sphere": "1", "box": "3", "cylinder": "2", "capsule": "2"}[self.kind]
            check_shape(self.size, want, name="size", fn="SceneObject")

    # -- geometry in the model frame -------------------------------------------------
    def scaled(self, factor: float) -> SceneObject:
        """The same object scaled by ``factor`` about its model origin.

        Args:
            factor: positive scale factor.

        Returns:
            A new :class:`SceneObject` (same pose and texture).
        """
        check_positive(factor, name="factor")
        verts = None if self.vertices is None else self.vertices * factor
        return replace(self, size=self.size * factor, vertices=verts)

    def posed(self, rotation: torch.Tensor, translation: torch.Tensor) -> SceneObject:
        """The same object with a new model-to-camera pose.

        Args:
            rotation: ``(3, 3)`` model-to-camera rotation.
            translation: ``(3,)`` model origin in the camera frame.

        Returns:
            A new :class:`SceneObject`.
        """
        return replace(self, rotation=rotation, translation=translation)

    def to_local(self, points: torch.Tensor) -> torch.Tensor:
        """Camera-frame points to the model frame: ``R^T (x - t)``.

        Args:
            points: ``(M, 3)`` camera-frame points.

        Returns:
            ``(M, 3)`` model-frame points (dtype of ``points``).

        Shape:
            ``(M, 3) -> (M, 3)``
        """
        return (points - self.translation.to(points.dtype)) @ self.rotation.to(points.dtype)

    def to_camera(self, points: torch.Tensor) -> torch.Tensor:
        """Model-frame points to the camera frame: ``R x + t``.

        Args:
            points: ``(M, 3)`` model-frame points.

        Returns:
            ``(M, 3)`` camera-frame points (dtype of ``points``).

        Shape:
            ``(M, 3) -> (M, 3)``
        """
        return points @ self.rotation.to(points.dtype).T + self.translation.to(points.dtype)

    def bounding_radius(self) -> float:
        """Radius of a sphere about the model origin that contains the object.

        Returns:
            The radius in metres (a Python float).
        """
        if self.kind == "mesh":
            return float(self.vertices.norm(dim=-1).max())
        s = self.size
        if self.kind == "sphere":
            return float(s[0])
        if self.kind == "box":
            return float(s.norm())
        if self.kind == "cylinder":
            return float(torch.hypot(s[0], s[1]))
        return float(s[0] + s[1])

    def sdf_local(self, points: torch.Tensor) -> torch.Tensor:
        """Signed distance (negative inside) of model-frame points.

        Primitives use :mod:`hoimask.sdf.primitives`; meshes :func:`hoimask.ops.mesh_sdf`.

        Args:
            points: ``(M, 3)`` model-frame points.

        Returns:
            ``(M,)`` signed distances in metres.

        Shape:
            ``(M, 3) -> (M,)``
        """
        from hoimask.sdf.primitives import box_sdf, capsule_sdf, cylinder_sdf, sphere_sdf

        s = self.size.to(points.dtype)
        if self.kind == "sphere":
            return sphere_sdf(points, points.new_zeros(3), s[0])
        if self.kind == "box":
            return box_sdf(points, s)
        if self.kind == "cylinder":
            return cylinder_sdf(points, s[0], s[1])
        if self.kind == "capsule":
            a = points.new_tensor([0.0, 0.0, 1.0]) * s[1]
            return capsule_sdf(points, -a, a, s[0])
        from hoimask.ops import mesh_sdf

        v = self.vertices.to(points.dtype)
        return mesh_sdf(points[None], v[None], self.faces)[0]

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        """Signed distance (negative inside) of camera-frame points.

        Args:
            points: ``(M, 3)`` camera-frame points.

        Returns:
            ``(M,)`` signed distances in metres.

        Shape:
            ``(M, 3) -> (M,)``
        """
        check_shape(points, "M 3", name="points")
        return self.sdf_local(self.to_local(points))

    # -- rendering ---------------------------------------------------------------------
    def intersect(self, dirs: torch.Tensor) -> torch.Tensor:
        """Distance along camera rays from the origin to the first hit (closed form).

        Args:
            dirs: ``(R, 3)`` unit ray directions.

        Returns:
            ``(R,)`` hit distances, ``inf`` for a miss.

        Shape:
            ``(R, 3) -> (R,)``
        """
        check_shape(dirs, "R 3", name="dirs")
        R = self.rotation.to(dirs.dtype)
        t = self.translation.to(dirs.dtype)
        s = self.size.to(dirs.dtype)
        if self.kind == "sphere":
            return intersect_spheres(dirs, t[None], s[:1])
        if self.kind == "box":
            return intersect_box(dirs, R, t, s)
        if self.kind == "cylinder":
            return intersect_cylinder(dirs, R, t, float(s[0]), float(s[1]))
        if self.kind == "capsule":
            axis = R[:, 2] * s[1]
            return intersect_capsules(dirs, (t - axis)[None], (t + axis)[None], s[:1])[0]
        verts = self.to_camera(self.vertices.to(dirs.dtype))
        return intersect_mesh(dirs, verts, self.faces)[0]

    # -- sampling ----------------------------------------------------------------------
    def surface_points(self, num: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Area-uniform samples on the surface, in the *model* frame.

        Args:
            num: number of points ``P``.
            generator: source of randomness.

        Returns:
            ``(P, 3)`` float32 points.

        Shape:
            ``-> (P, 3)``
        """
        check_positive(num, name="num")
        g = generator
        s = self.size.float()
        if self.kind == "sphere":
            d = torch.randn((num, 3), generator=g)
            return d / d.norm(dim=-1, keepdim=True).clamp_min(1e-12) * s[0]
        if self.kind == "box":
            e = s
            areas = torch.stack([e[1] * e[2], e[0] * e[2], e[0] * e[1]]).repeat(2)  # faces -x,-y,-z,+x,+y,+z
            face = torch.multinomial(areas, num, replacement=True, generator=g)
            pts = (torch.rand((num, 3), generator=g) * 2 - 1) * e
            axis = face % 3
            sign = torch.where(face < 3, -1.0, 1.0)
            pts[torch.arange(num), axis] = sign * e[axis]
            return pts
        if self.kind == "mesh":
            v = self.vertices.float()
            tri = v[self.faces]  # (T, 3, 3)
            area = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]).norm(dim=-1)
            face = torch.multinomial(area, num, replacement=True, generator=g)
            uv = torch.rand((num, 2), generator=g)
            flip = uv.sum(-1) > 1
            uv[flip] = 1 - uv[flip]
            t = tri[face]
            return t[:, 0] + uv[:, :1] * (t[:, 1] - t[:, 0]) + uv[:, 1:] * (t[:, 2] - t[:, 0])
        r, h = s[0], s[1]
        body = 2 * math.pi * r * 2 * h
        ends = (2 * math.pi * r * r) if self.kind == "cylinder" else (4 * math.pi * r * r)
        which = torch.rand(num, generator=g) * (body + ends) >= body  # True = end part
        phi = torch.rand(num, generator=g) * 2 * math.pi
        z = (torch.rand(num, generator=g) * 2 - 1) * h
        pts = torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], dim=-1)
        if self.kind == "cylinder":
            rho = r * torch.rand(num, generator=g).sqrt()
            top = torch.rand(num, generator=g) < 0.5
            cap = torch.stack([rho * torch.cos(phi), rho * torch.sin(phi), torch.where(top, h, -h)], dim=-1)
        else:
            d = torch.randn((num, 3), generator=g)
            d = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            cap = d * r
            cap[:, 2] = cap[:, 2] + torch.where(cap[:, 2] >= 0, h, -h)
        return torch.where(which[:, None], cap, pts)


def sample_primitive(generator: torch.Generator | None = None, *, kinds: tuple[str, ...] = PRIMITIVE_KINDS) -> SceneObject:
    """A random primitive of hand-held size (2–12 cm across) at the origin, unposed.

    Args:
        generator: source of randomness.
        kinds: the kinds to choose from, uniformly.

    Returns:
        A :class:`SceneObject` with identity pose (the scene sampler places it).
    """
    for k in kinds:
        check_choice(k, PRIMITIVE_KINDS, name="kinds")
    g = generator
    kind = kinds[int(torch.randint(len(kinds), (1,), generator=g))]
    u = torch.rand(3, generator=g)
    if kind == "sphere":
        size = 0.025 + 0.025 * u[:1]
    elif kind == "box":
        size = 0.015 + 0.045 * u
    elif kind == "cylinder":
        size = torch.stack([0.02 + 0.025 * u[0], 0.03 + 0.06 * u[1]])
    else:
        size = torch.stack([0.015 + 0.02 * u[0], 0.02 + 0.05 * u[1]])
    return SceneObject(kind=kind, size=size)
