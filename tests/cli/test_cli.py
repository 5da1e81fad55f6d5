"""The command-line entry point."""

import subprocess
import sys
from pathlib import Path

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
    script = Path(sys.executable).parent / "structreg"
    assert script.is_file(), f"no installed structreg script next to {sys.executable}"
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    assert __version__ in out.stdout
    out = subprocess.run(
        [sys.executable, "-m", "structreg", "--version"], capture_output=True, text=True, check=True
    )
    assert __version__ in out.stdout


def test_parsing_imports_nothing_heavy():
    code = (
        "import sys; from structreg.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('torch', 'nibabel', 'matplotlib', 'scipy', 'sklearn') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_bad_argument_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--out", "x", "--size", "10x"])
    assert info.value.code == 2
    assert "size must look like" in capsys.readouterr().err


def test_expected_error_is_one_line_and_debug_shows_the_traceback(tmp_path, capsys):
    missing = tmp_path / "nothing"
    assert main(["evaluate", "--methods", f"ours:{missing}", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("structreg: error: ") and len(err.strip().splitlines()) == 1
    assert (
        main(["--debug", "evaluate", "--methods", f"ours:{missing}", "--out", str(tmp_path)]) == 1
    )
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("structreg: error: ")
    assert main(["evaluate", "--methods", "elastix", "--out", str(tmp_path)]) == 1
    assert "unknown method 'elastix'" in capsys.readouterr().err


def test_a_bug_keeps_its_traceback(monkeypatch):
    from structreg.cli import classify

    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(classify, "run", broken)
    with pytest.raises(ZeroDivisionError):
        main(["classify", "--codes", "c.csv", "--out", "o"])


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
