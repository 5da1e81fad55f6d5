"""The command-line reference of the docs site, generated from ``structreg``'s own parsers.

``python tools/cli_reference.py`` prints the Markdown; as an MkDocs hook (``hooks:`` in
mkdocs.yml) it replaces the line ``<!-- cli-reference -->`` of a page with that Markdown
at every build, so the reference is always the parser of the installed package and
cannot drift from it.

The Markdown: a table of every command (``structreg COMMAND`` and its one-line help),
then one section per command with its ``--help`` text verbatim (usage, description and
every option with its help and default), formatted at a fixed width.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator

MARKER = "<!-- cli-reference -->"
WIDTH = 96


def commands(
    parser: argparse.ArgumentParser, prefix: str = ""
) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    """Every command of ``parser``, depth first: (full name, one-line help, its parser).

    A command group (``structreg data``) is listed, then each of its commands
    (``structreg data preview``).
    """
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
        for name, sub in action.choices.items():
            full = f"{prefix} {name}".strip()
            yield full, helps.get(name, ""), sub
            yield from commands(sub, full)


def help_text(parser: argparse.ArgumentParser) -> str:
    """``parser.format_help()`` at :data:`WIDTH` columns, whatever the terminal."""
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(WIDTH)
    try:
        return parser.format_help().rstrip()
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous


def anchor(name: str) -> str:
    """The section anchor of a command: ``structreg data preview`` -> ``structreg-data-preview``."""
    return name.replace(" ", "-")


def cli_markdown(parser: argparse.ArgumentParser | None = None) -> str:
    """The reference of ``parser`` (default: ``structreg.cli.build_parser()``) as Markdown."""
    if parser is None:
        from structreg.cli import build_parser

        parser = build_parser()
    prog = parser.prog
    found = list(commands(parser))
    lines = ["| command | what it does |", "|---|---|"]
    lines += [f"| [`{prog} {n}`](#{anchor(f'{prog} {n}')}) | {h} |" for n, h, _ in found]
    lines += ["", f"## `{prog}`", "", "```text", help_text(parser), "```", ""]
    for name, _, sub in found:
        lines += [f"## `{prog} {name}`" + f" {{#{anchor(f'{prog} {name}')}}}", ""]
        lines += ["```text", help_text(sub), "```", ""]
    return "\n".join(lines)


def on_page_markdown(markdown: str, **kwargs: object) -> str:
    """MkDocs hook: the marker line of a page becomes the generated reference."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, cli_markdown())


def main() -> int:
    """Print the reference (``python tools/cli_reference.py``)."""
    sys.stdout.write(cli_markdown() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
