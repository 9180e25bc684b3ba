"""HandMIM: outputs and terms, masks, the EMA teacher, the loss switches, resumable state, export."""

from __future__ import annotations

import pytest
import torch

from hoimask._checks import DTypeError, ShapeError, ValueRangeError
from hoimask.models import HANDMIM_PRESETS, HandMIM, HandMIMConfig, PoseRegressionModel
from hoimask.nn import VIT_CONFIGS, teacher_momentum

# 32 px views, patch 8: a 4x4 grid (N = 16); every size small so a forward takes milliseconds
SMALL = dict(img_size=32, patch_size=8, embed_dim=32, depth=4, num_heads=2, head_hidden_dim=32,
             head_bottleneck_dim=16, head_out_dim=16, decoder_channels=(16, 8, 8, 8), total_steps=10,
             temperature_warmup_steps=4)
TERMS = {"pose", "patch", "recon"}


def small_model(**kw) -> HandMIM:
    torch.manual_seed(0)
    return HandMIM.from_preset("tiny", **{**SMALL, **kw})


def make_batch(B: int = 2, size: int = 48, seed: int = 0) -> dict:
    return {"image": torch.rand(B, 3, size, size, generator=torch.Generator().manual_seed(seed))}


def run(model, batch, seed=0, **kw):
    return model(batch, generator=torch.Generator().manual_seed(seed), **kw)


def test_outputs_terms_and_prediction_shapes():
    model = small_model()
    out = run(model, make_batch(3))
    assert set(out["terms"]) == TERMS and set(out["target_entropy"]) == {"pose", "patch"}
    total = sum(model.config.weights[k] * out["terms"][k] for k in TERMS)
    torch.testing.assert_close(out["loss"], total)
    for name in ("pose", "patch"):  # a cross-entropy is at least its target's entropy
        assert out["terms"][name] >= out["target_entropy"][name] - 1e-4
    p = out["predictions"]
    assert p["views"].shape == (2, 3, 3, 32, 32) and 0 <= p["views"].min() and p["views"].max() <= 1
    assert p["affines"].shape == (2, 3, 3, 3) and p["affines"].dtype == torch.float64
    assert p["masks"].shape == (2, 3, 16) and p["masks"].dtype == torch.bool
    assert p["reconstruction"].shape == (2, 3, 3, 32, 32)


def test_same_generator_same_output_and_gradients_reach_the_student_only():
    model = small_model().eval()  # eval: the centres stay, so both calls see the same targets
    batch = make_batch()
    a, b = run(model, batch, 3), run(model, batch, 3)
    torch.testing.assert_close(a["loss"], b["loss"])
    assert not torch.equal(run(model, batch, 4)["predictions"]["views"], a["predictions"]["views"])
    a["loss"].backward()
    student = model.student.backbone
    for param in (student.encoder.blocks[0].attn.qkv.weight, student.encoder.patch_embed.proj.weight,
                  student.mask_token, model.student.head.mlp[0].weight, model.decoder.fuse[0].weight):
        assert param.grad is not None and param.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in model.teacher.parameters())


def test_each_view_and_sample_draws_its_own_mask_ratio():
    model = small_model(mask_ratio=(0.1, 0.9))
    masks = model.draw_masks(8, (4, 4), generator=torch.Generator().manual_seed(0))  # (2, 8, 16)
    counts = masks.sum(-1)
    assert masks.shape == (2, 8, 16) and len(counts.unique()) > 2
    assert counts.min() >= 1 and counts.max() <= 15  # floor(16 (1 - r)) kept, r in [0.1, 0.9]
    fixed = small_model(mask_ratio=0.5).draw_masks(3, (4, 4), generator=torch.Generator().manual_seed(0))
    assert (fixed.sum(-1) == 8).all()


