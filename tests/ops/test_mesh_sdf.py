"""Tests of hoimask.ops.mesh_sdf: accuracy, signs, gradients, op registration, errors."""

from __future__ import annotations

import math

import pytest
import torch
from _cpu_search import CPU_SEARCHES, cpu_search
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import DeviceError, DTypeError, ShapeError, ValueRangeError
from hoimask.ops import closest_point_on_triangle, mesh_sdf, mesh_sdf_reference
from hoimask.ops.mesh_sdf.reference import triangle_search
from hoimask.sdf import box_mesh, box_sdf, icosphere, open_mesh, sphere_sdf, torus_mesh

CAMERA_OFFSET = torch.tensor([0.02, -0.03, 0.6], dtype=torch.float64)  # a hand-sized mesh in camera space


def brute_force_distance(points: torch.Tensor, vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Unsigned distance by Ericson's closest point against every triangle (independent of the search)."""
    tri = vertices[:, faces]  # (B, T, 3, 3)
    p = points[:, :, None, :]
    a, b, c = (tri[:, None, :, k, :] for k in range(3))
    w = closest_point_on_triangle(p, a, b, c)
    closest = w[..., 0:1] * a + w[..., 1:2] * b + w[..., 2:3] * c
    return (p - closest).norm(dim=-1).amin(dim=-1)


def hand_sized(mesh: tuple[torch.Tensor, torch.Tensor], scale: float = 0.05):
    v, f = mesh
    return v * scale + CAMERA_OFFSET, f


def random_points(n: int, center: torch.Tensor, half: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return center + (torch.rand(1, n, 3, generator=g, dtype=torch.float64) * 2 - 1) * half


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_box_mesh_matches_analytic_box(dtype, tol):
    v, f = box_mesh((0.04, 0.02, 0.03))
    p = random_points(2000, torch.zeros(3, dtype=torch.float64), 0.08)
    sdf = mesh_sdf(p.to(dtype), v[None].to(dtype), f)
    exact = box_sdf(p, torch.tensor([0.04, 0.02, 0.03], dtype=torch.float64))
    assert sdf.dtype == dtype
    assert (sdf.double() - exact).abs().max() < tol


@pytest.mark.parametrize("name", ["icosphere", "torus"])
def test_exact_distance_on_curved_meshes(name):
    mesh = icosphere(3) if name == "icosphere" else torus_mesh(1.0, 0.35, 32, 16)
    v, f = hand_sized(mesh)
    p = random_points(1500, CAMERA_OFFSET, 0.1, seed=1)
    exact = brute_force_distance(p, v[None], f)
    sdf64 = mesh_sdf(p, v[None], f)
    sdf32 = mesh_sdf(p.float(), v[None].float(), f)
    assert (sdf64.abs() - exact).abs().max() < 1e-5
    assert (sdf32.double().abs() - exact).abs().max() < 1e-4
    # Signs and magnitudes against the smooth shape, within the chordal error of the mesh.
    local = (p - CAMERA_OFFSET) / 0.05
    if name == "icosphere":
        smooth = sphere_sdf(local, torch.zeros(3, dtype=torch.float64), 1.0) * 0.05
        chord = 0.05 * (1 - math.cos(math.radians(6.0)))
    else:
        ring = local[..., :2].norm(dim=-1) - 1.0
        smooth = (torch.stack([ring, local[..., 2]], -1).norm(dim=-1) - 0.35) * 0.05
        chord = 0.05 * (1 - math.cos(math.pi / 16)) * 1.35 * 2
    assert (sdf64 - smooth).abs().max() < chord
    clear = smooth.abs() > chord
    assert torch.equal(torch.sign(sdf64[clear]), torch.sign(smooth[clear]))
    assert torch.equal(torch.sign(sdf32[clear]).double(), torch.sign(smooth[clear]))


def test_open_mesh_with_wrist_sized_hole_keeps_signs():
    # A 5 cm-radius sphere with a 30-degree cap removed: a 5 cm wide opening, like MANO's wrist.
    v, f = icosphere(3)
    v, f_open = open_mesh(v, f, torch.tensor([0.0, 0.0, 1.0]), math.cos(math.radians(30)))
    assert f_open.shape[0] < f.shape[0]
    v, _ = hand_sized((v, f_open))
    g = torch.Generator().manual_seed(3)
    dirs = torch.randn(1, 400, 3, generator=g, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    axis = torch.tensor([[[0.0, 0.0, 1.0]]], dtype=torch.float64)
    inside = torch.cat([dirs * 0.03, axis * torch.tensor([0.0, 0.02, 0.035]).view(1, 3, 1).double()], 1)
    outside = torch.cat([dirs * 0.07, axis * torch.tensor([0.065, 0.08]).view(1, 2, 1).double()], 1)
    s_in = mesh_sdf(inside + CAMERA_OFFSET, v[None], f_open)
    s_out = mesh_sdf(outside + CAMERA_OFFSET, v[None], f_open)
    assert bool((s_in < 0).all()) and bool((s_out > 0).all())


def test_flipping_every_triangle_flips_the_sign():
    v, f = hand_sized(icosphere(2))
    p = random_points(300, CAMERA_OFFSET, 0.08)
    assert torch.allclose(mesh_sdf(p, v[None], f), -mesh_sdf(p, v[None], f.flip(1)))


def test_return_index_and_closest_point():
    v, f = hand_sized(torus_mesh(1.0, 0.3, 24, 12))
    p = random_points(500, CAMERA_OFFSET, 0.08, seed=5)
    sdf, index, closest = mesh_sdf(p, v[None], f, return_index=True)
    assert index.dtype == torch.int64 and index.shape == (1, 500) and closest.shape == (1, 500, 3)
    assert torch.allclose((p - closest).norm(dim=-1), sdf.abs(), atol=1e-12)
    # The closest point lies on the reported triangle.
    own = brute_force_distance(closest.view(500, 1, 3), v[None].expand(500, -1, -1), f[index[0]].view(500, 1, 3)[:, 0])
    assert own.max() < 1e-12
    ref = mesh_sdf_reference(p, v[None], f, return_index=True)
    assert torch.allclose(ref[0], sdf) and torch.allclose(ref[2], closest)


def test_batch_matches_per_sample_and_chunking_is_invisible():
    v, f = icosphere(2)
    verts = torch.stack([v * 0.05, v * 0.03 + 0.01])
    p = random_points(400, torch.zeros(3, dtype=torch.float64), 0.07).expand(2, -1, -1).contiguous()
    p[1] += 0.005
    batched = mesh_sdf(p, verts, f)
    for b in range(2):
        assert torch.equal(batched[b], mesh_sdf(p[b : b + 1], verts[b : b + 1], f)[0])
    assert torch.allclose(mesh_sdf_reference(p, verts, f, chunk_elements=37), batched, atol=1e-15)


def test_int32_faces_and_empty_queries():
    v, f = icosphere(1)
    p = random_points(10, torch.zeros(3, dtype=torch.float64), 2.0)
    assert torch.equal(mesh_sdf(p, v[None], f.int()), mesh_sdf(p, v[None], f))
    assert mesh_sdf(p[:, :0], v[None], f).shape == (1, 0)
    assert mesh_sdf(p[:0], v[None][:0], f).shape == (0, 10)
    assert mesh_sdf_reference(p[:, :0], v[None], f).shape == (1, 0)


def test_gradcheck_float64_points_and_vertices():
    v, f = icosphere(1)
    g = torch.Generator().manual_seed(7)
    p = (torch.rand(2, 6, 3, generator=g, dtype=torch.float64) * 2.4 - 1.2).requires_grad_()
    verts = (v[None] * torch.tensor([1.0, 0.8]).view(2, 1, 1).double()).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: mesh_sdf(a, b, f), (p, verts))


def test_op_gradients_match_reference_autograd():
    v, f = hand_sized(torus_mesh(1.0, 0.3, 16, 8))
    p = random_points(200, CAMERA_OFFSET, 0.08, seed=2)
    w = torch.randn(1, 200, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    grads = []
    for fn in (mesh_sdf, mesh_sdf_reference):
        pp = p.clone().requires_grad_()
        vv = v[None].clone().requires_grad_()
        (fn(pp, vv, f) * w).sum().backward()
        grads.append((pp.grad, vv.grad))
    assert torch.allclose(grads[0][0], grads[1][0], atol=1e-10)
    assert torch.allclose(grads[0][1], grads[1][1], atol=1e-10)
    # Eikonal: away from the surface the gradient w.r.t. the point has unit norm.
    assert torch.allclose(grads[0][0].norm(dim=-1) / w.abs(), torch.ones(1, 200, dtype=torch.float64), atol=1e-9)


def test_closest_point_gradient_flows_to_vertices_only():
    v, f = icosphere(1)
    p = random_points(8, torch.zeros(3, dtype=torch.float64), 1.5).requires_grad_()
    vv = v[None].clone().requires_grad_()
    _, _, closest = mesh_sdf(p, vv, f, return_index=True)
    closest.sum().backward()
    assert p.grad is None
    # Moving every vertex by delta moves each closest point by delta (barycentric weights sum to one).
    assert torch.isclose(vv.grad.sum(), torch.tensor(3.0 * 8, dtype=torch.float64))


@pytest.mark.parametrize("requires_grad", [False, True])
def test_opcheck(requires_grad):
    v, f = icosphere(1)
    p = random_points(5, torch.zeros(3, dtype=torch.float64), 1.5).requires_grad_(requires_grad)
    torch.library.opcheck(torch.ops.hoimask.mesh_sdf.default, (p, v[None].clone().requires_grad_(requires_grad), f))


@st.composite
def triangle_soups(draw):
    B = draw(st.integers(1, 2))
    Q = draw(st.integers(0, 12))
    T = draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**31 - 1))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    g = torch.Generator().manual_seed(seed)
    verts = torch.randn(B, 3 * T, 3, generator=g, dtype=dtype)
    faces = torch.randperm(3 * T, generator=g).view(T, 3)
    points = torch.randn(B, Q, 3, generator=g, dtype=dtype) * 1.5
    return points, verts, faces


@pytest.mark.parametrize("search", CPU_SEARCHES)
@given(data=triangle_soups())
def test_search_matches_brute_force_on_triangle_soups(search, data):
    points, verts, faces = data
    with cpu_search(search):
        sdf = mesh_sdf(points, verts, faces)
    ref = mesh_sdf_reference(points, verts, faces)
    exact = brute_force_distance(points.double(), verts.double(), faces)
    tol = 1e-9 if points.dtype == torch.float64 else 2e-5
    assert sdf.shape == points.shape[:2] and sdf.dtype == points.dtype
    if search == "torch":
        assert torch.equal(sdf, ref)  # the same arithmetic
    else:  # float64 inside, rounded once: at least as close to the exact distance
        assert bool(((sdf.double().abs() - exact).abs() <= (ref.double().abs() - exact).abs() + 1e-12).all())
    assert bool(((sdf.double().abs() - exact).abs() < tol).all())


def test_bad_inputs_raise_typed_errors():
    v, f = icosphere(1)
    p = torch.zeros(1, 4, 3, dtype=torch.float64)
    with pytest.raises(ValueRangeError, match="faces"):
        mesh_sdf(p, v[None], f.clone().fill_(v.shape[0]))
    with pytest.raises(ValueRangeError, match="faces"):
        mesh_sdf(p, v[None], f - 1)
    with pytest.raises(DTypeError, match="faces"):
        mesh_sdf(p, v[None], f.double())
    with pytest.raises(ShapeError, match="non-empty"):
        mesh_sdf(p, v[None], f[:0])
    with pytest.raises(ShapeError, match="vertices"):
        mesh_sdf(p, v[None].expand(2, -1, -1), f)
    with pytest.raises(ShapeError, match="points"):
        mesh_sdf(p[0], v[None], f)
    with pytest.raises(DTypeError, match="vertices"):
        mesh_sdf(p, v[None].float(), f)
    with pytest.raises(DTypeError, match="points"):
        mesh_sdf(p.long(), v[None].long(), f)
    bad = p.clone()
    bad[0, 1, 2] = float("nan")
    with pytest.raises(ValueRangeError, match="points"):
        mesh_sdf(bad, v[None], f)
    with pytest.raises(ValueRangeError, match="points"):
        mesh_sdf_reference(bad, v[None], f)
    if torch.cuda.is_available():
        with pytest.raises(DeviceError):
            mesh_sdf(p.cuda(), v[None], f)


def test_reference_search_is_memory_bounded_by_chunks():
    v, f = icosphere(2)
    p = random_points(300, torch.zeros(3, dtype=torch.float64), 1.5)
    i1, w1 = triangle_search(p, v[None], f, chunk_elements=1)
    i2, w2 = triangle_search(p, v[None], f)
    assert torch.equal(i1, i2) and torch.allclose(w1, w2, atol=1e-12)
    inside = p.norm(dim=-1) < 0.9
    assert torch.allclose(w2[inside], torch.ones_like(w2[inside]), atol=1e-9)


@st.composite
def larger_soups(draw):
    T = draw(st.integers(64, 160))
    seed = draw(st.integers(0, 2**31 - 1))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(T, 1, 3, generator=g, dtype=torch.float64) * 0.05
    verts = (centers + torch.randn(T, 3, 3, generator=g, dtype=torch.float64) * 0.01).reshape(1, -1, 3)
    verts[0, :3] = verts[0, 3:6]  # a duplicated triangle
    verts[0, 6:9] = verts[0, 9]  # a triangle collapsed to a point
    faces = torch.arange(3 * T).view(T, 3)
    points = (torch.randn(1, 40, 3, generator=g, dtype=torch.float64) * 0.08 + CAMERA_OFFSET).to(dtype)
    return points, (verts + CAMERA_OFFSET).to(dtype), faces


@given(larger_soups())
def test_clustered_search_is_exact(data):
    from hoimask.ops.mesh_sdf.clustered import clustered_search

    points, verts, faces = data
    index = clustered_search(points, verts, faces, cluster_size=8, chunk_points=16)
    brute, _ = triangle_search(points, verts, faces, with_winding=False)
    exact = brute_force_distance(points.double(), verts.double(), faces)
    own = brute_force_distance(
        points.double().view(-1, 1, 3), verts.double()[0][faces[index[0]]], torch.arange(3).view(1, 3)
    )[:, 0]
    tol = 1e-12 if points.dtype == torch.float64 else 2e-6
    assert bool(((own - exact[0]).abs() < tol).all())
    # The brute-force winner is at the same distance.
    same_dist = brute_force_distance(
        points.double().view(-1, 1, 3), verts.double()[0][faces[brute[0]]], torch.arange(3).view(1, 3)
    )[:, 0]
    assert bool(((same_dist - own).abs() < tol).all())


@given(larger_soups(), st.sampled_from([2, 4]))
def test_grouped_clustered_search_is_exact(data, group_size):
    from hoimask.ops.mesh_sdf.clustered import clustered_search

    points, verts, faces = data
    grouped = clustered_search(points, verts, faces, cluster_size=8, chunk_points=16, group_size=group_size)
    flat = clustered_search(points, verts, faces, cluster_size=8, chunk_points=16, group_size=1)
    assert torch.equal(grouped, flat)  # same candidates, same lowest-index tie rule


def test_large_meshes_group_clusters_with_the_same_result():
    from hoimask.ops.mesh_sdf.clustered import GROUP_MIN_CLUSTERS, clustered_search

    v, f = hand_sized(icosphere(4), scale=0.08)  # 5120 triangles: 256 clusters, grouped by default
    assert f.shape[0] // 20 >= GROUP_MIN_CLUSTERS
    g = torch.Generator().manual_seed(0)
    near = v[torch.randint(v.shape[0], (300,), generator=g)] + 0.01 * torch.randn(300, 3, generator=g, dtype=v.dtype)
    points = torch.cat([near, random_points(300, CAMERA_OFFSET, 0.3)[0]])[None]
    for dtype in (torch.float32, torch.float64):
        p, vv = points.to(dtype), v.to(dtype)[None]
        grouped = clustered_search(p, vv, f)
        assert torch.equal(grouped, clustered_search(p, vv, f, group_size=1))
        own = brute_force_distance(p.double().view(-1, 1, 3), v[f[grouped[0]]], torch.arange(3).view(1, 3))[:, 0]
        exact = brute_force_distance(p.double(), v[None], f)[0]
        assert (own - exact).abs().max() < (1e-12 if dtype == torch.float64 else 2e-6)


def test_cluster_triangles_is_a_padded_permutation():
    from hoimask.ops.mesh_sdf.clustered import cluster_triangles

    cent = torch.randn(1000, 3, generator=torch.Generator().manual_seed(0))
    slots, G = cluster_triangles(cent, 16)
    assert 16 <= G <= 32 and slots.numel() % G == 0 and (slots.numel() // G) & (slots.numel() // G - 1) == 0
    assert torch.equal(slots[slots < 1000].sort().values, torch.arange(1000))


def test_unwelded_mesh_gives_the_same_sdf():
    # Every vertex duplicated per triangle: all edges look open, signs come from the winding number.
    v, f = hand_sized(icosphere(2))
    soup_v = v[f].reshape(1, -1, 3)
    soup_f = torch.arange(soup_v.shape[1]).view(-1, 3)
    p = random_points(400, CAMERA_OFFSET, 0.08, seed=9)
    assert torch.allclose(mesh_sdf(p, soup_v, soup_f), mesh_sdf(p, v[None], f), atol=1e-12)


def test_winding_sign_for_overlapping_components():
    """Two overlapping closed boxes: pseudo-normals of hidden inner faces can flip the sign,
    the winding-number sign cannot."""
    import pytest as _pytest

    from hoimask._checks import ValueRangeError
    from hoimask.ops import mesh_sdf, winding_number
    from hoimask.sdf.meshes import box_mesh

    v, f = box_mesh((0.5, 0.5, 0.5))
    v2 = torch.cat([v, v + torch.tensor([0.6, 0.0, 0.0], dtype=v.dtype)])[None]
    f2 = torch.cat([f, f + v.shape[0]])
    # inside both boxes (nearest: the second box's hidden face at x = 0.1), inside the second
    # box only (nearest: the first box's hidden face at x = 0.5), outside both
    p = torch.tensor([[[0.2, 0.0, 0.0], [0.55, 0.0, 0.0], [2.0, 0.0, 0.0]]], dtype=v.dtype)
    w = winding_number(p, v2, f2)
    torch.testing.assert_close(w, torch.tensor([[2.0, 1.0, 0.0]], dtype=v.dtype), atol=1e-9, rtol=0)
    signed = mesh_sdf(p, v2, f2, sign="winding")
    assert (signed[0, :2] < 0).all() and signed[0, 2] > 0
    assert (mesh_sdf(p, v2, f2)[0, :2] > 0).any()  # the pseudo-normal rule is fooled here
    torch.testing.assert_close(signed.abs(), mesh_sdf(p, v2, f2).abs())
    with _pytest.raises(ValueRangeError, match="'sign'"):
        mesh_sdf(p, v2, f2, sign="normals")


def test_brute_force_winding_batches_uneven_masks():
    """Winding numbers of masked points, batched over meshes with different masked counts."""
    from hoimask.ops.mesh_sdf.reference import brute_force_winding

    v, f = hand_sized(icosphere(1))
    verts = torch.stack([v, (v - CAMERA_OFFSET) * 1.5 + CAMERA_OFFSET, v + 0.01])  # (3, V, 3)
    points = torch.cat([random_points(30, CAMERA_OFFSET, 0.08, seed=s) for s in range(3)])  # (3, 30, 3)
    g = torch.Generator().manual_seed(4)
    mask = torch.rand(3, 30, generator=g) < torch.tensor([[0.2], [0.7], [0.0]])
    assert mask.sum(1).tolist()[2] == 0 and mask.sum(1)[0] != mask.sum(1)[1]
    got = brute_force_winding(points, verts, f)(mask)
    full = torch.stack([triangle_search(points[b : b + 1], verts[b : b + 1], f)[1][0] for b in range(3)])
    torch.testing.assert_close(got, torch.where(mask, full, torch.zeros_like(full)), atol=1e-12, rtol=0)
    assert torch.equal(brute_force_winding(points, verts, f)(torch.zeros_like(mask)), torch.zeros(3, 30).double())


@pytest.mark.parametrize("search", CPU_SEARCHES)
def test_degenerate_triangles_measure_the_distance_to_their_edges(search):
    """A segment (repeated corner), a point, and a sliver whose area is lost to rounding:
    the distance is to the nearest edge (Ericson's regions are noise there)."""
    v = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0]], dtype=torch.float64)
    sliver = torch.tensor([[0.3, 0.45, -1.2], [-3.2, 0.19, -1.93], [0.0, 0.0, 0.0]], dtype=torch.float64)
    sliver[2] = 0.3 * sliver[0] + 0.7 * sliver[1]
    p = torch.tensor([[[1.0, 1.0, 0.0]]], dtype=torch.float64)
    with cpu_search(search):
        for f in ([[0, 0, 2]], [[2, 0, 0]], [[0, 2, 2]], [[1, 1, 1]]):
            assert mesh_sdf(p, v[None], torch.tensor(f)).abs().item() == pytest.approx(1.0, abs=1e-12)
            assert mesh_sdf_reference(p, v[None], torch.tensor(f)).abs().item() == pytest.approx(1.0, abs=1e-12)
        q = torch.tensor([[[-2.16, -1.11, -0.31], [0.5, 2.0, 1.0]]], dtype=torch.float64)
        exact = brute_force_distance(q, sliver[None], torch.tensor([[0, 1, 2]]))
        f = torch.tensor([[0, 1, 2]])
        torch.testing.assert_close(mesh_sdf(q, sliver[None], f).abs(), exact, atol=1e-12, rtol=0)
        torch.testing.assert_close(mesh_sdf_reference(q, sliver[None], f).abs(), exact, atol=1e-12, rtol=0)
