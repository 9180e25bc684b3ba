"""2.5D keypoints: soft-argmax, lifting with K, the head, and the heatmap cross-entropy."""

import pytest
import torch

from hoimask._checks import ShapeError, ValueRangeError
from hoimask.geometry import project
from hoimask.losses import heatmap_kl_divergence
from hoimask.nn import Keypoint25DHead, lift_keypoints, soft_argmax_2d


def test_soft_argmax_peaks_at_pixel_centres_and_averages_values():
    logits = torch.full((2, 3, 8, 8), -1e4)
    logits[0, 0, 2, 5] = logits[1, 2, 7, 0] = 0.0
    logits[0, 1:] = logits[1, :2] = 0.0  # flat maps: the image centre
    values = torch.arange(64.0).view(1, 1, 8, 8).expand(2, 3, 8, 8)
    uv, v = soft_argmax_2d(logits, (32, 64), values)
    torch.testing.assert_close(uv[0, 0], torch.tensor([5.5 * 8, 2.5 * 4]))
    torch.testing.assert_close(uv[1, 2], torch.tensor([0.5 * 8, 7.5 * 4]))
    torch.testing.assert_close(uv[0, 1], torch.tensor([32.0, 16.0]))
    assert float(v[0, 0]) == 2 * 8 + 5 and float(v[1, 2]) == 7 * 8
    with pytest.raises(ShapeError):
        soft_argmax_2d(logits, (32, 64), values[:, :2])


def test_lift_inverts_project(generator):
    K = torch.tensor([[300.0, 0.0, 60.0], [0.0, 310.0, 70.0], [0.0, 0.0, 1.0]]).expand(2, 3, 3)
    points = torch.randn(2, 21, 3, generator=generator) * 0.05 + torch.tensor([0.0, 0.0, 0.5])
    uv = project(points, K)
    lifted = lift_keypoints(uv, points[..., 2] - points[:, :1, 2], points[:, 0, 2], K)
    torch.testing.assert_close(lifted, points, atol=1e-5, rtol=1e-5)


def test_head_shapes_gradients_and_errors(generator):
    head = Keypoint25DHead(16, channels=8)
    tokens = torch.randn(2, 16, 16, generator=generator, requires_grad=True)
    image = torch.randn(2, 3, 64, 64, generator=generator)
    maps, depth = head(tokens, (4, 4), image)
    assert maps.shape == depth.shape == (2, 21, 16, 16)
    (maps.sum() + depth.sum()).backward()
    assert tokens.grad.abs().sum() > 0
    with pytest.raises(ShapeError):
        head(tokens[:, :15], (4, 4), image)


def test_aux_maps_come_third_and_leave_the_joint_maps_alone(generator):
    torch.manual_seed(0)
    plain = Keypoint25DHead(16, channels=8)
    torch.manual_seed(0)
    extra = Keypoint25DHead(16, channels=8, aux_maps=2)
    with torch.no_grad():  # same weights for the joint channels
        extra.out.weight[:42].copy_(plain.out.weight)
        extra.out.bias[:42].copy_(plain.out.bias)
    tokens, image = torch.randn(2, 16, 16, generator=generator), torch.randn(2, 3, 64, 64, generator=generator)
    plain.eval(), extra.eval()
    maps, depth, aux = extra(tokens, (4, 4), image)
    assert aux.shape == (2, 2, 16, 16)
    ref_maps, ref_depth = plain(tokens, (4, 4), image)
    torch.testing.assert_close(maps, ref_maps)
    torch.testing.assert_close(depth, ref_depth)
    with pytest.raises(ValueRangeError, match="aux_maps"):
        Keypoint25DHead(16, aux_maps=-1)


def test_deeper_stem_adds_convolutions_per_stage_and_keeps_the_outputs(generator):
    shallow, deep = Keypoint25DHead(16, channels=8), Keypoint25DHead(16, channels=8, stem_depth=3)
    convs = lambda m: sum(isinstance(x, torch.nn.Conv2d) for x in m.modules())  # noqa: E731
    assert convs(deep) - convs(shallow) == 3 * 2  # two more at each of strides 2, 4 and 8
    assert set(shallow.state_dict()) == set(Keypoint25DHead(16, channels=8, stem_depth=1).state_dict())
    tokens, image = torch.randn(2, 16, 16, generator=generator), torch.randn(2, 3, 64, 64, generator=generator)
    maps, depth = deep(tokens, (4, 4), image)
    assert maps.shape == depth.shape == (2, 21, 16, 16)
    with pytest.raises(ValueRangeError, match="stem_depth"):
        Keypoint25DHead(16, stem_depth=0)


def test_heatmap_kl_divergence_is_lowest_at_the_target_and_skips_invisible_joints():
    joints = torch.tensor([[[20.0, 12.0], [500.0, 500.0]]])  # the second is far outside the image
    from hoimask.losses import render_gaussian_heatmaps

    target = render_gaussian_heatmaps(joints, (8, 8), (32, 32), sigma=1.0).clamp_min(1e-12).log()  # the optimum
    good = heatmap_kl_divergence(target, joints, (32, 32))
    shifted = heatmap_kl_divergence(target.roll(2, dims=-1), joints, (32, 32))
    assert good < shifted
    bad = heatmap_kl_divergence(torch.zeros(1, 2, 8, 8), joints, (32, 32))
    assert good < bad
    visible = torch.tensor([[False, True]])
    assert float(heatmap_kl_divergence(target, joints, (32, 32), visible=visible)) == 0.0  # nothing counts
    nan = joints.clone()
    nan[0, 0] = float("nan")
    assert torch.isfinite(heatmap_kl_divergence(target, nan, (32, 32)))
