"""``structreg data preview``: a figure for good data, one-line errors for bad data."""

import shutil

import pytest

from data_fixtures import truncate, write_acdc
from structreg.cli import build_parser, main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def acdc(tmp_path_factory):
    return write_acdc(tmp_path_factory.mktemp("cli") / "acdc")


def assert_one_line_failure(capsys, rc, *names):
    err = capsys.readouterr().err
    assert rc != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("structreg: error: "), err
    assert "Traceback" not in err
    for name in names:
        assert str(name) in err, (name, err)
    return err


def test_preview_acdc_writes_a_png(acdc, tmp_path, capsys):
    out = tmp_path / "figs" / "preview.png"
    rc = main(
        [
            "data",
            "preview",
            "--data",
            f"acdc:{acdc}",
            "--out",
            str(out),
            "--n",
            "4",
            "--size",
            "40",
            "--slices",
            "3",
        ]
    )
    assert rc == 0
    assert out.read_bytes()[:8] == PNG_MAGIC and out.stat().st_size > 5000
    stdout = capsys.readouterr().out
    assert "9 pairs from 3 subjects" in stdout and "DCM 3, HCM 3, NOR 3" in stdout
    assert sorted(p.name for p in out.parent.iterdir()) == ["preview.png"]  # no temporaries


def test_preview_pairs_csv(tmp_path, acdc, capsys):
    frame = acdc / "patient001" / "patient001_frame01.nii.gz"
    (tmp_path / "pairs.csv").write_text(f"moving,fixed,group\n{frame},{frame},NOR\n")
    out = tmp_path / "p.svg"
    rc = main(
        [
            "data",
            "preview",
            "--data",
            f"pairs:{tmp_path / 'pairs.csv'}",
            "--out",
            str(out),
            "--size",
            "32",
            "--slices",
            "1",
        ]
    )
    assert rc == 0 and out.read_text().lstrip().startswith("<?xml")
    assert "1 pairs from 1 subjects" in capsys.readouterr().out


def test_preview_of_a_truncated_file_fails_in_one_line(acdc, tmp_path, capsys):
    bad = shutil.copytree(acdc, tmp_path / "acdc")
    path = truncate(bad / "patient002" / "patient002_frame08_gt.nii.gz")
    out = tmp_path / "preview.png"
    rc = main(["data", "preview", "--data", f"acdc:{bad}", "--out", str(out), "--size", "32"])
    assert_one_line_failure(capsys, rc, path, "truncated")
    assert not out.exists()


def test_preview_of_malformed_info_cfg_fails_in_one_line(acdc, tmp_path, capsys):
    bad = shutil.copytree(acdc, tmp_path / "acdc")
    cfg = bad / "patient003" / "Info.cfg"
    cfg.write_text("ED: 2\nES: 12\nGroup: Dilated\n")
    rc = main(["data", "preview", "--data", f"acdc:{bad}", "--out", str(tmp_path / "x.png")])
    assert_one_line_failure(capsys, rc, cfg, "unknown group")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--data", "mri:/nowhere"], "bad data spec"),
        (["--data", "acdc:/nowhere/at/all"], "/nowhere/at/all"),
        (["--data", "pairs:/nowhere/pairs.csv"], "/nowhere/pairs.csv"),
        (["--n", "0"], "--n must be"),
    ],
)
def test_preview_bad_options_fail_in_one_line(tmp_path, capsys, argv, message):
    rc = main(["data", "preview", "--out", str(tmp_path / "x.png"), *argv])
    assert_one_line_failure(capsys, rc, message)


def test_preview_refuses_unknown_figure_format_before_loading(acdc, tmp_path, capsys):
    out = tmp_path / "preview.txt"
    rc = main(["data", "preview", "--data", f"acdc:{acdc}", "--out", str(out)])
    assert_one_line_failure(capsys, rc, "preview.txt")
    assert not out.exists()


def test_data_group_without_subcommand_prints_help(capsys):
    assert main(["data"]) == 2
    assert "preview" in capsys.readouterr().out


def test_demo_command_still_registered():
    args = build_parser().parse_args(["demo", "--out", "x", "--seed", "3"])
    assert args.out == "x" and args.seed == 3 and callable(args.command_run)


def test_preview_phantom(tmp_path, capsys):
    pytest.importorskip("structreg.data.phantoms.cardiac")
    out = tmp_path / "cardiac.png"
    rc = main(
        [
            "data",
            "preview",
            "--data",
            "phantom:cardiac",
            "--out",
            str(out),
            "--n",
            "5",
            "--size",
            "48",
        ]
    )
    assert rc == 0 and out.read_bytes()[:8] == PNG_MAGIC
    assert "5 pairs from 5 subjects" in capsys.readouterr().out
