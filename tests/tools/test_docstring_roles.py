"""tools/docstring_roles.py: Sphinx roles of the docstrings render as plain code."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from docstring_roles import strip_roles


def test_roles_tildes_and_literal_markers_are_rewritten():
    html = (
        "<p>see :func:<code>register</code> and :class:<code>~structreg.methods.base.Registrar"
        "</code> or :mod:<code>structreg.core.metrics</code>; the front door::</p>"
    )
    assert strip_roles(html) == (
        "<p>see <code>register</code> and <code>Registrar</code> or "
        "<code>structreg.core.metrics</code>; the front door:</p>"
    )


def test_other_text_is_left_alone():
    html = "<p>ratio 1:2, <code>a::b</code>, time: <code>x</code></p>"
    assert strip_roles(html) == html
