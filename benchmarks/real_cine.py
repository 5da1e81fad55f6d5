"""Registration of a REAL cardiac cine: every frame onto the end-diastolic one, with the
bundled cardiac model zero-shot and adapted to the sequence (no labels).

The cine is the corpus's ``cardiac_cine`` (npm ami.js 0.33.0, one multi-frame MR DICOM:
16 frames of one slice, 256 x 256 pixels of 1.367 mm, 69.47 ms apart; built by
``python tools/real_corpus.py``). The model registers 100 x 100 pixels of 2 mm (a 200 mm
field of view) centred on the image it is given; the cine covers 350 mm with the heart off
its centre, so every frame is first cropped to a square of the model's field of view
centred on the heart box (same pixels, the affine shifted: nothing is resampled here).

Rules (all on the cine's own pixels):

* Heart mask: the largest connected component of the temporal standard deviation of the
  16 frames (Gaussian-smoothed, sigma 3 pixels) above 0.3 x its maximum: what moves or
  changes over the cycle. Heart box: the mask's bounding box. Crop: the square of
  round(200 mm / 1.367 mm) = 146 pixels centred on the box centre, inside the image.
* Blood pool (end-diastole check): per frame, the brightest of three classes (multi-Otsu,
  after a 1-pixel Gaussian) inside the heart box, in cm^2; bright-blood cine, so blood is
  the bright class. The frame with the largest pool is reported as end-diastole (the
  fixed frame is ``--fixed``, default 0), the one with the smallest as end-systole. A second,
  intensity-free estimate: the mean det J of the registration frame k -> fixed frame over
  the fixed frame's pool (= its area in frame k / in the fixed frame).
* Metrics per frame k -> 0, on the crop's pixels: mean |u| (mm) over the heart mask, % of
  pixels with det J <= 0, and the NCC of the frame (before) and of the moved frame (after)
  with frame 0 inside the heart box.

Adaptation: the model is fine-tuned on the 15 pairs frame k -> frame 0 with its own
objective and no labels (:func:`structreg.training.adapt.adapt_model`, what
:func:`structreg.adapt` runs), at ``--adapt-lr`` (default 1e-3, ten times the adaptation
default, to fit the run into a few CPU minutes) for at most ``--adapt-steps`` steps.

Writes into ``--out``: ``table.md`` (printed too), ``real_cine_registration.png`` (frames
across the cycle: moving, fixed, moved and det J of both models), ``real_cine_codes.png``
(the codes' trajectory over the cycle and the decoded line from the zero code to the
end-diastole -> end-systole code, conditioned on the end-diastolic frame), ``codes.csv``
and the adapted run folder ``adapted/``.

    .venv/bin/python benchmarks/real_cine.py --out DIR [--adapt-steps 60] \\
        [--model builtin:cardiac] [--adapt-lr 1e-3] [--device auto]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

CINE = "cardiac_cine"
STD_SIGMA_PX = 3.0
STD_FRACTION = 0.3
POOL_SIGMA_PX = 1.0
SHOWN = (2, 8, 12)  # frames of the registration figure (with end-systole)
INTERPOLATION_STEPS = 6
METHODS = ("zero-shot", "adapted")


# --------------------------------------------------------------------------- the cine


def cine_path() -> Path:
    """The corpus file (:class:`real_corpus.CorpusMissingError` names the build command)."""
    import real_corpus

    return Path(real_corpus.corpus_path(CINE))


def read_frames(path: Path) -> list:
    """Every frame of the cine as a 2-D :class:`~structreg.io.nifti.Volume` (256 x 256)."""
    import nibabel as nib

    from structreg.io.nifti import read_image

    image: Any = nib.load(path)
    n = int(image.shape[3])
    return [read_image(path, frame=k) for k in range(n)]


def frame_ms(path: Path) -> float:
    """The time between frames (ms): the fourth zoom of the NIfTI header."""
    import nibabel as nib

    image: Any = nib.load(path)
    return float(image.header.get_zooms()[3])


def heart_mask(frames: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: the largest connected component of the smoothed temporal standard
    deviation of ``frames`` ``(T, H, W)`` above ``STD_FRACTION`` of its maximum."""
    from scipy import ndimage

    spread = ndimage.gaussian_filter(frames.astype(np.float64).std(0), STD_SIGMA_PX)
    above = spread > STD_FRACTION * spread.max()
    labels, n = ndimage.label(above)
    sizes = ndimage.sum(above, labels, range(1, n + 1))
    return labels == int(np.argmax(sizes)) + 1


