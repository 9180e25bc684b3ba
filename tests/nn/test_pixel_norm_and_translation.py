"""PixelNormalization (the models' input layer), spatial soft-argmax and SpatialTranslationHead."""

import pytest
import torch

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.data import IMAGENET_MEAN, IMAGENET_STD, normalize_image
from hoimask.nn import (
    PixelNormalization,
    SpatialTranslationHead,
    check_unit_range,
    normalize_pixels,
    spatial_soft_argmax,
)


def test_pixel_normalization_matches_normalize_image_and_follows_dtype(generator):
    image = torch.rand(2, 3, 8, 8, generator=generator, dtype=torch.float64)
    out = PixelNormalization()(image)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, normalize_image(image))
    torch.testing.assert_close(normalize_pixels(image, torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)), out)


def test_pixel_normalization_refuses_normalised_or_integer_images():
    norm = PixelNormalization()
    with pytest.raises(ValueRangeError, match=r"argument 'image' expected RGB in \[0, 1\].*normalised twice"):
        norm(normalize_image(torch.rand(1, 3, 4, 4)))
    with pytest.raises(ValueRangeError, match="got values in"):
        norm(torch.full((1, 3, 4, 4), 255.0))
    with pytest.raises(DTypeError, match="floating"):
        norm(torch.zeros(1, 3, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueRangeError, match="'batch'"):
        check_unit_range(torch.full((1, 3, 2, 2), -1.0), name="batch", fn="f")
    # the documented slack for resampling overshoot, and the switch for other inputs
    norm(torch.full((1, 3, 2, 2), 1.0 + 1e-4))
    PixelNormalization(check_range=False)(torch.full((1, 3, 2, 2), 5.0))


def test_pixel_normalization_argument_errors():
    with pytest.raises(ShapeError, match="equally long"):
        PixelNormalization((0.5, 0.5), (0.2, 0.2, 0.2))
    with pytest.raises(ValueRangeError, match="'std' must be > 0"):
        PixelNormalization((0.5,) * 3, (0.2, 0.0, 0.2))
    # buffers are not persistent: checkpoints keep their keys
    assert PixelNormalization().state_dict() == {}


def test_spatial_soft_argmax_known_values_and_grid_order():
    logits = torch.full((1, 6, 2), -1e4)
    logits[0, 5, 0] = 0.0  # last token of a 2 x 3 grid: row 1, column 2
    logits[0, 0, 1] = 0.0  # first token: row 0, column 0
    weights, pos = spatial_soft_argmax(logits, (2, 3))
    torch.testing.assert_close(weights.sum(1), torch.ones(1, 2))
    torch.testing.assert_close(pos[0], torch.tensor([[2.5 / 3 - 0.5, 0.25], [0.5 / 3 - 0.5, -0.25]]))
    with pytest.raises(ShapeError):
        spatial_soft_argmax(torch.zeros(1, 5, 1), (2, 3))


def test_spatial_translation_head_starts_at_the_centre_and_localises(generator):
    head = SpatialTranslationHead(8, hidden=16)
    tokens = torch.randn(3, 16, 8, generator=generator)
    out = head(tokens, (4, 4))
    assert out.shape == (3, 3)
    assert out[:, :2].abs().max() < 0.2 and out[:, 2].abs().max() < 0.05  # near the centre, reference depth
    # a token that stands out (in the direction the score reads) pulls the position to its centre
    with torch.no_grad():
        head.score.weight.zero_()
        head.score.weight[0, 0] = 50.0
    tokens = torch.zeros(1, 16, 8)
    tokens[0, 7, 0] = 1.0  # row 1, column 3 of a 4 x 4 grid
    with torch.no_grad():
        a, b = head(tokens, (4, 4))[0, :2]
    assert abs(float(a) - 0.375) < 0.05 and abs(float(b) - (-0.125)) < 0.05
