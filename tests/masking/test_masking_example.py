"""examples/visualize_masks.py runs and writes a PNG."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("extra", [["--source", "shapes"], ["--source", "synthetic", "--patterns"]])
def test_visualize_masks_writes_png(tmp_path, extra):
    pytest.importorskip("PIL")
    out = tmp_path / "sub" / "masks.png"
    cmd = [sys.executable, str(ROOT / "examples" / "visualize_masks.py"), "--out", str(out), "--rows", "2",
           "--size", "64", "--patch", "8", *extra]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(out.resolve()) in res.stdout
    assert not list(out.parent.glob("*.tmp"))  # written atomically, no temp file left
