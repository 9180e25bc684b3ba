"""MaskHOI: outputs, skipped terms, ablation switches, masking, export, light imports."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from maskhoi_batches import make_batch

from hoimask._checks import ValueRangeError
from hoimask.masking import (
    HybridMasker,
    RandomMasker,
    RegionRatioMasker,
    TargetFocusedMasker,
    interaction_region,
)
from hoimask.masking.regions import patch_labels
from hoimask.models import MAE, MASKHOI_PRESETS, MaskHOI, MaskHOIConfig
from hoimask.nn import ViTEncoder, load_vit_checkpoint

SMALL = dict(img_size=64, depth=2, embed_dim=64, num_heads=2, decoder_dim=32, decoder_heads=2, head_dim=32, sdf_hidden=32)
ALL_TERMS = {"segmentation", "heatmap", "sdf_hand", "sdf_object", "mano_params", "hand_joints", "hand_vertices", "object_pose"}
GROUPS = {"loss_2d", "loss_3d", "loss_hand", "loss_object"}


def small_model(**kw) -> MaskHOI:
    torch.manual_seed(0)
    return MaskHOI.from_preset("tiny", **{**SMALL, **kw})


@pytest.fixture(scope="module")
def model() -> MaskHOI:
    return small_model()


@pytest.fixture(scope="module")
def batch() -> dict:
    return make_batch(2, 64, 32, seed=0)


def run(model, batch, seed=0):
    return model(batch, generator=torch.Generator().manual_seed(seed))


def test_outputs_terms_and_prediction_shapes(model, batch):
    out = run(model, batch)
    assert set(out["terms"]) == ALL_TERMS | GROUPS
    assert out["loss"].shape == () and torch.isfinite(out["loss"])
    p = out["predictions"]
    assert p["segmentation"].shape == (2, 3, 16, 16)
    assert p["heatmaps"].shape == (2, 21, 16, 16)
    assert p["sdf_hand"].shape == p["sdf_object"].shape == (2, 32)
    assert p["sdf_hand"].abs().max() <= model.config.sdf_clamp
    assert p["hand_rotation_6d"].shape == (2, 16, 6) and p["hand_shape"].shape == (2, 10)
    assert p["object_rotation_6d"].shape == (2, 6) and p["object_translation"].shape == (2, 3)
    mask = p["mask"]
    assert mask.mask.shape == (2, 16) and (mask.mask.sum(1) == 16 - mask.num_keep).all()
    cfg, w = model.config, model.config.term_weights
    expected_2d = w["segmentation"] * out["terms"]["segmentation"] + w["heatmap"] * out["terms"]["heatmap"]
    torch.testing.assert_close(out["terms"]["loss_2d"], expected_2d)
    total = sum(cfg.weights[g] * out["terms"][g] for g in GROUPS)
    torch.testing.assert_close(out["loss"], total)


def test_same_generator_same_loss_and_gradients_reach_the_encoder(model, batch):
    a, b = run(model, batch, 3), run(model, batch, 3)
    torch.testing.assert_close(a["loss"], b["loss"])
    model.zero_grad()
    a["loss"].backward()
    assert model.encoder.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert model.encoder.patch_embed.proj.weight.grad.abs().sum() > 0
    model.zero_grad()


def test_masked_pixels_do_not_reach_any_prediction(model, batch):
    mask = run(model, batch)["predictions"]["mask"]
    changed = {**batch, "image": batch["image"].clone()}
    patch = int(torch.nonzero(mask.mask[0])[0])
    r, c = divmod(patch, 4)
    cell = changed["image"][0, :, r * 16 : (r + 1) * 16, c * 16 : (c + 1) * 16]
    cell.copy_(1.0 - cell)  # inverted colours, still RGB in [0, 1]
    with torch.no_grad():
        a, b = model(batch, mask=mask), model(changed, mask=mask)
    for key in ("segmentation", "heatmaps", "sdf_hand", "hand_rotation_6d", "object_translation"):
        torch.testing.assert_close(a["predictions"][key], b["predictions"][key])


@pytest.mark.parametrize(
    "drop, gone",
    [
        (("sdf_points",), {"sdf_hand", "sdf_object", "loss_3d"}),
        (("sdf_object",), {"sdf_object"}),
        (("hand_pose",), {"mano_params", "hand_vertices"}),
        (("hand_pose", "joints_3d"), {"mano_params", "hand_vertices", "hand_joints", "loss_hand"}),
        (("object_rotation",), {"object_pose", "loss_object"}),
        (("segmentation",), {"segmentation"}),
        (("joints_2d", "segmentation"), {"heatmap", "segmentation", "loss_2d"}),
    ],
)
def test_absent_keys_skip_their_terms(drop, gone):
    model = small_model(masking="random")
    batch = {k: v for k, v in make_batch(2, 64, 32).items() if k not in drop}
    out = run(model, batch)
    assert set(out["terms"]) == (ALL_TERMS | GROUPS) - gone
    assert torch.isfinite(out["loss"])


def test_samples_without_object_are_excluded_from_object_terms():
    model = small_model(masking="random")
    mixed = run(model, make_batch(2, 64, 32, object_present=[True, False]))
    assert torch.isfinite(mixed["terms"]["object_pose"]) and torch.isfinite(mixed["terms"]["sdf_object"])
    none = run(model, make_batch(2, 64, 32, object_present=False))
    assert "object_pose" not in none["terms"] and "sdf_object" not in none["terms"]
    assert torch.isfinite(none["loss"])


def test_ablation_switches():
    full = small_model()
    no_gml = small_model(geometric=False)
    no_dpr = small_model(direct_regression=False)
    assert no_gml.hand_branch.sdf is None and no_dpr.mano_head is None
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(no_gml) < count(full) and count(no_dpr) < count(full)
    batch = make_batch(2, 64, 32)
    out = run(no_gml, batch)
    assert "loss_3d" not in out["terms"] and "sdf_hand" not in out["predictions"]
    out = run(no_dpr, batch)
    assert not {"loss_hand", "loss_object"} & set(out["terms"]) and "hand_rotation_6d" not in out["predictions"]
    assert isinstance(full.masker, HybridMasker)
    assert isinstance(small_model(masking="random").masker, RandomMasker)
    assert isinstance(small_model(masking="region").masker, RegionRatioMasker)


def test_target_focused_masking_is_selectable(batch):
    """HOMAE's masker: ``masking="target"`` (train_maskhoi.py --masking target --focus-ratio)."""
    model = small_model(masking="target", mask_ratio=0.5, masker_kwargs={"focus_ratio": 1.0, "margin": 0})
    masker = model.masker
    assert isinstance(masker, TargetFocusedMasker) and (masker.mask_ratio, masker.focus_ratio) == (0.5, 1.0)
    out = run(model, batch)
    assert torch.isfinite(out["loss"]) and set(out["terms"]) == ALL_TERMS | GROUPS
    mask = out["predictions"]["mask"]
    labels = patch_labels(batch["segmentation"], (4, 4))  # the tiny model's 64 px / 16 px grid
    target = interaction_region(labels, (4, 4), margin=0)
    # the whole budget goes to the interaction region first: masked there before anywhere else
    budget = mask.mask.sum(1)
    assert (mask.mask & target).sum(1).equal(torch.minimum(budget, target.sum(1)))
    with pytest.raises(ValueRangeError, match="focus_ratio"):
        small_model(masking="target", masker_kwargs={"focus_ratio": 1.5})