def test_masked_student_sees_mask_tokens_and_the_teacher_the_full_view():
    model = small_model().eval()
    batch = make_batch()
    none = torch.zeros(2, 2, 16, dtype=torch.bool)
    out = run(model, batch, masks=none)
    # nothing masked: the patch term has no masked patch to score, the reconstruction none either
    assert float(out["terms"]["patch"].detach()) == 0.0 and float(out["terms"]["recon"].detach()) == 0.0
    masked = run(model, batch, masks=torch.ones(2, 2, 16, dtype=torch.bool))
    assert masked["terms"]["patch"] > 0 and masked["terms"]["recon"] > 0


def test_update_teacher_is_the_ema_formula_on_every_parameter():
    model = small_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    run(model, make_batch())["loss"].backward()
    opt.step()  # the student moves away from the teacher
    student = dict(model.student.named_parameters())
    before = {k: v.detach().clone() for k, v in model.teacher.named_parameters()}
    assert any(not torch.equal(before[k], student[k]) for k in before)
    m = model.update_teacher(3)
    assert m == teacher_momentum(3, 10, base=0.996) and 0.996 < m < 1
    for name, param in model.teacher.named_parameters():
        expected = before[name].clone().mul_(m).add_(student[name].detach(), alpha=1 - m)
        assert torch.equal(param, expected), name
    assert int(model.ema_steps) == 4
    assert model.update_teacher() == teacher_momentum(4, 10, base=0.996)  # None: continue the count
    assert int(model.ema_steps) == 5
    with pytest.raises(ValueRangeError, match="step"):
        model.update_teacher(-1)


def test_teacher_has_no_grad_after_backward_and_optimizer_step():
    model = small_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for step in range(2):
        out = run(model, make_batch(), seed=step)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        model.update_teacher(step)
    assert all(p.grad is None and not p.requires_grad for p in model.teacher.parameters())
    assert all(p.requires_grad for n, p in model.student.named_parameters() if "pos_embed" not in n
               and "weight_g" not in n)


@pytest.mark.parametrize("switch", ["use_pose", "use_patch", "use_recon"])
def test_each_switch_removes_its_term(switch):
    model = small_model(**{switch: False})
    out = run(model, make_batch())
    name = switch.removeprefix("use_")
    assert set(out["terms"]) == TERMS - {name}
    torch.testing.assert_close(out["loss"], sum(out["terms"].values()))
    assert name not in out["target_entropy"]
    if switch == "use_recon":
        assert model.decoder is None and "reconstruction" not in out["predictions"]


def test_reconstruction_alone_needs_no_teacher_and_no_loss_is_refused():
    model = small_model(use_pose=False, use_patch=False)
    assert model.teacher is None and model.student.head is None
    out = run(model, make_batch())
    assert set(out["terms"]) == {"recon"}
    assert model.update_teacher(0) == 1.0 and int(model.ema_steps) == 1
    with pytest.raises(ValueRangeError, match="no loss"):
        small_model(use_pose=False, use_patch=False, use_recon=False)


def test_loss_weights_are_applied_and_checked():
    model = small_model(weights={"pose": 0.5, "recon": 2.0})
    assert model.config.weights == {"pose": 0.5, "patch": 1.0, "recon": 2.0}
    out = run(model.eval(), make_batch())
    t = out["terms"]
    torch.testing.assert_close(out["loss"], 0.5 * t["pose"] + t["patch"] + 2.0 * t["recon"])
    with pytest.raises(ValueRangeError, match="unknown names"):
        HandMIMConfig(weights={"pixel": 1.0})
    with pytest.raises(ValueRangeError, match="weights"):
        HandMIMConfig(weights={"pose": -1.0})


@pytest.mark.parametrize("bad, error", [
    (dict(mask_ratio=(0.5, 0.1)), ValueRangeError),
    (dict(mask_ratio=1.0), ValueRangeError),
    (dict(mask_ratio="half"), DTypeError),
    (dict(head_out_dim=15), ValueRangeError),
    (dict(img_size=36), ValueRangeError),  # not a multiple of patch_size 8
    (dict(depth=2), ValueRangeError),  # four pyramid taps need four blocks
    (dict(use_pose=1), DTypeError),
])
def test_config_refuses_bad_values(bad, error):
    with pytest.raises(error):
        HandMIMConfig(**{**SMALL, **bad})
    with pytest.raises(ValueRangeError, match="unknown overrides"):
        HandMIM.from_preset("tiny", maskratio=0.5)


