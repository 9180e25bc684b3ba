import pytest
import torch

from hoimask._checks import ValueRangeError
from hoimask.engine import (
    NonFiniteGuard,
    NonFiniteLossError,
    autocast,
    clip_gradients,
    make_grad_scaler,
)


def test_autocast_dtypes():
    a = torch.ones(4, 4)
    with autocast("bf16", "cpu"):
        assert (a @ a).dtype == torch.bfloat16
    with autocast("fp32", "cpu"):
        assert (a @ a).dtype == torch.float32
    with pytest.raises(ValueError, match="precision"):
        autocast("fp8", "cpu")


def test_scaler_enabled_only_for_fp16():
    assert not make_grad_scaler("fp32", "cpu").is_enabled()
    assert not make_grad_scaler("bf16", "cpu").is_enabled()
    assert make_grad_scaler("fp16", "cpu").is_enabled()


def test_clip_gradients_returns_norm_and_clips():
    p = torch.nn.Parameter(torch.zeros(2))
    p.grad = torch.tensor([3.0, 4.0])
    norm = clip_gradients([p], 1.0)
    assert float(norm) == pytest.approx(5.0)
    assert float(p.grad.norm()) == pytest.approx(1.0, rel=1e-5)
    p.grad = torch.tensor([3.0, 4.0])
    assert float(clip_gradients([p], None)) == pytest.approx(5.0)
    assert torch.equal(p.grad, torch.tensor([3.0, 4.0]))
    p.grad = torch.tensor([float("inf"), 0.0])
    assert not torch.isfinite(clip_gradients([p], 1.0))


def test_guard_skips_counts_and_resets():
    g = NonFiniteGuard(max_consecutive=3)
    nan = torch.tensor(float("nan"))
    assert g.update(0, nan) is False
    assert g.update(1, nan) is False
    assert g.update(2, torch.tensor(1.0)) is True
    assert (g.skipped_total, g.consecutive) == (2, 0)
    assert g.update(3, torch.tensor(1.0), torch.tensor(float("inf"))) is False
    state = g.state_dict()
    g2 = NonFiniteGuard(3)
    g2.load_state_dict(state)
    assert (g2.skipped_total, g2.consecutive) == (3, 1)


def test_guard_raises_after_limit_with_message():
    g = NonFiniteGuard(max_consecutive=2)
    g.update(7, torch.tensor(float("inf")))
    with pytest.raises(NonFiniteLossError, match=r"step 8: 2 non-finite steps in a row"):
        g.update(8, torch.tensor(float("nan")))
    with pytest.raises(ValueRangeError, match="max_consecutive"):
        NonFiniteGuard(0)


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_bf16_exactly_where_the_cpu_has_it(monkeypatch, native):
    from hoimask.engine import native_bf16, resolve_precision

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert native_bf16("cpu") is native
    assert resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")
    for name in ("fp32", "bf16", "fp16"):
        assert resolve_precision(name, "cpu") == name  # explicit choices are kept


def test_auto_precision_without_the_probes_keeps_fp32(monkeypatch):
    from hoimask.engine import resolve_precision

    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    assert resolve_precision("auto", "cpu") == "fp32"


def test_resolve_precision_names_the_argument():
    from hoimask.engine import resolve_precision

    with pytest.raises(ValueRangeError, match="precision"):
        resolve_precision("fp8", "cpu")
