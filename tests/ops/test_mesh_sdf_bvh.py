"""Tests of the CPU BVH of hoimask::mesh_sdf: exact search, fast winding numbers, MeshBVH, fallbacks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _cpu_search import cpu_search
from hypothesis import given, settings
from hypothesis import strategies as st

from hoimask._checks import DeviceError, DTypeError, ShapeError, ValueRangeError
from hoimask.ops import mesh_sdf, mesh_sdf_reference
from hoimask.ops.mesh_sdf import bvh
from hoimask.ops.mesh_sdf.reference import triangle_search
from hoimask.sdf import box_mesh, icosphere, open_mesh, torus_mesh

pytestmark = pytest.mark.skipif(not bvh.numba_available(), reason="needs numba (the 'fast' extra)")

OFFSET = torch.tensor([0.02, -0.03, 0.6], dtype=torch.float64)


def exact_winding(points: torch.Tensor, vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Brute-force generalised winding number (every triangle), ``(Q, 3) -> (Q,)``."""
    return triangle_search(points[None], vertices[None], faces, with_winding=True)[1][0]


def overlapping_boxes() -> tuple[torch.Tensor, torch.Tensor]:
    v, f = box_mesh((0.03, 0.02, 0.02))
    v2 = torch.cat([v, v @ torch.linalg.matrix_exp(torch.tensor([[0, -0.4, 0], [0.4, 0, 0], [0, 0, 0.0]]).double())
                    + torch.tensor([0.025, 0.01, 0.0], dtype=v.dtype)])  # fmt: skip
    return v2 + OFFSET, torch.cat([f, f + v.shape[0]])


def test_meshes() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    sphere_v, sphere_f = icosphere(3, 0.05)
    open_v, open_f = open_mesh(sphere_v, sphere_f, torch.tensor([0.0, 0.0, 1.0]), math.cos(math.radians(30)))
    torus_v, torus_f = torus_mesh(0.04, 0.015, 48, 16)
    return {
        "closed sphere": (sphere_v + OFFSET, sphere_f),
        "closed torus": (torus_v + OFFSET, torus_f),
        "open sphere (wrist-sized hole)": (open_v + OFFSET, open_f),
        "overlapping boxes": overlapping_boxes(),
    }


test_meshes.__test__ = False  # a helper, not a test


