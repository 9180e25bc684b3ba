"""HOISDF with HOMAE's point-cloud fusion: the option on, the default untouched, the config round trip, learnability."""

from __future__ import annotations

from dataclasses import asdict, fields

import pytest
import torch
from test_hoisdf import ALL_TERMS, SLOW_TERMS, SMALL, _overfit

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.data import SyntheticHOI
from hoimask.engine import load_checkpoint, save_checkpoint
from hoimask.models import HOISDF, HOISDFConfig
from hoimask.models.hoisdf_fusion import (
    SurfaceCloud,
    SurfaceCloudFusion,
    fusion_count,
    select_near_surface,
)

FUSION_FIELDS = ("point_cloud_fusion", "fusion_fraction", "fusion_hidden", "fusion_pool")


def _model(preset: str = "tiny", **overrides) -> HOISDF:
    torch.manual_seed(0)
    return HOISDF.from_preset(preset, **{**SMALL, **overrides})


@pytest.fixture(scope="module")
def batch() -> dict[str, torch.Tensor]:
    ds = SyntheticHOI(num_samples=3, image_size=64, seed=3, num_sdf_points=128, num_object_points=32,
                      hand_only_prob=0.0, not_grasped_prob=0.0)
    return torch.utils.data.default_collate([ds[i] for i in range(3)])


# ---------------------------------------------------------------------------------------------- the parts

def test_select_near_surface_orders_by_distance_with_invalid_last():
    points = torch.arange(15.0).reshape(1, 5, 3)
    sdf = torch.tensor([[0.5, -0.01, float("nan"), 0.02, -0.3]])
    valid = torch.tensor([[True, True, True, False, True]])
    chosen, d, ok = select_near_surface(points, sdf, 5, valid)
    assert d[0, :3].tolist() == pytest.approx([-0.01, -0.3, 0.5]) and d[0, 3].isnan() and d[0, 4] == 0.02
    assert ok.tolist() == [[True, True, True, True, False]]
    torch.testing.assert_close(chosen[0, 0], points[0, 1])
    assert select_near_surface(points, sdf, 2)[1][0].tolist() == pytest.approx([-0.01, 0.02])
    with pytest.raises(ValueRangeError, match="'k'"):
        select_near_surface(points, sdf, 6)
    with pytest.raises(ShapeError, match="sdf"):
        select_near_surface(points, sdf[:, :4], 2)
    with pytest.raises(DTypeError, match="valid"):
        select_near_surface(points, sdf, 2, valid.float())
    assert [fusion_count(n, f) for n, f in ((600, 0.5), (200, 0.5), (32, 1.0), (7, 0.01))] == [300, 100, 32, 1]


def test_fusion_module_needs_every_field():
    fusion = SurfaceCloudFusion(8, hidden=(4,))
    cloud = SurfaceCloud(torch.rand(2, 5, 3), torch.randn(2, 5, 3), torch.zeros(2, 5), torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ValueRangeError, match="object"):
        fusion({"hand": cloud}, {"hand": torch.zeros(2, 3)})
    small = SurfaceCloud(*(t[:1] for t in cloud))
    with pytest.raises(ShapeError, match="batch"):
        fusion({"hand": cloud, "object": small}, {"hand": torch.zeros(2, 3), "object": torch.zeros(1, 3)})


# ---------------------------------------------------------------------------------------------- the model

@pytest.mark.parametrize("preset,sampling", [("tiny", "ground_truth"), ("tiny", "field"), ("tiny_resnet", "field")])
def test_fusion_forward_backward_reaches_the_encoders(batch, preset, sampling):
    model = _model(preset, point_cloud_fusion=True)
    out = model(batch, sampling=sampling, generator=torch.Generator().manual_seed(0))
    assert set(out["terms"]) == ALL_TERMS and all(torch.isfinite(v) for v in out["terms"].values())
    p = out["predictions"]
    assert p["hand_cloud"].shape == p["hand_cloud_normals"].shape == (3, 16, 3)  # ceil(0.5 * 32)
    assert p["object_cloud"].shape == (3, 8, 3) and p["object_cloud_valid"].shape == (3, 8)
    assert p["hand_cloud_valid"].any(1).all() and not p["hand_cloud"].requires_grad  # a detached read-out
    normals = p["hand_cloud_normals"][p["hand_cloud_valid"]]
    torch.testing.assert_close(normals.norm(dim=-1), torch.ones(len(normals)))
    out["loss"].backward()
    for name, q in model.cloud_fusion.named_parameters():
        assert q.grad is not None and torch.isfinite(q.grad).all() and q.grad.abs().sum() > 0, name
    assert all(torch.isfinite(q.grad).all() for q in model.parameters() if q.grad is not None)


def test_cloud_lies_nearer_the_predicted_zero_level(batch):
    model = _model(point_cloud_fusion=True).eval()
    with torch.no_grad():
        p = model(batch)["predictions"]
        maps = model.backbone(model.pixel_norm(batch["image"]))
        s = model.config.point_scale
        for name, decoder, center, k in (("hand", model.hand_sdf, p["hand_root"], 16),
                                         ("object", model.object_sdf, p["object_center"], 8)):
            _, before, _ = select_near_surface(p[f"{name}_points"], p[f"{name}_points_sdf"], k,
                                               p[f"{name}_points_valid"])
            after = decoder(p[f"{name}_cloud"], center, batch["K"], maps, (64, 64)).sdf / s
            ok = p[f"{name}_cloud_valid"]
            assert after[ok].abs().mean() < 0.8 * before[ok].abs().mean(), name
    with torch.no_grad():  # predict too (no_grad inside: the projection enables autograd for itself)
        q = model.predict(batch["image"], batch["K"], batch["joints_3d"][:, 0])
    assert q["hand_cloud"].shape == (3, 16, 3) and torch.isfinite(q["joints"]).all()


