"""resize_pos_embed_2d: timm's and MAE's bicubic resize of a learned position embedding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.encoding import POS_EMBED_RESIZE_METHODS, resize_pos_embed_2d


def naive(pos: torch.Tensor, old: tuple[int, int], new: tuple[int, int], prefix: int, method: str) -> torch.Tensor:
    """Token-by-token reference: rebuild the (D, h, w) image from the row-major token list, resize, flatten."""
    B, _, D = pos.shape
    image = torch.empty(B, D, *old, dtype=pos.dtype)
    for i in range(old[0]):
        for j in range(old[1]):
            image[:, :, i, j] = pos[:, prefix + i * old[1] + j]
    image = image.contiguous(memory_format=torch.channels_last)  # see test_one_column_grids
    out = F.interpolate(image, size=new, mode="bicubic", align_corners=False, antialias=method == "timm")
    tokens = [out[:, :, i, j] for i in range(new[0]) for j in range(new[1])]
    return torch.cat([pos[:, :prefix], torch.stack(tokens, dim=1)], dim=1)


@settings(max_examples=25, deadline=None)
@given(
    old=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    new=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    prefix=st.integers(0, 2),
    method=st.sampled_from(POS_EMBED_RESIZE_METHODS),
)
def test_matches_the_token_by_token_reference(old, new, prefix, method):
    pos = torch.randn(2, prefix + old[0] * old[1], 4, dtype=torch.float64)
    out = resize_pos_embed_2d(pos, new, old_grid=old, num_prefix_tokens=prefix, method=method)
    assert out.shape == (2, prefix + new[0] * new[1], 4)
    torch.testing.assert_close(out, naive(pos, old, new, prefix, method))
    torch.testing.assert_close(out[:, :prefix], pos[:, :prefix], rtol=0, atol=0)  # prefix kept exactly


@pytest.mark.parametrize("method", POS_EMBED_RESIZE_METHODS)
def test_constant_stays_constant_and_equal_grids_are_untouched(method):
    pos = torch.full((1, 1 + 14 * 14, 8), 0.25)
    out = resize_pos_embed_2d(pos, (8, 5), num_prefix_tokens=1, method=method)
    torch.testing.assert_close(out, torch.full((1, 1 + 40, 8), 0.25))  # the kernels' weights sum to 1
    assert resize_pos_embed_2d(pos, (14, 14), num_prefix_tokens=1, method=method) is pos


def test_the_two_methods_differ_also_when_upsampling():
    pos = torch.randn(1, 49, 8, dtype=torch.float64)
    for new in ((4, 4), (11, 11)):
        a = resize_pos_embed_2d(pos, new, method="timm")
        b = resize_pos_embed_2d(pos, new, method="mae")
        assert (a - b).abs().max() > 1e-3


@pytest.mark.parametrize("method", POS_EMBED_RESIZE_METHODS)
def test_one_column_grids(method):
    # The resize is separable and a 3 -> 3 resize is the identity, so resizing three copies of the column
    # and keeping the middle one is the answer. PyTorch's antialiased bicubic gets it wrong in the NCHW
    # layout (CPU, torch 2.13); the channels-last layout used here (as timm's permuted view) gets it right.
    pos = torch.randn(1, 3, 4, dtype=torch.float64)  # a 3x1 grid
    wide = pos[:, :, None].expand(1, 3, 3, 4).reshape(1, 9, 4)  # 3x3 grid, three copies of the column
    out = resize_pos_embed_2d(pos, (5, 1), old_grid=(3, 1), method=method)
    expected = resize_pos_embed_2d(wide, (5, 3), old_grid=(3, 3), method=method)[:, 1::3]
    torch.testing.assert_close(out, expected)


def test_half_precision_is_resized_in_float32():
    pos = torch.randn(1, 1 + 36, 8)
    out = resize_pos_embed_2d(pos.half(), (4, 4), num_prefix_tokens=1, method="timm")  # CPU has no half AA kernel
    assert out.dtype == torch.float16
    ref = resize_pos_embed_2d(pos.half().float(), (4, 4), num_prefix_tokens=1, method="timm").half()
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


@pytest.mark.parametrize("method", POS_EMBED_RESIZE_METHODS)
def test_gradcheck_float64(method):
    pos = torch.randn(1, 1 + 12, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda p: resize_pos_embed_2d(p, (2, 5), old_grid=(3, 4), num_prefix_tokens=1, method=method), (pos,)
    )


def test_errors_name_the_argument():
    pos = torch.randn(1, 1 + 16, 8)
    with pytest.raises(ShapeError, match="argument 'pos_embed'.*old_grid"):
        resize_pos_embed_2d(pos, (2, 2))  # 17 positions without a prefix: not a square grid
    with pytest.raises(ShapeError, match="argument 'pos_embed'"):
        resize_pos_embed_2d(pos, (2, 2), old_grid=(3, 5), num_prefix_tokens=1)
    with pytest.raises(ShapeError, match="argument 'pos_embed'"):
        resize_pos_embed_2d(pos[0], (2, 2), num_prefix_tokens=1)
    with pytest.raises(ValueRangeError, match="argument 'method'"):
        resize_pos_embed_2d(pos, (2, 2), num_prefix_tokens=1, method="bilinear")
    with pytest.raises(ValueRangeError, match=r"argument 'new_grid\[1\]'"):
        resize_pos_embed_2d(pos, (2, 0), num_prefix_tokens=1)
    with pytest.raises(ValueRangeError, match="argument 'num_prefix_tokens'"):
        resize_pos_embed_2d(pos, (2, 2), num_prefix_tokens=-1)
    with pytest.raises(DTypeError, match="argument 'pos_embed'"):
        resize_pos_embed_2d(torch.zeros(1, 17, 8, dtype=torch.long), (2, 2), num_prefix_tokens=1)
