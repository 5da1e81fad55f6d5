"""The classical baselines ANTs SyN (``ants-syn``) and DIPY SyN (``dipy-syn``).

The convention checks: our ``warp(moving, disp)`` must reproduce each library's
own warped moving image, so ``disp`` is in voxels, channel ``c`` along ``S[c]``,
pull-back; the same check with the sign flipped or the channels swapped must fail.
"""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from structreg.core.metrics import folding_percent
from structreg.core.ops import compose, exponentiate, gaussian_smooth, warp
from structreg.errors import ConfigError, InputError, MissingDependencyError
from structreg.methods import build_method


def _pair(shape, amplitude, seed=3):
    """A smooth textured ``moving`` in [0, 1], ``fixed = warp(moving, u)`` and ``u``:
    a diffeomorphism whose channels differ (an axis swap or sign flip shows)."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(1, 1, *shape, generator=g, dtype=torch.float64)
    img = gaussian_smooth(noise, sigma=2.0, kernel_size=13)
    moving = (img - img.min()) / (img.max() - img.min())
    axes = torch.meshgrid(*[torch.arange(s, dtype=torch.float64) / s for s in shape], indexing="ij")
    ndim = len(shape)
    v = torch.stack(
        [
            torch.sin(2 * math.pi * axes[(c + 1) % ndim] + 0.7 * c + 0.3)
            * torch.cos(math.pi * axes[c] + 0.4 * c)
            for c in range(ndim)
        ]
    )
    u = exponentiate(amplitude * v[None], 6)
    return moving, warp(moving, u, padding_mode="border"), u


def _inside(disp, border=3):
    """``(*S)`` bool: voxels at least ``border`` from the edge whose sample point
    ``x + disp(x)`` lies inside the image (the libraries read 0 outside, we the border)."""
    shape = disp.shape[1:]
    grids = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    ok = np.ones(shape, dtype=bool)
    for c, (g, s) in enumerate(zip(grids, shape, strict=True)):
        ok &= (g >= border) & (g < s - border)
        ok &= (g + disp[c] >= 0) & (g + disp[c] <= s - 1)
    return ok


def _ours(image, disp):
    """Our warp of an ``S``-shaped array by a ``(ndim, *S)`` displacement."""
    t = torch.from_numpy(np.asarray(image, np.float64))[None, None]
    return warp(t, torch.from_numpy(disp)[None])[0, 0].numpy()


def _check_convention(moving, disp, library_warped):
    """Our warp matches the library's; sign-flipped / swapped channels do not."""
    inside = _inside(disp)
    assert inside.mean() > 0.6
    scale = float(moving.max() - moving.min())
    err = np.abs(_ours(moving, disp) - library_warped)[inside].max() / scale
    flipped = np.abs(_ours(moving, -disp) - library_warped)[inside].max() / scale
    swapped = np.abs(_ours(moving, disp[::-1].copy()) - library_warped)[inside].max() / scale
    print(f"\nmax |ours - library| / range {err:.2e} (-disp {flipped:.2f}, swapped {swapped:.2f})")
    assert err < 1e-3
    assert flipped > 0.05 and swapped > 0.05


def _interior(ndim, border):
    return (slice(None), slice(None)) + (slice(border, -border),) * ndim


def _rmse(a, b, border=6):
    """Per-pair RMSE ``(N,)`` away from the border (where the true field samples
    outside the image and no method can follow it)."""
    inner = _interior(a.dim() - 2, border)
    return (a - b)[inner].pow(2).flatten(1).mean(1).sqrt()


def _check_recovery(result, moving, fixed, u_true, border=6):
    """Less intensity error than identity, and the true field recovered (interior)."""
    inner = _interior(u_true.dim() - 2, border)
    before, after = float(_rmse(moving, fixed, border)), float(_rmse(result.moved, fixed, border))
    epe = (result.disp - u_true).norm(dim=1, keepdim=True)[inner].mean()
    magnitude = u_true.norm(dim=1, keepdim=True)[inner].mean()
    print(
        f"\n{result.seconds:.2f}s rmse {before:.4f} -> {after:.4f}, "
        f"EPE {epe:.3f} vox (true mean |u| {magnitude:.3f})"
    )
    assert after < 0.5 * before
    return float(epe), float(magnitude)


# -- the shared base ---------------------------------------------------------------------------