def query_points(v: torch.Tensor, f: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """Half near the surface, half uniform in the padded bounding box."""
    g = torch.Generator().manual_seed(seed)
    corners = v[f[torch.randint(0, f.shape[0], (n // 2,), generator=g)]]
    w = torch.rand(n // 2, 3, generator=g, dtype=v.dtype)
    w = w / w.sum(-1, keepdim=True)
    near = (w[..., None] * corners).sum(1) + 0.003 * torch.randn(n // 2, 3, generator=g, dtype=v.dtype)
    lo, hi = v.amin(0) - 0.02, v.amax(0) + 0.02
    uniform = lo + (hi - lo) * torch.rand(n - n // 2, 3, generator=g, dtype=v.dtype)
    return torch.cat([near, uniform])


@pytest.mark.parametrize("name", list(test_meshes()))
def test_bvh_equals_the_reference(name):
    v, f = test_meshes()[name]
    p = query_points(v, f, 600)
    sign = "winding" if name == "overlapping boxes" else "auto"
    b = bvh.MeshBVH(v, f)
    sdf, index, closest = b.sdf(p, sign=sign, return_index=True)
    with cpu_search("torch"):
        ref, ref_index, ref_closest = mesh_sdf(p[None], v[None], f, sign=sign, return_index=True)
    torch.testing.assert_close(sdf, ref[0], atol=1e-12, rtol=0)
    torch.testing.assert_close(closest, ref_closest[0], atol=1e-12, rtol=0)
    # The same triangle up to exact ties (then the same distance).
    tie = index != ref_index[0]
    assert bool((sdf.abs()[tie] - ref[0].abs()[tie]).abs().le(1e-15).all())
    with cpu_search("bvh"):
        op = mesh_sdf(p[None], v[None], f, sign=sign)[0]
    assert torch.equal(op, sdf)


@pytest.mark.parametrize("name", list(test_meshes()))
def test_fast_winding_signs_agree_with_brute_force(name):
    v, f = test_meshes()[name]
    p = query_points(v, f, 2000, seed=1)
    exact = exact_winding(p, v, f)
    fast = bvh.MeshBVH(v, f).winding_number(p)
    assert torch.equal(fast.abs() > 0.5, exact.abs() > 0.5)
    assert float((fast - exact).abs().max()) < 0.04  # second-order far field, beta = 1.5
    # Without the exact band, the far field alone is still within 0.04 here (the band is 0.1) ...
    raw = bvh.MeshBVH(v, f, band=0.0).winding_number(p)
    assert float((raw - exact).abs().max()) < 0.04
    # ... and within 0.01 with beta = 2.
    assert float((bvh.MeshBVH(v, f, beta=2.0, band=0.0).winding_number(p) - exact).abs().max()) < 0.01


def test_edges_balanced_tells_closed_meshes_from_open_ones():
    meshes = test_meshes()
    for name in ("closed sphere", "closed torus", "overlapping boxes"):
        assert bvh.edges_balanced(meshes[name][1]), name
    assert not bvh.edges_balanced(meshes["open sphere (wrist-sized hole)"][1])
    f = meshes["closed sphere"][1].clone()
    f[0] = f[0].flip(0)  # one triangle turned over: its edges no longer cancel their neighbours'
    assert not bvh.edges_balanced(f)


@pytest.mark.parametrize("name", list(test_meshes()))
def test_winding_signs_reused_inside_empty_balls_are_the_brute_force_signs(name):
    """On closed meshes a point inside the previous point's empty ball takes its winding sign: the signs still equal
    the brute force, on dense points (most of them in a neighbour's ball), and equal a run that evaluates every
    point's winding number."""
    v, f = test_meshes()[name]
    g = torch.Generator().manual_seed(3)
    lo, hi = v.amin(0) - 0.01, v.amax(0) + 0.01
    p = torch.cat([query_points(v, f, 2000, seed=4), lo + (hi - lo) * torch.rand(2000, 3, generator=g, dtype=v.dtype)])
    tree = bvh.MeshBVH(v, f)
    sdf = tree.sdf(p, sign="winding")
    exact = exact_winding(p, v, f)
    assert torch.equal(sdf < 0, exact.abs() > 0.5)
    assert tree._tree.closed == (name != "open sphere (wrist-sized hole)")
    tree._tree.closed = False  # every point's own winding number
    assert torch.equal(tree.sdf(p, sign="winding"), sdf)


def two_components() -> tuple[torch.Tensor, torch.Tensor]:
    """A closed sphere and, 6 cm beside it, an open one (a wrist-sized hole): two connected components."""
    v, f = test_meshes()["closed sphere"]
    ov, of = test_meshes()["open sphere (wrist-sized hole)"]
    return torch.cat([v, ov + torch.tensor([0.06, 0.0, 0.0], dtype=v.dtype)]), torch.cat([f, of + v.shape[0]])


def test_components_label_triangles_and_the_tree_keeps_them_whole():
    v, f = two_components()
    tree = bvh.MeshBVH(v, f)._tree
    n_closed = test_meshes()["closed sphere"][1].shape[0]
    assert tree.group.tolist() == [0] * n_closed + [1] * (f.shape[0] - n_closed)
    first = tree.left[0]  # the root splits between the two components
    assert {int(tree.stop[first] - tree.start[first]), int(tree.stop[first + 1] - tree.start[first + 1])} == {
        n_closed, f.shape[0] - n_closed}
    tree._sign_data()
    closed = tree._signs[1][-1]  # per node: whole closed components only
    sphere_node = first if tree.stop[first] - tree.start[first] == n_closed else first + 1
    assert closed[sphere_node] and not closed[0] and not closed[2 * first + 1 - sphere_node]
    assert not tree.closed  # the open sphere: no empty-ball reuse of signs


def test_closed_components_are_skipped_outside_their_box_without_changing_the_winding_number():
    v, f = two_components()
    p = query_points(v, f, 3000, seed=5)
    exact = exact_winding(p, v, f)
    fast = bvh.MeshBVH(v, f).winding_number(p)
    assert torch.equal(fast.abs() > 0.5, exact.abs() > 0.5)
    assert float((fast - exact).abs().max()) < 0.04
    sdf = bvh.MeshBVH(v, f).sdf(p, sign="winding")
    assert torch.equal(sdf < 0, exact.abs() > 0.5)


def test_a_tree_too_deep_for_the_stack_is_rebuilt_without_components(monkeypatch):
    from hoimask.ops.mesh_sdf import _bvh_kernels

    v, f = two_components()
    p = query_points(v, f, 500, seed=6)
    expected = bvh.MeshBVH(v, f).sdf(p, sign="winding")
    monkeypatch.setattr(_bvh_kernels, "MAX_DEPTH", 1)
    tree = bvh.MeshBVH(v, f)
    assert int(tree._tree.group.max()) == 0  # one group: the plain median split
    torch.testing.assert_close(tree.sdf(p, sign="winding"), expected, atol=1e-12, rtol=0)


def check_tree(tree, T: int, leaf_size: int) -> None:
    """Children split their parent's slots in two non-empty halves; boxes hold their triangles; leaves are small."""
    left, start, stop, box = tree.left, tree.start, tree.stop, tree.box
    assert sorted(tree.perm.tolist()) == list(range(T))
    assert (start[0], stop[0]) == (0, T)
    for node in range(left.shape[0]):
        lo, hi = tree.tri[start[node]:stop[node]].reshape(-1, 3).min(0), tree.tri[start[node]:stop[node]].reshape(-1, 3).max(0)
        assert np.array_equal(box[node, :3], lo) and np.array_equal(box[node, 3:], hi)
        c = left[node]
        if c < 0:
            assert 1 <= stop[node] - start[node] <= leaf_size
            continue
        assert (start[c], stop[c], start[c + 1], stop[c + 1]) == (start[node], start[c + 1], stop[c], stop[node])
        assert start[c] < stop[c] and start[c + 1] < stop[c + 1]


@pytest.mark.parametrize("name", list(test_meshes()))
def test_surface_area_tree_is_valid_and_answers_as_the_median_tree(name, monkeypatch):
    v, f = test_meshes()[name]
    p = query_points(v, f, 1500, seed=7)
    sah = bvh.MeshBVH(v, f)
    check_tree(sah._tree, f.shape[0], bvh.DEFAULT_LEAF_SIZE)
    from hoimask.ops.mesh_sdf import _bvh_build, _bvh_kernels

    assert _bvh_build.tree_depth(sah._tree.left) <= _bvh_kernels.MAX_DEPTH
    if name == "overlapping boxes":  # two components, each kept whole (no fallback to one group)
        assert int(sah._tree.group.max()) == 1
    monkeypatch.setattr(bvh, "SAH_BINS", 0)
    median = bvh.MeshBVH(v, f)
    check_tree(median._tree, f.shape[0], bvh.DEFAULT_LEAF_SIZE)
    assert median.num_nodes != sah.num_nodes or not np.array_equal(median._tree.perm, sah._tree.perm)
    for sign in ("auto", "winding"):  # an exact search: the same triangles, distances and signs from either tree
        a, ia, ca = sah.sdf(p, sign=sign, return_index=True)
        b, ib, cb = median.sdf(p, sign=sign, return_index=True)
        assert torch.equal(ia, ib) and torch.equal(a, b) and torch.equal(ca, cb)
    assert torch.equal(sah.winding_number(p).abs() > 0.5, median.winding_number(p).abs() > 0.5)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 60), st.integers(1, 6), st.integers(0, 2**31 - 1), st.booleans())
def test_surface_area_tree_is_valid_on_soups_with_coincident_centroids(T, leaf_size, seed, coincide):
    g = torch.Generator().manual_seed(seed)
    tri = torch.randn(T, 3, 3, generator=g, dtype=torch.float64)
    if coincide:  # every centroid equal: no surface-area split exists, the median split takes over
        tri = tri - tri.mean(1, keepdim=True)
    from types import SimpleNamespace

    from hoimask.ops.mesh_sdf import _bvh_build

    one_group = np.zeros(T, np.int64)  # a soup's triangles are components of their own: split as one mesh here
    perm, box, left, start, stop = _bvh_build.build_tree(tri.numpy(), leaf_size, one_group, bvh.SAH_BINS)
    check_tree(SimpleNamespace(perm=perm, box=box, left=left, start=start, stop=stop, tri=tri.numpy()[perm]), T,
               leaf_size)  # fmt: skip


def test_surface_area_splits_stop_at_their_depth_cap_and_survive_extreme_coordinates():
    from types import SimpleNamespace

    from hoimask.ops.mesh_sdf import _bvh_build, _bvh_kernels

    # Centroids spaced geometrically along x: every surface-area split cuts off the farthest triangle.
    T = 300
    x = 1.6 ** torch.arange(T, dtype=torch.float64)
    tri = torch.zeros(T, 3, 3, dtype=torch.float64)
    tri[:, :, 0] = x[:, None] * torch.tensor([1.0, 1.001, 1.002], dtype=torch.float64)
    tri[:, 1, 1] = tri[:, 2, 2] = 1e-3 * x
    perm, box, left, start, stop = _bvh_build.build_tree(tri.numpy(), 1, np.zeros(T, np.int64), bvh.SAH_BINS)
    check_tree(SimpleNamespace(perm=perm, box=box, left=left, start=start, stop=stop, tri=tri.numpy()[perm]), T, 1)
    depth = _bvh_build.tree_depth(left)  # uncapped, 70 levels here
    assert depth <= _bvh_build.SAH_MAX_DEPTH + math.ceil(math.log2(T)) + 1 and depth <= _bvh_kernels.MAX_DEPTH
    # Centroids spread wider than float64 holds (a width of inf): no surface-area split, no bad bin index.
    huge = torch.tensor([[[-1e308, 0, 0], [-1e308, 1, 0], [-1e308, 0, 1]], [[1e308, 0, 0], [1e308, 1, 0], [1e308, 0, 1]],
                         [[0.0, 0, 0], [0, 1, 0], [0, 0, 1]]], dtype=torch.float64)  # fmt: skip
    perm, box, left, start, stop = _bvh_build.build_tree(huge.numpy(), 1, np.zeros(3, np.int64), bvh.SAH_BINS)
    check_tree(SimpleNamespace(perm=perm, box=box, left=left, start=start, stop=stop, tri=huge.numpy()[perm]), 3, 1)


def test_winding_number_far_field_is_exact_for_a_large_beta():
    v, f = test_meshes()["open sphere (wrist-sized hole)"]
    p = query_points(v, f, 300, seed=2)
    far = bvh.MeshBVH(v, f, beta=1e6, band=0.0).winding_number(p)  # every node opened: the brute force
    torch.testing.assert_close(far, exact_winding(p, v, f), atol=1e-12, rtol=0)


@st.composite
def soups(draw):
    """Random triangle soups with degenerate triangles (repeated corners, collinear corners)."""
    T = draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(3 * T, 3, generator=g, dtype=torch.float64)
    f = torch.randperm(3 * T, generator=g).view(T, 3)
    if draw(st.booleans()):
        f[0, 1] = f[0, 0]  # a segment
    if T > 1 and draw(st.booleans()):
        v[f[1, 2]] = 0.3 * v[f[1, 0]] + 0.7 * v[f[1, 1]]  # collinear corners
    p = torch.randn(draw(st.integers(1, 30)), 3, generator=g, dtype=torch.float64) * 1.5
    return p, v, f


@settings(max_examples=60, deadline=None)
@given(soups())
def test_search_is_exact_on_degenerate_soups(data):
    p, v, f = data
    sdf, index, closest = bvh.MeshBVH(v, f).sdf(p, return_index=True)
    ref = mesh_sdf_reference(p[None], v[None], f)[0]
    torch.testing.assert_close(sdf.abs(), ref.abs(), atol=1e-12, rtol=0)
    torch.testing.assert_close((p - closest).norm(dim=-1), sdf.abs(), atol=1e-12, rtol=0)


def test_rigid_motion_equals_posed_mesh():
    # One tree in the model frame serves every pose: move the points, not the mesh.
    v, f = icosphere(3, 0.05)
    angle = torch.tensor(0.7, dtype=torch.float64)
    c, s = torch.cos(angle), torch.sin(angle)
    R = torch.stack([torch.stack([c, -s, 0 * c]), torch.stack([s, c, 0 * c]), torch.tensor([0.0, 0.0, 1.0]).double()])
    v = v * torch.tensor([1.0, 0.6, 0.8], dtype=v.dtype)  # not rotation-invariant
    posed = v @ R.T + OFFSET
    p = query_points(posed, f, 500)
    b = bvh.MeshBVH(v, f)
    torch.testing.assert_close(b.sdf((p - OFFSET) @ R), mesh_sdf(p[None], posed[None], f)[0], atol=1e-12, rtol=0)


def test_the_tree_keeps_its_own_copy_of_the_mesh():
    v, f = icosphere(2, 0.05)
    v = v.clone()
    b = bvh.MeshBVH(v, f)
    p = query_points(v, f, 50)
    before = b.sdf(p)
    v.mul_(2.0)  # changing the caller's tensor does not reach the tree
    assert torch.equal(b.sdf(p), before)
    assert b.num_nodes > 1


def test_gradient_through_mesh_bvh_matches_the_op():
    v, f = torus_mesh(0.04, 0.015, 24, 12)
    # float32 points far from the origin: the value with a gradient is the value without one.
    p32 = (query_points(v, f, 300) + OFFSET).float()
    tree = bvh.MeshBVH((v + OFFSET).float(), f)
    assert torch.equal(tree.sdf(p32.clone().requires_grad_()).detach(), tree.sdf(p32))
    p = query_points(v, f, 200).requires_grad_()
    bvh.MeshBVH(v, f).sdf(p).sum().backward()
    q = p.detach().clone().requires_grad_()
    mesh_sdf(q[None], v[None], f).sum().backward()
    torch.testing.assert_close(p.grad, q.grad, atol=1e-12, rtol=0)


def test_float32_points_give_float32_results_rounded_once():
    v, f = icosphere(3, 0.05)
    p = query_points(v + OFFSET, f, 300).float()
    out = bvh.MeshBVH((v + OFFSET).float(), f).sdf(p)
    assert out.dtype == torch.float32
    exact = mesh_sdf_reference(p.double()[None], (v + OFFSET).float().double()[None], f)[0]
    assert float((out.double() - exact).abs().max()) <= 6e-8  # float32 ulp at 0.6 m is 6e-8


def test_threads_give_the_same_result_ties_included():
    # Points on vertices (exact ties between the incident triangles, distance 0) and near them:
    # the lowest-index rule must not depend on where a thread's range starts.
    v, f = icosphere(3, 0.05)
    on = v.repeat(8, 1)[: bvh.MIN_PARALLEL_POINTS]
    p = torch.cat([query_points(v, f, 1000), on, on + 1e-3 * torch.randn_like(on)])
    threads = torch.get_num_threads()
    b = bvh.MeshBVH(v, f)
    try:
        torch.set_num_threads(1)
        one = b.sdf(p, sign="winding", return_index=True)
        torch.set_num_threads(3)
        assert len(bvh._ranges(p.shape[0])) == 3
        many = b.sdf(p, sign="winding", return_index=True)
    finally:
        torch.set_num_threads(threads)
    for x, y in zip(one, many):
        assert torch.equal(x, y)
    # On a vertex, the lowest-index incident triangle wins.
    incident = [int((f == 5).any(-1).nonzero()[0])]
    assert int(b.sdf(v[5:6], return_index=True)[1]) == incident[0]


def test_threads_sharing_a_fresh_tree_build_its_sign_data_once():
    from concurrent.futures import ThreadPoolExecutor

    v, f = icosphere(5, 0.05)
    p = query_points(v, f, 3000)
    for _ in range(3):
        b = bvh.MeshBVH(v, f)  # sign data are built by the first signed query
        with ThreadPoolExecutor(2) as pool:
            a, c = pool.map(lambda sign, b=b: b.sdf(p, sign=sign), ["winding", "winding"])
        assert torch.equal(a, c)


def test_empty_queries():
    v, f = icosphere(1)
    b = bvh.MeshBVH(v, f)
    sdf, index, closest = b.sdf(torch.zeros(0, 3, dtype=v.dtype), return_index=True)
    assert sdf.shape == (0,) and index.shape == (0,) and closest.shape == (0, 3)
    assert b.winding_number(torch.zeros(0, 3)).shape == (0,)
    from hoimask.data.sdf_samples import nearest_vertex

    assert nearest_vertex(torch.zeros(0, 3), v.float()).shape == (0,)


def test_morton_order_is_a_permutation():
    from hoimask.ops.mesh_sdf import _bvh_kernels

    p = query_points(*icosphere(2), 333).numpy()
    order = _bvh_kernels.morton_order(p)
    assert sorted(order.tolist()) == list(range(333))
    same = _bvh_kernels.morton_order(p[:1].repeat(5, 0))  # a zero-size box
    assert sorted(same.tolist()) == list(range(5))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, (1 << 30) - 1), max_size=300), st.integers(0, 3))
def test_radix_argsort_is_a_stable_sort(codes, repeat):
    from hoimask.ops.mesh_sdf import _bvh_kernels

    keys = np.array(codes * (repeat + 1), dtype=np.int64)  # repeated keys: ties keep their input order
    np.testing.assert_array_equal(_bvh_kernels._radix_argsort(keys), np.argsort(keys, kind="stable"))


def test_bad_meshes_and_arguments_raise_typed_errors():
    v, f = icosphere(1)
    nan = v.clone()
    nan[3, 1] = float("nan")
    with pytest.raises(ValueRangeError, match="vertices"):
        bvh.MeshBVH(nan, f)
    with pytest.raises(ValueRangeError, match="faces"):
        bvh.MeshBVH(v, f.clone().fill_(v.shape[0]))
    with pytest.raises(ShapeError, match="non-empty"):
        bvh.MeshBVH(v, f[:0])
    with pytest.raises(ShapeError, match="vertices"):
        bvh.MeshBVH(v[None], f)
    with pytest.raises(DTypeError, match="faces"):
        bvh.MeshBVH(v, f.double())
    with pytest.raises(ValueRangeError, match="leaf_size"):
        bvh.MeshBVH(v, f, leaf_size=0)
    with pytest.raises(ValueRangeError, match="beta"):
        bvh.MeshBVH(v, f, beta=0.5)
    with pytest.raises(ValueRangeError, match="band"):
        bvh.MeshBVH(v, f, band=float("nan"))
    with pytest.raises(DTypeError, match="band"):
        bvh.MeshBVH(v, f, band="0.1")
    with pytest.raises(DTypeError, match="'vertices'"):
        bvh.MeshBVH(v.long(), f)
    with pytest.raises(ValueRangeError, match="leaf_size"):
        bvh.MeshBVH(v, f, leaf_size=2**63)
    with pytest.raises(ValueRangeError, match=r"vertices.*\(3, 1\)"):
        bvh.MeshBVH(nan, f)  # the index has no batch dimension
    assert bvh.MeshBVH(v, f, beta=np.float32(2.0)).beta == 2.0
    b = bvh.MeshBVH(v, f)
    with pytest.raises(ShapeError, match="points"):
        b.sdf(torch.zeros(1, 4, 3))
    with pytest.raises(DTypeError, match="points"):
        b.sdf(torch.zeros(4, 3, dtype=torch.int64))
    with pytest.raises(ValueRangeError, match="points"):
        b.sdf(torch.full((2, 3), float("inf")))
    with pytest.raises(ValueRangeError, match="'sign'"):
        b.sdf(torch.zeros(2, 3), sign="normals")
    with pytest.raises(DTypeError, match="return_index"):
        b.sdf(torch.zeros(2, 3), return_index=1)
    if torch.cuda.is_available():
        with pytest.raises(DeviceError):
            b.sdf(torch.zeros(2, 3, device="cuda"))


def test_without_numba_the_op_falls_back_and_mesh_bvh_says_how_to_install(monkeypatch):
    monkeypatch.setattr(bvh, "numba_available", lambda: False)
    assert not bvh.bvh_enabled(torch.device("cpu"))
    v, f = icosphere(2, 0.05)
    p = query_points(v, f, 100)
    torch.testing.assert_close(mesh_sdf(p[None], v[None], f), mesh_sdf_reference(p[None], v[None], f))
    with pytest.raises(ImportError, match="hoimask\\[fast\\]"):
        bvh.MeshBVH(v, f)


def test_disable_variable_selects_the_torch_path():
    with cpu_search("torch"):
        assert not bvh.bvh_enabled(torch.device("cpu"))
    with cpu_search("bvh"):
        assert bvh.bvh_enabled(torch.device("cpu"))
    assert not bvh.bvh_enabled(torch.device("meta"))
