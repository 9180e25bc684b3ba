"""The docstring ``>>>`` examples of every ``hoimask`` module run in the README's test command.

They are collected by pytest itself (``--doctest-modules`` with ``hoimask`` in
``testpaths``, setup.cfg), one test per docstring, so they are not run again
here. These tests only guard that set-up: the option stays on, and the modules
that carried examples keep them.
"""

from __future__ import annotations

import configparser
import doctest
import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Modules whose examples the per-subpackage doctest tests required before --doctest-modules ran them all.
MODULES_WITH_EXAMPLES = [
    "hoimask.geometry.sampling",
    "hoimask.losses.hoisdf_image",
    "hoimask.losses.point_pose",
    "hoimask.losses.sdf",
    "hoimask.losses.weighted",
    "hoimask.masking.base",
    "hoimask.masking.hybrid",
    "hoimask.masking.random_mask",
    "hoimask.masking.regions",
    "hoimask.metrics.auc",
    "hoimask.metrics.fscore",
    "hoimask.metrics.hand",
    "hoimask.metrics.nearest",
    "hoimask.metrics.objects",
    "hoimask.nn.dpt",
    "hoimask.nn.patch_embed",
    "hoimask.nn.point_attention",
    "hoimask.nn.point_heads",
    "hoimask.nn.point_tokens",
    "hoimask.nn.resnet",
    "hoimask.nn.sdf_decoder",
    "hoimask.nn.token_decoder",
    "hoimask.nn.unet",
    "hoimask.nn.vit",
    "hoimask.ops.mesh_sdf.op",
    "hoimask.ops.mesh_sdf.reference",
    "hoimask.sdf.density",
    "hoimask.sdf.meshes",
    "hoimask.sdf.primitives",
    "hoimask.sdf.samplers",
    "hoimask.skeleton.joints",
    "hoimask.skeleton.raster",
    "hoimask.skeleton.tree",
]


def test_doctest_modules_is_configured():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    pytest_cfg = cfg["tool:pytest"]
    assert "--doctest-modules" in pytest_cfg["addopts"].split()
    assert "hoimask" in pytest_cfg["testpaths"].split()


def test_modules_keep_their_examples():
    finder = doctest.DocTestFinder()
    missing = [name for name in MODULES_WITH_EXAMPLES
               if not any(t.examples for t in finder.find(importlib.import_module(name)))]  # fmt: skip
    assert not missing, f"these modules lost their docstring examples: {missing}"