def bounding_box(mask: np.ndarray) -> tuple[slice, slice]:
    """The smallest ``(rows, columns)`` slices holding every True pixel of ``mask``."""
    rows, cols = np.nonzero(mask)
    return slice(int(rows.min()), int(rows.max()) + 1), slice(int(cols.min()), int(cols.max()) + 1)


def crop_window(shape: tuple[int, ...], box: tuple[slice, slice], n: int) -> tuple[slice, slice]:
    """An ``n x n`` window of an image of ``shape`` centred on ``box``, moved inside it."""
    window = []
    for size, side in zip(shape, box, strict=True):
        centre = (side.start + side.stop - 1) / 2
        start = int(np.clip(round(centre - (n - 1) / 2), 0, max(0, size - n)))
        window.append(slice(start, start + min(n, size)))
    return window[0], window[1]


def crop_volume(volume: Any, window: tuple[slice, slice]) -> Any:
    """``volume`` cut to ``window``: the same pixels, the affine shifted to their place."""
    from structreg.io.nifti import Volume

    shift = np.eye(4)
    shift[0, 3], shift[1, 3] = window[0].start, window[1].start
    data = np.ascontiguousarray(volume.data[window])
    return Volume(data, volume.affine @ shift, tuple(volume.spacing))


def within(box: tuple[slice, slice], window: tuple[slice, slice]) -> tuple[slice, slice]:
    """``box`` (image pixels) in the pixels of the crop ``window``, clipped to it."""
    out = []
    for b, w in zip(box, window, strict=True):
        size = w.stop - w.start
        out.append(slice(max(0, b.start - w.start), min(size, b.stop - w.start)))
    return out[0], out[1]


def pool_mask(image: np.ndarray, box: tuple[slice, slice]) -> np.ndarray:
    """``image.shape`` bool: the brightest of 3 multi-Otsu classes inside ``box``."""
    from scipy import ndimage
    from skimage.filters import threshold_multiotsu

    smooth = ndimage.gaussian_filter(image.astype(np.float64), POOL_SIGMA_PX)
    inside = smooth[box]
    out = np.zeros(image.shape, dtype=bool)
    out[box] = inside > threshold_multiotsu(inside, classes=3)[-1]
    return out


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised cross-correlation of two arrays of one shape."""
    a = a.astype(np.float64) - a.mean()
    b = b.astype(np.float64) - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def display(image: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """``image`` scaled by the 1st and 99th percentiles of ``reference`` (default: itself)
    to [0, 1] and transposed: rows = the DICOM's rows, as a DICOM viewer shows the cine."""
    lo, hi = np.percentile(image if reference is None else reference, (1, 99))
    return np.clip((image - lo) / max(hi - lo, 1e-6), 0.0, 1.0).T


# --------------------------------------------------------------------------- registration


@dataclass
class Cine:
    """The cine cropped around the heart, with its regions on the crop's pixels.

    Attributes:
        crops: one cropped :class:`~structreg.io.nifti.Volume` per frame.
        window: the crop in the image's pixels; ``box``: the heart box there.
        heart, box_crop: the heart mask and box on the crop.
        pool_cm2: the blood-pool area of every frame (cm^2); ``ms``: frame interval.
    """

    crops: list
    window: tuple[slice, slice]
    box: tuple[slice, slice]
    heart: np.ndarray
    box_crop: tuple[slice, slice]
    pool_cm2: np.ndarray
    ms: float

    @property
    def end_diastole(self) -> int:
        return int(np.argmax(self.pool_cm2))

    @property
    def end_systole(self) -> int:
        return int(np.argmin(self.pool_cm2))