def test_a_library_adapter_states_only_its_config_import_and_pair_registration():
    from dataclasses import dataclass

    from structreg.methods.classical import LibraryRegistrar, config_from_spec
    from structreg.methods.registry import MethodSpec, parse_method_spec

    @dataclass
    class ShiftConfig:
        shift: float = 1.0

    class Shift(LibraryRegistrar[ShiftConfig]):
        name = "shift"
        config_type = ShiftConfig
        import_library = staticmethod(lambda: None)

        def register_pair(self, moving, fixed):
            return np.full((moving.ndim, *moving.shape), self.config.shift), None

    spec = MethodSpec("shift", None, (("shift", "0.5"), ("batch_size", "3"), ("label", "s")))
    method = Shift.from_spec(spec, "cpu")
    assert method.config.shift == 0.5 and method.batch_size == 3
    assert Shift().config == ShiftConfig() and Shift().batch_size == 8
    m = torch.rand(1, 1, 8, 9)
    result = method.register(m, torch.rand(2, 1, 8, 9))
    assert result.disp.shape == (2, 2, 8, 9) and result.disp.dtype == m.dtype
    assert torch.equal(result.disp, torch.full_like(result.disp, 0.5))
    assert result.inverse_disp is None and result.velocity is None and result.seconds >= 0
    method.name = "a label"  # labels rename the instance; errors name the method
    with pytest.raises(InputError, match="^shift: "):
        method.register(m, torch.rand(1, 1, 8, 8))
    with pytest.raises(InputError, match="takes no run folder"):
        config_from_spec(parse_method_spec("identity:some/dir"), ShiftConfig, 8)
    with pytest.raises(InputError, match="unknown option 'sigma'"):
        Shift.from_spec(MethodSpec("shift", None, (("sigma", "1"),)), "cpu")


# -- ANTs -------------------------------------------------------------------------------------


def test_ants_field_reproduces_ants_warp():
    pytest.importorskip("ants")
    from structreg.methods.ants_syn import AntsSynConfig, ants_syn_pair

    moving, fixed, _ = _pair((48, 48), 2.5)
    m, f = moving[0, 0].numpy(), fixed[0, 0].numpy()
    disp, inverse, warped = ants_syn_pair(m, f, AntsSynConfig())
    assert disp.shape == (2, 48, 48) and inverse is not None
    assert np.abs(disp).max() > 2.0  # a real deformation, so the check has teeth
    _check_convention(m, disp, warped)
    # the inverse undoes the forward transform: phi(psi(y)) = y
    both = compose(torch.from_numpy(disp)[None], torch.from_numpy(inverse)[None])[0].numpy()
    assert np.abs(both[:, _inside(inverse, 6)]).max() < 0.2


def test_ants_registers_and_recovers_known_field():
    pytest.importorskip("ants")
    moving, fixed, u_true = _pair((48, 48), 2.5)
    env = os.environ.get("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS")
    method = build_method("ants-syn")
    result = method.register(moving.float(), fixed.float())
    assert os.environ.get("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS") == env  # restored
    assert result.disp.dtype == torch.float32 and result.velocity is None
    assert result.inverse_disp is not None and result.jacobian_det.shape == (1, 1, 48, 48)
    epe, magnitude = _check_recovery(result, moving.float(), fixed.float(), u_true.float())
    assert epe < 0.3 * magnitude
    folding = folding_percent(result.disp[0])
    assert math.isfinite(folding) and folding < 0.5
    # reproducible: the same pair gives the same field
    again = method.register(moving.float(), fixed.float())
    assert torch.equal(again.disp, result.disp)


def test_ants_defaults_and_batch():
    pytest.importorskip("ants")
    moving, fixed, _ = _pair((48, 48), 2.5)
    result = build_method("ants-syn:defaults=true").register(moving, torch.cat([fixed, moving]))
    assert result.disp.shape == (2, 2, 48, 48)
    err = _rmse(result.moved, torch.cat([fixed, moving]))
    assert err[0] < 0.5 * _rmse(moving, fixed)[0]
    assert result.disp[1].abs().max() < 0.5  # an image onto itself barely moves


def test_ants_3d_smoke():
    pytest.importorskip("ants")
    moving, fixed, _ = _pair((24, 24, 24), 2.0)
    result = build_method("ants-syn").register(moving.float(), fixed.float())
    assert result.disp.shape == (1, 3, 24, 24, 24)
    assert result.inverse_disp is not None and result.inverse_disp.shape == (1, 3, 24, 24, 24)
    before, after = _rmse(moving.float(), fixed.float(), 4), _rmse(result.moved, fixed.float(), 4)
    print(f"\n{result.seconds:.2f}s rmse {float(before):.4f} -> {float(after):.4f}")
    assert after < 0.7 * before
    assert folding_percent(result.disp[0]) < 0.5


