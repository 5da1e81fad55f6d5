"""The method contract and registry: specs, options, plug-in methods."""

import csv

import pytest
import torch

from structreg.data.spec import load_pairs
from structreg.errors import InputError
from structreg.evaluation.evaluate import run_evaluation
from structreg.methods import (
    MethodSpec,
    Registrar,
    add_method,
    build_methods,
    method_names,
    parse_methods,
)
from structreg.methods.identity import Identity
from structreg.methods.registry import _METHODS


def test_parse_methods():
    assert parse_methods("ours:runs/a, lcc-demons,identity") == [
        MethodSpec("ours", "runs/a"),
        MethodSpec("lcc-demons"),
        MethodSpec("identity"),
    ]
    specs = parse_methods("lcc-demons:levels=2,iterations=15/10,max_step=0.5,identity")
    assert specs == [
        MethodSpec(
            "lcc-demons", None, (("levels", "2"), ("iterations", "15/10"), ("max_step", "0.5"))
        ),
        MethodSpec("identity"),
    ]
    with pytest.raises(InputError, match="unknown method"):
        parse_methods("elastix")
    with pytest.raises(InputError, match="needs a run folder"):
        build_methods("voxelmorph")
    with pytest.raises(InputError, match="unknown option 'sigma'"):
        build_methods("lcc-demons:sigma=2")
    with pytest.raises(InputError, match="not a valid int"):
        build_methods("lcc-demons:levels=two")
    with pytest.raises(InputError, match="given twice"):
        build_methods("identity,identity")
    (labelled,) = build_methods("identity:label=none,batch_size=3")
    assert labelled.name == "none" and labelled.batch_size == 3


def test_builtin_methods_follow_the_protocol():
    assert method_names()[:4] == ["identity", "lcc-demons", "ours", "voxelmorph"]
    for registrar in build_methods("identity,lcc-demons"):
        assert isinstance(registrar, Registrar)
        m = torch.rand(2, 1, 16, 16)
        result = registrar.register(m, m, mask=None)
        assert result.disp.shape == (2, 2, 16, 16) and result.moved.shape == m.shape


def test_a_new_method_plugs_in_without_touching_evaluate(tmp_path):
    class Shift(Identity):
        """Registers by a constant shift of `pixels` (a toy method)."""

        name = "shift"

        def __init__(self, pixels: float) -> None:
            super().__init__(batch_size=8)
            self.pixels = pixels

        def register(self, moving, fixed, *, mask=None):
            result = super().register(moving, fixed)
            result.disp[:, 0] = self.pixels
            return result

    @add_method("shift", "a constant shift (test only)")
    def _build(spec, device):
        spec.refuse_target()
        return Shift(**spec.converted({"pixels": 1.0}))

    try:
        pairs = load_pairs(
            "phantom:cardiac", split="all", seed=3, size=(32, 32), spacing=(6.0, 6.0), n_subjects=3
        )
        methods = build_methods("shift:pixels=2.5,identity")
        assert methods[0].pixels == 2.5
        run_evaluation(pairs, methods, tmp_path, n_figure=1, progress=False)
        rows = list(csv.DictReader((tmp_path / "pairs.csv").open()))
        assert {r["method"] for r in rows} == {"shift", "identity"}
        assert "| metric | shift | identity |" in (tmp_path / "table.md").read_text()
    finally:
        _METHODS.pop("shift")
