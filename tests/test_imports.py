"""Subpackages import on their own and stay light (DESIGN.md: the user's contract)."""

import subprocess
import sys

import pytest

# module -> modules it must not pull in
FORBIDDEN = {
    "hoimask.geometry": ("trimesh", "skimage", "scipy", "hoimask.data", "hoimask.models", "hoimask.nn"),
    "hoimask.encoding": ("trimesh", "skimage", "scipy", "hoimask.data", "hoimask.models", "hoimask.nn"),
    "hoimask.skeleton": ("trimesh", "skimage", "hoimask.data", "hoimask.models", "hoimask.nn"),
    "hoimask.masking": ("trimesh", "skimage", "hoimask.data", "hoimask.models", "hoimask.nn", "hoimask.engine"),
    "hoimask.sdf": ("trimesh", "skimage", "hoimask.data", "hoimask.models", "hoimask.engine"),
    "hoimask.ops": ("trimesh", "skimage", "hoimask.data", "hoimask.models", "hoimask.engine"),
    "hoimask.hand": ("trimesh", "skimage", "hoimask.data", "hoimask.models", "hoimask.engine"),
    "hoimask.metrics": ("trimesh", "skimage", "hoimask.data", "hoimask.models", "hoimask.engine"),
    "hoimask.nn": ("trimesh", "skimage", "hoimask.data", "hoimask.models", "hoimask.engine"),
    "hoimask.losses": ("trimesh", "skimage", "hoimask.data", "hoimask.models", "hoimask.engine"),
    # the composed model imports only what it composes
    "hoimask.models": ("trimesh", "skimage", "hoimask.data", "hoimask.engine"),
    # components never import the composed model
    "hoimask.engine": ("hoimask.models",),
    "hoimask.data": ("hoimask.models", "hoimask.engine"),
}


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_light_imports(module):
    code = (
        f"import sys, {module}\n"
        f"bad = [m for m in {FORBIDDEN[module]!r} if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, f"{module} imports {result.stderr.strip().splitlines()[-1]}"
