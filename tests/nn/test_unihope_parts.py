"""UniHOPE's network parts: object switcher, output gate, grasp-aware fusion (eq. 3), adaptation layer h."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.losses import MultiLevelEnhancementLoss, grasp_switch_loss
from hoimask.nn import (
    AttentionAdapter,
    GraspAwareFusion,
    GraspSwitcher,
    gate_object_outputs,
    grasp_aware_features,
)

# ---------------------------------------------------------------------------------------------
# GraspSwitcher
# ---------------------------------------------------------------------------------------------


def test_switcher_pools_tokens_and_returns_one_logit_per_sample():
    torch.manual_seed(0)
    switcher = GraspSwitcher(12, hidden_dim=20)
    x = torch.randn(5, 7, 12)
    logits = switcher(x)
    assert logits.shape == (5,) and logits.dtype == torch.float32
    torch.testing.assert_close(logits, switcher(x.mean(dim=1)))  # (B, N, D) is the mean of its tokens
    assert switcher(x[:, :1]).shape == (5,)  # any token count
    wide = GraspSwitcher(4, dtype=torch.float64)
    assert wide(torch.randn(2, 3, 4, dtype=torch.float64)).dtype == torch.float64


@given(seed=st.integers(0, 1000), n=st.integers(1, 9))
def test_switcher_does_not_depend_on_the_token_order(seed, n):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    switcher = GraspSwitcher(6)
    x = torch.randn(3, n, 6, generator=g)
    perm = torch.randperm(n, generator=g)
    torch.testing.assert_close(switcher(x[:, perm]), switcher(x))


def test_switcher_bad_inputs():
    switcher = GraspSwitcher(8)
    with pytest.raises(ShapeError, match=r"GraspSwitcher.forward\(\): argument 'object_features'"):
        switcher(torch.zeros(2, 5, 7))
    with pytest.raises(ShapeError, match="object_features"):
        switcher(torch.zeros(2, 7))
    with pytest.raises(ShapeError, match="object_features"):
        switcher(torch.zeros(2, 3, 4, 8))
    with pytest.raises(ShapeError, match="at least one token"):
        switcher(torch.zeros(2, 0, 8))
    with pytest.raises(DTypeError, match="object_features"):
        switcher([[0.0] * 8])
    with pytest.raises(DTypeError, match="dim"):
        GraspSwitcher(8.0)
    with pytest.raises(ValueRangeError, match="hidden_dim"):
        GraspSwitcher(8, hidden_dim=0)


def test_switcher_learns_to_separate_two_fixed_feature_sets():
    """Overfit: random token sets with random grasp labels, memorised by the switcher and eq. (2)'s loss."""
    torch.manual_seed(0)
    features = torch.randn(16, 6, 16)
    grasped = torch.arange(16) % 2 == 0
    switcher = GraspSwitcher(16, hidden_dim=64)
    opt = torch.optim.Adam(switcher.parameters(), lr=1e-2)
    first = float(grasp_switch_loss(switcher(features), grasped).detach())
    for _ in range(300):
        opt.zero_grad()
        loss = grasp_switch_loss(switcher(features), grasped)
        loss.backward()
        opt.step()
    logits = switcher(features)
    assert torch.equal(torch.sigmoid(logits) >= 0.5, grasped)
    assert float(grasp_switch_loss(logits, grasped).detach()) < first / 10


# ---------------------------------------------------------------------------------------------
# gate_object_outputs
# ---------------------------------------------------------------------------------------------


