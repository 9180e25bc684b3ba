"""The documentation site (``mkdocs.yml``) builds in strict mode and leaves nothing out.

* ``mkdocs build --strict`` fails on any warning: a broken link or anchor, a page
  missing from the nav, a docstring that griffe cannot read. The test shows the
  build log when it fails. It needs the docs extra (``pip install -e ".[docs]"``,
  which CI installs) and is skipped, saying so, only when MkDocs is absent.
* Every Markdown page under ``docs/`` is in the nav; every ``hoimask``
  subpackage has an API page ``docs/api/<name>.md`` that renders it, and every
  name of its ``__all__`` is on that page.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SUBPACKAGES = sorted(
    p.name for p in (ROOT / "hoimask").iterdir() if (p / "__init__.py").is_file() and not p.name.startswith("_")
)

needs_mkdocs = pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None,
    reason='MkDocs is not installed: pip install -e ".[docs]" to build the site',
)


def _config() -> dict:
    # mkdocs.yml uses no YAML tags, so the safe loader reads it.
    return yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))


def _nav_pages(nav) -> list[str]:
    """The page paths of a (nested) MkDocs nav."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in _nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in _nav_pages(value)]
    raise TypeError(f"unexpected nav entry {nav!r}")


def _doc_pages() -> list[str]:
    """Every Markdown page of docs_dir, as nav paths (helper folders starting with ``_`` excluded)."""
    return sorted(
        p.relative_to(DOCS).as_posix()
        for p in DOCS.rglob("*.md")
        if not any(part.startswith("_") for part in p.relative_to(DOCS).parts)
    )


def test_every_page_is_in_the_nav():
    nav = _nav_pages(_config()["nav"])
    assert len(nav) == len(set(nav)), f"pages listed twice in mkdocs.yml's nav: {sorted({p for p in nav if nav.count(p) > 1})}"
    missing = sorted(set(_doc_pages()) - set(nav))
    assert not missing, f"add these pages to the nav of mkdocs.yml: {missing}"
    absent = sorted(set(nav) - set(_doc_pages()))
    assert not absent, f"the nav of mkdocs.yml lists pages that do not exist: {absent}"


def test_every_subpackage_has_an_api_page():
    assert len(SUBPACKAGES) >= 13, SUBPACKAGES  # the walk found the package
    nav = set(_nav_pages(_config()["nav"]))
    for name in SUBPACKAGES:
        page = DOCS / "api" / f"{name}.md"
        assert page.is_file(), f"hoimask.{name} has no API page: write docs/api/{name}.md with '::: hoimask.{name}'"
        assert re.search(rf"^::: hoimask\.{name}\s*$", page.read_text(encoding="utf-8"), re.MULTILINE), (
            f"docs/api/{name}.md does not render hoimask.{name} ('::: hoimask.{name}' on a line of its own)"
        )
        assert f"api/{name}.md" in nav, f"docs/api/{name}.md is not in the nav of mkdocs.yml"


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The site, built once with ``mkdocs build --strict``, and the build's result."""
    site_dir = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one log, in order
        text=True,
        timeout=600,
    )
    return site_dir, result


@pytest.fixture(scope="module")
def site(build) -> Path:
    site_dir, result = build
    if result.returncode != 0:
        pytest.fail("the site did not build: see test_site_builds_strict for the log", pytrace=False)
    return site_dir


@needs_mkdocs
def test_site_builds_strict(build):
    site_dir, result = build
    rc, log = result.returncode, result.stdout.strip()
    assert rc == 0, f"mkdocs build --strict failed (exit {rc}):\n{log}"
    assert (site_dir / "index.html").is_file()
    assert (site_dir / "images" / "pipeline.svg").is_file()
    for name in SUBPACKAGES:
        assert (site_dir / "api" / name / "index.html").is_file(), name


@needs_mkdocs
@pytest.mark.parametrize("name", SUBPACKAGES)
def test_api_page_shows_all_exports(site, name):
    """Every name of ``__all__`` has its entry (an export without a docstring would silently vanish)."""
    html = (site / "api" / name / "index.html").read_text(encoding="utf-8")
    anchors = set(re.findall(r'\bid="(hoimask\.[\w.]+)"', html))
    exports = importlib.import_module(f"hoimask.{name}").__all__
    # A function named like its own subpackage (hoimask.ops.mesh_sdf) is rendered from that subpackage.
    missing = [
        e for e in exports if f"hoimask.{name}.{e}" not in anchors and f"hoimask.{name}.{e}.{e}" not in anchors
    ]
    shadowed = [e for e in missing if (ROOT / "hoimask" / name / e).is_dir() or (ROOT / "hoimask" / name / f"{e}.py").is_file()]
    assert not shadowed, (
        f"docs/api/{name}.md does not show {shadowed}: a submodule of the same name hides them from griffe; "
        f"render each with its own block, as docs/api/ops.md does for mesh_sdf"
    )
    assert not missing, (
        f"docs/api/{name}.md does not show {missing}: give them a docstring (a '#:' comment above a constant)"
    )
