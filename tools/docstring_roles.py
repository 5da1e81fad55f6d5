"""MkDocs hook: the Sphinx cross-reference roles of structreg's docstrings as plain code.

The docstrings name other objects Sphinx-style (``:func:`register```,
``:class:`~structreg.methods.base.Registrar```) and end a paragraph before a literal
block with ``::``. mkdocstrings renders Markdown, where the role's prefix would show as
text; this hook removes it from every rendered page (``:func:<code>x</code>`` ->
``<code>x</code>``), shortens a ``~``-prefixed dotted name to its last part as Sphinx
does, and turns a paragraph's closing ``::`` into ``:``.
"""

from __future__ import annotations

import re

ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|exc|obj|ref|pep|term):(?=<code>)")
TILDE = re.compile(r"<code>~(?:[\w]+\.)*([\w]+)</code>")
LITERAL = re.compile(r"::</p>")


def strip_roles(html: str) -> str:
    """``html`` with the roles' prefixes removed, ``~a.b.c`` as ``c`` and ``::`` as ``:``."""
    html = ROLE.sub("", html)
    html = TILDE.sub(r"<code>\1</code>", html)
    return LITERAL.sub(":</p>", html)


def on_page_content(html: str, **kwargs: object) -> str:
    """MkDocs hook: :func:`strip_roles` on every page."""
    return strip_roles(html)
