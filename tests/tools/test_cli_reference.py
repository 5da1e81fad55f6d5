"""tools/cli_reference.py: the docs' command-line reference is structreg's own parsers."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import cli_reference  # noqa: E402  (tools/ is not installed)

from structreg.cli import COMMANDS, build_parser  # noqa: E402
from structreg.methods import method_names  # noqa: E402


def test_every_command_has_a_row_and_its_help_verbatim():
    text = cli_reference.cli_markdown()
    names = [module.NAME for module in COMMANDS]
    for name in names:
        assert f"| [`structreg {name}`](#structreg-{name.replace(' ', '-')}) |" in text
        assert f"## `structreg {name}` {{#structreg-{name.replace(' ', '-')}}}" in text
        assert f"usage: structreg {name}" in text
    sub = dict((n, p) for n, _, p in cli_reference.commands(build_parser()))
    assert cli_reference.help_text(sub["register"]) in text


def test_the_hook_replaces_only_the_marker():
    page = f"# CLI\n\nintro\n\n{cli_reference.MARKER}\n"
    out = cli_reference.on_page_markdown(page)
    assert out.startswith("# CLI\n\nintro\n\n| command |") and cli_reference.MARKER not in out
    assert cli_reference.on_page_markdown("# other page\n") == "# other page\n"


def test_evaluate_help_names_every_method_and_its_options():
    sub = dict((n, p) for n, _, p in cli_reference.commands(build_parser()))
    text = " ".join(cli_reference.help_text(sub["evaluate"]).split())
    text = text.replace("- ", "-")  # argparse wraps inside hyphenated words
    for name in method_names():
        assert name in text, name
    for option in ("refine=N", "refine_lr", "adapt_decoder", "adapt=N", "label=NAME"):
        assert option in text, option


def test_the_docs_page_holds_the_marker():
    assert cli_reference.MARKER in (ROOT / "docs" / "reference" / "cli.md").read_text()


def test_every_option_of_every_command_has_a_help_text():
    for name, _, parser in cli_reference.commands(build_parser()):
        for action in parser._actions:
            if action.dest in ("command", f"{name}_command") or action.nargs == "A...":
                continue
            assert action.help, f"structreg {name} {action.option_strings or action.dest}"


def test_evaluate_help_lists_every_option_of_the_configurable_methods():
    from dataclasses import fields

    from structreg.methods.ants_syn import AntsSynConfig
    from structreg.methods.dipy_syn import DipySynConfig
    from structreg.methods.lcc_demons import LCCDemonsConfig

    sub = dict((n, p) for n, _, p in cli_reference.commands(build_parser()))
    text = " ".join(cli_reference.help_text(sub["evaluate"]).split()).replace("- ", "-")
    for config in (LCCDemonsConfig, AntsSynConfig, DipySynConfig):
        for field in fields(config):
            assert field.name in text, (config.__name__, field.name)
