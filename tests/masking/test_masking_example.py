"""examples/visualize_masks.py runs and writes a PNG."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("extra", [["--source", "shapes"], ["--source", "synthetic", "--patterns"]])
def test_visualize_masks_writes_png(tmp_path, extra):
    pytest.importorskip("PIL")
    default = extra[1] == "shapes"  # the first run uses the default --out
    out = tmp_path / "runs" / "pictures" / "masks.png" if default else tmp_path / "sub" / "masks.png"
    cmd = [sys.executable, str(ROOT / "examples" / "visualize_masks.py"), *([] if default else ["--out", str(out)]),
           "--rows", "2", "--size", "64", "--patch", "8", *extra]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(out.resolve()) in res.stdout
    assert [p.name for p in out.parent.iterdir()] == ["masks.png"]  # written atomically, no temp file left
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask  # a normal file (not mkstemp's 0600)


def test_default_picture_folder_is_ignored_by_git():
    """Run from a checkout, the examples' default picture folder (runs/pictures) never lands in the repository."""
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "runs/" in ignored
