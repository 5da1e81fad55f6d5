"""The cardiac phantom's continuous heart model: groups, subjects, slices, ES -> ED map.

ED is a scene defined in a heart-centred frame (millimetres; ``u`` points from the LV
centre towards the RV). ES is *defined* by an explicit map ``T`` from ES to ED
positions, ``ES(x) = ED_scene(T(x))``: ES labels and intensities are rasterised from
the scene (never by warping the ED raster) and the ground truth is
``disp(x) = T(x) - x`` in voxels, the pull-back convention
``fixed(x) ≈ moving(x + disp(x))``. ``T = T_LV ∘ T_RV``:

* ``T_LV`` works on squared radii ``s = r²`` about the LV centre along each ray:
  the blood pool scales uniformly (``h(s) = s / c²``), the myocardium is
  incompressible (``h(s) = s + k``: Jacobian 1, so the wall thickens as the
  cavity shrinks) and outside the epicardium the shift fades,
  ``h(s) = s + k w(s)`` with ``∂h/∂s ≥ 0.6``. The ED angle is ``θ + τ(r)``, a
  rigid twist ``τ`` of the LV fading to 0 outside. Its Jacobian determinant is
  exactly ``∂h/∂s > 0``.
* ``T_RV`` stretches each ray through the RV crescent (beyond the ES
  epicardium) so that the crescent's ES width is a chosen fraction of its ED
  width, fading back to the identity beyond the free wall (radial slope > 0).

Both maps are monotone along rays, hence invertible: ``disp`` does not fold and
vanishes far from the heart. The angular profiles (radii, contraction, RV
width) are tabulated at 0.35° and interpolated linearly; ED and ES use the same
model. Per-angle contraction ``c(θ)`` (ES/ED endocardial radius) is solved so
that the slice's ejection fraction ``1 - ∫(c r_endo)² dθ / ∫r_endo² dθ`` (the
LV blood-pool area change) equals a value drawn inside the group's range.

A subject (:func:`subject_params`, per ``seed, subject, group``) holds every parameter
shared by its slices; a slice (:func:`slice_params`) scales them to its level along the
long axis (0 base … 1 apex). Groups (modelled on ACDC; see :data:`EF_RANGES`):

* ``NOR``  normal LV and RV.
* ``DCM``  dilated LV, wall thin relative to the cavity, EF < 40 %, weak twist.
* ``HCM``  small cavity, thick wall with extra septal thickness, high EF.
* ``MINF`` an akinetic, thinned infarct sector in the free wall, reduced EF.
* ``RV``   dilated, hypokinetic right ventricle, normal-ish LV.

Shared by the 2-D (:mod:`.cardiac`) and 3-D (:mod:`.cardiac_volumes`) cardiac phantoms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from ...errors import DataError, InputError

__all__ = [
    "APEX_LEVEL",
    "BASE_LEVEL",
    "CARDIAC_GROUPS",
    "EF_RANGES",
    "MID_LEVEL",
    "HeartSlice",
    "check_non_negative_int",
    "designed_ef",
    "ejection_fraction",
    "resolve_group",
    "slice_params",
    "subject_params",
]

CARDIAC_GROUPS = ("NOR", "DCM", "HCM", "MINF", "RV")

#: Designed LV ejection-fraction ranges per group (fractions of the ED blood-pool
#: area of one slice). Each slice's EF is drawn inside its range with a margin
#: that absorbs rasterisation, so measured EFs fall in these ranges.
EF_RANGES = {
    "NOR": (0.55, 0.70),
    "DCM": (0.10, 0.35),
    "HCM": (0.65, 0.85),
    "MINF": (0.25, 0.45),
    "RV": (0.50, 0.65),
}


@dataclass(frozen=True)
class _GroupSpec:
    """Uniform sampling ranges of one group at mid-ventricle, ED (mm, radians)."""

    endo_radius: tuple[float, float]  # LV blood-pool radius
    wall: tuple[float, float]  # LV wall thickness
    ef: tuple[float, float]  # sampled EF (inside EF_RANGES with a margin)
    rv_width: tuple[float, float]  # RV crescent width at its widest
    rv_ratio: tuple[float, float]  # ES / ED crescent width
    rv_span: tuple[float, float] = (1.15, 1.4)  # crescent half-angle
    twist_scale: float = 1.0
    septal_excess: tuple[float, float] = (0.0, 0.1)  # extra relative septal thickness
    infarct: bool = False


_GROUP_SPECS = {
    "NOR": _GroupSpec(
        endo_radius=(22, 26),
        wall=(9.5, 11.5),
        ef=(0.58, 0.67),
        rv_width=(24, 30),
        rv_ratio=(0.55, 0.7),
    ),
    "DCM": _GroupSpec(
        endo_radius=(29, 34),
        wall=(9.5, 11),
        ef=(0.13, 0.32),
        rv_width=(24, 30),
        rv_ratio=(0.7, 0.85),
        twist_scale=0.4,
    ),
    "HCM": _GroupSpec(
        endo_radius=(21.5, 25.5),
        wall=(14, 18),
        ef=(0.67, 0.73),
        rv_width=(24, 30),
        rv_ratio=(0.55, 0.65),
        twist_scale=1.2,
        septal_excess=(0.2, 0.45),
    ),
    "MINF": _GroupSpec(
        endo_radius=(25, 30),
        wall=(10.5, 12.5),
        ef=(0.28, 0.42),
        rv_width=(24, 30),
        rv_ratio=(0.6, 0.75),
        twist_scale=0.6,
        infarct=True,
    ),
    "RV": _GroupSpec(
        endo_radius=(21, 25),
        wall=(10, 12),
        ef=(0.53, 0.62),
        rv_width=(32, 42),
        rv_ratio=(0.75, 0.9),
        rv_span=(1.3, 1.55),
    ),
}

# Tissue classes of the scene: (ED intensity, relative texture amplitude).
_TISSUES = {
    "air": (0.0, 0.0),
    "body": (0.22, 0.15),
    "fat": (0.85, 0.08),
    "muscle": (0.28, 0.08),
    "lung": (0.05, 0.5),
    "liver": (0.38, 0.06),
    "aorta": (0.8, 0.03),
    "spine": (0.45, 0.1),
    "epifat": (0.75, 0.15),
    "rv_wall": (0.3, 0.05),
    "rv_blood": (0.9, 0.05),
    "myocardium": (0.27, 0.06),
    "papillary": (0.3, 0.05),
    "blood": (0.92, 0.04),
}
_TISSUE = {name: i for i, name in enumerate(_TISSUES)}
_TEXTURE_AMPLITUDE = np.array([amp for _, amp in _TISSUES.values()])

#: Slice level of a single-slice pair (0 base … 1 apex).
MID_LEVEL = 0.45
#: Levels of the first (basal) and last (apical) slice of a subject's slices or stack.
BASE_LEVEL, APEX_LEVEL = 0.15, 0.8
_TAPER_MM = 25.0  # min distance over which the heart's motion fades outside it
_TABLE_SIZE = 1024  # angular samples of the tabulated profiles
_TEXTURE_HALF_MM = 160.0  # texture grids cover [-160, 160]² mm of the heart frame
_TEXTURE_STEP_MM = 2.5
_RV_WALL_MM = 3.0


def _smoothstep(t: np.ndarray) -> np.ndarray:
    """C¹ step: 0 for t ≤ 0, 1 for t ≥ 1, slope ≤ 1.5."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _window(phi: np.ndarray, centre: float, half_width: float, flat: float = 0.0) -> np.ndarray:
    """Angular window: 1 within ``flat * half_width`` of ``centre``, raised cosine
    down to 0 at ``half_width`` (radians)."""
    d = np.abs(np.angle(np.exp(1j * (phi - centre))))
    t = np.clip((d - flat * half_width) / ((1.0 - flat) * half_width), 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * t))


