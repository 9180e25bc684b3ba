"""examples/train_handmim.py: flags, a tiny run whose encoder.pt fine-tunes, and resume equality."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from hoimask.engine import load_checkpoint

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FAST = ["--batch-size", "2", "--num-samples", "4", "--log-every", "1", "--checkpoint-every", "2", "--no-progress",
        "--no-tensorboard"]
TINY_ENCODER = dict(img_size=128, patch_size=16, embed_dim=192, depth=4, num_heads=3)


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script():
    return _load("train_handmim")


def test_help_documents_every_flag(capsys, script):
    with pytest.raises(SystemExit) as info:
        script.main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--preset", "--dataset", "--data-root", "--mano-dir", "--init", "--output-dir", "--steps",
                 "--batch-size", "--lr", "--precision", "--resume", "--overwrite", "--mask-ratio", "--no-pose",
                 "--no-patch", "--no-recon", "--pose-weight", "--patch-weight", "--recon-weight",
                 "--teacher-momentum", "--seed", "--device", "--no-progress"):
        assert flag in text, flag
    for preset in ("tiny", "small", "base", "large"):
        assert preset in text


@pytest.mark.parametrize("argv, message", [
    (["--mask-ratio", "0.5,0.1"], "argument --mask-ratio: expected R or LOW,HIGH"),
    (["--mask-ratio", "1"], "argument --mask-ratio: expected R or LOW,HIGH"),
    (["--mask-ratio", "a,b"], "argument --mask-ratio: expected R or LOW,HIGH"),
    (["--no-pose", "--no-patch", "--no-recon"], "argument --no-recon: --no-pose, --no-patch and --no-recon"),
    (["--no-patch", "--patch-weight", "2"], "argument --patch-weight: L_patch is switched off by --no-patch"),
    (["--pose-weight", "-1"], "argument --pose-weight: expected"),
    (["--teacher-momentum", "1.5"], "argument --teacher-momentum: expected"),
    (["--preset", "huge"], "argument --preset: invalid choice"),
    (["--steps", "0"], "argument --steps: expected an integer >= 1"),
    (["--dataset", "freihand"], "argument --data-root: --dataset freihand needs"),
])
def test_bad_flags_give_one_line_usage_errors_naming_the_flag(capsys, script, argv, message):
    with pytest.raises(SystemExit) as info:
        script.main(argv)
    assert info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], errors


def test_flags_reach_the_model(script):
    args = script.parse_args(["--no-pose", "--mask-ratio", "0.2,0.4", "--recon-weight", "2",
                              "--teacher-momentum", "0.99"])
    model, report = script.build_model(args, 80)
    cfg = model.config
    assert report is None and not cfg.use_pose and cfg.use_patch and cfg.use_recon
    assert cfg.mask_ratio == (0.2, 0.4) and model.masker.ratio_range == (0.2, 0.4)
    assert cfg.weights == {"pose": 1.0, "patch": 1.0, "recon": 2.0}
    assert cfg.teacher_momentum == 0.99 and cfg.total_steps == 80
    assert cfg.temperature_warmup_steps == 10  # the preset's 30, at most an eighth of the run
    assert script.parse_args(["--mask-ratio", "0.3"]).mask_ratio == (0.3, 0.3)
    paper = script.recipe("base")
    assert (paper.lr, paper.batch_size, paper.steps) == (2e-3, 128, 400 * 217)
    assert script.recipe("large").steps == 250 * 217


def test_tiny_run_writes_an_encoder_that_finetune_accepts(tmp_path, capsys, script):
    out = tmp_path / "pre"
    assert script.main([*FAST, "--steps", "2", "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in ("checkpoints", "encoder", "logs", "views", "loss curves"):
        assert name in printed
    assert (out / "views.png").is_file() and (out / "loss_curves.png").is_file()
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2]
    record = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    assert {"terms/pose", "terms/patch", "terms/recon"} <= set(record)
    checkpoint = load_checkpoint(out / "checkpoints" / "step_00000002.pt")
    assert int(checkpoint["model"]["ema_steps"]) == 2  # the teacher moved after each of the two steps
    assert "pose_centering.center" in checkpoint["model"] and "teacher.head.last_layer.weight_v" in checkpoint["model"]

    finetune = _load("finetune")
    state = finetune.read_hoimask_checkpoint(out / "encoder.pt")
    assert state["step"] == 2 and state["encoder_config"] == TINY_ENCODER
    args = finetune.parse_args(["--encoder", str(out / "encoder.pt"), "--output-dir", str(tmp_path / "ft")])
    model, origin = finetune.build_model(args)
    assert "pre-trained 2 steps" in origin
    student = {k[len("student.backbone.encoder."):]: v for k, v in checkpoint["model"].items()
               if k.startswith("student.backbone.encoder.")}
    for k, v in model.encoder.state_dict().items():
        assert torch.equal(v, state["encoder"][k]) and torch.equal(v, student[k]), k


def test_resume_reproduces_losses_teacher_and_centres(tmp_path, script):
    """The teacher moves inside the step (HandMIMTrainer), so a checkpoint holds it in step with the student."""
    from hoimask.data import SyntheticHOI, collate
    from hoimask.engine import MemoryCache, TrainConfig, seed_everything
    from hoimask.models import HandMIM

    data = MemoryCache(SyntheticHOI(6, image_size=64, seed=0, num_sdf_points=0, num_object_points=16))
    config = TrainConfig(steps=4, batch_size=2, lr=1e-3, warmup_steps=1, checkpoint_every=2, log_every=1)

    def trainer(out):
        seed_everything(0)
        model = HandMIM.from_preset("tiny", img_size=64, total_steps=4, temperature_warmup_steps=2)
        return script.HandMIMTrainer(model, config, dataset=data, output_dir=out, collate_fn=collate,
                                     progress=False, tensorboard=False)

    full_run = trainer(tmp_path / "full")
    full = [h["loss"] for h in full_run.fit()]
    trainer(tmp_path / "run").fit(stop_at=2)
    resumed = trainer(tmp_path / "run")
    assert resumed.resume() == 2
    assert [h["loss"] for h in resumed.fit()] == full[2:]
    assert len(set(full)) == 4
    a, b = full_run.model.state_dict(), resumed.model.state_dict()
    assert int(a["ema_steps"]) == 4
    for k in a:
        assert torch.equal(a[k], b[k]), k
