"""VolumeDensity: values, module == function, floor on alpha, gradients."""

from __future__ import annotations

import pytest
import torch

from hoimask._checks import ValueRangeError
from hoimask.sdf import VolumeDensity, volume_density


def test_known_values_and_limits(dtype):
    d = torch.tensor([-10.0, 0.0, 10.0], dtype=dtype)
    s = volume_density(d, 0.5)
    assert s.dtype == dtype
    assert torch.allclose(s, torch.tensor([2.0, 1.0, 0.0], dtype=dtype), atol=1e-6)
    # Monotone decreasing in d.
    x = torch.linspace(-1, 1, 101, dtype=dtype)
    assert bool((volume_density(x, 0.1).diff() < 0).all())


def test_module_matches_function_and_learns_alpha():
    m = VolumeDensity(alpha_init=0.02, alpha_min=1e-3)
    assert torch.isclose(m.alpha, torch.tensor(0.02), rtol=1e-5)
    d = torch.linspace(-0.05, 0.05, 11)
    assert torch.allclose(m(d), volume_density(d, m.alpha))
    m(d).sum().backward()
    assert m.raw_alpha.grad is not None and m.raw_alpha.grad.abs() > 0
    frozen = VolumeDensity(alpha_init=0.02, learnable=False)
    assert not any(p.requires_grad for p in frozen.parameters()) and "raw_alpha" in frozen.state_dict()


def test_alpha_never_goes_below_floor():
    m = VolumeDensity(alpha_init=0.1, alpha_min=0.01)
    with torch.no_grad():
        m.raw_alpha.fill_(-1e4)
    assert bool(m.alpha.detach() >= torch.tensor(0.01))
    assert torch.isfinite(m(torch.tensor([-1.0, 0.0, 1.0]))).all()


def test_gradcheck_float64():
    d = torch.randn(7, dtype=torch.float64, requires_grad=True)
    a = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(volume_density, (d, a))


def test_bad_inputs():
    with pytest.raises(ValueRangeError, match="alpha"):
        volume_density(torch.zeros(2), 0.0)
    with pytest.raises(ValueRangeError, match="alpha"):
        volume_density(torch.zeros(2), torch.tensor([-1.0, 1.0]))
    with pytest.raises(ValueRangeError, match="alpha_init"):
        VolumeDensity(alpha_init=0.001, alpha_min=0.01)
