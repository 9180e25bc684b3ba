"""Every model in hoimask.models can learn: it overfits a handful of fixed samples.

For each model, a few fixed synthetic samples (``SyntheticHOI(seed=3)``, stacked
as the dataset returns them: RGB in [0, 1], the way ``default_collate`` or any
user's pipeline gives them) are fitted with one fixed mask: *every* loss term
must fall at least 10x, and the predictions must differ across the samples as
the targets do (a head that predicts the batch mean fails, as MaskHOI's
parameter heads did before the model normalised its own input).
"""

from __future__ import annotations

import pytest
import torch
from learnability_checks import assert_varies_like_targets

from hoimask.data import SyntheticHOI
from hoimask.models import MAE, MaskHOI, PoseRegressionModel

#: Steps of the overfit loops (each model fits in well under 10x this many in practice).
STEPS = 300


@pytest.fixture(scope="module")
def samples() -> dict[str, torch.Tensor]:
    ds = SyntheticHOI(num_samples=4, image_size=128, seed=3, num_sdf_points=256, num_object_points=64,
                      hand_only_prob=0.0, not_grasped_prob=0.0)
    return torch.utils.data.default_collate([ds[i] for i in range(4)])


def _fit(model: torch.nn.Module, batch, *, lr: float, steps: int = STEPS, **forward) -> tuple[dict, dict, dict]:
    """Train on ``batch``; return the first terms, the final terms and the final predictions."""
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
    first = None
    for _ in range(steps):
        out = model(batch, **forward)
        first = first or {k: float(v.detach()) for k, v in out["terms"].items()}
        opt.zero_grad()
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    model.eval()
    with torch.no_grad():
        out = model(batch, **forward)
    return first, {k: float(v) for k, v in out["terms"].items()}, out["predictions"]


def _assert_every_term_falls(first: dict, last: dict, factor: float = 10.0) -> None:
    slow = {k: (round(first[k], 4), round(last[k], 4)) for k in first if not last[k] * factor <= first[k]}
    assert not slow, f"terms that fell less than {factor}x (first, last): {slow}"


@pytest.mark.slow
def test_maskhoi_learns_every_term_on_raw_rgb_batches(samples):
    from hoimask.geometry import matrix_to_rotation_6d, rotation_6d_to_matrix

    model = MaskHOI.from_preset("tiny")
    mask = model.mask(samples, generator=torch.Generator().manual_seed(0))
    first, last, pred = _fit(model, samples, lr=1e-3, mask=mask)
    _assert_every_term_falls(first, {k: v for k, v in last.items()})
    target_6d = matrix_to_rotation_6d(samples["object_rotation"])
    pred_6d = matrix_to_rotation_6d(rotation_6d_to_matrix(pred["object_rotation_6d"]))
    assert_varies_like_targets(pred_6d, target_6d, "object rotation")
    assert_varies_like_targets(pred["object_translation"], samples["object_translation"], "object translation")
    from hoimask.geometry import axis_angle_to_matrix

    global_6d = matrix_to_rotation_6d(axis_angle_to_matrix(samples["hand_pose"][:, 0]))
    pred_global = matrix_to_rotation_6d(rotation_6d_to_matrix(pred["hand_rotation_6d"][:, 0]))
    assert_varies_like_targets(pred_global, global_6d, "global hand rotation")


@pytest.mark.slow
def test_mae_learns_on_raw_rgb_batches(samples):
    model = MAE.from_preset("tiny")
    mask = model.masker(4, model.encoder.grid_size, generator=torch.Generator().manual_seed(0))
    first, last, _ = _fit(model, samples, lr=1e-3, mask=mask)
    _assert_every_term_falls(first, last)


@pytest.mark.slow
def test_pose_regression_model_learns_every_term(samples):
    model = PoseRegressionModel()
    first, last, pred = _fit(model, samples, lr=5e-4)
    _assert_every_term_falls(first, last)
    joints = samples["joints_3d"]
    assert_varies_like_targets(pred["joints"] - pred["joints"][:, :1], joints - joints[:, :1], "root-relative joints")
    assert_varies_like_targets(pred["root"], joints[:, 0], "wrist position")
    assert_varies_like_targets(pred["object_translation"], samples["object_translation"], "object translation")


def test_models_refuse_normalised_images(samples):
    from hoimask._checks import ValueRangeError
    from hoimask.data import normalize_image

    batch = {**samples, "image": normalize_image(samples["image"])}
    for model in (MaskHOI.from_preset("tiny"), MAE.from_preset("tiny"), PoseRegressionModel()):
        with pytest.raises(ValueRangeError, match=r"RGB in \[0, 1\]"):
            model(batch)


def _handmim_gaps(out: dict) -> dict[str, float]:
    """Each HandMIM term above its floor: a distillation cross-entropy minus its target's entropy (the KL
    divergence the student can remove; the teacher's entropy is no student's to lower), L_recon as it is."""
    floor = out["target_entropy"]
    return {k: float(v.detach()) - float(floor.get(k, 0.0)) for k, v in out["terms"].items()}


@pytest.mark.slow
def test_handmim_learns_every_term_with_a_fixed_generator(samples):
    """The four images with the same views and masks every step (a generator seeded alike each time) and the
    teacher held where it starts (no EMA step): the distillation gaps of L_pose and L_patch fall 10x, L_recon 4x.

    Measured (seed 0, 300 steps): pose gap 4.41 -> 0.009, patch gap 1.90 -> 0.025, L_recon 1.02 -> 0.21 (4.8x). The
    L1 of the linear pyramid decoder (eq. 8 has no activation) levels off near 0.2 here — a wider decoder
    (256, 128, 64, 32) reached 0.25 and lr 3e-3 0.32 by step 150 (default 0.29) — so L_recon is held to 4x, not 10x (docs/models.md)."""
    from hoimask.models import HandMIM

    torch.manual_seed(0)
    model = HandMIM.from_preset("tiny")
    batch = {"image": samples["image"]}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.0)
    first = None
    for _ in range(STEPS):
        out = model(batch, generator=torch.Generator().manual_seed(0))
        first = first or _handmim_gaps(out)
        opt.zero_grad()
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    assert set(first) == {"pose", "patch", "recon"}
    model.eval()
    with torch.no_grad():
        last = _handmim_gaps(model(batch, generator=torch.Generator().manual_seed(0)))
    _assert_every_term_falls({k: v for k, v in first.items() if k != "recon"}, last)
    _assert_every_term_falls({"recon": first["recon"]}, last, factor=4.0)