def test_centres_move_in_training_and_resume_with_the_state_dict():
    model = small_model()
    batch = make_batch()
    assert float(model.pose_centering.center.abs().sum()) == 0.0
    run(model.eval(), batch)
    assert float(model.pose_centering.center.abs().sum()) == 0.0  # eval: no update
    run(model.train(), batch)
    model.update_teacher(0)
    assert float(model.pose_centering.center.abs().sum()) > 0 and float(model.patch_centering.center.abs().sum()) > 0
    state = model.state_dict()
    assert {"ema_steps", "pose_centering.center", "patch_centering.center"} <= set(state)
    assert any(k.startswith("teacher.") for k in state) and any(k.startswith("student.") for k in state)
    fresh = small_model()
    fresh.load_state_dict(state)
    assert int(fresh.ema_steps) == 1
    torch.testing.assert_close(fresh.pose_centering.center, model.pose_centering.center)
    torch.testing.assert_close(run(fresh.eval(), batch, 5)["loss"], run(model.eval(), batch, 5)["loss"])


def test_precomputed_views_are_used():
    from hoimask.data import TwoViewTransform, collate

    g = torch.Generator().manual_seed(0)
    batch = collate([TwoViewTransform(32)({"image": torch.rand(3, 48, 48)}, generator=g) for _ in range(2)])
    out = run(small_model(), batch)
    torch.testing.assert_close(out["predictions"]["views"][0], batch["view_a"])
    torch.testing.assert_close(out["predictions"]["affines"][1], batch["affine_b"].double())


def test_bad_inputs_raise_typed_errors_naming_the_argument():
    model = small_model()
    from hoimask.data import normalize_image

    with pytest.raises(ValueRangeError, match=r"RGB in \[0, 1\]"):
        run(model, {"image": normalize_image(make_batch()["image"])})
    with pytest.raises(ShapeError, match="masks"):
        run(model, make_batch(), masks=torch.zeros(2, 2, 15, dtype=torch.bool))
    with pytest.raises(DTypeError, match="masks"):
        run(model, make_batch(), masks=torch.zeros(2, 2, 16))
    with pytest.raises(ShapeError, match="image"):
        model({"picture": torch.rand(2, 3, 32, 32)})


def test_encoder_state_dict_loads_into_the_pose_regression_model():
    model = HandMIM.from_preset("tiny")
    weights = model.encoder_state_dict()
    assert not any("mask_token" in k for k in weights)  # the mask token stays with the pre-training wrapper
    encoder_config = {k: getattr(model.config, k) for k in ("img_size", "patch_size", "embed_dim", "depth",
                                                             "num_heads")}
    pose = PoseRegressionModel(**encoder_config)
    pose.load_encoder(weights)
    for k, v in pose.encoder.state_dict().items():
        assert torch.equal(v, weights[k]), k


def test_presets_match_the_paper_and_maskhois_tiny_encoder():
    from hoimask.models import MASKHOI_PRESETS
    from hoimask.models.handmim_config import resolve_handmim_preset

    tiny = resolve_handmim_preset("tiny", {})
    for key in ("img_size", "patch_size", "embed_dim", "depth", "num_heads"):
        assert getattr(tiny, key) == MASKHOI_PRESETS["tiny"][key], key
    for name, vit in (("small", "vit_small"), ("base", "vit_base"), ("large", "vit_large")):
        cfg, ref = resolve_handmim_preset(name, {}), VIT_CONFIGS[vit]
        assert (cfg.img_size, cfg.patch_size, cfg.embed_dim, cfg.depth, cfg.num_heads) == (
            ref.img_size, ref.patch_size, ref.embed_dim, ref.depth, ref.num_heads), name
        assert cfg.mask_ratio == (0.1, 0.5) and cfg.head_out_dim == 256 and cfg.head_hidden_dim == 2048
    assert set(HANDMIM_PRESETS) == {"tiny", "small", "base", "large"}
