"""The ``Example:`` blocks in the docstrings of nn, losses and models run and print what they claim."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "hoimask.nn.patch_embed",
    "hoimask.nn.vit",
    "hoimask.nn.token_decoder",
    "hoimask.nn.dpt",
    "hoimask.losses.sdf",
    "hoimask.losses.weighted",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no example"
    assert result.failed == 0
