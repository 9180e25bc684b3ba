"""Every ```python block of README.md and docs/*.md runs as written: one test per block, id ``file:line``.

Conventions (also in docs/index.md):

* Only fences opened with exactly ```python are run (indented fences, e.g. inside
  a list item, too); write ```text for signatures, diagrams and output, ```bash
  for shell commands.
* A block runs in a fresh namespace (``__name__ == "__main__"``, as a pasted
  script), with the working directory set to a temporary folder (files it
  writes never land in the repository) and torch's global RNG seeded with 0
  for its duration (and restored afterwards). Tracebacks point at the Markdown
  file and line.
* A block that cannot run here (licensed data with no stand-in, a GPU) carries
  a marker on the line right before its fence and is reported as skipped with
  that reason::

      <!-- skip: needs the DexYCB release -->
      ```python

  The reason is required. Prefer a runnable block on the fixtures of
  ``hoimask.data.testing`` / ``hoimask.hand.testing`` over a skip.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`]*?)[ \t]*$")
_SKIP = re.compile(r"^\s*<!--\s*skip\b\s*:?(?P<reason>.*?)-->\s*$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    code: str  # dedented source
    skip: str | None  # reason, "" for a marker without one, None when not marked

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"


def python_blocks(path: Path) -> list[Block]:
    """The ```python blocks of one Markdown file, with their skip markers.

    Every fenced block is walked over as a whole (CommonMark: it closes on a
    fence of the same character, at least as long, with no info string), so a
    ```python fence shown inside a ````markdown example is not a block.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        fence, start, end = m["fence"], i, i + 1
        while end < len(lines):
            close = _FENCE.match(lines[end])
            if close and not close["info"] and close["fence"][0] == fence[0] and len(close["fence"]) >= len(fence):
                break
            end += 1
        if end == len(lines):
            raise ValueError(f"{path}:{start + 1}: code fence {lines[start].strip()!r} is never closed")
        if m["info"] == "python":
            marker = _SKIP.match(lines[start - 1]) if start > 0 else None
            code = textwrap.dedent("\n".join(lines[start + 1 : end]))
            blocks.append(Block(path, start + 1, code, None if marker is None else marker["reason"].strip()))
        i = end + 1
    return blocks


BLOCKS = [block for path in DOC_FILES for block in python_blocks(path)]


def _param(block: Block):
    marks = [pytest.mark.skip(reason=f"{block.id}: {block.skip}")] if block.skip else []
    return pytest.param(block, id=block.id, marks=marks)


@pytest.mark.parametrize("block", [_param(b) for b in BLOCKS])
def test_doc_block(block: Block, tmp_path, monkeypatch):
    assert block.skip != "", f"{block.id}: a skip marker needs a reason: <!-- skip: why -->"
    monkeypatch.chdir(tmp_path)
    # Leading newlines make line numbers in tracebacks those of the Markdown file.
    code = compile("\n" * block.line + block.code, str(block.path), "exec")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        exec(code, {"__name__": "__main__"})


def test_blocks_are_found():
    """The collector sees the blocks it should (guards against a regex that silently matches nothing)."""
    readme = [b for b in BLOCKS if b.path.name == "README.md"]
    assert readme and all("import" in b.code for b in readme)
    assert len({b.path for b in BLOCKS}) >= 10


def test_parser_handles_indent_nesting_and_markers(tmp_path):
    md = tmp_path / "x.md"
    md.write_text(
        "text\n\n<!-- skip: needs a GPU -->\n```python\nx = 1\n```\n\n1. step\n\n   ```python\n   y = 2\n   ```\n"
        "\n```pycon\n>>> z\n```\n<!-- skip -->\n```python\npass\n```\n"
        "````markdown\n<!-- skip: shown, not run -->\n```python\nraise SystemExit\n```\n````\n",
        encoding="utf-8",
    )
    found = python_blocks(md)
    assert [(b.line, b.code, b.skip) for b in found] == [(4, "x = 1", "needs a GPU"), (10, "y = 2", None), (18, "pass", "")]
    md.write_text("```python\nx = 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="never closed"):
        python_blocks(md)
