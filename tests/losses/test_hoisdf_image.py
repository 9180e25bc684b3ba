"""HOISDF's L_img: known values, zero at the target, masking of NaN joints and object-free samples, errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from hoimask._checks import ShapeError, ValueRangeError
from hoimask.losses import (
    HOISDF_HEATMAP_PEAK,
    HOISDF_HEATMAP_SIGMA,
    HOISDF_IMAGE_WEIGHTS,
    HOISDFImageLoss,
    hoisdf_image_loss,
    render_gaussian_heatmaps,
    weighted_sum,
)


def scene(batch=2, joints=21, size=16, image=32, seed=0):
    """Joints inside the image, matching per-joint target maps, box masks and confident matching logits."""
    g = torch.Generator().manual_seed(seed)
    joints_2d = torch.rand(batch, joints, 2, generator=g, dtype=torch.float64) * (image - 8) + 4
    target = render_gaussian_heatmaps(joints_2d, (size, size), (image, image), sigma=HOISDF_HEATMAP_SIGMA) * 255
    hand = torch.zeros(batch, image, image, dtype=torch.bool)
    hand[:, 4:20, 6:22] = True  # even bounds: exact 0/1 after area resizing by 2
    obj = torch.zeros_like(hand)
    obj[:, 20:30, 10:26] = True
    def logits(mask):
        return F.avg_pool2d((mask.double() * 2 - 1)[:, None] * 40, image // size)[:, 0]
    return joints_2d, target, hand, obj, logits(hand), logits(obj)


def test_hoisdf_constants():
    assert dict(HOISDF_IMAGE_WEIGHTS) == {"heatmap": 1e-3, "hand_seg": 1.0, "object_seg": 1.0}
    assert HOISDF_HEATMAP_SIGMA == 1.25 and HOISDF_HEATMAP_PEAK == 255.0
    with pytest.raises(TypeError):
        HOISDF_IMAGE_WEIGHTS["heatmap"] = 1.0  # read-only: no hidden global state


def test_zero_at_the_target_per_joint_and_single_channel():
    joints, target, hand, obj, hand_logits, obj_logits = scene()
    for maps in (target, target.sum(dim=1, keepdim=True)):
        terms = hoisdf_image_loss(maps, hand_logits, obj_logits, joints, hand, obj, image_size=(32, 32))
        for name, value in terms.items():
            assert value.shape == () and float(value) < 1e-12, name


@given(
    batch=st.integers(1, 3),
    joints=st.integers(1, 5),
    size=st.sampled_from([4, 8, 16]),
    sigma=st.floats(0.5, 3.0),
    single=st.booleans(),
)
def test_heatmap_zero_at_target_and_positive_elsewhere(batch, joints, size, sigma, single):
    g = torch.Generator().manual_seed(batch * 100 + joints)
    joints_2d = torch.rand(batch, joints, 2, generator=g, dtype=torch.float64) * 32
    target = render_gaussian_heatmaps(joints_2d, (size, size), (32, 32), sigma=sigma) * 255
    target = target.sum(dim=1, keepdim=True) if single else target
    logits = torch.zeros(batch, size, size, dtype=torch.float64)
    masks = torch.zeros(batch, 32, 32)
    def loss(maps):
        return hoisdf_image_loss(maps, logits, logits, joints_2d, masks, masks, image_size=(32, 32), sigma=sigma)["heatmap"]
    assert float(loss(target)) < 1e-20
    assert float(loss(target + 0.5)) == pytest.approx(0.25)
    assert float(loss(torch.zeros_like(target))) > 0


def test_known_values():
    # A joint on the centre of heatmap pixel (3, 3) of an 8x8 map of an 8x8 image, tiny sigma: one pixel of 255.
    joints = torch.tensor([[[3.5, 3.5]]], dtype=torch.float64)
    zeros = torch.zeros(1, 8, 8, dtype=torch.float64)
    masks = torch.zeros(1, 8, 8, dtype=torch.bool)
    terms = hoisdf_image_loss(zeros[:, None], zeros, zeros, joints, masks, masks, image_size=(8, 8), sigma=0.05)
    torch.testing.assert_close(terms["heatmap"], torch.tensor(255.0**2 / 64, dtype=torch.float64))
    torch.testing.assert_close(terms["hand_seg"], torch.tensor(math.log(2), dtype=torch.float64))  # logits 0
    wrong = torch.full((1, 8, 8), 3.0, dtype=torch.float64)  # confident "object" where there is none
    got = hoisdf_image_loss(zeros[:, None], zeros, wrong, joints, masks, masks, image_size=(8, 8))["object_seg"]
    torch.testing.assert_close(got, torch.tensor(math.log1p(math.exp(3.0)), dtype=torch.float64))


def test_masks_are_area_resized_to_the_logits():
    joints, target, hand, obj, hand_logits, obj_logits = scene()
    soft = torch.rand(2, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    pooled = F.avg_pool2d(soft[:, None], 2)[:, 0]
    full = hoisdf_image_loss(target, hand_logits * 0.1, obj_logits, joints, soft, obj, image_size=(32, 32))
    obj_pooled = F.avg_pool2d(obj[:, None].double(), 2)[:, 0]  # both masks share one size
    half = hoisdf_image_loss(target, hand_logits * 0.1, obj_logits, joints, pooled, obj_pooled, image_size=(32, 32))
    for name in full:
        torch.testing.assert_close(full[name], half[name])


def test_nan_joints_are_masked():
    joints, target, hand, obj, hand_logits, obj_logits = scene()
    pred = target + torch.randn(target.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    args = (hand_logits, obj_logits)
    # Per-joint maps: a NaN joint's map does not count, whatever it holds.
    nan = joints.clone()
    nan[0, 5] = float("nan")
    corrupted = pred.clone()
    corrupted[0, 5] += 100.0
    got = hoisdf_image_loss(corrupted, *args, nan, hand, obj, image_size=(32, 32))["heatmap"]
    per_map = (pred - target).pow(2).mean(dim=(-2, -1))  # (B, J)
    keep = torch.ones(2, 21, dtype=torch.bool)
    keep[0, 5] = False
    torch.testing.assert_close(got, per_map[keep].mean())
    # One channel: a sample counts only if all its joints are finite.
    single, single_target = pred.sum(dim=1, keepdim=True), target.sum(dim=1, keepdim=True)
    got = hoisdf_image_loss(single, *args, nan, hand, obj, image_size=(32, 32))["heatmap"]
    torch.testing.assert_close(got, (single[1] - single_target[1]).pow(2).mean())
    # Nothing annotated: an exact, finite zero with a zero gradient.
    pred = pred.requires_grad_()
    got = hoisdf_image_loss(pred, *args, torch.full_like(joints, float("nan")), hand, obj, image_size=(32, 32))["heatmap"]
    got.backward()
    assert float(got.detach()) == 0.0 and torch.equal(pred.grad, torch.zeros_like(pred))


def test_samples_without_object_have_no_object_term():
    joints, target, hand, obj, hand_logits, obj_logits = scene(batch=3)
    obj_logits = obj_logits.clone().requires_grad_()
    wrong = obj_logits + torch.tensor([0.0, 50.0, 0.0], dtype=torch.float64)[:, None, None]
    has_object = torch.tensor([True, False, True])
    terms = hoisdf_image_loss(target, hand_logits, wrong, joints, hand, obj, image_size=(32, 32), has_object=has_object)
    assert float(terms["object_seg"].detach()) < 1e-12  # sample 1's wrong logits are ignored
    none = hoisdf_image_loss(
        target, hand_logits, wrong, joints, hand, obj, image_size=(32, 32), has_object=torch.zeros(3, dtype=torch.bool)
    )["object_seg"]
    none.backward()
    assert float(none.detach()) == 0.0 and torch.equal(obj_logits.grad, torch.zeros_like(obj_logits))
    everyone = hoisdf_image_loss(target, hand_logits, wrong, joints, hand, obj, image_size=(32, 32))["object_seg"]
    assert float(everyone.detach()) > 1


def test_gradcheck_float64():
    joints, target, hand, obj, hand_logits, obj_logits = scene(batch=1, joints=2, size=4, image=8)
    maps = (target + 0.3).requires_grad_()
    h = (hand_logits * 0.05).requires_grad_()
    o = (obj_logits * 0.05).requires_grad_()
    def total(maps, h, o):
        terms = hoisdf_image_loss(maps, h, o, joints, hand.double(), obj, image_size=(8, 8))
        return terms["heatmap"] + terms["hand_seg"] + terms["object_seg"]
    assert torch.autograd.gradcheck(total, (maps, h, o))


def test_module_weights_the_terms():
    joints, target, hand, obj, hand_logits, obj_logits = scene()
    args = (target + 1.0, hand_logits * 0.1, obj_logits * 0.1, joints, hand, obj)
    out = HOISDFImageLoss()(*args, image_size=(32, 32))
    terms = hoisdf_image_loss(*args, image_size=(32, 32))
    torch.testing.assert_close(out.total, 1e-3 * terms["heatmap"] + terms["hand_seg"] + terms["object_seg"])
    torch.testing.assert_close(out.total, weighted_sum(terms, HOISDF_IMAGE_WEIGHTS).total)
    assert set(out.terms) == {"heatmap", "hand_seg", "object_seg"}
    half = HOISDFImageLoss(peak=127.5)(target / 2 + 1.0, *args[1:], image_size=(32, 32))
    torch.testing.assert_close(half.terms["heatmap"], terms["heatmap"])


def test_errors_name_the_argument():
    joints, target, hand, obj, hand_logits, obj_logits = scene()
    with pytest.raises(ShapeError, match="1 or J=21 channels"):
        hoisdf_image_loss(target[:, :3], hand_logits, obj_logits, joints, hand, obj, image_size=(32, 32))
    with pytest.raises(ShapeError, match="'hand_logits'"):
        hoisdf_image_loss(target, hand_logits[:, :-1], obj_logits, joints, hand, obj, image_size=(32, 32))
    with pytest.raises(ValueRangeError, match="'object_mask'"):  # a label map (0 / 1 / 2) is not a mask
        hoisdf_image_loss(target, hand_logits, obj_logits, joints, hand, obj.long() * 2, image_size=(32, 32))
    with pytest.raises(ShapeError, match="'has_object'"):
        hoisdf_image_loss(
            target, hand_logits, obj_logits, joints, hand, obj, image_size=(32, 32), has_object=torch.ones(3, dtype=torch.bool)
        )
    with pytest.raises(ValueRangeError, match=r"image_size\[0\]"):
        hoisdf_image_loss(target, hand_logits, obj_logits, joints, hand, obj, image_size=(0, 32))
    with pytest.raises(ShapeError, match="'image_size'"):
        hoisdf_image_loss(target, hand_logits, obj_logits, joints, hand, obj, image_size=(32,))
    with pytest.raises(ValueRangeError, match="'sigma'"):
        hoisdf_image_loss(target, hand_logits, obj_logits, joints, hand, obj, image_size=(32, 32), sigma=0.0)
