"""hoimask.engine.flags: flag values with ranges, errors naming flags, --help defaults, the Ctrl-C hint."""

from __future__ import annotations

import argparse

import pytest

from hoimask._checks import FileFormatError, ValueRangeError
from hoimask.engine import CheckpointManager, OutputDirError, TrainConfig
from hoimask.engine.cli import exit_with_usage_errors
from hoimask.engine.flags import (
    HelpFormatter,
    RunInterrupted,
    errors_name_flag,
    errors_name_flags,
    existing_dir,
    existing_file,
    explain_interrupt,
    first_process_on_node,
    integer,
    interrupt_message,
    missing_tensorboard,
    one_line,
    output_file,
    output_folder,
    quiet_on_other_processes,
    real,
    rerun_command,
    tensorboard_note,
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="demo", formatter_class=HelpFormatter)
    p.add_argument("--steps", type=integer(low=1), default=10, help="optimisation steps")
    p.add_argument("--lr", type=real(low=0, low_open=True), help="learning rate (default: the preset's)")
    p.add_argument("--seed", type=integer(low=0), default=0, help="seed")
    p.add_argument("--mask-ratio", type=real(0, 1, high_open=True), default=0.75, help="mask ratio")
    p.add_argument("--output-dir", type=output_folder, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue")
    p.add_argument("--overwrite", action="store_true", help="replace")
    return p


@pytest.mark.parametrize("argv, line", [
    (["--steps", "0"], "argument --steps: expected an integer >= 1, got 0"),
    (["--steps", "2.5"], "argument --steps: expected an integer >= 1, got '2.5'"),
    (["--lr", "0"], "argument --lr: expected a number > 0, got 0"),
    (["--lr", "nan"], "argument --lr: expected a number > 0, got nan"),
    (["--lr", "x"], "argument --lr: expected a number > 0, got 'x'"),
    (["--mask-ratio", "1"], "argument --mask-ratio: expected a number in [0, 1), got 1"),
    (["--mask-ratio", "-0.1"], "argument --mask-ratio: expected a number in [0, 1), got -0.1"),
])
def test_values_out_of_range_are_one_usage_line_naming_flag_and_range(capsys, argv, line):
    with pytest.raises(SystemExit) as info:
        _parser().parse_args(argv)
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"demo: error: {line}"


def test_values_in_range_are_parsed():
    args = _parser().parse_args(["--steps", "1", "--lr", "1e-4", "--mask-ratio", "0", "--seed", "0"])
    assert (args.steps, args.lr, args.mask_ratio, args.seed) == (1, 1e-4, 0.0, 0)
    assert integer(1, 3)("3") == 3 and real(0, 1, low_open=True)("1") == 1.0


def test_paths_of_the_wrong_kind_are_refused(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("x")
    with pytest.raises(argparse.ArgumentTypeError, match="does not exist"):
        existing_file(str(tmp_path / "missing.pt"))
    with pytest.raises(argparse.ArgumentTypeError, match="which is a directory"):
        existing_file(str(tmp_path))
    with pytest.raises(argparse.ArgumentTypeError, match="which is a file"):
        existing_dir(str(text))
    with pytest.raises(argparse.ArgumentTypeError, match="which is a directory"):
        output_file(str(tmp_path))
    with pytest.raises(argparse.ArgumentTypeError, match="'.*notes.txt' is a file"):
        output_file(str(text / "out.json"))
    with pytest.raises(argparse.ArgumentTypeError, match="which is a file"):
        output_folder(str(text))
    assert existing_file(str(text)) == text and existing_dir(str(tmp_path)) == tmp_path
    assert output_folder(str(tmp_path / "new" / "run")) == tmp_path / "new" / "run"


def test_help_shows_each_default_once():
    text = " ".join(_parser().format_help().split())
    assert "optimisation steps (default: 10)" in text
    assert "learning rate (default: the preset's)" in text  # stated by hand: not appended again
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "seed (default: 0)" in text  # 0 is a default, not an off switch


def test_library_errors_are_rephrased_with_the_flag():
    parser = _parser()
    with pytest.raises(ValueRangeError, match=r"^argument --steps: expected an int >= 1, got 0$"):
        with errors_name_flags(parser):
            TrainConfig(steps=0)
    with pytest.raises(ValueRangeError, match=r"^argument --mask-ratio: expected"):
        with errors_name_flags(parser):
            raise ValueRangeError("MaskHOIConfig(): argument 'mask_ratio' expected a value in [0, 1), got 1.5")
    with pytest.raises(ValueRangeError, match=r"^TrainConfig\(\): argument 'weight_decay'"):  # not a flag: unchanged
        with errors_name_flags(parser):
            TrainConfig(weight_decay=-1.0)


def test_errors_about_a_flags_file_name_the_flag_and_keep_their_type(tmp_path):
    with pytest.raises(FileFormatError, match=r"^argument --encoder: checkpoint 'x' is corrupt") as info:
        with errors_name_flag("--encoder"):
            raise FileFormatError("load_checkpoint(): checkpoint 'x' is corrupt")
    assert isinstance(info.value.__cause__, FileFormatError)
    with pytest.raises(OutputDirError, match=r"^argument --output-dir: output dir"):  # subclass kept
        with errors_name_flag("--output-dir"):
            raise OutputDirError("prepare_output_dir(): output dir 'x' already exists")
    with pytest.raises(FileFormatError, match=r"^argument --out: .*denied: '/nowhere'"):
        with errors_name_flag("--out"):
            raise PermissionError(13, "Permission denied", "/nowhere")
    with pytest.raises(ValueRangeError, match=r"^argument --mano-dir: x$"):  # the inner flag wins
        with errors_name_flag("--encoder"), errors_name_flag("--mano-dir"):
            raise ValueRangeError("MANOLayer(): x")


def test_one_line_joins_listed_details():
    assert one_line("plain") == "plain"
    assert one_line("2 tensors differ:\n  a: (1,) vs (2,)\n  b: (3,) vs (4,)") == \
        "2 tensors differ: a: (1,) vs (2,); b: (3,) vs (4,)"
    assert one_line("head:\n" + "\n".join(f"k{i}" for i in range(6)), most=2) == "head: k0; k1; ... (4 more)"


def test_exit_with_usage_errors_prints_one_line_and_returns_2(capsys):
    def main():
        raise FileFormatError("argument --init: 3 tensors have mismatched shapes:\n  a\n  b\n  c")

    assert exit_with_usage_errors(main) == 2
    err = capsys.readouterr().err
    assert err == "error: argument --init: 3 tensors have mismatched shapes: a; b; c\n"
    assert exit_with_usage_errors(lambda: None) == 0


def test_rerun_command_drops_and_adds_flags_also_abbreviated():
    options = ["--steps", "--output-dir", "--overwrite", "--resume"]
    cmd = rerun_command("train.py", ["--steps", "5", "--over", "--output-dir", "runs/a b"], options=options,
                        drop=["--overwrite", "--resume"], add=["--resume"])
    assert cmd == "python train.py --steps 5 --output-dir 'runs/a b' --resume"
    # "--o" is ambiguous (--output-dir, --overwrite): argparse would refuse it, so it is not taken for --overwrite
    assert rerun_command("t.py", ["--o"], options=options, drop=["--overwrite"]) == "python t.py --o"


def test_rerun_command_under_torchrun(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert rerun_command("t.py", [], options=[]).startswith("torchrun --standalone --nproc_per_node=2 t.py")


def test_interrupt_message_names_the_last_checkpoint_and_the_resume_command(tmp_path):
    options = ["--output-dir", "--overwrite", "--resume"]
    argv = ["--output-dir", str(tmp_path), "--overwrite"]
    text = interrupt_message(tmp_path, script="train.py", argv=argv, options=options)
    assert text.startswith("interrupted before the run started") and text.endswith("--overwrite")
    (tmp_path / "hoimask_run.json").write_text("{}")
    text = interrupt_message(tmp_path, script="train.py", argv=argv, options=options)
    assert "before the first checkpoint" in text and text.count("--overwrite") == 1 and "--resume" not in text
    path = CheckpointManager(tmp_path / "checkpoints").save(7, {"step": 7})
    first, second = interrupt_message(tmp_path, script="train.py", argv=argv, options=options).splitlines()
    assert first == f"interrupted: the last checkpoint is {path} (step 7); resume with:"
    assert second == f"  python train.py --output-dir {tmp_path} --resume"


def test_explain_interrupt_turns_ctrl_c_into_the_hint_on_rank_0_only(tmp_path, capsys, monkeypatch):
    def main():
        with explain_interrupt(tmp_path, script="t.py", argv=["--steps", "3"], parser=_parser()):
            raise KeyboardInterrupt

    with pytest.raises(RunInterrupted, match="start again with:\n  python t.py --steps 3"):
        main()  # still a KeyboardInterrupt for Python callers
    assert exit_with_usage_errors(main) == 130
    err = capsys.readouterr().err
    assert "interrupted before the run started" in err and "Traceback" not in err
    monkeypatch.setenv("RANK", "1")
    assert exit_with_usage_errors(main) == 130
    assert capsys.readouterr().err == ""


def test_tensorboard_missing_is_named_with_the_install_command(monkeypatch):
    import hoimask.engine.logging as logging

    monkeypatch.setattr(logging, "tensorboard_available", lambda: False)
    assert 'pip install "hoimask[tensorboard]"' in tensorboard_note(None)
    assert tensorboard_note(False) is None and missing_tensorboard(False) is None
    assert 'pip install "hoimask[tensorboard]"' in missing_tensorboard(True)
    monkeypatch.setattr(logging, "tensorboard_available", lambda: True)
    assert tensorboard_note(None) is None and missing_tensorboard(True) is None


@pytest.mark.parametrize("env, first", [
    ({}, True),
    ({"WORLD_SIZE": "1", "LOCAL_RANK": "1", "RANK": "1"}, True),  # one process: leftovers of a scheduler
    ({"WORLD_SIZE": "4", "LOCAL_RANK": "0", "RANK": "2"}, True),  # the first process of the second node
    ({"WORLD_SIZE": "4", "LOCAL_RANK": "1", "RANK": "1"}, False),
    ({"WORLD_SIZE": "2", "RANK": "1"}, False),  # a launcher that sets RANK only
])
def test_errors_are_printed_by_one_process_per_node(monkeypatch, capsys, env, first):
    for name in ("WORLD_SIZE", "LOCAL_RANK", "RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert first_process_on_node() is first

    def bad_input():
        raise OutputDirError("argument --output-dir: refused")

    assert exit_with_usage_errors(bad_input) == 2  # every process exits with 2
    parser = argparse.ArgumentParser(prog="train.py")
    parser.add_argument("--steps", type=integer(low=1))
    with pytest.raises(SystemExit) as stop, quiet_on_other_processes():
        parser.parse_args(["--steps", "0"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("error: argument --output-dir: refused") == int(first)
    assert err.count("train.py: error: argument --steps") == int(first)
