"""A griffe extension for the docs site: the docstrings' reStructuredText touches, as Markdown.

The docstrings are plain text with a few reStructuredText habits, written to read well in ``help()``:
roles such as :class:`VideoJob` and literal blocks introduced by ``::``. mkdocstrings renders
docstrings as Markdown, where these would show as ":class:" and "::". This turns a role into a code
span and a ``::`` into a colon (the indented block after it is already a Markdown code block).
Loaded by mkdocs.yml (``extensions:`` of the python handler); nothing imports it at run time.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:attr|class|data|exc|func|meth|mod|obj):`(?P<short>~?)(?P<target>[^`]+)`")
_LITERAL_BLOCK = re.compile(r"(?m)^(?P<text>.*?)[ \t]*::$")


def _code_span(match: re.Match[str]) -> str:
    target = match["target"]
    return f"`{target.rsplit('.', 1)[-1] if match['short'] else target}`"  # ~a.b.C reads as C in Sphinx


def _literal_marker(match: re.Match[str]) -> str:
    text = match["text"]
    return text + ":" if text.strip() else ""


def rest_to_markdown(text: str) -> str:
    """The docstring ``text`` with reStructuredText roles and ``::`` markers turned into Markdown."""
    text = _ROLE.sub(_code_span, text)
    return _LITERAL_BLOCK.sub(_literal_marker, text)


class RestToMarkdown(griffe.Extension):
    """Rewrites each docstring as soon as its object is created, before other extensions parse it."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rest_to_markdown(obj.docstring.value)
