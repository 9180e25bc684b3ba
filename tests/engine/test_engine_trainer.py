import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from engine_toy_training import ToyData, ToyModel

from hoimask._checks import FileFormatError
from hoimask.engine import NonFiniteLossError, TrainConfig, Trainer, seed_everything

HERE = Path(__file__).parent


def _trainer(tmp, steps=12, **cfg):
    seed_everything(0)
    config = TrainConfig(steps=steps, batch_size=4, lr=1e-2, warmup_steps=2, log_every=2, checkpoint_every=3,
                         keep_checkpoints=5, **cfg)
    return Trainer(ToyModel(), config, dataset=ToyData(n=20), output_dir=tmp, progress=False, tensorboard=False)


def test_loss_falls_and_files_written(tmp_path):
    t = _trainer(tmp_path, steps=60)
    hist = t.fit()
    assert [h["step"] for h in hist] == list(range(1, 61))
    first, last = sum(h["loss"] for h in hist[:5]), sum(h["loss"] for h in hist[-5:])
    assert last < 0.5 * first
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(2, 61, 2))
    assert {"loss", "lr", "terms/mse", "terms/l1", "skipped_total"} <= set(records[0])
    assert (tmp_path / "train.log").read_text().count("step 60: loss=") == 1
    assert t.checkpoints.latest().name == "step_00000060.pt"
    assert t.model.progress == pytest.approx(59 / 60)


def test_interrupted_then_resumed_run_equals_uninterrupted(tmp_path):
    full = _trainer(tmp_path / "full").fit()
    first = _trainer(tmp_path / "run")
    first.fit(stop_at=7)  # "killed" after step 7; the last checkpoint is step 6 ... plus the stop checkpoint
    # Drop the stop-point checkpoint so we genuinely resume from an earlier periodic one (step 6).
    ck = first.checkpoints
    for name in ("step_00000007.pt", "latest.json"):
        (ck.directory / name).unlink()
    resumed = _trainer(tmp_path / "run")
    assert resumed.resume() == 6
    rest = resumed.fit()
    assert [h["step"] for h in rest] == list(range(7, 13))
    assert [h["loss"] for h in rest] == [h["loss"] for h in full[6:]]
    a = resumed.model.state_dict()
    b = full and _trainer(tmp_path / "again")
    b.fit()
    assert all(torch.equal(a[k], b.model.state_dict()[k]) for k in a)
    # the resumed log reads like one run: records 2..12 once each
    steps = [json.loads(x)["step"] for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(2, 13, 2))


