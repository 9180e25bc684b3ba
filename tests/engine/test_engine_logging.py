import errno
import json

import numpy as np
import pytest
import torch
from PIL import Image

from hoimask._checks import FileFormatError, FileWriteError, ShapeError
from hoimask.engine import RunLogger, progress_bar, save_png, tensorboard_available


def test_jsonl_text_and_truncate(tmp_path):
    log = RunLogger(tmp_path, tensorboard=False)
    for step in (1, 2, 3, 4):
        log.log_scalars(step, {"loss": torch.tensor(1.0 / step), "lr": 0.1})
    log.log_scalars(5, {"loss": float("nan")})
    records = log.read_records()
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5]
    assert records[1]["loss"] == pytest.approx(0.5) and records[4]["loss"] == "nan"
    assert log.truncate_after(3) == 2
    assert [json.loads(x)["step"] for x in (tmp_path / "log.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert "step 4: loss=0.25" in (tmp_path / "train.log").read_text()


def test_torn_last_line_is_dropped_on_truncate(tmp_path):
    # A run killed while appending leaves a last line without its newline; resuming must not crash on it.
    log = RunLogger(tmp_path, tensorboard=False)
    for step in (1, 2):
        log.log_scalars(step, {"loss": 1.0})
    with open(tmp_path / "log.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"step": 3, "lo')
    assert [r["step"] for r in log.read_records()] == [1, 2]
    assert log.truncate_after(2) == 1
    log.log_scalars(3, {"loss": 0.5})
    assert [r["step"] for r in log.read_records()] == [1, 2, 3]
    (tmp_path / "log.jsonl").write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(FileFormatError, match="line 2"):
        log.read_records()


def test_torn_last_line_is_reported_and_any_bytes_count_as_torn(tmp_path):
    log = RunLogger(tmp_path, tensorboard=False)
    assert not log.has_torn_line()
    log.log_scalars(1, {"loss": 1.0})
    assert not log.has_torn_line()
    with open(tmp_path / "log.jsonl", "ab") as fh:
        fh.write(b'{"step": 2, "loss": \xff\x00\x00')  # not even UTF-8 (a disk's leftovers after a crash)
    assert log.has_torn_line()
    assert [r["step"] for r in log.read_records()] == [1]
    assert log.truncate_after(1) == 1 and not log.has_torn_line()


def test_a_full_disk_while_logging_is_a_write_error_naming_the_log(tmp_path, monkeypatch):
    import hoimask.engine.logging as logging_module

    log = RunLogger(tmp_path, tensorboard=False)
    log.log_scalars(1, {"loss": 1.0})

    class FullDisk:
        def __init__(self, path, *args, **kwargs):
            self.path = path

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(logging_module, "open", FullDisk, raising=False)
    with pytest.raises(FileWriteError, match=r"^cannot write '.*log\.jsonl': No space left on device$"):
        log.log_scalars(2, {"loss": 0.5})
    with pytest.raises(FileWriteError, match=r"^cannot write '.*train\.log': No space left on device$"):
        log.text("checkpoint")


def test_disabled_logger_writes_nothing(tmp_path):
    log = RunLogger(tmp_path / "rank1", enabled=False)
    log.log_scalars(1, {"loss": 1.0})
    log.text("hello")
    log.log_image("x", torch.zeros(3, 4, 4), 1)
    assert not (tmp_path / "rank1").exists()
    assert log.read_records() == [] and log.truncate_after(0) == 0


def test_tensorboard_optional(tmp_path):
    if tensorboard_available():
        log = RunLogger(tmp_path, tensorboard=True)
        log.log_scalars(1, {"loss": 1.0})
        log.log_image("masks", torch.rand(3, 8, 8), 1)
        log.close()
        assert any((tmp_path / "tensorboard").iterdir())
    else:
        with pytest.raises(ImportError, match="tensorboard"):
            RunLogger(tmp_path, tensorboard=True)
        assert RunLogger(tmp_path).tensorboard_dir is None  # auto: off without the package


def test_save_png_round_trip(tmp_path):
    img = torch.zeros(3, 4, 6)
    img[0] = 1.0
    path = save_png(tmp_path / "a.png", img)
    arr = torch.from_numpy(np.array(Image.open(path)))
    assert arr.shape == (4, 6, 3) and int(arr[0, 0, 0]) == 255 and int(arr[0, 0, 1]) == 0
    u8 = torch.full((3, 2, 2), 7, dtype=torch.uint8)
    assert int(torch.from_numpy(np.array(Image.open(save_png(tmp_path / "b.png", u8))))[0, 0, 2]) == 7
    with pytest.raises(ShapeError, match="image"):
        save_png(tmp_path / "c.png", torch.zeros(4, 4))


def test_progress_bar_disabled_and_initial():
    bar = progress_bar(10, initial=3)
    bar.update(1)
    assert bar.n == 4 and bar.total == 10 and not bar.disable
    bar.close()
    assert progress_bar(10, enabled=False).disable
