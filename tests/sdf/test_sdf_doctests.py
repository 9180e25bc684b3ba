"""Run the docstring examples of the SDF toolkit (ops, sdf, pixel-aligned sampling)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "hoimask.ops.mesh_sdf.op",
    "hoimask.ops.mesh_sdf.reference",
    "hoimask.sdf.meshes",
    "hoimask.sdf.primitives",
    "hoimask.sdf.samplers",
    "hoimask.sdf.density",
    "hoimask.geometry.sampling",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, extraglobs={"torch": importlib.import_module("torch")}, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
