"""SDF query points: counts, order of the parts, determinism and errors."""

from __future__ import annotations

import pytest
import torch

from hoimask._checks import ValueRangeError
from hoimask.data.targets import query_points


def _surface(offset: float):
    def draw(n: int) -> torch.Tensor:
        return torch.rand(n, 3, generator=torch.Generator().manual_seed(n)) * 0.01 + offset

    return draw


def test_query_points_counts_and_box():
    g = torch.Generator().manual_seed(0)
    pts = query_points(200, _surface(0.0), _surface(0.5), near_fraction=0.5, margin=0.02, generator=g)
    assert pts.shape == (200, 3) and pts.dtype == torch.float32
    # near-hand first (50), near-object next (50): their means sit by their surfaces
    assert pts[:50].mean(0).norm() < 0.1 and (pts[50:100].mean(0) - 0.505).abs().max() < 0.1
    uniform = pts[100:]
    assert bool((uniform >= -0.02).all()) and bool((uniform <= 0.51 + 0.02).all())
    again = query_points(200, _surface(0.0), _surface(0.5), near_fraction=0.5, margin=0.02,
                         generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert torch.equal(pts, again)


def test_query_points_errors():
    with pytest.raises(ValueRangeError, match="sigmas"):
        query_points(10, _surface(0.0), sigmas=())
    with pytest.raises(ValueRangeError, match="sigmas"):
        query_points(10, _surface(0.0), sigmas=(0.01, -0.01))
    with pytest.raises(ValueRangeError, match="near_fraction"):
        query_points(10, _surface(0.0), near_fraction=1.5)