def prepare_cine(path: Path, field_mm: float) -> Cine:
    """Read the cine, find the heart (:func:`heart_mask`), crop every frame to a square of
    ``field_mm`` (the model's field of view) around it, and measure the blood pools."""
    frames = read_frames(path)
    stack = np.stack([f.data for f in frames])
    mask = heart_mask(stack)
    box = bounding_box(mask)
    n = int(round(field_mm / float(frames[0].spacing[0])))
    window = crop_window(stack.shape[1:], box, n)
    area = float(np.prod(frames[0].spacing[:2])) / 100.0
    pools = np.array([pool_mask(f, box).sum() * area for f in stack])
    return Cine(
        crops=[crop_volume(f, window) for f in frames],
        window=window,
        box=box,
        heart=mask[window],
        box_crop=within(box, window),
        pool_cm2=pools,
        ms=frame_ms(path),
    )


@dataclass
class Registered:
    """Every frame registered onto the fixed frame by one model: ``registrations[k]`` is
    frame ``k`` -> fixed (the fixed frame onto itself included) and ``seconds`` the wall
    time of all of them."""

    registrations: list
    seconds: float
    rows: list[dict] = field(default_factory=list)


def register_all(registrar: Any, cine: Cine, fixed: int) -> Registered:
    """Register every frame onto frame ``fixed`` (:func:`register_volumes`) and measure it."""
    from structreg.pipeline.registration import register_volumes

    t0 = time.perf_counter()
    done = [
        register_volumes(registrar, crop, cine.crops[fixed], pair_id=f"frame{k:02d}")
        for k, crop in enumerate(cine.crops)
    ]
    out = Registered(done, time.perf_counter() - t0)
    pool = pool_mask(cine.crops[fixed].data, cine.box_crop)
    target = cine.crops[fixed].data[cine.box_crop]
    for k, r in enumerate(done):
        out.rows.append(
            {
                "frame": k,
                "u_mm": float(np.linalg.norm(r.displacement, axis=0)[cine.heart].mean()),
                "folding": r.folding_pct,
                "ncc_before": ncc(cine.crops[k].data[cine.box_crop], target),
                "ncc_after": ncc(r.moved[cine.box_crop], target),
                "pool_ratio": float(r.jacobian[pool].mean()),
                "code": np.asarray(r.code, dtype=np.float64),
            }
        )
    return out


def adapt_to(model: str, registrar: Any, cine: Cine, fixed: int, args: Any) -> tuple[Any, Any]:
    """The model fine-tuned on the pairs frame k -> ``fixed`` (every k but ``fixed``)
    into ``args.out / "adapted"``: ``(registrar, adaptation)``."""
    import shutil

    import structreg
    from structreg.pipeline.registration import prepare_pairs
    from structreg.training.adapt import adapt_model

    pairs = [
        pair
        for k, crop in enumerate(cine.crops)
        if k != fixed
        for pair in prepare_pairs(registrar, crop, cine.crops[fixed], f"frame{k:02d}")
    ]
    run = Path(args.out) / "adapted"
    shutil.rmtree(run, ignore_errors=True)
    overrides = {
        "steps": args.adapt_steps,
        "device": args.device,
        "lr": args.adapt_lr,
        "val_every": args.val_every,
    }
    done = adapt_model(model, pairs, run, overrides=overrides)
    return structreg.load_model(done.run, device=args.device), done


# --------------------------------------------------------------------------- figures


