"""benchmarks/pretraining_ablation.py: every variant pre-trains the encoder one fine-tuning head loads; the fine-tuning
is finetune.py's tiny pose recipe on scenes framed as finetune.py frames them; smoke runs HandMIM."""

from __future__ import annotations

import json

import pytest
import torch
from bench_scripts import load_script

from hoimask.data import SyntheticHOI, collate
from hoimask.engine import AugmentedViews, TrainConfig, resolve_precision
from hoimask.models import HandMIM, PoseRegressionModel


def _script():
    return load_script("pretraining_ablation")


def test_every_pretraining_variant_has_the_encoder_the_fine_tuning_head_loads():
    bench = _script()
    reference = PoseRegressionModel().encoder.state_dict()
    for variant in ("mae", "maskhoi", "handmim"):
        model, _ = bench.build_pretraining(variant, 10)
        encoder = model.encoder_state_dict()
        assert {k: v.shape for k, v in encoder.items()} == {k: v.shape for k, v in reference.items()}, variant
        PoseRegressionModel().load_encoder(encoder)  # raises on a mismatch
    handmim, trainer_class = bench.build_pretraining("handmim", 40)
    assert isinstance(handmim, HandMIM) and trainer_class is bench._HandMIMTrainer
    assert handmim.config.total_steps == 40 and handmim.config.temperature_warmup_steps == 5  # ceil(40 / 8)
    assert bench.build_pretraining("handmim", 1000)[0].config.temperature_warmup_steps == 30  # the preset's
    assert "handmim" in bench.PRESETS["smoke"]["variants"] and "handmim" in bench.PRESETS["gpu"]["variants"]


def test_handmim_pretraining_moves_the_teacher_after_every_step(tmp_path):
    bench = _script()
    torch.manual_seed(0)
    model, trainer_class = bench.build_pretraining("handmim", 2)
    before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    config = TrainConfig(steps=2, batch_size=2, lr=1e-3, warmup_steps=1, log_every=1, checkpoint_every=2, seed=0)
    data = SyntheticHOI(2, seed=1, image_size=128, num_sdf_points=16, num_object_points=16)
    trainer_class(model, config, dataset=data, output_dir=tmp_path, collate_fn=collate, tensorboard=False).fit()
    assert int(model.ema_steps) == 2
    after = model.teacher.state_dict()
    student = model.student.state_dict()
    moved = [k for k in before if before[k].is_floating_point() and not before[k].equal(after[k])]
    assert moved and all(not after[k].equal(student[k]) for k in moved)  # moved towards the student, not onto it


@pytest.mark.slow
def test_smoke_run_fine_tunes_the_handmim_encoder_beside_none(tmp_path, capsys):
    out = tmp_path / "ablation.json"
    argv = ["--preset", "smoke", "--variants", "none", "handmim", "--pool", "8", "--labelled", "8",
            "--test-per-bin", "1", "--pretrain-steps", "2", "--finetune-steps", "2", "--json", str(out)]
    assert _script().main(argv) == 0
    printed = capsys.readouterr().out
    assert "pre-train handmim" in printed and "fine-tune handmim@1" in printed
    table = [line for line in printed.splitlines() if line.startswith("| ") and not line.startswith("| variant")]
    assert [line.split("|")[1].strip() for line in table] == ["none", "handmim", "constant"]
    assert table[0].endswith("| 1.00 | 1.00 | 1.00 | 1.00 |")  # none / none
    written = json.loads(out.read_text())
    assert written["seeds_done"] == [0] and written["done"] == [[0, "none"], [0, "handmim"]]
    results = written["results"]
    for split in ("0-25%", "25-50%", "50-75%", "75-100%"):
        values = results[f"1/handmim/{split}"]
        assert len(values["rr_mje"]) == 1 and values["rr_mje"][0] > 0 and values["oce"][0] >= 0
        assert written["per_seed"][f"1/handmim/{split}"]["rr_mje"] == {"0": values["rr_mje"][0]}
        assert len(results[f"1/constant/{split}"]["rr_mje"]) == 1  # the constants once per seed
    # The same file again: refused without --resume / --overwrite; --resume runs nothing that is done ...
    with pytest.raises(SystemExit):
        _script().main(argv)
    assert "--resume" in capsys.readouterr().err
    assert _script().main([*argv, "--resume"]) == 0
    again = capsys.readouterr().out
    assert "resuming" in again and "pre-train handmim" not in again and "fine-tune none" not in again
    assert json.loads(out.read_text())["results"] == results
    # ... and a resumed run with other settings is refused, naming them.
    with pytest.raises(SystemExit):
        _script().main([*argv[:-4], "--finetune-steps", "3", "--json", str(out), "--resume"])
    assert "finetune_steps: 2 there, 3 now" in capsys.readouterr().err


def test_fine_tuning_is_the_tiny_pose_recipe_of_finetune_py():
    bench = _script()
    finetune = bench.FINETUNE
    args = bench.parse_args(["--preset", "cpu"])
    recipe = finetune.RECIPES["tiny"]
    assert (args.finetune_lr, args.layer_decay, args.augment_views, args.crop_padding) == (
        recipe["lr"], recipe["layer_decay"], recipe["augment_views"], recipe["crop_padding"])
    config = bench.finetune_config(args, seed=2)
    reference = finetune.parse_args(["--no-pretrain", "--output-dir", "x", "--steps", str(args.finetune_steps)])
    assert config.lr == recipe["lr"] and config.layer_decay == recipe["layer_decay"] and config.seed == 2
    assert config.precision == resolve_precision("auto", "cpu") and config.batch_size == args.batch_size
    assert config.warmup_steps == 20 and config.weight_decay == 0.05  # the tiny preset's, as finetune.py's runs
    model, _ = finetune.build_model(reference)
    ours = bench.build_finetuning_model()
    assert ours.encoder_config == model.encoder_config
    assert ours.heatmap_sigma == model.heatmap_sigma == 0.75 and ours.loss_weights == model.loss_weights


def test_scenes_are_cropped_around_hand_and_object_unless_told_not_to():
    bench = _script()
    cropped, whole = bench.scenes(2, 4, 1.3, num_sdf_points=4), bench.scenes(2, 4, None, num_sdf_points=4)
    assert cropped[0]["image"].shape == whole[0]["image"].shape == (3, 128, 128)
    assert torch.equal(cropped[1]["joints_3d"], whole[1]["joints_3d"])  # the same scene, framed differently
    assert cropped[1]["K"][0, 0] > whole[1]["K"][0, 0]  # the crop magnifies the hand
    assert bench.parse_args(["--no-crop"]).no_crop and bench.parse_args([]).crop_padding == 1.3


def test_fine_tuning_sees_augmented_views_of_the_labelled_scenes(tmp_path, monkeypatch):
    bench = _script()
    seen = {}

    class Recorder(bench.Trainer):
        def __init__(self, model, config, *, dataset, **kwargs):
            seen["dataset"], seen["config"] = dataset, config
            super().__init__(model, config, dataset=dataset, **kwargs)

    monkeypatch.setattr(bench, "Trainer", Recorder)
    args = bench.parse_args(["--preset", "smoke", "--finetune-steps", "1", "--augment-views", "3", "--batch-size", "2"])
    data = bench.scenes(2, 4, 1.3, num_sdf_points=4)
    bench.finetune(None, data, args, 0, tmp_path, "none@1")
    assert isinstance(seen["dataset"], AugmentedViews) and len(seen["dataset"]) == 6
    assert seen["config"].steps == 1