def test_set_progress_reaches_the_masker():
    model = small_model(masker_kwargs={"skeleton_prob": 0.0, "skeleton_prob_end": 1.0})
    model.set_progress(0.75)
    assert model.masker.progress == pytest.approx(0.75)
    assert model.masker.current_skeleton_prob == pytest.approx(0.75)


def test_encoder_export_loads_into_a_plain_vit(tmp_path, model):
    path = tmp_path / "encoder.pth"
    torch.save(model.encoder_state_dict(), path)
    enc = ViTEncoder(img_size=64, embed_dim=64, depth=2, num_heads=2)
    report = load_vit_checkpoint(path, enc, strict=True)
    assert report.missing_keys == [] and report.unexpected_keys == []
    image = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(enc(image).tokens, model.encoder(image).tokens)


def test_presets_and_overrides():
    tiny = MaskHOIConfig(**MASKHOI_PRESETS["tiny"])
    assert (tiny.img_size, tiny.patch_size, tiny.img_size // tiny.patch_size) == (128, 16, 8)
    assert tiny.embed_dim == 192 and 4 <= tiny.depth <= 6
    paper = MaskHOIConfig(**MASKHOI_PRESETS["paper"])
    assert (paper.img_size, paper.embed_dim, paper.depth, paper.num_heads) == (224, 768, 12, 12)
    with pytest.raises(ValueRangeError, match="unknown overrides"):
        MaskHOI.from_preset("tiny", embed_dims=3)
    with pytest.raises(ValueRangeError, match="name"):
        MaskHOI.from_preset("huge")
    with pytest.raises(ValueRangeError, match="masking"):
        MaskHOI.from_preset("tiny", masking="checkerboard")


def test_mae_baseline(batch):
    torch.manual_seed(0)
    mae = MAE.from_preset("tiny", img_size=64, embed_dim=64, depth=2, num_heads=2, decoder_dim=32, decoder_heads=2)
    out = mae(batch, generator=torch.Generator().manual_seed(0))
    assert out["predictions"]["pixels"].shape == (2, 16, 768)
    assert out["predictions"]["mask"].num_keep == 4  # 75 % of 16 masked
    assert set(out["terms"]) == {"pixel"} and torch.isfinite(out["loss"])
    assert set(mae.encoder_state_dict()) == set(ViTEncoder(img_size=64, embed_dim=64, depth=2, num_heads=2).state_dict())


def test_light_imports():
    """``hoimask.nn`` pulls in neither data nor trimesh; ``hoimask.models`` only what it composes."""
    code = (
        "import sys\n"
        "import hoimask.nn\n"
        "print([m for m in ('hoimask.data', 'trimesh', 'skimage', 'hoimask.models') if m in sys.modules])\n"
        "import hoimask.models\n"
        "print([m for m in ('hoimask.data', 'trimesh', 'skimage', 'hoimask.engine') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]", "[]"]


def test_float64_and_bf16_autocast():
    model = small_model(masking="random", depth=1)
    batch = make_batch(2, 64, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = run(model, batch)
    assert torch.isfinite(out["loss"]) and out["loss"].dtype == torch.float32
    out["loss"].backward()
    double = {k: v.double() if v.is_floating_point() else v for k, v in batch.items()}
    out = run(model.double(), double)
    assert out["loss"].dtype == torch.float64 and out["predictions"]["sdf_hand"].dtype == torch.float64


def test_mano_path_selects_the_mano_layer(tmp_path):
    from hoimask.hand import MANOLayer, ProceduralHand
    from hoimask.hand.testing import write_synthetic_mano

    path = write_synthetic_mano(tmp_path / "MANO_RIGHT.pkl")
    model = small_model(masking="random", depth=1, mano_path=str(path))
    assert isinstance(model.hand_loss.hand_layer, MANOLayer)
    assert isinstance(small_model(masking="random", depth=1).hand_loss.hand_layer, ProceduralHand)
    out = run(model, make_batch(2, 64, 16))
    assert {"hand_joints", "hand_vertices", "mano_params"} <= set(out["terms"])
    assert torch.isfinite(out["loss"])


def test_partial_weights_update_the_defaults():
    from hoimask.models import DEFAULT_GROUP_WEIGHTS, DEFAULT_TERM_WEIGHTS

    cfg = MaskHOIConfig(weights={"loss_3d": 2.0}, term_weights={"heatmap": 50.0})
    assert cfg.weights == {**DEFAULT_GROUP_WEIGHTS, "loss_3d": 2.0}
    assert cfg.term_weights == {**DEFAULT_TERM_WEIGHTS, "heatmap": 50.0}
    model = small_model(masking="random", depth=1, weights={"loss_2d": 0.0})
    out = run(model, make_batch(2, 64, 16))
    expected = sum(out["terms"][g] for g in ("loss_3d", "loss_hand", "loss_object"))
    torch.testing.assert_close(out["loss"], expected)
    with pytest.raises(ValueRangeError, match="term_weights"):
        MaskHOIConfig(term_weights={"sdf": 1.0})
    with pytest.raises(ValueRangeError, match="weights"):
        MaskHOIConfig(weights={"loss_2d": -1.0})


def test_has_object_flag_excludes_finite_placeholder_poses():
    # Synthetic hand-only scenes carry a finite identity/zero object pose and has_object=False.
    model = small_model(masking="random")
    batch = make_batch(2, 64, 32)
    batch["has_object"] = torch.tensor([False, False])
    out = run(model, batch)
    assert "object_pose" not in out["terms"]
    batch["has_object"] = torch.tensor([True, False])
    out = run(model, batch)
    assert "object_pose" in out["terms"]


def test_unannotated_hand_is_left_out_of_every_loss(batch):
    """A DexYCB frame without a hand annotation carries NaN hand targets: the loss and gradients stay finite.

    The sample still trains what it has (segmentation, object); the hand terms
    equal those of the annotated samples alone.
    """
    nan_batch = {k: v.clone() if torch.is_tensor(v) else v for k, v in batch.items()}
    for key in ("joints_2d", "joints_3d", "hand_pose", "hand_shape", "sdf_hand"):
        nan_batch[key][0] = float("nan")
    model = small_model()
    out = run(model, nan_batch)
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    # the hand terms are those of the annotated sample alone (same predictions)
    from hoimask.losses import heatmap_loss, mano_parameter_loss

    pred = out["predictions"]
    heat = heatmap_loss(pred["heatmaps"][1:], batch["joints_2d"][1:], (64, 64), sigma=model.config.heatmap_sigma)
    mano = mano_parameter_loss(pred["hand_rotation_6d"][1:], pred["hand_shape"][1:], batch["hand_pose"][1:],
                               batch["hand_shape"][1:])
    assert torch.allclose(out["terms"]["heatmap"], heat) and torch.allclose(out["terms"]["mano_params"], mano)
    assert bool(pred["mask"].fallback[0]) and not bool(pred["mask"].fallback[1])  # the masker fell back too
