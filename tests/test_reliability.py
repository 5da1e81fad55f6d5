"""Reliability, as one table: each row is a way a user's files or a run could be damaged,
a damaged run accepted, a traceback shown or nonsense accepted, with the command that
once did it, the exit status and message it must give now, and the files that must
come through unchanged (or be gone, or be fine, afterwards).

Every row failed on the code before these fixes (``git show 82f731a``); the
``--out /`` of case 2 is played in a folder laid out like ``/`` (the real one would
have been written to)."""

from __future__ import annotations

import gzip
import os
import re
import shutil
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from helpers import TINY_TRAIN
from structreg.cli import main

SPACING = np.diag([6.0, 6.0, 6.0, 1.0])
NAN = float("nan")


@dataclass
class Ctx:
    """What a row's setup works with: a scratch folder, a fresh copy of the tiny run
    (2 steps of ``phantom:cardiac``) and pytest's monkeypatch."""

    tmp: Path
    run: Path
    monkeypatch: pytest.MonkeyPatch

    def nifti(self, name: str, data: np.ndarray | None = None, affine=SPACING) -> Path:
        """A small NIfTI image (a smooth 32×32 blob unless ``data`` is given)."""
        if data is None:
            yy, xx = np.mgrid[:32, :32]
            data = np.exp(-((yy - 15.0) ** 2 + (xx - 17.0) ** 2) / 60.0).astype(np.float32)
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(data, affine), str(path))
        return path

    def pair(self) -> tuple[Path, Path]:
        """A moving and a fixed image (``m.nii.gz``, ``f.nii.gz``)."""
        moving = self.nifti("m.nii.gz")
        fixed = self.nifti("f.nii.gz", np.roll(np.asarray(nib.load(moving).dataobj), 2, 0))
        return moving, fixed

    def csv(self, name: str, rows: list[str], header: str = "moving,fixed,id") -> Path:
        """A pairs CSV (its image files made by :meth:`pair`)."""
        self.pair()
        path = self.tmp / name
        path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
        return path

    def register(self, *extra: object, model: Path | None = None) -> list[str]:
        return ["register", "--model", str(model or self.run), *map(str, extra)]

    def resume(self, *extra: str) -> list[str]:
        """``train --resume`` of the tiny run to step 3."""
        return ["train", "--data", "phantom:cardiac", "--out", str(self.run), *TINY_TRAIN,
                "--set", "train.steps=3", "--resume", *extra]  # fmt: skip


@dataclass(frozen=True)
class Row:
    """A case of the issue: ``setup(ctx)`` lays out the files and returns the command;
    ``code`` and ``message`` (a regex, searched in standard error) are what it must
    give; ``unchanged`` (paths or folders, relative to the scratch folder) must keep
    their bytes; ``absent`` (glob patterns) must match nothing afterwards; ``check``
    looks at the result."""

    case: int
    setup: Callable[[Ctx], list[str]]
    code: int
    message: str = ""
    unchanged: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    check: Callable[[Ctx], None] | None = field(default=None)


# ----------------------------------------------------------------------------- setups


def _linked_summary(c: Ctx) -> list[str]:
    (c.tmp / "elsewhere").mkdir()
    (c.tmp / "elsewhere" / "x.csv").write_text("a user's own table\n")
    (c.tmp / "out").mkdir()
    (c.tmp / "out" / "summary.csv").symlink_to(c.tmp / "elsewhere" / "x.csv")
    csv = c.csv("one.csv", ["m.nii.gz,f.nii.gz,p1"])
    return c.register("--data", f"pairs:{csv}", "--out", c.tmp / "out", "--resume")


def _like_root(c: Ctx) -> list[str]:
    root = c.tmp / "root"
    for name in ("bin", "etc", "home", "usr"):
        (root / name).mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (root / "bin" / "sh").write_text("#!\n")
    csv = c.csv("one.csv", ["m.nii.gz,f.nii.gz,x"])
    return c.register("--data", f"pairs:{csv}", "--out", root)


def _batch_out_with_notes(c: Ctx) -> list[str]:
    (c.tmp / "out").mkdir()
    (c.tmp / "out" / "notes.txt").write_text("my notes\n")
    csv = c.csv("one.csv", ["m.nii.gz,f.nii.gz,p1"])
    return c.register("--data", f"pairs:{csv}", "--out", c.tmp / "out")


def _users_summary(c: Ctx) -> list[str]:
    (c.tmp / "out").mkdir()
    (c.tmp / "out" / "summary.csv").write_text("subject,score\n1,0.9\n")
    csv = c.csv("one.csv", ["m.nii.gz,f.nii.gz,p1"])
    return c.register("--data", f"pairs:{csv}", "--out", c.tmp / "out")


