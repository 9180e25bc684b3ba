"""Joint and bone rasterisation onto the patch grid."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.skeleton import (
    BONES,
    patch_centers,
    rasterize_bones,
    rasterize_joints,
    rasterize_segments,
)


def _reference_cover(a, b, grid, patch, thickness, samples=4000):
    """Dense sampling reference: patches whose grown square contains a point of the segment."""
    gh, gw = grid
    ph, pw = patch
    t = torch.linspace(0, 1, samples, dtype=torch.float64).unsqueeze(-1)
    pts = a + t * (b - a)  # (S, 2)
    half = thickness / 2
    cover = torch.zeros(gh * gw, dtype=torch.bool)
    for r in range(gh):
        for c in range(gw):
            x0, x1 = c * pw - 0.5 - half, c * pw + pw - 0.5 + half
            y0, y1 = r * ph - 0.5 - half, r * ph + ph - 0.5 + half
            inside = (pts[:, 0] >= x0) & (pts[:, 0] <= x1) & (pts[:, 1] >= y0) & (pts[:, 1] <= y1)
            cover[r * gw + c] = bool(inside.any())
    return cover


coords = st.floats(-20, 80, allow_nan=False, width=32)


@given(coords, coords, coords, coords, st.sampled_from([0.0, 3.0, 8.0]))
def test_segment_matches_dense_sampling(x0, y0, x1, y1, thickness):
    a = torch.tensor([x0, y0], dtype=torch.float64)
    b = torch.tensor([x1, y1], dtype=torch.float64)
    got = rasterize_segments(a.view(1, 1, 2), b.view(1, 1, 2), (4, 5), (16, 12), thickness=thickness)[0, 0]
    ref = _reference_cover(a, b, (4, 5), (16, 12), thickness)
    # Dense sampling can only miss touches (it under-covers), and only at grazing contact.
    assert bool((ref & ~got).sum() == 0)
    missed = got & ~ref
    if missed.any():  # a missed patch must be touched within the sampling step
        ref_loose = _reference_cover(a, b, (4, 5), (16, 12), thickness + 0.2)
        assert bool((missed & ~ref_loose).sum() == 0)


def test_joint_covers_its_patch_and_rules_for_outside_and_invisible():
    joints = torch.tensor([[[20.0, 3.0], [-3.0, 5.0], [10.0, 40.0], [31.2, 31.2]]])
    cover = rasterize_joints(joints, (2, 2), 16)
    assert cover[0, 0].nonzero().flatten().tolist() == [1]
    assert not cover[0, 1].any()  # outside the image (left): covers nothing, no wrap-around
    assert not cover[0, 2].any()  # below the image
    assert cover[0, 3].nonzero().flatten().tolist() == [3]
    grown = rasterize_joints(joints, (2, 2), 16, radius=20.0)
    assert grown[0, 0].all() and not grown[0, 1].any()
    vis = torch.tensor([[False, True, True, True]])
    assert not rasterize_joints(joints, (2, 2), 16, visibility=vis)[0, 0].any()


def test_bones_clip_at_border_and_respect_visibility():
    joints = torch.zeros(1, 21, 2)
    joints[0, :, 0] = torch.linspace(4, 60, 21)
    joints[0, :, 1] = 8.0
    joints[0, 20] = torch.tensor([1000.0, 8.0])  # little tip far right, outside the image
    cover = rasterize_bones(joints, (4, 4), 16, thickness=0.0)
    assert cover.shape == (1, 20, 16)
    last = cover[0, 19].nonzero().flatten().tolist()  # little DIP -> far tip along row 0
    assert last == [3]  # clipped to the image: only the last column of row 0, nothing wraps to row 1
    vis = torch.ones(1, 21, dtype=torch.bool)
    vis[0, 0] = False
    hidden = rasterize_bones(joints, (4, 4), 16, visibility=vis)
    wrist_bones = [k for k, (p, _) in enumerate(BONES) if p == 0]
    assert not hidden[0, wrist_bones].any() and hidden[0, 19].any()


def test_patch_centers_and_dtype_follow():
    c = patch_centers((2, 3), (4, 8), dtype=torch.float64)
    assert c.dtype == torch.float64 and c.shape == (6, 2)
    assert c[4].tolist() == [11.5, 5.5]
    joints = torch.rand(2, 21, 2, dtype=torch.float64) * 64
    assert rasterize_bones(joints, (4, 4), 16).dtype == torch.bool


def test_raster_bad_inputs():
    j = torch.rand(2, 21, 2) * 64
    with pytest.raises(ShapeError, match="joints_2d"):
        rasterize_bones(torch.rand(2, 20, 2), (4, 4), 16)
    with pytest.raises(DTypeError, match="joints_2d"):
        rasterize_joints(torch.ones(2, 21, 2, dtype=torch.int64), (4, 4), 16)
    bad = j.clone()
    bad[0, 3, 1] = float("nan")
    with pytest.raises(ValueRangeError, match="joints_2d"):
        rasterize_bones(bad, (4, 4), 16)
    with pytest.raises(ValueRangeError, match="thickness"):
        rasterize_bones(j, (4, 4), 16, thickness=-1.0)
    with pytest.raises(ValueRangeError, match="grid_size"):
        rasterize_bones(j, (0, 4), 16)
    with pytest.raises(ShapeError, match="visibility"):
        rasterize_joints(j, (4, 4), 16, visibility=torch.ones(2, 20, dtype=torch.bool))


def test_rasterize_bones_of_a_single_node_tree_is_empty():
    # A tree without bones used to index with an empty float tensor and crash.
    out = rasterize_bones(torch.full((2, 1, 2), 5.0), (4, 4), 16, parents=[-1])
    assert out.shape == (2, 0, 16) and out.dtype == torch.bool
