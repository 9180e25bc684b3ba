"""Subpackages import on their own and stay light."""

import subprocess
import sys

import pytest

HEAVY = ("trimesh", "skimage", "hoimask.data", "hoimask.models")


@pytest.mark.parametrize("module", ["hoimask.geometry", "hoimask.encoding", "hoimask.skeleton"])
def test_light_imports(module):
    code = (
        f"import sys, {module}\n"
        f"bad = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
