"""Transforms keep K, 2D joints, masks, depth and 3D targets consistent."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hoimask._checks import ShapeError, ValueRangeError
from hoimask.data import (
    CenterCrop,
    ColorJitter,
    Compose,
    GaussianBlur,
    RandomCropResize,
    RandomRotateScale,
    adjust_colors,
    gaussian_blur,
    hand_object_box,
    validate_sample,
    warp_sample,
)
from hoimask.geometry import axis_angle_to_matrix, project


def _check_geometry(before, after):
    # joints_2d follows K: the projection of the (rotated) 3D joints.
    assert torch.allclose(project(after["joints_3d"].double(), after["K"].double()).float(), after["joints_2d"], atol=2e-3)
    # Rigid 3D motion about the optical axis: distances, depth (z) and SDF values are unchanged.
    assert torch.allclose(after["joints_3d"][:, 2], before["joints_3d"][:, 2], atol=1e-5)
    d0 = torch.cdist(before["joints_3d"], before["joints_3d"])
    assert torch.allclose(torch.cdist(after["joints_3d"], after["joints_3d"]), d0, atol=1e-5)
    assert torch.equal(after["sdf_hand"], before["sdf_hand"])
    R = after["object_rotation"]
    assert torch.allclose(R @ R.T, torch.eye(3), atol=1e-5)
    # The object pose moves with the scene: posed model points are rotated like the joints.
    cam0 = before["object_points"] @ before["object_rotation"].T + before["object_translation"]
    cam1 = after["object_points"] @ R.T + after["object_translation"]
    Rz = _rz(before["joints_3d"], after["joints_3d"])
    assert torch.allclose(cam0 @ Rz.T, cam1, atol=1e-5)
    assert torch.allclose(before["sdf_points"] @ Rz.T, after["sdf_points"], atol=1e-5)
    # The global hand rotation composes with the same R_z.
    g0 = axis_angle_to_matrix(before["hand_pose"][0].double())
    g1 = axis_angle_to_matrix(after["hand_pose"][0].double())
    assert torch.allclose(Rz.double() @ g0, g1, atol=1e-4)
    assert torch.equal(after["hand_pose"][1:], before["hand_pose"][1:])


def _rz(a, b):
    """Rotation about z taking centred point set ``a`` to ``b`` (2D Procrustes)."""
    pa, pb = a[:, :2] - a[:, :2].mean(0), b[:, :2] - b[:, :2].mean(0)
    angle = torch.atan2((pa[:, 0] * pb[:, 1] - pa[:, 1] * pb[:, 0]).sum(), (pa * pb).sum())
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1]])


@settings(max_examples=15)
@given(index=st.integers(0, 11), seed=st.integers(0, 2**31 - 1), size=st.sampled_from([32, 48, 40]))
def test_random_crop_keeps_every_label_consistent(synthetic_samples, index, seed, size):
    before = synthetic_samples[index]
    t = RandomCropResize(size, max_rotation=45.0, center_jitter=0.15, scale=(0.8, 1.3))
    after = t(before, generator=torch.Generator().manual_seed(seed))
    validate_sample(after)
    assert after["image"].shape == (3, size, size) and after["deoccluded_image"].shape == (3, size, size)
    _check_geometry(before, after)
    # Masks still nest, and visible joints still land on hand pixels (nearest-neighbour masks).
    assert not ((after["segmentation"] == 1) & ~after["amodal_hand_mask"]).any()
    assert ((after["depth"] > 0) == (after["segmentation"] > 0)).all()


def test_projected_joints_stay_on_hand_pixels_after_crop(synthetic_samples):
    on, total = 0, 0
    t = RandomCropResize(96, max_rotation=40.0)
    for i, s in enumerate(synthetic_samples):
        out = t(s, generator=torch.Generator().manual_seed(i))
        uv = out["joints_2d"]
        cols, rows = uv[:, 0].floor().long(), uv[:, 1].floor().long()
        inside = (cols >= 0) & (cols < 96) & (rows >= 0) & (rows < 96)
        vals = out["amodal_hand_mask"][rows[inside], cols[inside]]
        on += int(vals.sum())
        total += int(inside.sum())
    assert total > 100 and on / total > 0.95


def test_center_crop_is_deterministic_and_frames_the_hand(synthetic_samples):
    s = synthetic_samples[0]
    a = CenterCrop(48)(s, generator=torch.Generator().manual_seed(0))
    b = CenterCrop(48)(s, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["K"], b["K"])
    box = hand_object_box(a)
    assert box[0] >= 0 and box[1] >= 0 and box[2] <= 48 and box[3] <= 48  # padding 1.3 keeps it inside


def test_warp_without_rotation_leaves_3d_untouched(synthetic_samples):
    s = synthetic_samples[1]
    out = RandomCropResize(32, max_rotation=0.0)(s, generator=torch.Generator().manual_seed(3))
    for key in ("joints_3d", "object_rotation", "object_translation", "sdf_points", "hand_pose"):
        assert torch.equal(out[key], s[key])
    assert torch.allclose(project(out["joints_3d"], out["K"]), out["joints_2d"], atol=1e-3)


def test_identity_crop_reproduces_the_image(synthetic_samples):
    from hoimask.data.transforms import warp_sample

    s = synthetic_samples[2]
    out = warp_sample(s, torch.eye(3)[:2], (64, 64))
    assert torch.allclose(out["image"], s["image"], atol=1e-6)
    assert torch.equal(out["segmentation"], s["segmentation"])


def test_masks_warped_together_equal_masks_warped_one_by_one(synthetic_samples):
    # warp_sample samples the nearest-neighbour maps in one call when float32 holds them exactly
    from hoimask.data.transforms import _warp

    s = dict(synthetic_samples[0])
    A = torch.tensor([[0.8, -0.3, 9.0], [0.3, 0.8, -4.0]])
    inverse = torch.linalg.inv(torch.cat([A.double(), torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)]))
    big = dict(s, segmentation=s["segmentation"].long() + 2 ** 30)  # not exact in float32: warped on its own
    for sample in (s, big):
        out = warp_sample(sample, A, (48, 40))
        for key in ("segmentation", "amodal_hand_mask", "depth"):
            alone = _warp(sample[key][None], inverse, (48, 40), "nearest")[0]
            assert out[key].dtype == sample[key].dtype
            assert torch.equal(out[key], alone), key


def test_box_key_is_used_and_mapped(synthetic_samples):
    s = dict(synthetic_samples[3])
    s["box"] = torch.tensor([10.0, 12.0, 30.0, 40.0])
    out = RandomCropResize(56, max_rotation=0.0, scale=(1, 1), center_jitter=0.0, padding=1.0)(s)
    # side 28 (the taller edge), centre (20, 26): crop (6, 12, 34, 40), scale 2
    assert torch.allclose(out["box"], torch.tensor([8.0, 0.0, 48.0, 56.0]), atol=1e-4)


def test_color_jitter_and_blur_touch_only_images(synthetic_samples):
    s = synthetic_samples[4]
    out = Compose([ColorJitter(0.4, 0.4, 0.4, 0.2), GaussianBlur(p=1.0)])(s, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(out["image"], s["image"])
    assert out["image"].min() >= 0 and out["image"].max() <= 1
    for key in s:
        if key not in ("image", "deoccluded_image"):
            assert torch.equal(torch.nan_to_num(out[key].float()), torch.nan_to_num(s[key].float()))
    assert torch.allclose(adjust_colors(s["image"]), s["image"], atol=1e-6)  # neutral factors
    assert torch.allclose(adjust_colors(s["image"], hue=2 * math.pi), s["image"], atol=1e-5)
    blurred = gaussian_blur(s["image"], 1.0)
    assert blurred.var() < s["image"].var()
    assert torch.allclose(blurred.mean(), s["image"].mean(), atol=0.02)


def _adjust_colors_step_by_step(image, brightness, contrast, saturation, hue):
    """The colour jitter as its steps read (brightness, contrast, saturation, YIQ hue turn, clip), float64."""
    x = image.double() * brightness
    w = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)[:, None, None]
    mean = (x * w).sum(0).mean()
    x = (x - mean) * contrast + mean
    grey = (x * w).sum(0, keepdim=True)
    x = (x - grey) * saturation + grey
    yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=torch.float64)
    rot = torch.tensor([[1, 0, 0], [0, math.cos(hue), -math.sin(hue)], [0, math.sin(hue), math.cos(hue)]],
                       dtype=torch.float64)
    x = torch.einsum("ij,jhw->ihw", torch.linalg.inv(yiq) @ rot @ yiq, x)
    return x.clamp(0, 1)


@settings(max_examples=40, deadline=None)
@given(st.floats(0.0, 2.0), st.floats(0.0, 2.0), st.floats(0.0, 2.0), st.floats(-3.2, 3.2), st.integers(0, 2 ** 31))
def test_adjust_colors_is_its_steps_in_one_affine_map(brightness, contrast, saturation, hue, seed):
    image = torch.rand(3, 5, 7, generator=torch.Generator().manual_seed(seed))
    got = adjust_colors(image, brightness=brightness, contrast=contrast, saturation=saturation, hue=hue)
    want = _adjust_colors_step_by_step(image, brightness, contrast, saturation, hue)
    assert got.dtype == image.dtype and got.shape == image.shape
    torch.testing.assert_close(got.double(), want, rtol=0, atol=2e-5)


def test_transform_errors(synthetic_samples):
    with pytest.raises(ValueRangeError, match="scale"):
        RandomCropResize(32, scale=(1.2, 0.8))
    with pytest.raises(ValueRangeError, match="max_rotation"):
        RandomCropResize(32, max_rotation=-1.0)
    with pytest.raises(ShapeError, match="sigma"):
        gaussian_blur(torch.rand(3, 4, 4), 5.0)
    s = dict(synthetic_samples[0], joints_2d=torch.full((21, 2), float("nan")), has_object=torch.tensor(False))
    with pytest.raises(ValueRangeError, match="no finite"):
        hand_object_box(s)
    for bad in (torch.eye(2), torch.eye(4), torch.zeros(3)):
        with pytest.raises(ShapeError, match="affine"):
            warp_sample(synthetic_samples[0], bad, (8, 8))
    with pytest.raises(ValueRangeError, match=r"output_size\[0\]"):
        warp_sample(synthetic_samples[0], torch.eye(3), (0, 8))


@settings(max_examples=10)
@given(index=st.integers(0, 11), seed=st.integers(0, 2**31 - 1))
def test_rotate_scale_view_keeps_every_label_consistent(synthetic_samples, index, seed):
    before = synthetic_samples[index]
    after = RandomRotateScale()(before, generator=torch.Generator().manual_seed(seed))
    assert after["image"].shape == before["image"].shape
    _check_geometry(before, after)


def test_rotate_scale_identity_and_errors(synthetic_samples):
    sample = synthetic_samples[0]
    same = RandomRotateScale(max_rotation=0.0, scale=(1.0, 1.0), translate=0.0)(sample)
    assert torch.allclose(same["image"], sample["image"], atol=1e-5)
    assert torch.allclose(same["K"], sample["K"], atol=1e-5)
    with pytest.raises(ValueRangeError, match="max_rotation"):
        RandomRotateScale(max_rotation=181.0)
    with pytest.raises(ValueRangeError, match="scale"):
        RandomRotateScale(scale=(1.2, 1.1))
    with pytest.raises(ValueRangeError, match="translate"):
        RandomRotateScale(translate=-0.1)
    with pytest.raises(ShapeError, match="square"):
        RandomRotateScale()({**sample, "image": sample["image"][:, :, :-4]})