@pytest.mark.slow
def test_sigkill_and_resume_in_fresh_process(tmp_path):
    script = HERE / "engine_run_toy_training.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref = subprocess.run([sys.executable, str(script), str(tmp_path / "ref")], env=env, capture_output=True,
                         text=True, timeout=120)
    assert ref.returncode == 0, ref.stderr
    killed = subprocess.run([sys.executable, str(script), str(tmp_path / "run"), "--kill-at", "8"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    resumed = subprocess.run([sys.executable, str(script), str(tmp_path / "run"), "--resume"], env=env,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    ref_losses = json.loads(ref.stdout.strip().splitlines()[-1])
    got = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert [s for s, _ in got] == list(range(7, 13))  # continued from the step-6 checkpoint
    assert [x for _, x in got] == [x for s, x in ref_losses if s >= 7]


def test_resume_removes_stale_temporary_files_and_a_torn_log_line(tmp_path):
    """Issue 15 item 8: what a SIGKILL leaves (a temporary file of an atomic write, half a log line) is repaired
    on resume and reported once; the log then reads as one run and nothing else in the folder is touched."""
    full = _trainer(tmp_path / "full").fit()
    first = _trainer(tmp_path / "run")
    first.fit(stop_at=7)
    for name in ("step_00000007.pt", "latest.json"):  # resume from the periodic step-6 checkpoint
        (first.checkpoints.directory / name).unlink()
    run, ckpts = tmp_path / "run", first.checkpoints.directory
    stale = [ckpts / ".step_00000009.pt.k2j3h4g5.tmp", ckpts / ".latest.json.a_b9c8d7.tmp",
             run / ".log.jsonl.zz001122.tmp", run / ".masks.png.q1w2e3r4.tmp"]
    for path in stale:
        path.write_bytes(b"half written")
    kept = [run / "notes.tmp", run / ".notes.tmp", ckpts / ".x.TOOLONG99.tmp", run / "sub" / ".a.abcdefgh.tmp"]
    for path in kept:  # not hoimask's temporary files, or not in the two folders swept
        path.parent.mkdir(exist_ok=True)
        path.write_text("mine")
    with open(run / "log.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"step": 8, "loss": 0.1')  # the kill cut this record short
    resumed = _trainer(run)
    assert resumed.resume() == 6
    assert not any(p.exists() for p in stale)
    assert all(p.read_text() == "mine" for p in kept)
    assert len(resumed.resume_notes) == 2
    assert "removed 4 temporary file(s)" in resumed.resume_notes[0]
    assert "torn last line" in resumed.resume_notes[1] and "log.jsonl" in resumed.resume_notes[1]
    text = (run / "train.log").read_text()
    assert text.count("torn last line") == 1 and text.count("removed 4 temporary file(s)") == 1
    assert [h["loss"] for h in resumed.fit()] == [h["loss"] for h in full[6:]]
    steps = [json.loads(x)["step"] for x in (run / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(2, 13, 2))
    again = _trainer(run)  # nothing left to repair: nothing reported
    again.resume()
    assert again.resume_notes == []


@pytest.mark.slow
def test_sigkill_while_writing_a_checkpoint_then_resume(tmp_path):
    """A real SIGKILL halfway through a checkpoint write: the temporary file stays behind, the resumed run
    deletes it, says so, and continues from the previous checkpoint with the uninterrupted run's losses."""
    script = HERE / "engine_run_toy_training.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref = subprocess.run([sys.executable, str(script), str(tmp_path / "ref")], env=env, capture_output=True,
                         text=True, timeout=120)
    assert ref.returncode == 0, ref.stderr
    killed = subprocess.run([sys.executable, str(script), str(tmp_path / "run"), "--kill-while-saving", "9"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    ckpts = tmp_path / "run" / "checkpoints"
    left = [p.name for p in ckpts.iterdir() if p.name.startswith(".step_00000009.pt.")]
    assert len(left) == 1 and left[0].endswith(".tmp")
    resumed = subprocess.run([sys.executable, str(script), str(tmp_path / "run"), "--resume"], env=env,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.count("removed 1 temporary file(s)") == 1 and left[0] in resumed.stderr
    assert not (ckpts / left[0]).exists()
    ref_losses = json.loads(ref.stdout.strip().splitlines()[-1])
    got = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert [s for s, _ in got] == list(range(7, 13))  # from the step-6 checkpoint
    assert [x for _, x in got] == [x for s, x in ref_losses if s >= 7]


def test_resume_errors_never_start_fresh(tmp_path):
    t = _trainer(tmp_path)
    with pytest.raises(FileFormatError, match="no checkpoint"):
        t.resume()
    t.fit(stop_at=3)
    path = t.checkpoints.latest()
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(FileFormatError, match="truncated"):
        _trainer(tmp_path).resume()


def test_resume_refuses_a_checkpoint_with_one_changed_weight_and_no_side_file(tmp_path):
    # Issue 15: such a checkpoint used to resume silently with the changed weight.
    t = _trainer(tmp_path)
    t.fit(stop_at=6)
    path = t.checkpoints.latest()
    assert not path.with_name(path.name + ".sha256").exists()
    weight = t.model.state_dict()["net.0.weight"].numpy().tobytes()
    data = bytearray(path.read_bytes())
    at = data.find(weight[:64])
    assert at > 0
    data[at + 5] ^= 0x10  # one float of the first layer changes; the archive itself stays readable
    path.write_bytes(bytes(data))
    assert not torch.equal(torch.load(path, weights_only=True)["model"]["net.0.weight"], t.model.net[0].weight)
    with pytest.raises(FileFormatError, match=r"step_00000006\.pt.*corrupt"):
        _trainer(tmp_path).resume()


def test_resume_wrong_model_is_clear(tmp_path):
    t = _trainer(tmp_path)
    t.fit(stop_at=3)
    seed_everything(0)
    other = Trainer(ToyModel(hidden=8), t.config, dataset=ToyData(n=20), output_dir=tmp_path, progress=False,
                    tensorboard=False)
    with pytest.raises(FileFormatError, match="does not fit"):
        other.resume()


def test_nonfinite_steps_are_skipped_then_fatal(tmp_path):
    t = _trainer(tmp_path / "a", steps=8)
    t.model.nan_steps = {2, 3}
    before = None
    hist = t.fit()
    assert [h["skipped"] for h in hist] == [False, False, True, True, False, False, False, False]
    assert t.guard.skipped_total == 2
    assert all(torch.isfinite(p).all() for p in t.model.parameters())
    del before
    t = _trainer(tmp_path / "b", steps=8, max_nonfinite=3)
    t.model.nan_steps = {1, 2, 3}
    with pytest.raises(NonFiniteLossError, match="3 non-finite steps in a row"):
        t.fit()


def test_skipped_step_leaves_parameters_untouched(tmp_path):
    t = _trainer(tmp_path, steps=4)
    t.fit(stop_at=1)
    snapshot = {k: v.clone() for k, v in t.model.state_dict().items()}
    t.model.nan_steps = {1}
    t.fit(stop_at=2)
    assert all(torch.equal(snapshot[k], v) for k, v in t.model.state_dict().items())


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_runs(tmp_path, precision):
    hist = _trainer(tmp_path, steps=6, precision=precision).fit()
    assert len(hist) == 6 and all(h["loss"] == h["loss"] for h in hist)


@pytest.mark.slow
def test_torchrun_two_processes_gloo(tmp_path):
    """DDP on CPU: two ranks, gloo; replicas stay identical and rank 0 alone writes files."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(HERE / "engine_run_toy_training.py"), str(tmp_path / "ddp"), "--steps", "6"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [(tmp_path / "ddp" / f"history_rank{r}.json").read_text() for r in (0, 1)]
    assert lines[0] == lines[1]  # the averaged loss is the same on both ranks
    assert [s for s, _ in json.loads(lines[0])] == list(range(1, 7))
    assert (tmp_path / "ddp" / "checkpoints" / "step_00000006.pt").is_file()
    records = (tmp_path / "ddp" / "log.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in records] == [2, 4, 6]  # written once, by rank 0


@pytest.mark.slow
def test_torchrun_kill_and_resume_restores_every_rank(tmp_path):
    """Rank 0 is SIGKILLed at step 8 under torchrun; resuming both ranks from the step-6 checkpoint
    reproduces the uninterrupted two-process losses (each rank restores its own RNG streams)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            str(HERE / "engine_run_toy_training.py")]

    def run(out, *extra):
        return subprocess.run([*base, str(out), *extra], env=env, capture_output=True, text=True, timeout=300)

    ref = run(tmp_path / "ref")
    assert ref.returncode == 0, ref.stderr[-3000:]
    killed = run(tmp_path / "run", "--kill-at", "8")
    assert killed.returncode != 0
    resumed = run(tmp_path / "run", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    want = json.loads((tmp_path / "ref" / "history_rank0.json").read_text())
    for rank in (0, 1):
        got = json.loads((tmp_path / "run" / f"history_rank{rank}.json").read_text())
        assert [s for s, _ in got] == list(range(7, 13))
        assert [x for _, x in got] == [x for s, x in want if s >= 7]
