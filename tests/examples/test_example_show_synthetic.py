"""examples/show_synthetic.py writes its two labelled pictures, by default outside the tracked folders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def test_show_synthetic_writes_labelled_pictures_under_runs_pictures(tmp_path):
    cmd = [sys.executable, str(ROOT / "examples" / "show_synthetic.py"), "--num", "2", "--size", "48"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "runs" / "pictures"  # not docs/images: that needs an explicit --out
    assert sorted(p.name for p in out.iterdir()) == ["synthetic_samples.png", "synthetic_transforms.png"]
    samples = Image.open(out / "synthetic_samples.png")
    # 4 rows x 2 columns of 96 px tiles, plus row titles, column titles, a title and a legend
    assert samples.size[0] > 2 * 96 + 50 and samples.size[1] > 4 * 96 + 50
    assert not (tmp_path / "docs").exists()
