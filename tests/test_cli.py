"""The command-line entry point."""

import subprocess
import sys

import pytest

from structreg import __version__
from structreg.cli import main


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"structreg {__version__}"
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "demo" in capsys.readouterr().out


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "structreg.cli", "--version"],
                         capture_output=True, text=True, check=True)
    assert __version__ in out.stdout


def test_unknown_command_exits_nonzero(capsys):
    with pytest.raises(SystemExit) as info:
        main(["no-such-command"])
    assert info.value.code != 0


def test_demo_pipeline_on_a_tiny_budget(tmp_path, capsys):
    # the real demo trains for minutes; the same pipeline with 2 steps and 15 subjects
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--steps", "2", "--subjects", "15"]) == 0
    report = (out / "report.md").read_text()
    assert "| Dice left heart |" in report and "non-positive det J" in report
    assert (out / "registration.png").stat().st_size > 10_000
    assert (out / "model" / "best.pt").is_file()
    # running again reuses the finished model (resume to the same budget: no new steps)
    assert main(["demo", "--out", str(out), "--steps", "2", "--subjects", "15"]) == 0
