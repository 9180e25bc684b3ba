"""CONTRIBUTING.md stays true: its ```python blocks run, and the paths and ``hoimask.*`` names it mentions exist.

The blocks are found and run exactly as ``tests/test_docs.py`` runs those of
README.md and docs/ (its parser, skip markers, a temporary working directory,
torch's RNG seeded with 0); CONTRIBUTING.md is not in that list, so it is
tested here.

Paths: every ``hoimask/…``, ``tests/…``, ``benchmarks/…``, ``examples/…`` and
``docs/…`` token of the page must exist. A glob (``docs/benchmarks/*.md``) must
match a file; a placeholder (``hoimask/masking/<name>.py``) needs only the folder
that holds it; ``file.py::name`` also needs ``def name`` in the file. Dotted names
(``hoimask.skeleton.convert_joint_order``) must import or resolve as attributes.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "CONTRIBUTING.md"


def _load_docs_module():
    """tests/test_docs.py as a private module (its parser and runner; not collected again from here)."""
    spec = importlib.util.spec_from_file_location("_hoimask_test_docs", Path(__file__).with_name("test_docs.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


_DOCS = _load_docs_module()
BLOCKS = _DOCS.python_blocks(PAGE)
TEXT = PAGE.read_text(encoding="utf-8")

_PATH = re.compile(r"(?<![\w/.-])((?:hoimask|tests|benchmarks|examples|docs)/[\w./<>*:-]*)")
_DOTTED = re.compile(r"(?<![\w/.-])(hoimask(?:\.\w+)+)")


def _paths(text: str) -> list[str]:
    found = {m.group(1).rstrip(".,;:)") for m in _PATH.finditer(text)}
    return sorted(found)


def _path_problem(token: str) -> str | None:
    """Why ``token`` does not name something in the repository, or ``None`` when it does."""
    path, _, name = token.partition("::")
    if "<" in path:
        folder = path[: path.rfind("/", 0, path.index("<")) + 1]  # the folder that holds the placeholder
        return None if (ROOT / folder).is_dir() else f"{folder} is not a folder"
    if "*" in path:
        return None if any(ROOT.glob(path)) else "the glob matches nothing"
    target = ROOT / path
    if not target.exists():
        return "does not exist"
    if name and re.search(rf"^\s*def {re.escape(name)}\b", target.read_text(encoding="utf-8"), re.M) is None:
        return f"has no def {name}"
    return None


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


@pytest.mark.parametrize("block", [_DOCS._param(b) for b in BLOCKS])
def test_contributing_block(block, tmp_path, monkeypatch):
    _DOCS.test_doc_block(block, tmp_path, monkeypatch)


def test_blocks_and_paths_are_found():
    """Guards against a parser or a pattern that silently matches nothing."""
    assert len(BLOCKS) >= 3
    paths = _paths(TEXT)
    assert "tests/masking/test_masking_contract.py" in paths and "hoimask/models/_batch.py" in paths
    assert "hoimask/masking/<name>.py" in paths and "docs/benchmarks/*.md" in paths


def test_paths_exist():
    problems = {p: why for p in _paths(TEXT) if (why := _path_problem(p)) is not None}
    assert not problems, f"CONTRIBUTING.md names paths that are not in the repository: {problems}"


def test_path_checker_rejects_what_is_missing():
    assert _path_problem("hoimask/nowhere.py") == "does not exist"
    assert _path_problem("docs/*.nothing") == "the glob matches nothing"
    assert _path_problem("hoimask/nowhere/<name>.py") == "hoimask/nowhere/ is not a folder"
    assert _path_problem("tests/test_docs.py::test_no_such_test") == "has no def test_no_such_test"
    assert _path_problem("tests/test_docs.py::test_doc_block") is None


def test_hoimask_names_resolve():
    names = sorted({m.group(1) for m in _DOTTED.finditer(TEXT)})
    assert "hoimask.skeleton.convert_joint_order" in names
    missing = [n for n in names if not _resolves(n)]
    assert not missing, f"CONTRIBUTING.md names hoimask objects that do not exist: {missing}"
    assert not _resolves("hoimask.skeleton.no_such_name")
