"""Samplers: exact counts, boxes, near-surface distance statistics, field-guided top-k."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.geometry import project
from hoimask.ops import mesh_sdf
from hoimask.sdf import (
    DEFAULT_SIGMAS,
    box_mesh,
    box_sdf,
    field_guided_points,
    icosphere,
    open_mesh,
    sample_near_surface,
    sample_surface,
    sample_uniform,
    sphere_sdf,
)


@given(B=st.integers(1, 3), n=st.integers(0, 50), seed=st.integers(0, 1000))
def test_uniform_counts_and_box(B, n, seed):
    g = torch.Generator().manual_seed(seed)
    lo = torch.randn(B, 3, generator=g, dtype=torch.float64)
    hi = lo + torch.rand(B, 3, generator=g, dtype=torch.float64) + 0.01
    p = sample_uniform(lo, hi, n, generator=g)
    assert p.shape == (B, n, 3) and p.dtype == torch.float64
    assert bool(((p >= lo[:, None]) & (p <= hi[:, None])).all())


def test_uniform_is_reproducible_and_fills_the_box(generator):
    lo, hi = torch.tensor([-1.0, 0.0, 2.0]), torch.tensor([1.0, 0.5, 3.0])
    a = sample_uniform(lo, hi, 4000, generator=torch.Generator().manual_seed(1))
    b = sample_uniform(lo, hi, 4000, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == (4000, 3)
    assert torch.allclose(a.mean(0), (lo + hi) / 2, atol=0.03)
    assert not torch.equal(a, sample_uniform(lo, hi, 4000, generator=generator))


def test_surface_samples_lie_on_the_mesh_and_follow_area():
    v, f = box_mesh((1.0, 0.1, 0.1))
    p, idx = sample_surface(v[None], f, 6000, generator=torch.Generator().manual_seed(0))
    assert p.shape == (1, 6000, 3) and idx.shape == (1, 6000)
    assert mesh_sdf(p, v[None], f).abs().max() < 1e-12
    # The four long faces have area 4 * (2 * 0.2) = 1.6 of a total 1.68.
    on_caps = (p[0, :, 0].abs() > 1 - 1e-12).double().mean()
    assert abs(float(on_caps) - 0.08 / 1.68) < 0.015


def test_near_surface_distances_follow_sigmas():
    # Large flat faces (40 cm box) so the distance to the surface is the normal component of the noise.
    v, f = box_mesh((0.2, 0.2, 0.2))
    n = 20000
    p = sample_near_surface(v[None], f, n, generator=torch.Generator().manual_seed(0))
    assert p.shape == (1, n, 3)
    assert torch.allclose(mesh_sdf(p[:, :500], v[None], f), box_sdf(p[:, :500], torch.full((3,), 0.2, dtype=p.dtype)))
    d = box_sdf(p[0], torch.full((3,), 0.2, dtype=p.dtype)).abs()
    half = n // 2
    for k, sigma in enumerate(DEFAULT_SIGMAS):
        group = d[k * half : (k + 1) * half]
        # Half-normal: mean sigma * sqrt(2 / pi); 99.7 % within 3 sigma.
        assert abs(float(group.mean()) / (sigma * math.sqrt(2 / math.pi)) - 1) < 0.05
        assert float((group < 3 * sigma).double().mean()) > 0.99


def test_near_surface_split_and_custom_sigmas():
    v, f = icosphere(2)
    p = sample_near_surface(v[None].expand(2, -1, -1), f, 7, sigmas=(1e-9, 1e-9, 0.5), generator=torch.Generator().manual_seed(0))
    assert p.shape == (2, 7, 3)
    d = mesh_sdf(p, v[None].expand(2, -1, -1), f).abs()
    # 3 + 2 points with tiny noise first, then 2 with sigma 0.5.
    assert d[:, :5].max() < 1e-6
    with pytest.raises(ValueRangeError, match="sigmas"):
        sample_near_surface(v[None], f, 4, sigmas=(0.1, -0.1))


def _brute_force_field_guided(sdf_fn, center, extent, res, K, box, k):
    ax = (torch.arange(res, dtype=center.dtype) + 0.5) / res - 0.5
    zz, yy, xx = torch.meshgrid(ax, ax, ax, indexing="ij")
    grid = torch.stack([xx, yy, zz], -1).reshape(-1, 3)
    out = []
    for b in range(center.shape[0]):
        pts = center[b] + grid * extent
        uv = project(pts, K[b])
        ok = (pts[:, 2] > 0) & (uv[:, 0] >= box[b, 0]) & (uv[:, 0] <= box[b, 2]) & (uv[:, 1] >= box[b, 1]) & (uv[:, 1] <= box[b, 3])
        d = sdf_fn(pts[ok][None])[0].abs()
        out.append(torch.sort(d).values[:k])
    return out


@pytest.mark.parametrize("chunk_size", [97, 100000])
def test_field_guided_returns_k_smallest_in_box(chunk_size):
    center = torch.tensor([[0.0, 0.0, 0.5], [0.05, -0.02, 0.6]], dtype=torch.float64)
    K = torch.tensor([[500.0, 0, 128], [0, 500.0, 128], [0, 0, 1]], dtype=torch.float64).expand(2, 3, 3)
    box = torch.tensor([[100.0, 90.0, 170.0, 150.0], [128.0, 100.0, 250.0, 128.0]], dtype=torch.float64)
    sphere_centers = center + torch.tensor([0.01, 0.0, 0.0], dtype=torch.float64)

    def sdf_fn(p):
        return sphere_sdf(p, sphere_centers[: p.shape[0], None] if p.shape[0] == 2 else sdf_fn.c, 0.04)

    sdf_fn.c = None
    pts, sdf, valid = field_guided_points(sdf_fn, center, 0.2, 16, K, box, 50, chunk_size=chunk_size)
    assert pts.shape == (2, 50, 3) and sdf.shape == (2, 50) and bool(valid.all())
    assert torch.allclose(sphere_sdf(pts, sphere_centers[:, None], 0.04), sdf)
    uv = project(pts, K)
    assert bool(((uv[..., 0] >= box[:, None, 0]) & (uv[..., 0] <= box[:, None, 2])).all())
    for b in range(2):
        sdf_fn.c = sphere_centers[b]
        ref = _brute_force_field_guided(sdf_fn, center[b : b + 1], 0.2, 16, K[b : b + 1], box[b : b + 1], 50)[0]
        assert torch.allclose(sdf[b].abs(), ref)
    assert bool((sdf.abs().diff(dim=1) >= 0).all())  # sorted by |SDF|


def test_field_guided_pads_when_box_holds_too_few_voxels():
    center = torch.tensor([[0.0, 0.0, 0.5]])
    K = torch.tensor([[[500.0, 0, 128], [0, 500.0, 128], [0, 0, 1]]])
    box = torch.tensor([[127.0, 127.0, 129.0, 129.0]])  # a 2-pixel box: only the central column of voxels
    pts, sdf, valid = field_guided_points(lambda p: p[..., 2] - 0.5, center, 0.1, 5, K, box, 10)
    n_ok = int(valid.sum())
    assert n_ok == 5  # the five voxels on the optical axis
    assert torch.equal(pts[0, n_ok:], center.expand(10 - n_ok, 3)) and bool((sdf[0, n_ok:] == 0).all())


def test_sampler_errors():
    v, f = icosphere(1)
    with pytest.raises(ValueRangeError, match="faces"):
        sample_surface(v[None], f + 100, 3)
    with pytest.raises(DTypeError, match="faces"):
        sample_near_surface(v[None], f.float(), 3)
    with pytest.raises(DTypeError, match="'n'"):
        sample_near_surface(v[None], f, 3.0)
    with pytest.raises(ValueRangeError, match="box_max"):
        sample_uniform(torch.ones(3), torch.zeros(3), 3)
    with pytest.raises(ShapeError):
        sample_uniform(torch.zeros(2, 3), torch.ones(3, 3), 3)
    K = torch.eye(3)[None]
    with pytest.raises(ValueRangeError, match="'k'"):
        field_guided_points(lambda p: p[..., 0], torch.zeros(1, 3), 1.0, 2, K, torch.zeros(1, 4), 9)
    with pytest.raises(ShapeError, match="box_2d"):
        field_guided_points(lambda p: p[..., 0], torch.zeros(1, 3), 1.0, 2, K, torch.zeros(2, 4), 1)
    with pytest.raises(ShapeError, match="sdf_fn"):
        field_guided_points(lambda p: p, torch.tensor([[0.0, 0, 1]]), 1.0, 2, K, torch.tensor([[-9.0, -9, 9, 9]]), 1)


def test_open_mesh_cuts_a_hole_and_checks_its_inputs():
    v, f = icosphere(2)
    up = torch.tensor([0.0, 0.0, 1.0])
    kept_v, kept_f = open_mesh(v, f, up, math.cos(math.radians(30)))
    assert kept_v is v and 0 < f.shape[0] - kept_f.shape[0] < f.shape[0] // 4
    assert bool((v[kept_f].mean(1)[:, 2] / v[kept_f].mean(1).norm(dim=-1) <= math.cos(math.radians(30))).all())
    with pytest.raises(ValueRangeError, match="'direction'"):
        open_mesh(v, f, torch.zeros(3), 0.5)  # would drop every triangle
    with pytest.raises(ShapeError, match="'direction'"):
        open_mesh(v, f, torch.ones(2), 0.5)
    with pytest.raises(ShapeError, match="'vertices'"):
        open_mesh(v[None], f, up, 0.5)
    with pytest.raises(ShapeError, match="'faces'"):
        open_mesh(v, f[:, :2], up, 0.5)
