"""The example scripts as modules, for the benchmarks that reuse their recipes and evaluation."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

#: The repository root (``examples/`` lies beside ``benchmarks/``).
ROOT = Path(__file__).resolve().parents[1]


def load_example(name: str) -> ModuleType:
    """``examples/<name>.py`` as a fresh module (``hoimask_<name>_example``); its ``main`` does not run."""
    spec = importlib.util.spec_from_file_location(f"hoimask_{name}_example", ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
