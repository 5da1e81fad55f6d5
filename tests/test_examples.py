"""Every script of examples/ runs at a smoke size and does what its docstring says."""

import importlib.util
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))

pytestmark = pytest.mark.usefixtures("one_thread")


def example(name: str):
    """The example script ``examples/NAME.py`` as a module."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_example_is_tested():
    scripts = {p.stem for p in EXAMPLES.glob("*.py")} - {"corpus_slices"}
    tested = {"register_pair", "adapt_cohort", "transport_deformation"}
    assert scripts == tested


def test_register_pair_refines_and_writes_files_itk_reads(tmp_path):
    out = tmp_path / "out"
    scores = example("register_pair").main(["--refine", "5", "--out", str(out)])
    assert 0 < scores["identity"] < 1
    assert scores["ours, refined 5"] > scores["ours"]  # refining the code helps this pair
    disp = nib.load(out / "disp.nii.gz")
    moved = nib.load(out / "moved.nii.gz")
    assert disp.shape[:2] == moved.shape[:2]
    assert np.isfinite(np.asarray(disp.dataobj)).all()


def test_adapt_cohort_adapts_and_compares_on_held_out_levels(tmp_path):
    out = tmp_path / "adapt"
    scores = example("adapt_cohort").main(["--steps", "2", "--out", str(out)])
    assert set(scores) == {"identity", "bundled", "adapted"}
    assert all(0 < s < 1 for s in scores.values())
    assert scores["adapted"] != scores["bundled"]  # the adapted weights register otherwise
    assert (out / "model" / "config.toml").is_file()
    levels = {p.name for p in (out / "test").glob("fixed_z*.nii.gz")}
    assert levels.isdisjoint(p.name for p in (out / "cohort").glob("fixed_z*.nii.gz"))


def test_transport_carries_the_source_motion_to_the_target():
    efs = list(example("transport_deformation").main(["--subjects", "60"]).values())
    source, target, transported = efs
    assert source < target  # a DCM heart contracts less than a NOR heart
    assert abs(transported - source) < abs(transported - target)