def _input_in_out(c: Ctx) -> list[str]:
    _, fixed = c.pair()
    moved = c.nifti("out/moved.nii.gz")  # an earlier output, registered again
    return c.register("--moving", moved, "--fixed", fixed, "--out", c.tmp / "out")


def _id_summary_csv(c: Ctx) -> list[str]:
    csv = c.csv("one.csv", ["m.nii.gz,f.nii.gz,summary.csv", "m.nii.gz,f.nii.gz,con"])
    return c.register("--data", f"pairs:{csv}", "--out", c.tmp / "out")


def _ids_renamed(c: Ctx) -> None:
    out = c.tmp / "out"
    assert (out / "summary.csv_" / "moved.nii.gz").is_file() and (out / "con_").is_dir()
    assert "summary.csv_,summary.csv,ok" in (out / "summary.csv").read_text()


def _flipped_optimiser(c: Ctx) -> list[str]:
    path = c.run / "checkpoint.pt"
    state = torch.load(path, weights_only=True)["optimizer"]["state"]
    exp_avg = max((s["exp_avg"] for s in state.values()), key=lambda t: t.numel())
    raw = bytearray(path.read_bytes())
    start = raw.find(exp_avg.numpy().tobytes())
    assert start > 0
    middle = start + exp_avg.numel() * 2 // 4 * 4
    raw[middle : middle + 16] = struct.pack("<4f", *[-4.7e4] * 4)  # 16 bytes, still floats
    path.write_bytes(bytes(raw))
    return c.resume()


def _edited_config(key: str, value: float) -> Callable[[Ctx], list[str]]:
    def setup(c: Ctx) -> list[str]:
        for name in ("best.pt", "checkpoint.pt"):
            ckpt = torch.load(c.run / name, weights_only=True)
            ckpt["config"]["model"][key] = value
            torch.save(ckpt, c.run / name)
        moving, fixed = c.pair()
        return c.register("--moving", moving, "--fixed", fixed, "--out", c.tmp / "out")

    return setup


def _full_disk_at_first_checkpoint(c: Ctx) -> list[str]:
    def full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:664] unexpected pos 4160")

    c.monkeypatch.setattr(torch, "save", full)
    return ["train", "--data", "phantom:cardiac", "--out", str(c.tmp / "new"), *TINY_TRAIN]


def _killed_start(c: Ctx) -> Path:
    """A run folder as a training killed before its first checkpoint leaves it."""
    folder = c.tmp / "killed"
    folder.mkdir()
    for name in ("config.toml", "data.json"):
        shutil.copy(c.run / name, folder / name)
    (folder / "train_log.csv").write_text("step,epoch,loss\n")
    return folder


def _rerun_killed(*extra: str) -> Callable[[Ctx], list[str]]:
    def setup(c: Ctx) -> list[str]:
        folder = _killed_start(c)
        return ["train", "--data", "phantom:cardiac", "--out", str(folder), *TINY_TRAIN, *extra]

    return setup


def _trained(c: Ctx) -> None:
    assert (c.tmp / "killed" / "checkpoint.pt").is_file()


def _killed_demo(c: Ctx) -> list[str]:
    model = c.tmp / "demo" / "model"
    model.mkdir(parents=True)
    (model / "config.toml").write_text("[model]\n")
    (model / "data.json").write_text("{}")
    (model / "train_log.csv").write_text("step,epoch,loss\n")
    return ["demo", "--out", str(c.tmp / "demo"), "--subjects", "10", "--steps", "1"]


def _demo_done(c: Ctx) -> None:
    assert (c.tmp / "demo" / "report.md").is_file()


def _killed_batch(c: Ctx) -> list[str]:
    one = c.csv("one.csv", ["m.nii.gz,f.nii.gz,p1"])
    assert main(c.register("--data", f"pairs:{one}", "--out", c.tmp / "out")) == 0
    partial = c.tmp / "out" / ".p2.k3j4h5g6.tmp"
    partial.mkdir()
    (partial / "moved.nii.gz").write_bytes(b"\x1f\x8b\x08\x00 partial")
    two = c.csv("two.csv", ["m.nii.gz,f.nii.gz,p1", "m.nii.gz,f.nii.gz,p2"])
    return c.register("--data", f"pairs:{two}", "--out", c.tmp / "out", "--resume")


def _lock(text: str, age_s: float) -> Callable[[Ctx], list[str]]:
    def setup(c: Ctx) -> list[str]:
        lock = c.run / "train.lock"
        lock.write_text(text)
        then = time.time() - age_s
        os.utime(lock, (then, then))
        return c.resume()

    return setup


