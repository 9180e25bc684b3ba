"""Pixel-aligned sampling: pixel-centre convention, scales, invalid points, gradients."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import DTypeError, ShapeError
from hoimask.geometry.sampling import PixelAlignedFeatures, pixel_aligned_features

H, W = 48, 64


def coordinate_maps(B: int, scale: int, dtype=torch.float64) -> torch.Tensor:
    """Channels = image x and y of each feature cell's centre, for a map at stride ``scale``."""
    h, w = H // scale, W // scale
    x = (torch.arange(w, dtype=dtype) + 0.5) * scale
    y = (torch.arange(h, dtype=dtype) + 0.5) * scale
    yy, xx = torch.meshgrid(y, x, indexing="ij")
    return torch.stack([xx, yy])[None].expand(B, 2, h, w).contiguous()


def camera(B: int, dtype=torch.float64) -> torch.Tensor:
    K = torch.tensor([[60.0, 0, W / 2], [0, 55.0, H / 2], [0, 0, 1]], dtype=dtype)
    return K.expand(B, 3, 3)


def points_at_pixels(uv: torch.Tensor, z: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    x = (uv[..., 0] - K[:, None, 0, 2]) / K[:, None, 0, 0] * z
    y = (uv[..., 1] - K[:, None, 1, 2]) / K[:, None, 1, 1] * z
    return torch.stack([x, y, z], -1)


@given(seed=st.integers(0, 10_000), B=st.integers(1, 3))
def test_bilinear_sampling_reads_image_position_at_every_scale(seed, B):
    g = torch.Generator().manual_seed(seed)
    # Stay at least half a cell of the coarsest map (stride 8) inside, where bilinear is exact on linear maps.
    uv = torch.rand(B, 20, 2, generator=g, dtype=torch.float64) * torch.tensor([W - 8.0, H - 8.0]) + 4.0
    z = torch.rand(B, 20, generator=g, dtype=torch.float64) + 0.2
    K = camera(B)
    maps = [coordinate_maps(B, s) for s in (1, 2, 8)]
    feats, valid = pixel_aligned_features(points_at_pixels(uv, z, K), K, maps, (H, W))
    assert feats.shape == (B, 20, 6) and bool(valid.all())
    for i in range(3):
        assert torch.allclose(feats[..., 2 * i : 2 * i + 2], uv, atol=1e-9)


def test_pixel_centre_reads_exact_cell_value():
    K = camera(1)
    fmap = torch.arange(H * W, dtype=torch.float64).view(1, 1, H, W)
    uv = torch.tensor([[[0.5, 0.5], [10.5, 3.5], [W - 0.5, H - 0.5]]], dtype=torch.float64)
    feats, _ = pixel_aligned_features(points_at_pixels(uv, torch.ones(1, 3, dtype=torch.float64), K), K, [fmap], (H, W))
    assert torch.allclose(feats[0, :, 0], torch.tensor([0.0, 3 * W + 10, H * W - 1], dtype=torch.float64), atol=1e-9)


def test_invalid_points_get_zeros():
    K = camera(1)
    maps = [coordinate_maps(1, 1) + 1.0]
    uv = torch.tensor([[[10.0, 10.0], [-0.5, 10.0], [10.0, H + 0.5], [0.2, 0.2], [10.0, 10.0]]], dtype=torch.float64)
    z = torch.tensor([[1.0, 1.0, 1.0, 1.0, 1.0]], dtype=torch.float64)
    p = points_at_pixels(uv, z, K)
    p[0, 4] = torch.tensor([0.1, 0.1, -0.5])  # behind the camera, projects into the image if mirrored
    feats, valid = pixel_aligned_features(p, K, maps, (H, W))
    assert valid.tolist() == [[True, False, False, True, False]]
    assert bool((feats[~valid] == 0).all()) and bool((feats[valid] > 0).all())
    # Border padding: a valid point in the outer half pixel reads the edge cell, not a blend with zeros.
    assert torch.allclose(feats[0, 3], torch.tensor([1.5, 1.5], dtype=torch.float64))
    p[0, 0, 2] = 0.0
    assert not pixel_aligned_features(p, K, maps, (H, W))[1][0, 0]


def test_gradients_flow_to_points_and_maps_and_module_matches():
    K = camera(2)
    g = torch.Generator().manual_seed(0)
    uv = torch.rand(2, 5, 2, generator=g, dtype=torch.float64) * 30 + 8
    p = points_at_pixels(uv, torch.ones(2, 5, dtype=torch.float64), K).requires_grad_()
    fmap = torch.randn(2, 3, 12, 16, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: pixel_aligned_features(a, K, [b], (H, W))[0], (p, fmap))
    m = PixelAlignedFeatures((H, W))
    assert torch.equal(m(p, K, [fmap])[0], pixel_aligned_features(p, K, [fmap], (H, W))[0])


def test_feature_dtype_follows_maps():
    K = camera(1, torch.float32)
    p = torch.tensor([[[0.0, 0.0, 1.0]]])
    feats, _ = pixel_aligned_features(p, K, [torch.ones(1, 4, 6, 8, dtype=torch.float64)], (H, W))
    assert feats.dtype == torch.float64


def test_bad_inputs():
    K = camera(1)
    p = torch.zeros(1, 3, 3, dtype=torch.float64)
    with pytest.raises(ShapeError, match="feature_maps"):
        pixel_aligned_features(p, K, [], (H, W))
    with pytest.raises(ShapeError, match=r"feature_maps\[0\]"):
        pixel_aligned_features(p, K, [torch.zeros(2, 1, 4, 4)], (H, W))
    with pytest.raises(ShapeError, match="K"):
        pixel_aligned_features(p, K[0], [torch.zeros(1, 1, 4, 4)], (H, W))
    with pytest.raises(DTypeError, match="image_size"):
        pixel_aligned_features(p, K, [torch.zeros(1, 1, 4, 4)], (H,))
