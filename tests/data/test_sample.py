"""Sample contract, ImageNet normalisation and collate."""

from __future__ import annotations

import pytest
import torch

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.data import IMAGENET_MEAN, collate, denormalize_image, normalize_image, validate_sample


def test_normalize_known_values_and_roundtrip(generator):
    x = torch.rand(2, 3, 5, 4, generator=generator)
    y = normalize_image(x)
    assert torch.allclose(y[:, 0], (x[:, 0] - 0.485) / 0.229)
    assert torch.allclose(denormalize_image(y), x, atol=1e-6)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1).expand(3, 2, 2)
    assert normalize_image(mean).abs().max() < 1e-6


def test_normalize_follows_dtype(dtype):
    x = torch.rand(3, 4, 4, dtype=dtype)
    assert normalize_image(x).dtype == dtype


def test_normalize_errors():
    with pytest.raises(ShapeError, match="image"):
        normalize_image(torch.rand(4, 5, 5))
    with pytest.raises(DTypeError, match="floating"):
        normalize_image(torch.zeros(3, 2, 2, dtype=torch.uint8))


def test_collate_stacks_and_keeps_rgb_by_default(synthetic_samples):
    # The models normalise their input themselves: collate keeps RGB in [0, 1], like default_collate.
    batch = collate(synthetic_samples[:3])
    assert batch["image"].shape == (3, 3, 64, 64)
    assert batch["grasped"].dtype == torch.bool and batch["grasped"].shape == (3,)
    assert torch.equal(batch["image"][2], synthetic_samples[2]["image"])
    assert torch.equal(batch["segmentation"][0], synthetic_samples[0]["segmentation"])
    assert torch.equal(batch["image"], torch.utils.data.default_collate(synthetic_samples[:3])["image"])
    normalised = collate(synthetic_samples[:3], normalize=True)
    assert torch.allclose(normalised["image"][1], normalize_image(synthetic_samples[1]["image"]))


def test_collate_errors(synthetic_samples):
    with pytest.raises(ShapeError, match="non-empty"):
        collate([])
    a = dict(synthetic_samples[0])
    b = dict(synthetic_samples[1])
    b["sdf_points"] = b["sdf_points"][:10]
    with pytest.raises(ShapeError, match="sdf_points"):
        collate([a, b])
    del b["depth"]
    with pytest.raises(ShapeError, match="different keys"):
        collate([a, b])


def test_validate_sample_catches_contract_breaks(synthetic_samples):
    s = dict(synthetic_samples[0])
    dims = validate_sample(s)
    assert dims == {"H": 64, "W": 64, "P": 256, "Q": 512}
    bad = dict(s, segmentation=s["segmentation"].int())
    with pytest.raises(DTypeError, match="segmentation"):
        validate_sample(bad)
    with pytest.raises(ShapeError, match="depth"):
        validate_sample(dict(s, depth=s["depth"][:10]))
    with pytest.raises(ValueRangeError, match="image"):
        validate_sample(dict(s, image=normalize_image(s["image"])))
    missing = dict(s)
    del missing["K"]
    with pytest.raises(ShapeError, match="'K'"):
        validate_sample(missing)
    validate_sample(missing, strict=False)


@pytest.mark.parametrize("key", ["image", "K"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_validate_sample_refuses_non_finite_inputs_but_not_unannotated_targets(synthetic_samples, key, value):
    s = synthetic_samples[0]
    bad = dict(s, **{key: s[key].clone()})
    bad[key][0, 1] = value
    with pytest.raises(ValueRangeError, match=rf"validate_sample\(\): argument 'sample\['{key}'\]' must be finite"):
        validate_sample(bad)
    unannotated = dict(s, joints_3d=torch.full_like(s["joints_3d"], float("nan")),
                       joints_2d=torch.full_like(s["joints_2d"], float("nan")))
    validate_sample(unannotated)  # a frame without hand annotation is a valid sample


def test_object_name_is_optional_a_str_and_collates_to_a_list(synthetic_samples):
    s = dict(synthetic_samples[0])
    assert "object_name" not in s  # synthetic scenes are unnamed: the key is absent
    named = [dict(x, object_name=name) for x, name in zip(synthetic_samples[:3], ["019_pitcher_base", "", "025_mug"])]
    validate_sample(named[0])
    validate_sample(named[1])  # "" = the frame names no object
    assert collate(named)["object_name"] == ["019_pitcher_base", "", "025_mug"]
    assert torch.utils.data.default_collate(named)["object_name"] == ["019_pitcher_base", "", "025_mug"]
    with pytest.raises(DTypeError, match="object_name"):
        validate_sample(dict(s, object_name=3))
    with pytest.raises(DTypeError, match="object_name"):
        validate_sample(dict(s, object_name=None), strict=False)