def _singular_fixed(c: Ctx) -> list[str]:
    moving, _ = c.pair()
    image = nib.Nifti1Image(np.ones((32, 32), np.float32), SPACING)
    image.set_sform(np.zeros((4, 4)), code=1)
    image.set_qform(None, code=0)
    nib.save(image, str(c.tmp / "singular.nii.gz"))
    singular = c.tmp / "singular.nii.gz"
    return c.register("--moving", moving, "--fixed", singular, "--out", c.tmp / "out")


def _many_samples(c: Ctx) -> list[str]:
    moving, _ = c.pair()
    return ["sample", "--model", str(c.run), "--moving", str(moving), "--n", "100000000",
            "--out", str(c.tmp / "out")]  # fmt: skip


def _full_disk_export(c: Ctx) -> list[str]:
    import safetensors.torch
    from safetensors import SafetensorError

    def full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\0" * 64)  # what fitted
        raise SafetensorError(
            'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No '
            'space left on device" })'
        )

    c.monkeypatch.setattr(safetensors.torch, "save_file", full)
    (c.tmp / "disk").mkdir()
    return ["export", "--model", str(c.run), "--out", str(c.tmp / "disk" / "m.safetensors")]


def _moving_file(make: Callable[[Ctx], Path]) -> Callable[[Ctx], list[str]]:
    def setup(c: Ctx) -> list[str]:
        _, fixed = c.pair()
        return c.register("--moving", make(c), "--fixed", fixed, "--out", c.tmp / "out")

    return setup


def _fixed_file(make: Callable[[Ctx], Path]) -> Callable[[Ctx], list[str]]:
    def setup(c: Ctx) -> list[str]:
        moving, _ = c.pair()
        return c.register("--moving", moving, "--fixed", make(c), "--out", c.tmp / "out")

    return setup


def _complex(c: Ctx) -> Path:
    data = np.asarray(nib.load(c.nifti("m.nii.gz")).dataobj)
    return c.nifti("complex.nii.gz", (data + 1j * data).astype(np.complex64))


def _huge_voxels(c: Ctx) -> Path:
    return c.nifti("huge_voxels.nii.gz", affine=np.diag([1e30, 1e30, 1e30, 1.0]))


def _two_moving_columns(c: Ctx) -> list[str]:
    c.nifti("other.nii.gz", np.zeros((32, 32), np.float32))
    csv = c.csv("two.csv", ["other.nii.gz,f.nii.gz,m.nii.gz,p1"], header="moving,fixed,moving,id")
    return c.register("--data", f"pairs:{csv}", "--out", c.tmp / "out")


def _huge_header(c: Ctx) -> Path:
    header = nib.Nifti1Header()
    header.set_data_dtype(np.float32)
    header.set_data_shape((30000, 30000, 30000))
    header.set_zooms((1.0, 1.0, 1.0))
    header.set_sform(np.eye(4), code=1)
    header["vox_offset"] = 352
    path = c.tmp / "huge.nii.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(header.binaryblock + b"\0" * 4 + b"\0" * 4096)
    return path


def _tensorboard_missing(c: Ctx) -> list[str]:
    import sys

    c.monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # not installed
    return ["train", "--data", "phantom:cardiac", "--out", str(c.tmp / "new"), *TINY_TRAIN,
            "--set", "train.tensorboard=true"]  # fmt: skip


def _one_line_ending(c: Ctx) -> None:
    data = (c.run / "train_log.csv").read_bytes()
    assert b"\r\n" not in data and data.count(b"\n") == 4  # header, steps 1-3


