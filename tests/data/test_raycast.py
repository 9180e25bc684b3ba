"""Ray casting: closed-form hits agree with the signed distance functions they render."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import ValueRangeError
from hoimask.data.objects import SceneObject, sample_primitive
from hoimask.data.raycast import (
    camera_rays,
    intersect_capsules,
    intersect_mesh,
    intersect_spheres,
    sdf_normals,
    sphere_trace,
)
from hoimask.hand.capsules import capsule_sdf
from hoimask.sdf.meshes import box_mesh

K = torch.tensor([[120.0, 0, 32], [0, 120.0, 24], [0, 0, 1]], dtype=torch.float64)


def _random_pose(g):
    q = torch.randn(4, generator=g, dtype=torch.float64)
    from hoimask.geometry import quaternion_to_matrix

    R = quaternion_to_matrix(q / q.norm())
    t = torch.tensor([0.0, 0.0, 0.4], dtype=torch.float64) + 0.03 * torch.randn(3, generator=g, dtype=torch.float64)
    return R, t


def test_camera_rays_go_through_pixel_centres():
    dirs = camera_rays(K, 48, 64)
    assert dirs.shape == (48 * 64, 3)
    assert torch.allclose(dirs.norm(dim=-1), torch.ones(48 * 64, dtype=torch.float64))
    from hoimask.geometry import project

    uv = project(dirs, K).reshape(48, 64, 2)
    assert torch.allclose(uv[5, 7], torch.tensor([7.5, 5.5], dtype=torch.float64))


@given(seed=st.integers(0, 10_000))
def test_primitive_hits_lie_on_the_surface_and_misses_stay_outside(seed):
    g = torch.Generator().manual_seed(seed)
    obj = sample_primitive(g)
    obj = SceneObject(kind=obj.kind, size=obj.size.double())
    obj = obj.posed(*_random_pose(g))
    dirs = camera_rays(K, 48, 64)
    t = obj.intersect(dirs)
    hit = torch.isfinite(t)
    assert hit.any()
    p = dirs[hit] * t[hit, None]
    assert obj.sdf(p).abs().max() < 1e-6
    # Before the hit (and everywhere along a missing ray) the ray is outside the object.
    for frac in (0.3, 0.7, 0.98):
        assert (obj.sdf(dirs[hit] * (t[hit, None] * frac)) > 0).all()
    if (~hit).any():
        far = torch.linspace(0.2, 0.8, 25, dtype=torch.float64)
        pts = (dirs[~hit][:, None, :] * far[None, :, None]).reshape(-1, 3)
        assert (obj.sdf(pts) > -1e-9).all()


def test_capsule_union_hits_match_capsule_sdf(generator):
    a = torch.randn(6, 3, generator=generator, dtype=torch.float64) * 0.03 + torch.tensor([0, 0, 0.4], dtype=torch.float64)
    b = a + torch.randn(6, 3, generator=generator, dtype=torch.float64) * 0.03
    r = 0.005 + 0.01 * torch.rand(6, generator=generator, dtype=torch.float64)
    dirs = camera_rays(K, 48, 64)
    t, idx = intersect_capsules(dirs, a, b, r)
    hit = torch.isfinite(t)
    p = dirs[hit] * t[hit, None]
    d = capsule_sdf(p[None], a[None], b[None], r[None])[0]
    assert d.abs().max() < 1e-9
    own = capsule_sdf(p[:, None, :], a[idx[hit]][:, None, :], b[idx[hit]][:, None, :], r[idx[hit]][:, None])[:, 0]
    assert own.abs().max() < 1e-9  # the reported capsule is the one hit


def test_sphere_trace_matches_closed_form():
    c = torch.tensor([[0.01, -0.02, 0.5]], dtype=torch.float64)
    r = torch.tensor([0.05], dtype=torch.float64)
    dirs = camera_rays(K, 48, 64)
    exact = intersect_spheres(dirs, c, r)
    traced = sphere_trace(lambda p: (p - c[0]).norm(dim=-1) - r[0], dirs, center=c[0], radius=0.06, eps=1e-7, max_steps=200)
    assert torch.equal(torch.isfinite(exact), torch.isfinite(traced))
    fin = torch.isfinite(exact)
    assert torch.allclose(exact[fin], traced[fin], atol=1e-6)


def test_mesh_hits_match_box():
    R = torch.eye(3, dtype=torch.float64)
    t = torch.tensor([0.01, 0.0, 0.3], dtype=torch.float64)
    half = torch.tensor([0.03, 0.02, 0.04], dtype=torch.float64)
    box = SceneObject(kind="box", size=half).posed(R, t)
    v, f = box_mesh(tuple(half.tolist()))
    dirs = camera_rays(K, 48, 64)
    t_box = box.intersect(dirs)
    t_mesh, _ = intersect_mesh(dirs, v + t, f, chunk=500)
    assert torch.equal(torch.isfinite(t_box), torch.isfinite(t_mesh))
    fin = torch.isfinite(t_box)
    assert torch.allclose(t_box[fin], t_mesh[fin], atol=1e-9)
    with pytest.raises(ValueRangeError, match="chunk"):
        intersect_mesh(dirs, v + t, f, chunk=0)


def test_normals_are_unit_and_outward():
    obj = SceneObject(kind="sphere", size=torch.tensor([0.05], dtype=torch.float64)).posed(
        torch.eye(3, dtype=torch.float64), torch.tensor([0.0, 0.0, 0.4], dtype=torch.float64)
    )
    d = torch.randn(50, 3, dtype=torch.float64)
    d = d / d.norm(dim=-1, keepdim=True)
    p = obj.translation + 0.05 * d
    n = sdf_normals(obj.sdf, p)
    assert torch.allclose(n, d, atol=1e-5)


@pytest.mark.parametrize("kind", ["box", "cylinder", "sphere", "capsule"])
def test_surface_points_lie_on_the_surface(kind, generator):
    obj = sample_primitive(generator, kinds=(kind,))
    pts = obj.surface_points(400, generator=generator)
    assert pts.shape == (400, 3)
    assert obj.sdf_local(pts).abs().max() < 1e-6
    assert math.isclose(obj.bounding_radius(), float(pts.norm(dim=-1).max()), rel_tol=0.35)
