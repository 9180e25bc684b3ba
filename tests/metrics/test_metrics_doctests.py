"""Run the docstring examples of hoimask.metrics."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["auc", "fscore", "hand", "nearest", "objects"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"hoimask.metrics.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