def test_ants_spec_options():
    pytest.importorskip("ants")
    method = build_method("ants-syn:iterations=20/10/0,radius=2,threads=2,label=ants-fast")
    assert method.name == "ants-fast"
    assert method.config.iterations == [20, 10, 0] and method.config.threads == 2
    kwargs = method.config.registration_kwargs()
    assert kwargs["reg_iterations"] == (20, 10, 0) and kwargs["syn_metric"] == "CC"
    assert build_method("ants-syn:defaults=true").config.registration_kwargs() == {
        "type_of_transform": "SyNOnly"
    }
    with pytest.raises(InputError, match="unknown option 'sigma'"):
        build_method("ants-syn:sigma=2")
    with pytest.raises(InputError, match="not a valid int"):
        build_method("ants-syn:radius=two")
    with pytest.raises(ConfigError, match="threads"):
        build_method("ants-syn:threads=0")
    with pytest.raises(InputError, match="takes no run folder"):
        build_method("ants-syn:some/dir")
    m = torch.rand(1, 1, 16, 16, dtype=torch.float64)
    with pytest.raises(InputError, match="ANTs refused"):
        build_method("ants-syn:transform=NoSuchSyN").register(m, m)


# -- DIPY -------------------------------------------------------------------------------------


def test_dipy_field_reproduces_dipy_warp():
    pytest.importorskip("dipy")
    from structreg.methods.dipy_syn import DipySynConfig, dipy_syn_map, map_fields

    moving, fixed, _ = _pair((48, 48), 2.5)
    m, f = moving[0, 0].numpy(), fixed[0, 0].numpy()
    mapping = dipy_syn_map(m, f, DipySynConfig())
    disp, inverse = map_fields(mapping)
    assert disp.shape == (2, 48, 48) and np.abs(disp).max() > 2.0
    _check_convention(m, disp, mapping.transform(m))
    # the backward field warps fixed onto moving as DIPY's transform_inverse does
    inside = _inside(inverse)
    err = np.abs(_ours(f, inverse) - mapping.transform_inverse(f))[inside].max()
    assert err < 1e-3
    both = compose(torch.from_numpy(disp)[None], torch.from_numpy(inverse)[None])[0].numpy()
    assert np.abs(both[:, _inside(inverse, 6)]).max() < 0.2


def test_dipy_registers_and_recovers_known_field():
    pytest.importorskip("dipy")
    moving, fixed, u_true = _pair((48, 48), 2.5)
    result = build_method("dipy-syn").register(moving.float(), fixed.float())
    assert result.disp.dtype == torch.float32 and result.velocity is None
    assert result.inverse_disp is not None and result.jacobian_det.shape == (1, 1, 48, 48)
    epe, magnitude = _check_recovery(result, moving.float(), fixed.float(), u_true.float())
    assert epe < 0.3 * magnitude
    folding = folding_percent(result.disp[0])
    assert math.isfinite(folding) and folding < 0.5


def test_dipy_3d_smoke():
    pytest.importorskip("dipy")
    moving, fixed, _ = _pair((24, 24, 24), 2.0)
    # 3 levels of 24^3 leave 6^3, smaller than the default 9^3 CC window: DIPY refuses
    with pytest.raises(InputError, match="level_iters"):
        build_method("dipy-syn").register(moving, fixed)
    result = build_method("dipy-syn:level_iters=30/20").register(moving, fixed)
    assert result.disp.shape == (1, 3, 24, 24, 24) and result.disp.dtype == torch.float64
    before, after = _rmse(moving, fixed, 4), _rmse(result.moved, fixed, 4)
    print(f"\n{result.seconds:.2f}s rmse {float(before):.4f} -> {float(after):.4f}")
    assert after < 0.5 * before
    assert folding_percent(result.disp[0]) < 0.5


def test_dipy_spec_options():
    pytest.importorskip("dipy")
    method = build_method("dipy-syn:level_iters=20/10,radius=3,step_length=0.5")
    assert method.config.level_iters == [20, 10] and method.config.radius == 3
    assert method.config.step_length == 0.5
    with pytest.raises(InputError, match="unknown option 'iterations'"):
        build_method("dipy-syn:iterations=20/10")
    with pytest.raises(ConfigError, match="sigma_diff"):
        build_method("dipy-syn:sigma_diff=0")


# -- optional dependencies ---------------------------------------------------------------------


def test_missing_packages_raise_one_line_errors(monkeypatch):
    monkeypatch.setitem(sys.modules, "ants", None)  # makes `import ants` fail
    with pytest.raises(MissingDependencyError, match=r"pip install 'structreg\[classical\]'"):
        build_method("ants-syn")
    monkeypatch.setitem(sys.modules, "dipy.align", None)
    with pytest.raises(MissingDependencyError, match="dipy-syn needs dipy"):
        build_method("dipy-syn")


def test_structreg_imports_without_loading_ants_or_dipy():
    code = (
        "import sys, structreg, structreg.methods as m; "
        "assert {'ants-syn', 'dipy-syn'} <= set(m.method_names()); "
        "assert 'ants' not in sys.modules and 'dipy' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
