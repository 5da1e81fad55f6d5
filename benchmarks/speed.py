"""Speed where users feel it: every figure a ratio against its peer measured in the same
run (interleaved, median of repeats), with the load average during each measurement.

* ``refine``: ``builtin:brain`` refined - the velocity by a smooth residual
  (``refine_field``, ``--field-steps`` steps), and the code (the default step size and
  stopping rule, at most ``--refine-steps`` steps) - against ANTs SyN (one ITK thread, its
  default here) and against the former code-refinement default (50 steps at step size
  0.05, tolerance 1e-3 over 10 steps), one pair per call, on the 20 real brain pairs of
  ``real_pairs.py`` (``real_brains.real_pairs()``): seconds per pair (the round's total
  over the pairs, median of the rounds) and mean tissue Dice (CSF, GM, WM). Target: the
  field stage at least the former default's Dice in at most ANTs SyN's time per pair.
* ``busy``: one-pass registration and refinement of a real pair under the default thread
  setting (:func:`structreg.thread_limit` with nothing given) with one competing busy
  process against without it, and the same under the libraries' own setting (one thread
  per core). Blocks with and without the busy process alternate. Target: <= 1.5x.
* ``3d``: seconds per volume of ours (one pass) against VoxelMorph-2 at 2 mm
  (80x96x80) and 1 mm (160x192x224), interleaved (``bench_3d.py``), with the peak
  memory of one registration (a fresh process each); timed in this process (glibc's
  allocator as the environment sets it) and in a fresh process that keeps freed memory
  for reuse (``bench_3d.HEAP_REUSE``). Target: <= 1.0x.
* ``adapt``: adaptation of ``builtin:brain`` to a 20-pair cohort (phantom:brain-inter
  validation split, never test pairs) with :data:`structreg.training.adapt.ADAPT_DEFAULTS`:
  seconds, steps, objective and one-pass Dice before and after. Target: <= 60 s.
* ``threads``: whether results depend on the thread count (one pair registered and
  refined with 1 and 2 threads: the largest difference of the displacements).

    .venv/bin/python benchmarks/speed.py [--sections refine,busy,3d,adapt,threads]
        [--repeats 3] [--refine-steps 50] [--field-steps 40] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_brains import TISSUES, real_pairs

OLD_DEFAULT = {"refine_lr": 0.05, "refine_tol": 1e-3, "refine_patience": 10}
"""The refinement settings before this benchmark chose new ones (for comparison)."""

Line = Callable[[str], None]


def _load() -> str:
    """The 1-minute load average (this machine's contention), as text."""
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "n/a"


def _spin() -> None:
    while True:
        sum(i * i for i in range(10_000))


def _tensors(pair) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    m = torch.from_numpy(pair.moving)[None, None].float()
    f = torch.from_numpy(pair.fixed)[None, None].float()
    labels = torch.from_numpy(pair.moving_labels.astype(np.int64))[None, None]
    return m, f, labels


def _dice(result, labels: torch.Tensor, pair) -> float:
    from structreg.core import metrics

    moved = result.warp_labels(labels)[0, 0].numpy()
    return float(np.mean([metrics.dice(moved, pair.fixed_labels, v) for v in TISSUES.values()]))


def _interleaved(methods: dict, pairs: list, repeats: int) -> tuple[dict, dict, dict]:
    """Each method on each pair in turn, ``repeats`` rounds after a warm-up pair.
    Returns ``(median seconds per pair, mean Dice, mean steps)`` per method."""
    data = [(_tensors(p), p) for p in pairs]
    for r in methods.values():  # warm-up
        r.register(*data[0][0][:2])
    rounds: dict[str, list[float]] = {k: [] for k in methods}
    dice: dict[str, list[float]] = {k: [] for k in methods}
    steps: dict[str, list[float]] = {k: [] for k in methods}
    for rep in range(repeats):
        total = dict.fromkeys(methods, 0.0)
        for (m, f, labels), pair in data:
            for name, r in methods.items():
                t0 = time.perf_counter()
                result = r.register(m, f)
                total[name] += time.perf_counter() - t0
                if rep == 0:
                    dice[name].append(_dice(result, labels, pair))
                    if result.iterations is not None:
                        steps[name].append(float(result.iterations.float().mean()))
        for name in methods:
            rounds[name].append(total[name] / len(pairs))
    med = {k: statistics.median(v) for k, v in rounds.items()}
    return med, {k: float(np.mean(v)) for k, v in dice.items()}, steps


def refine_section(args: argparse.Namespace, line: Line) -> None:
    """Ours refined vs ANTs SyN and vs the former default, real pairs."""
    import structreg
    from structreg.methods.ants_syn import AntsSyN
    from structreg.methods.refine import DEFAULT_LR, DEFAULT_PATIENCE, DEFAULT_TOL

    pairs = real_pairs()
    n, k = args.refine_steps, args.field_steps
    with structreg.thread_limit() as threads:
        methods = {
            f"ours refined: field stage ({k} steps)": structreg.load_model(
                "builtin:brain", device="cpu", refine_field=k
            ),
            "ours refined, former default (50 steps, lr 0.05)": _old_default(),
            "ANTs SyN (CC, 1 ITK thread)": AntsSyN(),
            f"ours refined: code (<= {n} steps, lr {DEFAULT_LR:g}, tol {DEFAULT_TOL:g}/"
            f"{DEFAULT_PATIENCE})": structreg.load_model("builtin:brain", device="cpu", refine=n),
            "ours one pass": structreg.load_model("builtin:brain", device="cpu"),
        }
        load0 = _load()
        secs, dice, steps = _interleaved(methods, pairs, args.repeats)
    names = list(methods)
    ants = secs[names[2]]
    line(f"\n## Refinement vs ANTs SyN: {len(pairs)} real brain pairs, one pair per call")
    line(f"\nthreads {threads}, {args.repeats} rounds, load average {load0} -> {_load()}\n")
    line("| method | s / pair | x ANTs SyN | mean tissue Dice | mean steps |")
    line("|---|---|---|---|---|")
    for name in names:
        st = f"{np.mean(steps[name]):.1f}" if steps[name] else ""
        line(f"| {name} | {secs[name]:.3f} | {secs[name] / ants:.2f} | {dice[name]:.4f} | {st} |")
    ok = dice[names[0]] >= dice[names[1]] and secs[names[0]] <= ants
    line(
        f"\nTarget (>= the former default's Dice in <= 1.0x ANTs SyN's time): "
        f"{'met' if ok else 'NOT met'} ({dice[names[0]]:.4f} vs {dice[names[1]]:.4f}, "
        f"{secs[names[0]] / ants:.2f}x)"
    )


def _old_default():
    import structreg

    r = structreg.load_model("builtin:brain", device="cpu", refine=50)
    r.refine_lr, r.refine_tol, r.refine_patience = (
        OLD_DEFAULT["refine_lr"],
        OLD_DEFAULT["refine_tol"],
        OLD_DEFAULT["refine_patience"],
    )
    return r


def _median_time(fn: Callable[[], object], k: int) -> float:
    times = []
    for _ in range(k):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def busy_section(args: argparse.Namespace, line: Line) -> None:
    """Register and refine with one competing busy process vs without, per thread setting."""
    import structreg
    from structreg.core.threads import ENV

    pair = real_pairs(("axial",))[0]
    m, f, _ = _tensors(pair)
    work = {
        "register (one pass)": structreg.load_model("builtin:brain", device="cpu"),
        f"refine ({args.refine_steps} steps max)": structreg.load_model(
            "builtin:brain", device="cpu", refine=args.refine_steps
        ),
        f"refine the field ({args.field_steps} steps)": structreg.load_model(
            "builtin:brain", device="cpu", refine_field=args.field_steps
        ),
    }
    line("\n## One competing busy process vs none")
    line(f"\n{args.repeats} alternating blocks of 5 calls each, median\n")
    line("| work | threads | none: s (load) | busy: s (load) | busy / none |")
    line("|---|---|---|---|---|")
    settings = {"default": None, "one per core (the libraries' own)": "0"}
    for setting, env in settings.items():
        before = os.environ.get(ENV)
        if env is not None:
            os.environ[ENV] = env
        try:
            for name, r in work.items():
                _busy_row(line, name, setting, r, m, f, args.repeats)
        finally:
            if before is None:
                os.environ.pop(ENV, None)
            else:
                os.environ[ENV] = before
    line("\nTarget (busy <= 1.5x none under the default setting): see the 'default' rows.")


def _busy_row(line: Line, name: str, setting: str, r, m, f, repeats: int) -> None:
    import structreg

    with structreg.thread_limit() as threads:
        r.register(m, f)  # warm-up
        idle, busy, loads = [], [], {"none": [], "busy": []}
        for _ in range(repeats):
            loads["none"].append(_load())
            idle.append(_median_time(lambda: r.register(m, f), 5))
            spinner = mp.Process(target=_spin, daemon=True)
            spinner.start()
            try:
                time.sleep(0.5)
                loads["busy"].append(_load())
                busy.append(_median_time(lambda: r.register(m, f), 5))
            finally:
                spinner.terminate()
                spinner.join()
    a, b = statistics.median(idle), statistics.median(busy)
    n = torch.get_num_threads() if threads is None else threads
    line(
        f"| {name} | {setting}: {n} | {a:.3f} ({'/'.join(loads['none'])}) | "
        f"{b:.3f} ({'/'.join(loads['busy'])}) | {b / a:.2f} |"
    )


def threed_section(args: argparse.Namespace, line: Line) -> None:
    """Ours vs VoxelMorph-2 per 3-D volume at 2 mm and 1 mm, with peak memory; the
    times twice: glibc's default allocator in this process, and in a fresh process that
    keeps freed memory for reuse (``bench_3d.HEAP_REUSE``). Medians of the rounds, and
    the range of the ratio within each round."""
    import structreg
    from bench_3d import (
        EXP2,
        GRIDS,
        HEAP_REUSE,
        peak_memory_mb,
        time_learned_in_child,
        time_learned_rounds,
    )

    line("\n## 3-D: seconds per volume, ours (one pass) vs VoxelMorph-2")
    reuse = ", ".join(f"{k}={v}" for k, v in HEAP_REUSE.items())
    line(f"\n(allocator 'reuse': a fresh process with {reuse})")
    line(
        "\n| grid | allocator | threads | rounds | ours s | VoxelMorph-2 s | ours / VM-2 "
        "(range over rounds) | peak MB ours / VM-2 | ours, exp_downsize=2: s (/ VM-2) | load |"
    )
    line("|---|---|---|---|---|---|---|---|---|---|")
    for grid, (size, _) in GRIDS.items():
        repeats = args.repeats
        with structreg.thread_limit() as threads:
            load0 = _load()
            runs = {"this process": time_learned_rounds(grid, torch.device("cpu"), repeats)}
        runs["reuse (fresh process)"] = time_learned_in_child(grid, "cpu", repeats, HEAP_REUSE)
        peaks = [peak_memory_mb(k, grid, "cpu") for k in ("ours", "VoxelMorph-2")]
        dims = "x".join(map(str, size))
        for allocator, rounds in runs.items():
            t = {k: statistics.median(v) for k, v in rounds.items()}
            vm = t["VoxelMorph-2"]
            each = [a / b for a, b in zip(rounds["ours"], rounds["VoxelMorph-2"], strict=True)]
            line(
                f"| {grid} {dims} | {allocator} | {threads} | {repeats} | {t['ours']:.2f} | "
                f"{vm:.2f} | {t['ours'] / vm:.2f} ({min(each):.2f}-{max(each):.2f}) | "
                f"{peaks[0]:.0f} / {peaks[1]:.0f} | {t[EXP2]:.2f} ({t[EXP2] / vm:.2f}) | "
                f"{load0} -> {_load()} |"
            )


def adapt_section(args: argparse.Namespace, line: Line) -> None:
    """Adaptation of builtin:brain to 20 phantom validation pairs with the defaults."""
    import structreg
    from structreg.data.pair import collate_pairs
    from structreg.data.spec import load_pairs
    from structreg.training.adapt import ADAPT_DEFAULTS, adapt_model

    pairs = load_pairs("phantom:brain-inter", split="val", n_subjects=250)[:20]
    base = structreg.load_model("builtin:brain", device="cpu")
    batch = collate_pairs(pairs)
    with structreg.thread_limit() as threads, tempfile.TemporaryDirectory() as tmp:
        load0 = _load()
        done = adapt_model("builtin:brain", pairs, Path(tmp) / "run", overrides={"device": "cpu"})
        load1 = _load()
        adapted = (
            structreg.load_model(done.run, device="cpu") if done.run != "builtin:brain" else base
        )
        dice = [_cohort_dice(r, batch, pairs) for r in (base, adapted)]
    line(f"\n## Adaptation of a {len(pairs)}-pair cohort (defaults {ADAPT_DEFAULTS})")
    line("\n| seconds | steps | objective before -> after | one-pass Dice before -> after "
         "| threads | load | target <= 60 s |")  # fmt: skip
    line("|---|---|---|---|---|---|---|")
    line(
        f"| {done.seconds:.1f} | {done.steps} | {done.initial:.3f} -> {done.final:.3f} | "
        f"{dice[0]:.4f} -> {dice[1]:.4f} | {threads} | {load0} -> {load1} | "
        f"{'met' if done.seconds <= 60 else 'NOT met'} |"
    )


def _cohort_dice(registrar, batch: dict, pairs: list) -> float:
    from structreg.core import metrics
    from structreg.evaluation.evaluate import structures_for

    structures = structures_for(pairs)
    result = registrar.register(batch["moving"], batch["fixed"])
    moved = result.warp_labels(batch["moving_labels"])
    return float(
        np.mean(
            [
                np.mean(
                    [
                        metrics.dice(moved[i, 0].numpy(), p.fixed_labels, v)
                        for v in structures.values()
                    ]
                )  # fmt: skip
                for i, p in enumerate(pairs)
            ]
        )
    )


def threads_section(args: argparse.Namespace, line: Line) -> None:
    """Whether the thread count changes results (1 vs 2 threads, same pair)."""
    import structreg

    m, f, _ = _tensors(real_pairs(("axial",))[0])
    line("\n## Results and the thread count")
    line("\n| work | max abs difference of disp (voxels), 1 vs 2 threads | repeat, same count |")
    line("|---|---|---|")
    for name, refine in (("one pass", 0), (f"refined {args.refine_steps}", args.refine_steps)):
        r = structreg.load_model("builtin:brain", device="cpu", refine=refine)
        out = {}
        for n in (1, 2, 1):
            with structreg.thread_limit(n):
                out.setdefault(n, []).append(r.register(m, f).disp)
        across = float((out[1][0] - out[2][0]).abs().max())
        again = float((out[1][0] - out[1][1]).abs().max())
        line(f"| {name} | {across:.2e} | {again:.2e} |")


SECTIONS = {
    "refine": refine_section,
    "busy": busy_section,
    "3d": threed_section,
    "adapt": adapt_section,
    "threads": threads_section,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--refine-steps", type=int, default=50)
    parser.add_argument("--field-steps", type=int, default=40)
    parser.add_argument("--out", help="also write the report to this markdown file")
    args = parser.parse_args()
    lines: list[str] = []

    def line(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    line(
        f"# speed.py, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"load average at start {_load()}"
    )
    for name in args.sections.split(","):
        t0 = time.perf_counter()
        SECTIONS[name](args, line)
        line(f"\n({name}: {time.perf_counter() - t0:.0f} s of wall time)")
        if args.out:
            Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
