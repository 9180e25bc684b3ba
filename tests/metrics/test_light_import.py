"""`import hoimask.metrics` stays light: no trimesh, scikit-image, SciPy or data/model packages."""

import subprocess
import sys

HEAVY = ("trimesh", "skimage", "scipy", "open3d", "hoimask.data", "hoimask.models", "hoimask.nn")


def test_metrics_import_is_light():
    code = (
        "import sys, hoimask.metrics\n"
        f"bad = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