def _crescent(phi: np.ndarray, width: float, half_angle: float | np.ndarray) -> np.ndarray:
    """Width profile of a crescent centred on φ = 0 (0 beyond ``half_angle``)."""
    d = np.abs(np.angle(np.exp(1j * phi)))
    return width * np.clip(1.0 - (d / half_angle) ** 2, 0.0, None) ** 0.75


@dataclass
class HeartSlice:
    """All parameters of one short-axis slice (lengths in mm, angles in radians), made
    by :func:`slice_params` (which calls :meth:`prepare`); ``centre`` is set by the
    caller to place the heart on its image grid. Methods give the ES -> ED map
    :meth:`es_to_ed` and the ED scene :meth:`scene` at heart-frame positions."""

    group: str
    level: float
    centre: np.ndarray  # LV centre, mm along the array axes
    beta: float  # orientation of the heart frame in the image
    endo: float  # mean ED endocardial radius
    shape: tuple[float, float, float, float]  # (e2, phase2, e3, phase3) endocardial harmonics
    wall: float  # ED wall thickness
    septal: float  # extra relative septal thickness (around φ = 0)
    infarct: tuple[float, float, float] | None  # (centre, half width, remaining wall fraction)
    c_remote: float  # ES/ED endocardial radius outside the infarct
    c_infarct: float  # ... inside it (≈ 1: akinetic)
    twist: float  # LV rotation ED → ES
    rv_width: float  # ED crescent width at φ = 0
    rv_span: float  # crescent half-angle
    rv_ratio: float  # ES / ED crescent width
    fat: float  # epicardial fat thickness
    body_scale: float
    intensity: np.ndarray  # ED intensity per tissue class
    texture: np.ndarray  # (2, n, n) smooth unit-variance fields on the heart frame
    papillary: tuple[float, float, float]  # angle 1, angle 2, radius fraction

    # --- analytic angular profiles (functions of the ED angle φ) ------------------
    def endo_radius(self, phi: np.ndarray) -> np.ndarray:
        e2, p2, e3, p3 = self.shape
        return self.endo * (1.0 + e2 * np.cos(2 * (phi - p2)) + e3 * np.cos(3 * (phi - p3)))

    def infarct_weight(self, phi: np.ndarray) -> np.ndarray:
        if self.infarct is None:
            return np.zeros_like(phi)
        return _window(phi, self.infarct[0], self.infarct[1], flat=0.5)

    def epi_radius(self, phi: np.ndarray) -> np.ndarray:
        thick = self.wall * (1.0 + self.septal * _window(phi, 0.0, 1.2))
        if self.infarct is not None:
            thick = thick * (1.0 - (1.0 - self.infarct[2]) * self.infarct_weight(phi))
        return self.endo_radius(phi) + thick

    def contraction(self, phi: np.ndarray) -> np.ndarray:
        """ES/ED endocardial radius along the ray at ED angle φ."""
        return self.c_remote + (self.c_infarct - self.c_remote) * self.infarct_weight(phi)

    def profiles(self, phi: np.ndarray) -> dict[str, np.ndarray]:
        """Every per-ray quantity of the model at ED angles ``phi``."""
        ri, ro, c = self.endo_radius(phi), self.epi_radius(phi), self.contraction(phi)
        k = ri**2 * (1.0 - c**2)  # r_ED² - r_ES² in the myocardium (mm²)
        so = ro**2 - k  # ES epicardial radius²
        ds = np.maximum(4.0 * k, (ro + _TAPER_MM) ** 2 - ro**2)  # fade length in s
        w_ed = _crescent(phi, self.rv_width, self.rv_span)
        w_wall = _crescent(phi, self.rv_width + _RV_WALL_MM, self.rv_span + _RV_WALL_MM / ro)
        # Where T_LV puts the ED free wall (invert h(s) = s + k w(s) on [so, r_fw²]).
        target = (ro + w_ed) ** 2
        lo, hi = so.copy(), target.copy()
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            below = mid + k * (1.0 - _smoothstep((mid - so) / ds)) < target
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        w_int = np.sqrt(0.5 * (lo + hi)) - np.sqrt(so)
        w_es = self.rv_ratio * w_ed
        # T_RV ramp slope dmax / w_es kept ≥ -0.5 (monotone rays).
        dmax = np.maximum(w_int - w_es, -0.5 * w_es)
        return {
            "ri": ri,
            "ro": ro,
            "si": (c * ri) ** 2,
            "so": so,
            "k": k,
            "ds": ds,
            "ro_es": np.sqrt(so),
            "w_ed": w_ed,
            "w_wall": w_wall,
            "w_es": w_es,
            "dmax": dmax,
        }

    def prepare(self) -> HeartSlice:
        """Tabulate the profiles at ``_TABLE_SIZE + 1`` angles from -π to π into
        ``_table`` (one row per profile, named by ``_rows``); call once."""
        phi = -np.pi + 2 * np.pi * np.arange(_TABLE_SIZE + 1) / _TABLE_SIZE
        prof = self.profiles(phi)
        self._rows = {name: i for i, name in enumerate(prof)}
        self._table = np.stack(list(prof.values()))
        self._twist_r0 = float(prof["ro_es"].max())
        return self

    def lookup(self, phi: np.ndarray, *names: str) -> list[np.ndarray]:
        """Tabulated profiles ``names`` at angles ``phi`` (any range), each ``phi.shape``."""
        t = np.mod(phi + np.pi, 2 * np.pi) * (_TABLE_SIZE / (2 * np.pi))
        i0 = np.minimum(t.astype(np.intp), _TABLE_SIZE - 1)
        f = t - i0
        rows = (self._table[self._rows[n]] for n in names)
        return [row[i0] * (1.0 - f) + row[i0 + 1] * f for row in rows]

    # --- the ES → ED map ----------------------------------------------------------
    def twist_at(self, r: np.ndarray) -> np.ndarray:
        return self.twist * (1.0 - _smoothstep((r - self._twist_r0) / _TAPER_MM))

    def es_to_ed(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``T``: heart-frame ES positions (mm) → ED positions (mm)."""
        r, theta = np.hypot(u, v), np.arctan2(v, u)
        # T_RV: stretch the crescent back to its width after T_LV (rays unchanged).
        ro_es, w_es, dmax = self.lookup(theta + self.twist, "ro_es", "w_es", "dmax")
        ramp = np.clip(r - ro_es, 0.0, w_es) / np.maximum(w_es, 1e-6)
        fade = 1.0 - _smoothstep((r - ro_es - w_es) / np.maximum(4.0 * np.abs(dmax), 15.0))
        r = r + dmax * ramp * fade
        # T_LV: monotone map of s = r² along the ray at the ED angle, plus twist.
        phi = theta + self.twist_at(r)
        ri, si, so, k, ds = self.lookup(phi, "ri", "si", "so", "k", "ds")
        s = r * r
        h = np.where(
            s < si,
            s * (ri * ri / si),
            np.where(s < so, s + k, s + k * (1.0 - _smoothstep((s - so) / ds))),
        )
        r_ed = np.sqrt(h)
        return r_ed * np.cos(phi), r_ed * np.sin(phi)

    # --- the ED scene ---------------------------------------------------------------
    def texture_at(self, u: np.ndarray, v: np.ndarray) -> list[np.ndarray]:
        """The texture fields at heart-frame positions (bilinear), each ``u.shape``."""
        n = self.texture.shape[-1]
        x = np.clip((u + _TEXTURE_HALF_MM) / _TEXTURE_STEP_MM, 0, n - 1.001)
        y = np.clip((v + _TEXTURE_HALF_MM) / _TEXTURE_STEP_MM, 0, n - 1.001)
        i, j = x.astype(np.intp), y.astype(np.intp)
        fx, fy = x - i, y - j
        k = i * n + j  # flat index of the lower corner
        out = []
        for field in self.texture.reshape(len(self.texture), -1):
            out.append(
                (field[k] * (1 - fy) + field[k + 1] * fy) * (1 - fx)
                + (field[k + n] * (1 - fy) + field[k + n + 1] * fy) * fx
            )
        return out

    def scene(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ED labels (int16) and intensity at heart-frame positions ``u, v`` (mm)."""
        r, phi = np.hypot(u, v), np.arctan2(v, u)
        ri, ro, w_ed, w_wall = self.lookup(phi, "ri", "ro", "w_ed", "w_wall")
        tex = self.texture_at(u, v)
        g = self.body_scale
        tissue = np.zeros(u.shape, dtype=np.intp)

        def paint(name: str, where: np.ndarray) -> None:
            tissue[where] = _TISSUE[name]

        def ellipse(
            cu: float, cv: float, au: float, av: float, grow: float | np.ndarray = 0.0
        ) -> np.ndarray:
            return ((u - cu * g) / (au * g + grow)) ** 2 + ((v - cv * g) / (av * g + grow)) ** 2 < 1

        paint("fat", ellipse(20, -20, 170, 112))
        paint("muscle", ellipse(20, -20, 160, 102, grow=2.0 * tex[1]))
        paint("body", ellipse(20, -20, 148, 90))
        paint("lung", ellipse(-62, -5, 38, 62) | ellipse(78, -2, 34, 55))
        paint("liver", ellipse(60, -78, 62, 38))
        paint("aorta", ellipse(-28, -58, 11, 11))
        paint("spine", ellipse(0, -92, 19, 17))
        paint("epifat", r < ro + w_wall + self.fat * (1.0 + 0.6 * tex[1]))
        paint("rv_wall", r < ro + w_wall)
        rv = (r >= ro) & (r < ro + w_ed)
        paint("rv_blood", rv)
        paint("myocardium", r < ro)
        blood = r < ri
        paint("blood", blood)
        p1, p2, frac = self.papillary
        for angle in (p1, p2):
            pu, pv = frac * self.endo * math.cos(angle), frac * self.endo * math.sin(angle)
            paint("papillary", blood & ((u - pu) ** 2 + (v - pv) ** 2 < (0.16 * self.endo) ** 2))

        labels = np.zeros(u.shape, dtype=np.int16)
        labels[rv] = 1
        labels[r < ro] = 2
        labels[blood] = 3
        image = self.intensity[tissue] * (1.0 + _TEXTURE_AMPLITUDE[tissue] * tex[0])
        return labels, np.clip(image, 0.0, None)

    def frame_axes(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit vectors ``u`` (towards the RV) and ``v`` of the heart frame, array axis order."""
        return (
            np.array([math.sin(self.beta), math.cos(self.beta)]),
            np.array([math.cos(self.beta), -math.sin(self.beta)]),
        )


def _solve_remote_contraction(sl: HeartSlice, ef: float) -> float:
    """Remote ES/ED endocardial radius giving the slice blood-pool EF ``ef``."""
    phi = np.linspace(-np.pi, np.pi, _TABLE_SIZE, endpoint=False)
    ri2, w = sl.endo_radius(phi) ** 2, sl.infarct_weight(phi)
    # mean(((1 - w) c + w c_inf)² ri²) = (1 - ef) mean(ri²): a quadratic in c.
    qa = np.mean((1 - w) ** 2 * ri2)
    qb = 2 * np.mean((1 - w) * w * sl.c_infarct * ri2)
    qc = np.mean((w * sl.c_infarct) ** 2 * ri2) - (1.0 - ef) * np.mean(ri2)
    return float((-qb + math.sqrt(qb * qb - 4 * qa * qc)) / (2 * qa))


def designed_ef(sl: HeartSlice) -> float:
    """The slice's designed EF from the continuous model: the fraction of the ED
    blood-pool area lost at ES (``1 - ∫(c r_endo)² dθ / ∫r_endo² dθ``)."""
    phi = np.linspace(-np.pi, np.pi, _TABLE_SIZE, endpoint=False)
    ri2 = sl.endo_radius(phi) ** 2
    return float(1.0 - np.mean(sl.contraction(phi) ** 2 * ri2) / np.mean(ri2))


def subject_params(seed: int, subject: int, group: str) -> dict[str, Any]:
    """Parameters shared by all slices of one subject, drawn from ``(seed, subject, group)``:
    mid-ventricular ED radii, wall and RV sizes (mm), designed EF, twist at base and apex
    (degrees), heart offset ``offset_mm`` ``(2,)`` from the grid centre, orientation,
    tissue intensities, ``noise`` s.d. and ``bias`` ``(5,)`` coefficients of the
    acquisition (see :func:`~.cardiac_imaging.bias_field`)."""
    rng = np.random.default_rng([seed, subject, 0, CARDIAC_GROUPS.index(group)])
    spec = _GROUP_SPECS[group]

    def uni(bounds: tuple[float, float]) -> float:
        return float(rng.uniform(*bounds))

    p = {
        "group": group,
        "endo": uni(spec.endo_radius),
        "wall": uni(spec.wall),
        "ef": uni(spec.ef),
        "rv_width": uni(spec.rv_width),
        "rv_ratio": uni(spec.rv_ratio),
        "rv_span": uni(spec.rv_span),
        "septal": uni(spec.septal_excess),
        "shape": (uni((0.0, 0.05)), uni((0, np.pi)), uni((0.0, 0.025)), uni((0, 2 * np.pi))),
        "twist_base": -uni((3.0, 6.0)) * spec.twist_scale,
        "twist_apex": uni((8.0, 14.0)) * spec.twist_scale,
        "infarct": None,
        "offset_mm": rng.uniform(-10.0, 10.0, size=2),
        "beta": math.pi + uni((-np.pi / 6, np.pi / 6)),
        "body_scale": uni((0.9, 1.1)),
        "fat": uni((1.5, 4.0)),
        "intensity": np.array([i for i, _ in _TISSUES.values()])
        * rng.uniform(0.9, 1.1, len(_TISSUES)),
        "noise": uni((0.015, 0.04)),
        "bias": rng.normal(0.0, 0.12, size=5),
        "papillary": (np.pi - uni((0.6, 1.0)), np.pi + uni((0.6, 1.0)), uni((0.55, 0.7))),
    }
    if spec.infarct:
        p["infarct"] = (np.pi + uni((-1.2, 1.2)), math.radians(uni((35.0, 55.0))), uni((0.6, 0.75)))
    return p


def slice_params(p: dict[str, Any], level: float, rng: np.random.Generator) -> HeartSlice:
    """Slice of subject ``p`` (:func:`subject_params`) at ``level`` (0 base … 1 apex):
    smaller LV and RV apically, the twist interpolated from base to apex, the remote
    contraction solved for the subject's EF; a fresh texture drawn from ``rng``, the
    centre at the origin (set it before rendering), profiles tabulated."""
    lv_scale = (1.2 - 0.5 * level) / (1.2 - 0.5 * MID_LEVEL)
    wall_scale = 1.0 - 0.15 * (level - MID_LEVEL)
    rv_scale = max((1.25 - 0.9 * level) / (1.25 - 0.9 * MID_LEVEL), 0.3)
    n = int(round(2 * _TEXTURE_HALF_MM / _TEXTURE_STEP_MM)) + 1
    texture = np.stack(
        [ndimage.gaussian_filter(rng.standard_normal((n, n)), s, mode="wrap") for s in (1.2, 4.0)]
    )
    texture /= texture.std(axis=(1, 2), keepdims=True)
    sl = HeartSlice(
        group=p["group"],
        level=level,
        centre=np.zeros(2),
        beta=p["beta"],
        endo=p["endo"] * lv_scale,
        shape=p["shape"],
        wall=p["wall"] * wall_scale,
        septal=p["septal"],
        infarct=p["infarct"],
        c_remote=1.0,
        c_infarct=0.98,
        twist=math.radians(p["twist_base"] + (p["twist_apex"] - p["twist_base"]) * level),
        rv_width=p["rv_width"] * rv_scale,
        rv_span=p["rv_span"] * (0.7 + 0.3 * rv_scale),
        rv_ratio=p["rv_ratio"],
        fat=p["fat"],
        body_scale=p["body_scale"],
        intensity=p["intensity"],
        texture=texture,
        papillary=p["papillary"],
    )
    sl.c_remote = _solve_remote_contraction(sl, p["ef"])
    return sl.prepare()


def check_non_negative_int(name: str, value: object) -> int:
    """``value`` as an int.

    Raises:
        InputError: ``value`` is not a non-negative int (a bool is not).
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise InputError(f"cardiac phantom: {name} must be a non-negative int, got {value!r}")
    return int(value)


def resolve_group(group: str | None, index: int) -> str:
    """``group``, or ``CARDIAC_GROUPS[index % 5]`` when None.

    Raises:
        InputError: unknown group (naming the allowed ones).
    """
    if group is None:
        group = CARDIAC_GROUPS[index % len(CARDIAC_GROUPS)]
    if group not in CARDIAC_GROUPS:
        raise InputError(
            f"unknown cardiac group {group!r}; allowed groups: {', '.join(CARDIAC_GROUPS)}"
        )
    return group


def ejection_fraction(
    ed_labels: np.ndarray, es_labels: np.ndarray, blood_pool_label: int = 3
) -> float:
    """Ejection fraction ``(EDV - ESV) / EDV`` from ED and ES label maps of any shape.

    Volumes are voxel counts of ``blood_pool_label`` (the spacing cancels when both
    maps share a grid); on one slice this is the blood-pool area fraction.

    Raises:
        DataError: the ED map holds no ``blood_pool_label`` voxel (a ``ValueError``).
    """
    edv = int(np.count_nonzero(np.asarray(ed_labels) == blood_pool_label))
    esv = int(np.count_nonzero(np.asarray(es_labels) == blood_pool_label))
    if edv == 0:
        raise DataError(
            f"ejection_fraction: the ED label map has no voxel of label {blood_pool_label}"
        )
    return (edv - esv) / edv