def test_gate_masks_the_object_outputs_of_non_grasping_samples():
    conf = torch.tensor([0.9, 0.5, 0.4999, 0.0])
    R = torch.eye(3).expand(4, 3, 3).clone().requires_grad_(True)
    t = torch.arange(12.0).reshape(4, 3)
    gated = gate_object_outputs(conf, {"rotation": R, "translation": t})
    assert gated.reported.tolist() == [True, True, False, False]  # confidence < 0.5: no object pose
    assert list(gated.outputs) == ["rotation", "translation"]
    assert torch.equal(gated.outputs["translation"][:2], t[:2]) and torch.isnan(gated.outputs["translation"][2:]).all()
    assert torch.isnan(gated.outputs["rotation"][2:]).all() and torch.equal(gated.outputs["rotation"][:2], R[:2])
    gated.outputs["rotation"][gated.reported].sum().backward()
    assert (R.grad[2:] == 0).all() and (R.grad[:2] == 1).all()
    strict = gate_object_outputs(conf, {"t": t}, threshold=0.9)
    assert strict.reported.tolist() == [True, False, False, False]


@given(seed=st.integers(0, 1000), b=st.integers(1, 12), threshold=st.floats(0.0, 1.0))
def test_gate_reports_exactly_the_confident_samples(seed, b, threshold):
    g = torch.Generator().manual_seed(seed)
    conf = torch.rand(b, generator=g, dtype=torch.float64)
    x = torch.randn(b, 2, 3, generator=g, dtype=torch.float64)
    gated = gate_object_outputs(conf, {"x": x}, threshold=threshold)
    assert torch.equal(gated.reported, conf >= threshold)
    nan_rows = torch.isnan(gated.outputs["x"]).flatten(1).all(dim=1)
    assert torch.equal(nan_rows, ~gated.reported)
    assert torch.equal(gated.outputs["x"][gated.reported], x[gated.reported])


def test_gate_bad_inputs():
    t = torch.zeros(2, 3)
    fn = r"gate_object_outputs\(\)"
    with pytest.raises(ValueRangeError, match=rf"{fn}: argument 'confidence'"):
        gate_object_outputs(torch.tensor([0.2, 1.5]), {"t": t})
    with pytest.raises(ValueRangeError, match="argument 'confidence'"):
        gate_object_outputs(torch.tensor([float("nan"), 0.5]), {"t": t})
    with pytest.raises(DTypeError, match="argument 'confidence'"):
        gate_object_outputs(torch.tensor([0, 1]), {"t": t})
    with pytest.raises(ShapeError, match="argument 'confidence'"):
        gate_object_outputs(torch.zeros(2, 1), {"t": t})
    with pytest.raises(ShapeError, match=r"argument 'outputs\['t'\]'"):
        gate_object_outputs(torch.zeros(3), {"t": t})
    with pytest.raises(DTypeError, match=r"argument 'outputs\['ids'\]'"):
        gate_object_outputs(torch.zeros(2), {"ids": torch.zeros(2, dtype=torch.long)})
    with pytest.raises(DTypeError, match=r"argument 'outputs\['t'\]'"):
        gate_object_outputs(torch.zeros(2), {"t": [0.0, 0.0]})
    with pytest.raises(ValueRangeError, match="argument 'threshold'"):
        gate_object_outputs(torch.zeros(2), {"t": t}, threshold=1.5)


# ---------------------------------------------------------------------------------------------
# Grasp-aware fusion (eq. 3)
# ---------------------------------------------------------------------------------------------


def test_grasp_aware_features_is_eq3():
    g = torch.Generator().manual_seed(0)
    hand, obj = torch.randn(3, 5, 4, generator=g), torch.randn(3, 5, 4, generator=g)
    s = torch.tensor([0.0, 0.3, 1.0])
    fh = grasp_aware_features(hand, obj, s)
    assert fh.shape == (3, 5, 8)
    assert torch.equal(fh[..., :4], hand)  # Concat(F_h, ...)
    torch.testing.assert_close(fh[..., 4:], s[:, None, None] * obj + (1 - s[:, None, None]) * hand)
    assert torch.equal(fh[0, :, 4:], hand[0]) and torch.equal(fh[2, :, 4:], obj[2])  # the ends are exact


