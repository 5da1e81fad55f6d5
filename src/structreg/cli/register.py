"""``structreg register``: register NIfTI pairs with a trained model, write NIfTI results."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..io.files import safe_name
from .options import add_affine, add_device, add_out

# the decoder's convolutions (structreg.methods.refine.MAX_ADAPTED_LAYERS; not imported
# here: the parser is built before any command runs, without loading torch)
MAX_ADAPTED_LAYERS = 4

NAME = "register"
HELP = "register NIfTI pairs with a trained model and write NIfTI results"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        required=True,
        help="ours: a run folder, checkpoint or .safetensors file, or a bundled model "
        "(builtin:cardiac, builtin:brain; see structreg models); or another method's spec "
        "(ants-syn, dipy-syn, lcc-demons[:OPTIONS], identity, voxelmorph:RUN), which "
        "registers on the fixed image's own grid",
    )
    p.add_argument("--moving", help="moving image (NIfTI, any layout and grid)")
    p.add_argument("--fixed", help="fixed image (NIfTI); outputs are on its grid")
    p.add_argument("--moving-labels", help="moving label map (NIfTI), warped too")
    p.add_argument(
        "--frame",
        type=int,
        default=None,
        help="time frame of 4-D inputs (a pairs CSV may give a frame column)",
    )
    p.add_argument("--data", help="batch mode: pairs:FILE.csv (one output folder per row)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="batch mode: skip the pairs summary.csv in --out lists as done",
    )
    p.add_argument(
        "--split",
        default="all",
        choices=("train", "val", "test", "all"),
        help="batch mode: only the rows of this split of the CSV's split column "
        "(default: all rows)",
    )
    _add_method_options(p)
    add_out(p)
    add_device(p)


def _add_method_options(p: argparse.ArgumentParser) -> None:
    """``--affine``, ``--refine``, ``--refine-lr``, ``--adapt-decoder``,
    ``--refine-field``, ``--adapt``, ``--nproc``."""
    add_affine(p, "the outputs compose both stages and affine.tfm holds the affine alone")
    p.add_argument(
        "--refine",
        type=_count(0),
        default=0,
        metavar="N",
        help="refine each pair's latent code z for at most N Adam steps on the training "
        "objective (early stopping per pair; default 0: the plain one-pass registration)",
    )
    p.add_argument(
        "--refine-lr",
        type=_step_size,
        default=None,
        metavar="LR",
        help="with --refine: the refinement's Adam step size on the code z (a number > 0; "
        "default: the method's own, structreg.methods.refine.DEFAULT_LR)",
    )
    p.add_argument(
        "--adapt-decoder",
        type=_count(0, MAX_ADAPTED_LAYERS),
        default=0,
        metavar="K",
        help="with --refine: also adapt the decoder's last K convolutions per pair "
        f"(0..{MAX_ADAPTED_LAYERS}; the model file is not changed; default 0)",
    )
    p.add_argument(
        "--refine-field",
        type=_count(0),
        default=0,
        metavar="N",
        help="then refine each pair's velocity on the fixed image's own grid by a smooth "
        "residual, N Adam steps on the local correlation (ours, lcc-demons; no network; "
        "40 is what the benchmarks use; default 0: off)",
    )
    p.add_argument(
        "--adapt",
        type=_count(0),
        default=0,
        metavar="N",
        help="first fine-tune a copy of the model on all the pairs to register (their "
        "images only, no labels) for at most N steps, stopping when the objective stops "
        "improving (ours and voxelmorph:RUN; default 0: off)",
    )
    p.add_argument(
        "--nproc",
        type=_count(1),
        default=None,
        metavar="K",
        help="batch mode: register in K processes on this machine (torchrun; one per GPU), "
        "every K-th pair each; summary.csv merged at the end",
    )


def _count(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type=``: an int in ``[low, high]``, else a one-line usage error."""

    def count(text: str) -> int:
        bound = f"an int >= {low}" if high is None else f"an int in {low}..{high}"
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    return count


