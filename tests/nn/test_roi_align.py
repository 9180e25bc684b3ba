"""roi_align on grid_sample against a direct NumPy bilinear-average implementation (torchvision's aligned=True rules)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.nn import RoIAlign, roi_align


def _bilinear(feature: np.ndarray, y: float, x: float) -> np.ndarray:
    """One bilinear sample of ``(C, H, W)`` at cell coordinates ``(y, x)``: 0 beyond one cell outside, else clamped."""
    _, H, W = feature.shape
    if y < -1.0 or y > H or x < -1.0 or x > W:
        return np.zeros(feature.shape[0])
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(math.floor(y)), int(math.floor(x))
    if y_low >= H - 1:
        y_low = y_high = H - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= W - 1:
        x_low = x_high = W - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    return (hy * hx * feature[:, y_low, x_low] + hy * lx * feature[:, y_low, x_high]
            + ly * hx * feature[:, y_high, x_low] + ly * lx * feature[:, y_high, x_high])


def roi_align_numpy(features: np.ndarray, rois: np.ndarray, size: tuple[int, int], scale: float,
                    ratio: int) -> np.ndarray:
    """Loop form: per RoI and bin, the mean of ``ratio²`` bilinear samples (rows ``(index, x0, y0, x1, y1)``)."""
    h, w = size
    out = np.zeros((len(rois), features.shape[1], h, w))
    for k, (index, *box) in enumerate(rois):
        x0, y0, x1, y1 = (v * scale - 0.5 for v in box)
        bin_h, bin_w = (y1 - y0) / h, (x1 - x0) / w
        feature = features[int(index)]
        for ph in range(h):
            for pw in range(w):
                total = np.zeros(features.shape[1])
                for iy in range(ratio):
                    y = y0 + ph * bin_h + (iy + 0.5) * bin_h / ratio
                    for ix in range(ratio):
                        x = x0 + pw * bin_w + (ix + 0.5) * bin_w / ratio
                        total += _bilinear(feature, y, x)
                out[k, :, ph, pw] = total / ratio**2
    return out


def _rois(generator: torch.Generator) -> torch.Tensor:
    """RoIs of every kind: inside, across the border, beyond the one-cell margin, tiny, flipped, on one image twice."""
    random = torch.rand(6, 4, generator=generator, dtype=torch.float64) * 40 - 8  # some outside the 22 x 18 image
    fixed = torch.tensor([[0.0, 0.0, 22.0, 18.0], [-30.0, -30.0, -20.0, -25.0], [5.0, 5.0, 5.3, 5.2],
                          [12.0, 9.0, 4.0, 2.0], [20.5, 16.5, 30.0, 25.0]], dtype=torch.float64)
    boxes = torch.cat([random, fixed])
    index = torch.tensor([0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 1], dtype=torch.float64)[:, None]
    return torch.cat([index, boxes], dim=1)


@pytest.mark.parametrize("size, scale, ratio", [((3, 3), 0.5, 2), ((4, 2), 0.5, 1), ((2, 5), 1.0, 3), ((1, 1), 0.25, 4)])
def test_matches_the_numpy_bilinear_average(size, scale, ratio):
    g = torch.Generator().manual_seed(0)
    features = torch.randn(2, 3, 9, 11, generator=g, dtype=torch.float64)
    rois = _rois(g)
    got = roi_align(features, rois, size, scale, ratio)
    want = roi_align_numpy(features.numpy(), rois.numpy(), size, scale, ratio)
    assert got.shape == (len(rois), 3, *size)
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-12)


def test_one_box_per_image_equals_indexed_rows():
    g = torch.Generator().manual_seed(1)
    features = torch.randn(3, 2, 8, 8, generator=g)
    boxes = torch.rand(3, 4, generator=g) * 32
    rows = torch.cat([torch.arange(3.0)[:, None], boxes], dim=1)
    assert torch.equal(roi_align(features, boxes, 4, 0.25), roi_align(features, rows, 4, 0.25))


def test_known_values():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    cells = roi_align(x, torch.tensor([[0.0, 0.0, 4.0, 4.0]]), 2, 1.0, 2)  # each bin averages a 2x2 block of cells
    assert cells.flatten().tolist() == [2.5, 4.5, 10.5, 12.5]
    constant = roi_align(torch.full((1, 2, 6, 6), 3.0), torch.tensor([[1.0, 1.5, 4.0, 5.0]]), 3)
    assert torch.allclose(constant, torch.full_like(constant, 3.0))
    far = roi_align(torch.ones(1, 1, 6, 6), torch.tensor([[20.0, 20.0, 30.0, 30.0]]), 2)
    assert torch.equal(far, torch.zeros_like(far))  # more than a cell outside: zeros, as torchvision


def test_gradcheck_features_and_boxes():
    g = torch.Generator().manual_seed(2)
    features = torch.randn(2, 2, 5, 6, generator=g, dtype=torch.float64, requires_grad=True)
    boxes = torch.tensor([[1.3, 0.7, 8.9, 7.1], [-1.2, 2.3, 4.4, 9.6]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f, b: roi_align(f, b, (3, 2), 0.5, 2), (features, boxes))


def test_module_equals_function_and_empty_input():
    features, boxes = torch.randn(2, 4, 8, 8), torch.tensor([[0.0, 0, 16, 16], [4.0, 2, 30, 20]])
    module = RoIAlign((2, 3), spatial_scale=0.5, sampling_ratio=3)
    assert torch.equal(module(features, boxes), roi_align(features, boxes, (2, 3), 0.5, 3))
    assert "output_size=(2, 3)" in repr(module)
    assert roi_align(features, torch.zeros(0, 5), 3).shape == (0, 4, 3, 3)


def test_errors():
    features = torch.randn(2, 3, 8, 8)
    with pytest.raises(ShapeError, match="boxes"):
        roi_align(features, torch.zeros(3, 4), 2)  # (B, 4) needs one box per image
    with pytest.raises(ShapeError, match="boxes"):
        roi_align(features, torch.zeros(2, 3), 2)
    with pytest.raises(ShapeError, match="image indices"):
        roi_align(features, torch.tensor([[2.0, 0, 0, 4, 4]]), 2)
    with pytest.raises(ShapeError, match="features"):
        roi_align(torch.randn(3, 8, 8), torch.zeros(1, 5), 2)
    with pytest.raises(DTypeError, match="boxes"):
        roi_align(features, torch.zeros(2, 4, dtype=torch.long), 2)
    with pytest.raises(ValueRangeError, match="sampling_ratio"):
        roi_align(features, torch.zeros(2, 4), 2, sampling_ratio=0)
    with pytest.raises(ValueRangeError, match="spatial_scale"):
        roi_align(features, torch.zeros(2, 4), 2, spatial_scale=0.0)
    with pytest.raises(ValueRangeError, match="output_size"):
        RoIAlign(0)