def test_grasp_aware_features_gradcheck():
    g = torch.Generator().manual_seed(1)
    args = [torch.randn(2, 3, 2, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    s = torch.tensor([0.25, 0.75], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(grasp_aware_features, [*args, s])


@given(seed=st.integers(0, 1000), n=st.integers(1, 6))
def test_fusion_output_does_not_depend_on_objects_at_zero_confidence(seed, n):
    """Value: s = 0 samples give the same output for any object features (the others do change)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    fusion = GraspAwareFusion(8, num_heads=4, detach_object=False)
    hand = torch.randn(3, n, 8, generator=g)
    obj, other = torch.randn(3, n, 8, generator=g), 10 * torch.randn(3, n, 8, generator=g)
    s = torch.tensor([0.0, 1.0, 0.0])
    a, b = fusion(hand, obj, s), fusion(hand, other, s)
    assert torch.equal(a[0], b[0]) and torch.equal(a[2], b[2])
    assert not torch.allclose(a[1], b[1])  # the check can fail: a grasping sample reads its object
    # s = 0 is the object-free fusion of F_h with itself.
    torch.testing.assert_close(a[0], fusion.block(torch.cat([hand, hand], dim=-1))[0, :, :8])


def test_fusion_gradient_to_objects_is_zero_at_zero_confidence():
    torch.manual_seed(0)
    fusion = GraspAwareFusion(8, num_heads=2, detach_object=False).double()
    hand = torch.randn(2, 4, 8, dtype=torch.float64, requires_grad=True)
    obj = torch.randn(2, 4, 8, dtype=torch.float64, requires_grad=True)
    out = fusion(hand, obj, torch.tensor([0.0, 0.0], dtype=torch.float64))
    (grad,) = torch.autograd.grad(out.square().sum(), obj)
    assert torch.equal(grad, torch.zeros_like(grad))  # d out / d object_features == 0 exactly
    out = fusion(hand, obj, torch.tensor([0.0, 1.0], dtype=torch.float64))
    (grad,) = torch.autograd.grad(out.square().sum(), obj)
    assert torch.equal(grad[0], torch.zeros_like(grad[0])) and grad[1].abs().sum() > 0
    # The released code's default: object features detached, so never any gradient to them.
    detached = GraspAwareFusion(8, num_heads=2).double()
    detached.load_state_dict(fusion.state_dict())
    obj.grad = None
    detached(hand, obj, torch.ones(2, dtype=torch.float64)).sum().backward()
    assert obj.grad is None and hand.grad is not None
    torch.testing.assert_close(detached(hand, obj, torch.ones(2, dtype=torch.float64)),
                               fusion(hand, obj, torch.ones(2, dtype=torch.float64)))


def test_fusion_module_equals_function_and_gradcheck():
    torch.manual_seed(0)
    fusion = GraspAwareFusion(4, num_heads=2, detach_object=False).double()
    hand = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    obj = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    s = torch.tensor([0.2, 0.9], dtype=torch.float64)
    want = fusion.block(grasp_aware_features(hand, obj, s))[..., :4]
    torch.testing.assert_close(fusion(hand, obj, s), want)
    assert torch.autograd.gradcheck(lambda h, o: fusion(h, o, s), [hand, obj])


def test_fusion_bad_inputs():
    fusion = GraspAwareFusion(8, num_heads=4)
    hand, obj = torch.zeros(2, 5, 8), torch.zeros(2, 5, 8)
    fn = r"GraspAwareFusion.forward\(\)"
    for bad in (torch.tensor([0.5, 1.2]), torch.tensor([-0.1, 0.5]), torch.tensor([0.5, float("nan")])):
        with pytest.raises(ValueRangeError, match=rf"{fn}: argument 'confidence' expected values in \[0, 1\]"):
            fusion(hand, obj, bad)
    with pytest.raises(DTypeError, match="argument 'confidence'"):
        fusion(hand, obj, torch.tensor([0, 1]))
    with pytest.raises(ShapeError, match="argument 'confidence'"):
        fusion(hand, obj, torch.zeros(3))
    with pytest.raises(ShapeError, match=rf"{fn}: argument 'object_features'"):
        fusion(hand, torch.zeros(2, 4, 8), torch.zeros(2))  # grids of different size
    with pytest.raises(ShapeError, match=rf"{fn}: argument 'hand_features'"):
        fusion(torch.zeros(2, 5, 6), obj, torch.zeros(2))
    with pytest.raises(ShapeError, match=r"grasp_aware_features\(\): argument 'object_features'"):
        grasp_aware_features(hand, torch.zeros(2, 5, 7), torch.zeros(2))
    with pytest.raises(ValueRangeError, match=r"grasp_aware_features\(\): argument 'confidence'"):
        grasp_aware_features(hand, obj, torch.full((2,), 2.0))
    with pytest.raises(ValueRangeError, match="num_heads"):
        GraspAwareFusion(8, num_heads=3)  # must divide 2D = 16


# ---------------------------------------------------------------------------------------------
# Adaptation layer h
# ---------------------------------------------------------------------------------------------


def test_adapter_shapes_and_samples_are_independent():
    torch.manual_seed(0)
    h = AttentionAdapter(16, num_heads=4)
    x = torch.randn(3, 5, 16)
    out = h(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out.mean(-1), torch.zeros(3, 5), atol=1e-5, rtol=0)  # post-norm
    y = x.clone()
    y[1] += 100
    assert torch.equal(h(y)[0], out[0]) and torch.equal(h(y)[2], out[2])
    v = torch.randn(4, 16)
    torch.testing.assert_close(h(v), h(v[:, None])[:, 0])  # a pooled vector is one token
    assert h(v).shape == (4, 16)


def test_adapter_bad_inputs():
    h = AttentionAdapter(16, num_heads=4)
    with pytest.raises(ShapeError, match=r"AttentionAdapter.forward\(\): argument 'features'"):
        h(torch.zeros(2, 5, 8))
    with pytest.raises(ShapeError, match="features"):
        h(torch.zeros(2, 8))
    with pytest.raises(ShapeError, match="features"):
        h(torch.zeros(16))
    with pytest.raises(ValueRangeError, match="num_heads"):
        AttentionAdapter(16, num_heads=5)


def test_fusion_and_adapter_reduce_an_enhancement_loss_tenfold():
    """Overfit on fixed pairs: occluded hand tokens, fused with their object at confidence 1 and pooled, then
    mapped by h towards the (detached) de-occluded MANO-level features."""
    torch.manual_seed(0)
    B, N, D = 8, 4, 16
    clean = torch.randn(B, N, D)
    target = torch.nn.functional.layer_norm(clean.mean(dim=1), (D,))  # de-occluded MANO-level features
    objects = torch.randn(B, N, D)
    occluded = clean.clone()
    occluded[:, :2] = objects[:, :2]  # the object hides half of the hand tokens
    fusion, h = GraspAwareFusion(D, num_heads=4), AttentionAdapter(D, num_heads=4)
    loss_fn = MultiLevelEnhancementLoss(h, weights={"mano": 1.0})
    ratio, grasped = torch.full((B,), 0.5), torch.ones(B, dtype=torch.bool)
    params = list(fusion.parameters()) + list(loss_fn.parameters())
    assert len(list(loss_fn.parameters())) == len(list(h.parameters())) > 0  # h trains with the loss module

    def loss() -> torch.Tensor:
        pooled = fusion(occluded, objects, torch.ones(B)).mean(dim=1)
        return loss_fn({"mano": pooled}, {"mano": target}, ratio, grasped).total

    opt = torch.optim.Adam(params, lr=3e-3)
    first = float(loss().detach())
    for _ in range(400):
        opt.zero_grad()
        value = loss()
        value.backward()
        opt.step()
    last = float(loss().detach())
    assert last < first / 10, (first, last)