def test_fusion_off_costs_nothing_and_on_costs_one_field_evaluation_per_branch(batch):
    def decoder_calls(fusion: bool) -> dict[str, int]:
        model = _model(point_cloud_fusion=fusion)
        count = {"hand": 0, "object": 0}
        for name in count:
            decoder = model.hand_sdf if name == "hand" else model.object_sdf
            decoder.register_forward_hook(lambda *_, name=name: count.__setitem__(name, count[name] + 1))
        model(batch, sampling="field")
        return count

    calls = {fusion: decoder_calls(fusion) for fusion in (False, True)}
    assert {k: calls[True][k] - calls[False][k] for k in calls[True]} == {"hand": 1, "object": 1}


def test_default_state_dict_unchanged_and_loads_into_the_fusion_model():
    off, on = _model(), _model(point_cloud_fusion=True)
    assert off.cloud_fusion is None and HOISDFConfig().point_cloud_fusion is False
    off_state, on_state = off.state_dict(), on.state_dict()
    assert not [k for k in off_state if k.startswith("cloud_fusion.") or "cloud" in k]
    added = set(on_state) - set(off_state)
    assert set(off_state) <= set(on_state) and added and all(k.startswith("cloud_fusion.") for k in added)
    for key, value in off_state.items():  # built last: the shared modules draw the same initial weights
        assert torch.equal(value, on_state[key]), key
    report = on.load_state_dict(off_state, strict=False)  # start fusion from a HOISDF checkpoint
    assert report.unexpected_keys == [] and set(report.missing_keys) == added


def test_option_round_trips_through_the_config_and_a_checkpoint(tmp_path, batch):
    model = _model(point_cloud_fusion=True, fusion_fraction=0.25, fusion_hidden=(16, 8), fusion_pool="max").eval()
    state = asdict(model.config)  # examples/finetune.py's hoisdf_config_state
    state["loss_weights"] = dict(state["loss_weights"])
    path = save_checkpoint(tmp_path / "model.pt", {"model": model.state_dict(), "model_type": "hoisdf",
                                                   "hoisdf_config": state})
    loaded = load_checkpoint(path)
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in loaded["hoisdf_config"].items()}  # evaluate.py
    rebuilt = HOISDF(HOISDFConfig(**config)).eval()
    rebuilt.load_state_dict(loaded["model"])  # strict
    assert rebuilt.config == model.config and rebuilt.config.fusion_hidden == (16, 8)
    with torch.no_grad():
        a = model.predict(batch["image"], batch["K"], batch["joints_3d"][:, 0])
        b = rebuilt.predict(batch["image"], batch["K"], batch["joints_3d"][:, 0])
    assert a["hand_cloud"].shape == (3, 8, 3)  # ceil(0.25 * 32)
    for key in ("joints", "object_translation", "hand_cloud", "object_cloud"):
        torch.testing.assert_close(a[key], b[key])
    # a checkpoint written before the option existed holds none of its fields: the default, fusion off
    old = {k: v for k, v in config.items() if k not in FUSION_FIELDS}
    assert HOISDFConfig(**old).point_cloud_fusion is False
    assert set(FUSION_FIELDS) <= {f.name for f in fields(HOISDFConfig)}


@pytest.mark.parametrize("overrides,error,match", [
    ({"fusion_fraction": 0.0}, ValueRangeError, "fusion_fraction"),
    ({"fusion_fraction": 1.5}, ValueRangeError, "fusion_fraction"),
    ({"fusion_pool": "sum"}, ValueRangeError, "fusion_pool"),
    ({"fusion_hidden": ()}, ValueRangeError, "fusion_hidden"),
    ({"fusion_hidden": (8, 0)}, ValueRangeError, r"fusion_hidden\[1\]"),
    ({"point_cloud_fusion": "yes"}, DTypeError, "point_cloud_fusion"),
])
def test_bad_fusion_config_raises_naming_the_field(overrides, error, match):
    with pytest.raises(error, match=match):
        HOISDFConfig(**overrides)


# ---------------------------------------------------------------------------------------------- learnability

@pytest.mark.slow
def test_fusion_model_overfits_every_term():
    """As test_hoisdf.test_overfits_every_term (same samples, steps, bars), with the fusion on."""
    first, last, pred, samples = _overfit("tiny", point_cloud_fusion=True)
    assert set(first) == ALL_TERMS
    slow = {k: (round(first[k], 5), round(last[k], 7)) for k in first
            if not last[k] * SLOW_TERMS.get(k, 10.0) <= first[k]}
    assert not slow, f"terms that fell less than required (first, last): {slow}"
    joints = samples["joints_3d"]
    assert (pred["joints"] - joints).norm(dim=-1).mean() < 0.005  # 5 mm
    assert (pred["voted_joints"] - joints).norm(dim=-1).mean() < 0.005
    assert (pred["object_translation"] - samples["object_translation"]).norm(dim=-1).mean() < 0.005
    assert pred["hand_cloud"].shape[1] == 64 and pred["hand_cloud_valid"].float().mean() > 0.9