ROWS: dict[str, Row] = {
    # ---- files outside --out, or a user's files destroyed
    "batch summary.csv a link elsewhere": Row(
        1, _linked_summary, 1, r"summary\.csv.*link", unchanged=("elsewhere",)
    ),
    "batch --out a folder like /": Row(2, _like_root, 1, "holds other files", unchanged=("root",)),
    "batch --out holding a user's notes": Row(
        2, _batch_out_with_notes, 1, "holds other files", unchanged=("out",)
    ),
    "batch over a user's summary.csv": Row(
        3, _users_summary, 1, r"summary\.csv.*not a structreg", unchanged=("out",)
    ),
    "an input in the output folder": Row(
        4, _input_in_out, 1, "lies in the output folder", unchanged=("out",)
    ),
    "a pair id summary.csv is renamed": Row(5, _id_summary_csv, 0, check=_ids_renamed),
    # ---- damaged runs accepted
    "flipped bytes in the optimiser state": Row(
        6, _flipped_optimiser, 1, "digest", unchanged=("run/checkpoint.pt", "run/train_log.csv")
    ),
    "a checkpoint's model.steps edited": Row(
        7, _edited_config("steps", 7), 1, "digest", absent=("out",)
    ),
    "a checkpoint's velocity_smoothing NaN": Row(
        7, _edited_config("velocity_smoothing", NAN), 1, "velocity_smoothing.*fin", absent=("out",)
    ),
    "a full disk at the first checkpoint": Row(
        8, _full_disk_at_first_checkpoint, 1, "could not be written", absent=("new",)
    ),
    "train into a start that was killed": Row(
        8, _rerun_killed(), 0, "before its first checkpoint", check=_trained
    ),
    "train --resume of a start that was killed": Row(
        8, _rerun_killed("--resume"), 0, "before its first checkpoint", check=_trained
    ),
    "demo rerun after a kill before its first checkpoint": Row(
        8, _killed_demo, 0, "before its first checkpoint", check=_demo_done
    ),
    "a killed batch's partial folder": Row(
        9, _killed_batch, 0, absent=("out/.p2.*.tmp",), unchanged=("out/p1",)
    ),
    "a stale lock of another host": Row(
        10, _lock("4242 elsewhere.example\n", 3600), 0, "taking over .*4242.*elsewhere"
    ),
    "a garbage lock file": Row(10, _lock("\x00\x17garbage", 3600), 0, "taking over"),
    # ---- tracebacks instead of one line
    "a fixed image with a singular affine": Row(
        11, _singular_fixed, 1, "singular.nii.gz: singular affine", absent=("out",)
    ),
    "sample --n 100000000": Row(12, _many_samples, 1, "memory", absent=("out",)),
    "export onto a full disk": Row(
        13, _full_disk_export, 1, "m.safetensors.*No space left on device", absent=("disk/*",)
    ),
    # ---- silently accepted nonsense
    "a complex-valued image": Row(
        14, _moving_file(_complex), 1, "complex.nii.gz: complex", absent=("out",)
    ),
    "1e30 mm voxels, moving": Row(
        15, _moving_file(_huge_voxels), 1, "huge_voxels.nii.gz: voxel size", absent=("out",)
    ),
    "1e30 mm voxels, fixed": Row(
        15, _fixed_file(_huge_voxels), 1, "huge_voxels.nii.gz: voxel size", absent=("out",)
    ),
    "a CSV with two moving columns": Row(
        16, _two_moving_columns, 1, "column 'moving' .*more than once", absent=("out",)
    ),
    "a header claiming 30000^3 voxels": Row(
        17, _moving_file(_huge_header), 1, "huge.nii.gz: .*30000x30000x30000", absent=("out",)
    ),
    "tensorboard = true without TensorBoard": Row(
        18, _tensorboard_missing, 0, "TensorBoard is not installed"
    ),
    "train_log.csv after a resume": Row(19, lambda c: c.resume(), 0, check=_one_line_ending),
}


def _snapshot(path: Path) -> dict[str, bytes | str]:
    """Every entry under ``path`` (itself included): file bytes, link targets, folders."""
    if path.is_symlink():
        return {".": f"-> {os.readlink(path)}"}
    if path.is_file():
        return {".": path.read_bytes()}
    out: dict[str, bytes | str] = {".": "folder"}
    for entry in sorted(path.rglob("*")):
        key = str(entry.relative_to(path))
        if entry.is_symlink():
            out[key] = f"-> {os.readlink(entry)}"
        elif entry.is_file():
            out[key] = entry.read_bytes()
        else:
            out[key] = "folder"
    return out


@pytest.fixture(scope="module")
def model(tiny_run_factory):
    return tiny_run_factory([0.0, 0.0])


@pytest.mark.parametrize("name", list(ROWS), ids=[f"{r.case:02d} {n}" for n, r in ROWS.items()])
def test_reliability(name, model, tmp_path, monkeypatch, capsys):
    row = ROWS[name]
    run = tmp_path / "run"
    shutil.copytree(model, run)
    ctx = Ctx(tmp_path, run, monkeypatch)
    argv = row.setup(ctx)
    before = {path: _snapshot(tmp_path / path) for path in row.unchanged}
    capsys.readouterr()
    code = main([str(a) for a in argv])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert code == row.code, err
    errors = [line for line in err.splitlines() if line.startswith("structreg: error:")]
    assert len(errors) == (1 if row.code else 0), err
    assert re.search(row.message, err), err
    for path, snapshot in before.items():
        assert _snapshot(tmp_path / path) == snapshot, path
    for pattern in row.absent:
        assert not list(tmp_path.glob(pattern)), pattern
    if row.check is not None:
        row.check(ctx)


def test_every_case_of_the_issue_has_a_row():
    assert {row.case for row in ROWS.values()} == set(range(1, 20))
