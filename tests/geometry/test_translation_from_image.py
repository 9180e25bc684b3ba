"""translation_from_image: camera-aware translation (image position + depth relative to the focal length)."""

import pytest
import torch

from hoimask._checks import ShapeError, ValueRangeError
from hoimask.geometry import project, translation_from_image


def _K(f: float, cx: float, cy: float) -> torch.Tensor:
    return torch.tensor([[[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]]], dtype=torch.float64)


def test_zero_is_the_image_centre_at_the_reference_depth_scaled_by_the_focal_length():
    for f in (128.0, 256.0):
        t = translation_from_image(torch.zeros(1, 3, dtype=torch.float64), _K(f, 64.0, 64.0), (128, 128),
                                   reference_depth=0.4)
        torch.testing.assert_close(t, torch.tensor([[0.0, 0.0, 0.4 * f / 128]], dtype=torch.float64))


def test_the_point_projects_to_the_predicted_pixel(generator):
    raw = 0.3 * torch.randn(5, 3, generator=generator, dtype=torch.float64)
    K = _K(200.0, 60.0, 70.0).expand(5, 3, 3)
    t = translation_from_image(raw, K, (120, 160))
    uv = project(t[:, None], K)[:, 0]
    torch.testing.assert_close(uv, torch.stack([160 * (0.5 + raw[:, 0]), 120 * (0.5 + raw[:, 1])], -1))
    torch.testing.assert_close(t[:, 2], 0.5 * torch.exp(raw[:, 2]) * 200.0 / 160)


def test_gradcheck(generator):
    raw = (0.2 * torch.randn(3, 3, generator=generator, dtype=torch.float64)).requires_grad_()
    K = _K(150.0, 64.0, 60.0).expand(3, 3, 3)
    assert torch.autograd.gradcheck(lambda r: translation_from_image(r, K, (128, 128)), (raw,))


def test_errors():
    K = _K(100.0, 32.0, 32.0).float()
    with pytest.raises(ShapeError, match="raw"):
        translation_from_image(torch.zeros(1, 2), K, (64, 64))
    with pytest.raises(ShapeError, match="K"):
        translation_from_image(torch.zeros(2, 3), K, (64, 64))
    with pytest.raises(ValueRangeError, match="reference_depth"):
        translation_from_image(torch.zeros(1, 3), K, (64, 64), reference_depth=0.0)
