"""The docstring examples of the skeleton and masking modules run and hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "hoimask.skeleton.joints",
    "hoimask.skeleton.tree",
    "hoimask.skeleton.raster",
    "hoimask.masking.base",
    "hoimask.masking.regions",
    "hoimask.masking.random_mask",
    "hoimask.masking.hybrid",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