def registration_rows(cine: Cine, results: dict[str, Registered], fixed: int) -> list[dict]:
    """Rows of :func:`structreg.viz.figures.registration_panel` for the frames ``SHOWN``
    and end-systole; the end-diastolic blood pool is drawn as contours."""
    frames = sorted({*SHOWN, cine.end_systole} - {fixed})
    fixed_image = cine.crops[fixed].data
    pool = pool_mask(fixed_image, cine.box_crop).astype(np.int16)
    rows = []
    for k in frames:
        moving = cine.crops[k].data
        rows.append(
            {
                "title": f"frame {k}" + (" (ES)" if k == cine.end_systole else ""),
                "moving": display(moving),
                "fixed": display(fixed_image),
                "fixed_labels": pool.T,
                "moved": {m: display(r.registrations[k].moved, moving) for m, r in results.items()},
                "jacobian": {m: r.registrations[k].jacobian.T for m, r in results.items()},
            }
        )
    return rows


def principal_components(codes: np.ndarray, n: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """``codes`` ``(N, d)`` projected on their first ``n`` principal components
    ``(N, n)``, and the fraction of the variance each explains."""
    centred = codes - codes.mean(0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:n].T, (s**2 / (s**2).sum())[:n]


def interpolation(registrar: Any, cine: Cine, fixed: int) -> dict:
    """The codes on the line from 0 to the code of (end-diastole -> end-systole), decoded
    conditioned on the end-diastolic frame (:func:`interpolate_codes`), on the model grid;
    ``identity_u_max_mm``: the largest |u| decoded from the code of (ED -> ED) instead."""
    import torch

    from structreg.analysis.sampling import endpoint_codes, interpolate_codes
    from structreg.analysis.transport import decode_code
    from structreg.pipeline.registration import prepare_pairs

    model = registrar.model
    pair = prepare_pairs(registrar, cine.crops[fixed], cine.crops[cine.end_systole])[0]
    moving = torch.from_numpy(pair.moving)[None, None]
    z_identity, z_pair = endpoint_codes(model, moving, torch.from_numpy(pair.fixed)[None, None])
    t, result = interpolate_codes(
        model, torch.zeros_like(z_pair), z_pair, moving, INTERPOLATION_STEPS
    )
    scale = torch.tensor([float(s) for s in registrar.spacing]).view(1, -1, 1, 1)

    def magnitude(disp: torch.Tensor) -> np.ndarray:
        return (disp.detach().cpu() * scale).norm(dim=1).numpy()

    u_mm = magnitude(result.disp)
    identity = magnitude(decode_code(model, z_identity, moving).disp)
    return {
        "t": t,
        "moved": result.moved[:, 0].detach().numpy(),
        "u_mm": u_mm,
        "u_max_mm": u_mm.reshape(len(t), -1).max(1),
        "det_min": result.jacobian_det.flatten(1).amin(1).detach().numpy(),
        "identity_u_max_mm": float(identity.max()),
        "ed": pair.moving,
        "es": pair.fixed,
    }


def codes_figure(
    cine: Cine, results: dict[str, Registered], line: dict, out: Path, fixed: int
) -> Path:
    """The code trajectories (PCA of each model's codes, norms, motion per frame) above
    the decoded line (deformed end-diastolic frames and their |u| maps)."""
    from matplotlib.figure import Figure

    from structreg.viz.figures import save_figure

    fig = Figure(figsize=(16.0, 9.6))
    halves: Any = fig.subfigures(2, 1, height_ratios=[1.0, 1.15])
    top, bottom = halves
    axes = top.subplots(1, 4, gridspec_kw={"wspace": 0.38})
    top.subplots_adjust(left=0.05, right=0.95, top=0.84, bottom=0.12)
    for ax, name in zip(axes[:2], METHODS[::-1], strict=True):
        _trajectory(ax, results[name], name)
    _per_frame(axes[2], axes[3], cine, results)
    top.suptitle(
        f"Codes z of the registrations frame k → frame {fixed} over the cardiac cycle (real cine, "
        f"{cine.ms:.1f} ms per frame)",
        fontsize=11,
    )
    _line_strip(bottom, line, cine, fixed)
    return save_figure(fig, out)


def _trajectory(ax: Any, registered: Registered, name: str) -> None:
    """PC1/PC2 of one model's codes, frames joined in order around the cycle."""
    codes = np.stack([row["code"] for row in registered.rows])
    xy, explained = principal_components(codes)
    frames = np.arange(len(codes))
    ax.plot(*np.vstack([xy, xy[:1]]).T, color="0.6", lw=0.8, zorder=1)
    ax.scatter(xy[:, 0], xy[:, 1], c=frames, cmap="viridis", s=28, zorder=2)
    for k, (x, y) in enumerate(xy):
        ax.annotate(str(k), (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
    ax.set_xlabel(f"PC1 ({100 * explained[0]:.0f} % of variance)", fontsize=8)
    ax.set_ylabel(f"PC2 ({100 * explained[1]:.0f} % of variance)", fontsize=8)
    ax.set_title(
        f"{name}: codes of frames 0..15 (PCA)\ncolour = frame, 0 = onto itself", fontsize=9
    )
    ax.tick_params(labelsize=7)


def _per_frame(ax_code: Any, ax_motion: Any, cine: Cine, results: dict[str, Registered]) -> None:
    """Code norm per frame (both models), and motion and blood pool per frame."""
    frames = np.arange(len(cine.crops))
    for (name, r), colour in zip(results.items(), ("C0", "C1"), strict=True):
        norms = [np.linalg.norm(row["code"]) for row in r.rows]
        ax_code.plot(frames, norms, "o-", ms=3, color=colour, label=name)
        u = [row["u_mm"] for row in r.rows]
        ax_motion.plot(frames, u, "o-", ms=3, color=colour, label=f"mean |u| ({name})")
    ax_code.set_title("code norm ‖z‖ per frame", fontsize=9)
    ax_code.legend(fontsize=7)
    ax_motion.set_ylabel("mean |u| in the heart (mm)", fontsize=8)
    pool = ax_motion.twinx()
    pool.plot(frames, cine.pool_cm2, "s--", ms=3, color="C3", label="blood pool (intensity)")
    pool.set_ylabel("blood pool area (cm²)", fontsize=8, color="C3")
    pool.tick_params(labelsize=7, colors="C3")
    ax_motion.set_title("motion onto the fixed frame, blood pool", fontsize=9)
    handles = ax_motion.get_legend_handles_labels()
    extra = pool.get_legend_handles_labels()
    ax_motion.legend(handles[0] + extra[0], handles[1] + extra[1], fontsize=6, loc="lower right")
    for ax in (ax_code, ax_motion):
        ax.set_xlabel("frame", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_xticks(frames[::3])


def _line_strip(sub: Any, line: dict, cine: Cine, fixed: int) -> None:
    """The end-diastolic frame deformed by the decoded codes ``t z`` (then end-systole for
    reference), and below each the |u| of its deformation (mm, one colour scale)."""
    n = len(line["t"])
    axes = sub.subplots(2, n + 2, gridspec_kw={"hspace": 0.28, "wspace": 0.06})
    sub.subplots_adjust(left=0.03, right=0.93, top=0.86, bottom=0.02)
    panels = [(line["ed"], f"input: ED, frame {fixed}")]
    for i, t in enumerate(line["t"]):
        panels.append((line["moved"][i], f"t = {t:.1f}"))
    panels.append((line["es"], f"target: ES, frame {cine.end_systole}"))
    for ax, (image, title) in zip(axes[0], panels, strict=True):
        ax.imshow(np.asarray(image).T, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    top = float(np.max(line["u_mm"]))
    image = None
    for i, ax in enumerate(axes[1]):
        ax.set_axis_off()
        if 1 <= i <= n:
            image = ax.imshow(line["u_mm"][i - 1].T, cmap="magma", vmin=0.0, vmax=top)
            ax.set_title(
                f"max |u| {line['u_max_mm'][i - 1]:.1f} mm\nmin det J {line['det_min'][i - 1]:.2f}",
                fontsize=8,
            )
    assert image is not None
    sub.colorbar(image, ax=list(axes[1]), fraction=0.02, pad=0.01).set_label("|u| (mm)", fontsize=8)
    sub.suptitle(
        "Decoder of the adapted model conditioned on the end-diastolic frame: codes t · z, "
        "z = the code of (end-diastole → end-systole), t from 0 (the zero code) to 1",
        fontsize=11,
    )


# --------------------------------------------------------------------------- the table


def table_lines(cine: Cine, results: dict[str, Registered], fixed: int) -> list[str]:
    """The per-frame markdown table (frames k -> ``fixed``) and its mean row."""
    zs, ad = results["zero-shot"].rows, results["adapted"].rows
    lines = [
        "| frame | t (ms) | blood pool (cm², intensity) | pool area k / 0 (det J, adapted) "
        "| mean \\|u\\| heart, zero-shot (mm) | adapted (mm) | % det J ≤ 0 zero-shot "
        "| adapted | NCC before | NCC zero-shot | NCC adapted | ‖z‖ adapted |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for k, (a, b) in enumerate(zip(zs, ad, strict=True)):
        lines.append(
            f"| {k}{' (ES)' if k == cine.end_systole else ''} | {k * cine.ms:.0f} | "
            f"{cine.pool_cm2[k]:.1f} | {b['pool_ratio']:.3f} | {a['u_mm']:.2f} | "
            f"{b['u_mm']:.2f} | {a['folding']:.3f} | {b['folding']:.3f} | "
            f"{a['ncc_before']:.3f} | {a['ncc_after']:.3f} | {b['ncc_after']:.3f} | "
            f"{np.linalg.norm(b['code']):.2f} |"
        )
    others = [k for k in range(len(zs)) if k != fixed]

    def mean(rows: list[dict], key: str) -> float:
        return float(np.mean([rows[k][key] for k in others]))

    lines.append(
        f"| mean of frames ≠ {fixed} | | {np.mean(cine.pool_cm2[others]):.1f} | "
        f"{mean(ad, 'pool_ratio'):.3f} | {mean(zs, 'u_mm'):.2f} | {mean(ad, 'u_mm'):.2f} | "
        f"{mean(zs, 'folding'):.3f} | {mean(ad, 'folding'):.3f} | {mean(zs, 'ncc_before'):.3f} | "
        f"{mean(zs, 'ncc_after'):.3f} | {mean(ad, 'ncc_after'):.3f} | "
        f"{np.mean([np.linalg.norm(ad[k]['code']) for k in others]):.2f} |"
    )
    return lines


def header_lines(cine: Cine, args: Any, fixed: int) -> list[str]:
    """Command, machine, date, the crop and the end-diastole check."""
    import torch

    from bench_train import cpu_name

    w, b = cine.window, cine.box
    pools, ed = cine.pool_cm2, cine.end_diastole
    second = int(np.argsort(pools)[-2])
    return [
        f"Command: `{' '.join(shlex.quote(a) for a in [sys.executable, *sys.argv])}`",
        f"Machine: {cpu_name()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, {platform.platform()}",
        f"Date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        "",
        f"Heart box (array rows i, columns j of the cine): i {b[0].start}..{b[0].stop - 1}, "
        f"j {b[1].start}..{b[1].stop - 1}; crop i {w[0].start}..{w[0].stop - 1}, "
        f"j {w[1].start}..{w[1].stop - 1} (image centre 127.5).",
        f"Blood pool (intensity): largest in frame {ed} ({pools[ed]:.1f} cm²; frame 0 "
        f"{pools[0]:.1f} cm², {100 * (pools[0] / pools[ed] - 1):+.1f} %; next largest: frame "
        f"{second} {pools[second]:.1f} cm²); smallest (end-systole) in frame {cine.end_systole} "
        f"({pools[cine.end_systole]:.1f} cm²). Fixed frame: {fixed}.",
        "",
    ]


# --------------------------------------------------------------------------- main


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--model", default="builtin:cardiac", help="the model to start from")
    parser.add_argument("--adapt-steps", type=int, default=60, help="most adaptation steps")
    parser.add_argument("--adapt-lr", type=float, default=1e-3, help="adaptation step size")
    parser.add_argument("--val-every", type=int, default=10, help="objective checks (steps)")
    parser.add_argument("--fixed", type=int, default=0, help="the fixed frame (default 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import torch

    import structreg
    from structreg.io.files import atomic_write_text
    from structreg.viz.figures import registration_panel

    torch.manual_seed(0)
    t0 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    zero_shot = structreg.load_model(args.model, device=args.device)
    field_mm = float(zero_shot.model.config.image_size[0]) * float(zero_shot.spacing[0])
    cine = prepare_cine(cine_path(), field_mm)
    fixed = args.fixed
    results = {"zero-shot": register_all(zero_shot, cine, fixed)}
    adapted, adaptation = adapt_to(args.model, zero_shot, cine, fixed, args)
    results["adapted"] = register_all(adapted, cine, fixed)
    line = interpolation(adapted, cine, fixed)
    registration_panel(
        registration_rows(cine, results, fixed),
        out / "real_cine_registration.png",
        methods=METHODS,
        title=f"Real cine: frames onto frame {fixed} (end-diastole), builtin:cardiac "
        f"zero-shot and adapted to the sequence ({adaptation.steps} steps); "
        f"blue contours: frame {fixed}'s blood pool",
    )
    codes_figure(cine, results, line, out / "real_cine_codes.png", fixed)
    _write_codes(out / "codes.csv", results)
    n = len(cine.crops)
    timing = [
        "",
        f"Timings (s): zero-shot registration {results['zero-shot'].seconds:.1f} for {n} frames "
        f"({results['zero-shot'].seconds / n:.2f} per frame, file grid to file grid); "
        f"adaptation {adaptation.seconds:.1f} ({adaptation.steps} steps"
        f"{', stopped: ' + adaptation.stopped if adaptation.stopped else ''}; objective "
        f"{adaptation.initial:.3f} -> {adaptation.final:.3f}); adapted registration "
        f"{results['adapted'].seconds:.1f}; whole run {time.perf_counter() - t0:.1f}.",
        f"Decoded line (adapted, conditioned on frame {fixed}): max |u| (mm) "
        + ", ".join(f"t={t:.1f}: {u:.1f}" for t, u in zip(line["t"], line["u_max_mm"], strict=True))
        + "; min det J "
        + ", ".join(f"{d:.2f}" for d in line["det_min"])
        + f"; the code of (frame {fixed} -> frame {fixed}) decodes to max |u| "
        + f"{line['identity_u_max_mm']:.1f} mm.",
    ]
    text = "\n".join(header_lines(cine, args, fixed) + table_lines(cine, results, fixed) + timing)
    atomic_write_text(out / "table.md", text + "\n")
    print(text)
    return 0


def _write_codes(path: Path, results: dict[str, Registered]) -> None:
    """One row per model and frame: the code of frame k -> fixed."""
    from structreg.io.files import atomic_write_text

    lines = [
        "model,frame," + ",".join(f"z{i}" for i in range(len(results["adapted"].rows[0]["code"])))
    ]
    for name, r in results.items():
        for row in r.rows:
            lines.append(f"{name},{row['frame']}," + ",".join(f"{v:.6g}" for v in row["code"]))
    atomic_write_text(path, "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
