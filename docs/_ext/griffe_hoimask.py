"""Griffe extension for the API site: read hoimask's docstring habits as written.

hoimask's docstrings are Google style with three kornia / Sphinx habits that
griffe's Google parser does not know (``mkdocs.yml`` loads this file):

* ``Example:`` sections (doctest runs them). Griffe only treats ``Examples:``
  as examples; ``Example:`` would become an admonition of Markdown in which
  the ``>>>`` lines turn into nested block quotes. The header is read as
  ``Examples:``; the source keeps ``Example:``.
* Sphinx roles (``:func:`name```, ``:class:`~pkg.Name```, ``:meth:``,
  ``:mod:``, ``:data:``, ``:attr:``). Each becomes an optional cross-reference:
  a link when the target is rendered on the site, plain code otherwise (so a
  role naming a private module never breaks the strict build). ``~`` shows the
  last name only, as in Sphinx.
* ``#:`` comments right above a constant (Sphinx autodoc's doc-comments) are
  its docstring, so ``JOINT_NAMES``, ``VIT_CONFIGS``, ... are documented too.

Only the text handed to the renderer changes; the package is untouched.

Every ``Args:`` entry names one parameter (``rank, world_size: ...`` would
warn "does not appear in the function signature" and fail the strict build).
"""

from __future__ import annotations

import re
from html import escape

import griffe

_EXAMPLE_HEADER = re.compile(r"^(?P<indent>[ \t]*)Example:[ \t]*$", re.MULTILINE)
_ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|obj|exc):`(?P<tilde>~?)(?P<target>[\w.]+)`")


def _resolve(obj: griffe.Object, target: str) -> str:
    """The full path of ``target`` as seen from ``obj`` (``target`` itself if unknown)."""
    if target.startswith("hoimask."):
        return target
    head, _, rest = target.partition(".")
    for scope in (obj, obj.parent):
        if scope is None:
            continue
        try:
            path = scope.resolve(head)
        except (griffe.NameResolutionError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            continue
        return f"{path}.{rest}" if rest else path
    return target


def _rewrite(obj: griffe.Object, text: str) -> str:
    text = _EXAMPLE_HEADER.sub(r"\g<indent>Examples:", text)

    def role(match: re.Match[str]) -> str:
        target = match["target"]
        shown = target.rsplit(".", 1)[-1] if match["tilde"] else target
        identifier = _resolve(obj, target)
        return f'<autoref identifier="{escape(identifier)}" optional><code>{escape(shown)}</code></autoref>'

    return _ROLE.sub(role, text)


class HoimaskDocstrings(griffe.Extension):
    """Read ``Example:`` headers, Sphinx roles and ``#:`` comments in the whole loaded package."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs) -> None:
        self._loader = loader
        self._walk(pkg, seen=set())

    def _walk(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is None and obj.is_attribute:
            obj.docstring = self._doc_comment(obj)
        if obj.docstring is not None:
            obj.docstring.value = _rewrite(obj, obj.docstring.value)
        for member in obj.members.values():
            if not member.is_alias:
                self._walk(member, seen)

    def _doc_comment(self, attr: griffe.Object) -> griffe.Docstring | None:
        """The ``#:`` comment block right above ``attr``'s assignment, as a docstring."""
        if attr.lineno is None:
            return None
        try:
            lines = attr.lines_collection[attr.filepath]
        except (KeyError, TypeError, ValueError):
            return None
        start = attr.lineno - 1  # 0-based index of the assignment
        while start > 0 and lines[start - 1].strip().startswith("#:"):
            start -= 1
        if start == attr.lineno - 1:
            return None
        text = "\n".join(line.strip()[2:].strip() for line in lines[start : attr.lineno - 1])
        return griffe.Docstring(
            text,
            lineno=start + 1,
            endlineno=attr.lineno - 1,
            parent=attr,
            parser=self._loader.docstring_parser,
            parser_options=self._loader.docstring_options,
        )