def _step_size(text: str) -> float:
    """An argparse ``type=``: a finite number > 0, else a one-line usage error."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def _refine_options(args: argparse.Namespace) -> dict[str, Any]:
    """The refinement options given on the command line (only those given)."""
    options: dict[str, Any] = {"refine": args.refine, "adapt_decoder": args.adapt_decoder}
    if args.refine_lr is not None:
        options["refine_lr"] = args.refine_lr
    return options


def _jobs(args: argparse.Namespace) -> list[Any]:
    """The pairs to register, as :class:`structreg.pipeline.batch.BatchJob` s."""
    from ..errors import UsageError
    from ..pipeline.batch import BatchJob

    if args.data is None and not (args.moving and args.fixed):
        raise UsageError("give --moving and --fixed, or --data pairs:FILE.csv")
    if args.data is None:
        return [BatchJob("pair", "pair", args.moving, args.fixed, args.moving_labels, args.frame)]
    from ..data.pairs import read_pairs_csv
    from ..data.spec import parse_data_spec

    spec = parse_data_spec(args.data)
    if spec.kind != "pairs":
        raise UsageError(f"register --data takes pairs:FILE.csv, got {args.data}")
    # a missing file fails its own pair, like a corrupt one; the others go on
    rows = read_pairs_csv(spec.path, check_files=False)
    if args.split != "all":
        if not any(row.split for row in rows):
            raise UsageError(f"--split {args.split}: {spec.path} has no split column")
        rows = [row for row in rows if row.split == args.split]
    print(f"{args.data}: {len(rows)} pairs ({args.split} split)")
    taken: set[str] = set()  # one output folder per row: safe, unique names
    return [
        BatchJob(
            safe_name(row.id or f"pair{i:04d}", taken),
            row.id or f"pair{i:04d}",
            row.moving,
            row.fixed,
            row.moving_labels,
            row.frame if row.frame is not None else args.frame,
        )
        for i, row in enumerate(rows)
    ]


def run(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..training.distributed import from_env, launch, launched_by_torchrun, without_option

    if args.adapt_decoder and not args.refine:
        raise UsageError("--adapt-decoder needs --refine N (N > 0)")
    if args.refine_lr is not None and not args.refine:
        raise UsageError("--refine-lr needs --refine N (N > 0)")
    if args.nproc is not None and not launched_by_torchrun():
        if args.data is None:
            raise UsageError("--nproc registers a batch: give --data pairs:FILE.csv")
        code = launch(args.nproc, without_option(args.argv, "--nproc"), args.device)
        return code or _batch_status(Path(args.out))
    dist = from_env()
    return dist.run(lambda: _register(args, dist))


def _register(args: argparse.Namespace, dist: Any) -> int:
    from ..api import registrar_for
    from ..core import metrics
    from ..errors import UsageError
    from ..methods.affine import AffineOptions
    from ..pipeline.batch import BatchJob
    from ..pipeline.field import FieldOptions
    from ..pipeline.files import write_registration
    from ..training.config import resolve_device

    if dist.enabled and args.data is None:
        raise UsageError("several processes register a batch: give --data pairs:FILE.csv")
    if dist.enabled and args.adapt:
        raise UsageError("--adapt adapts to the whole cohort in one process: leave out --nproc")
    all_jobs = _jobs(args) if dist.is_main or args.data is None else _quiet_jobs(args)
    jobs = all_jobs[dist.rank :: dist.world_size]
    device = dist.device(resolve_device(args.device))
    dist.init(device)
    registrar = registrar_for(
        args.model, device=str(device), adapt=args.adapt, **_refine_options(args)
    )
    affine = None if args.affine is None else AffineOptions(metric=args.affine)
    field = FieldOptions(steps=args.refine_field) if args.refine_field else None
    if args.adapt:
        _adapt(registrar, all_jobs, affine)

    def register(job: BatchJob, out: Path) -> dict:
        return write_registration(
            registrar,
            job.moving,
            job.fixed,
            out,
            moving_labels_path=job.moving_labels,
            pair_id=job.name,
            frame=job.frame,
            affine=affine,
            field=field,
        )

    if args.data is None:  # one pair: its errors are the command's
        summary = register(jobs[0], Path(args.out))
        print(
            f"{jobs[0].name}: {summary['slices']} slice(s), {summary[metrics.FOLDING]:.3f} % "
            f"non-positive Jacobian, {summary['seconds'] * 1e3:.0f} ms -> {summary['out']}"
        )
        return 0
    return _register_batch(args, dist, register, jobs, all_jobs)


def _register_batch(
    args: argparse.Namespace, dist: Any, register: Callable, jobs: list, all_jobs: list
) -> int:
    """Batch mode: this rank's pairs, then (several processes) the merged summary."""
    from ..pipeline.batch import SUMMARY, merge_summaries, part_name, register_batch
    from ..training.distributed import launched_by_structreg

    registered, n_failed = register_batch(
        register,
        jobs,
        args.out,
        resume=args.resume,
        report_error=lambda text: print(text, file=sys.stderr),
        summary=part_name(dist.rank) if dist.enabled else SUMMARY,
    )
    if dist.enabled:
        dist.barrier()  # every part written
        if dist.is_main:
            registered, n_failed = merge_summaries(args.out, [job.name for job in all_jobs])
        registered, n_failed = dist.broadcast((registered, n_failed))
        if not dist.is_main or launched_by_structreg():
            # failed pairs are in summary.csv; the launcher reports the outcome
            # (a failing worker would make torchrun print its own error report)
            if dist.is_main:
                _print_counts(registered, n_failed, args.out)
            return 0
    _print_counts(registered, n_failed, args.out)
    return 1 if n_failed else 0


def _adapt(registrar: Any, jobs: list, affine: Any) -> None:
    """Fine-tune the method on the pairs of every job it can read (the others fail
    later, in their own registration), affinely aligned first when ``affine`` is set."""
    from ..pipeline.files import cohort_pairs

    files = [(job.name, job.moving, job.fixed, job.frame) for job in jobs]
    pairs = cohort_pairs(registrar, files, affine)
    if not pairs:
        return
    registrar.prepare(pairs)
    done = registrar.last_adaptation
    print(
        f"adapted to {len(pairs)} pair(s) in {done.steps} steps, objective "
        f"{done.initial:.4f} -> {done.final:.4f}, {done.seconds:.1f} s"
    )


def _print_counts(registered: int, n_failed: int, out: str) -> None:
    print(f"{registered} registered, {n_failed} failed; summary in {Path(out) / 'summary.csv'}")


def _batch_status(out: Path) -> int:
    """1 when the merged ``summary.csv`` lists a failed pair, else 0."""
    from ..pipeline.batch import SUMMARY, read_summary

    rows = read_summary(out / SUMMARY).values()
    return 1 if any(row.get("status") != "ok" for row in rows) else 0


def _quiet_jobs(args: argparse.Namespace) -> list[Any]:
    """:func:`_jobs` without its line on standard output (ranks other than 0)."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return _jobs(args)
