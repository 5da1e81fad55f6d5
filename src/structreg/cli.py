"""``structreg <command>``: the command-line interface.

Heavy imports (torch, nibabel, matplotlib) happen inside the command handlers,
after argument parsing, so ``structreg --help`` is instant. Every user-facing
failure (bad input, missing file, tampered checkpoint) is reported as one line
``structreg: error: ...`` with a non-zero exit status and no traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from . import __version__


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


# name -> (help, add_arguments(parser), run(args) -> int)
_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None],
                           Callable[[argparse.Namespace], int]]] = {}


# group name -> help, for nested commands such as ``structreg data preview``
_GROUPS: dict[str, str] = {"data": "look at and check data sets"}


def command(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Register ``run(args) -> int`` as the handler of ``structreg <name>``.

    A two-word ``name`` (``"data preview"``) registers a subcommand of a command
    group (``structreg data preview``); describe new groups in ``_GROUPS``.
    """
    def decorate(run: Callable[[argparse.Namespace], int]):
        _COMMANDS[name] = (help, add_arguments, run)
        return run
    return decorate


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")


@command("demo", "run the built-in demonstration and write OUT/report.md", _demo_args)
def _run_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    report = run_demo(args.out, seed=args.seed)
    print(f"wrote {report}")
    return 0


def _data_preview_args(p: argparse.ArgumentParser) -> None:
    from .data.spec import add_data_arguments

    add_data_arguments(p, split="all")
    p.add_argument("--out", required=True, help="figure file (.png, .pdf or .svg)")
    p.add_argument("--n", type=int, default=8, help="number of pairs shown (default: 8)")


@command("data preview", "draw moving/fixed pairs of a data set with label contours and groups",
         _data_preview_args)
def _run_data_preview(args: argparse.Namespace) -> int:
    from .data.spec import load_pairs_from_args, parse_data_spec
    from .viz.figures import figure_format, pair_grid

    if args.n < 1:
        raise CLIError(f"--n must be >= 1, got {args.n}")
    figure_format(args.out)
    spec = parse_data_spec(args.data)
    overrides = {"n_subjects": args.n} if spec.kind == "phantom" and args.subjects is None else {}
    pairs = load_pairs_from_args(args, **overrides)
    out = pair_grid(pairs, args.out, n=args.n, title=f"{spec} ({args.split} split)")
    print(_data_summary(pairs))
    print(f"wrote {out}")
    return 0


def _data_summary(pairs) -> str:
    """One line: pairs, subjects, shape, spacing and pairs per group."""
    from collections import Counter

    subjects = {p.subject if p.subject is not None else p.id for p in pairs}
    groups = Counter(str(p.group) for p in pairs)
    shape = "x".join(str(n) for n in pairs[0].moving.shape)
    spacing = "x".join(f"{s:g}" for s in pairs[0].spacing)
    labelled = sum(p.moving_labels is not None and p.fixed_labels is not None for p in pairs)
    per_group = ", ".join(f"{g} {n}" for g, n in sorted(groups.items()))
    return (f"{len(pairs)} pairs from {len(subjects)} subjects, {shape} voxels at {spacing} mm, "
            f"{labelled} with labels; groups: {per_group}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="structreg",
        description="Learned diffeomorphic registration with a structured deformation encoding.",
    )
    parser.add_argument("--version", action="version", version=f"structreg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for name, (help_text, add_arguments, run) in _COMMANDS.items():
        parent, _, child = name.partition(" ")
        target = sub
        if child:
            if parent not in groups:
                group_help = _GROUPS.get(parent, f"{parent} commands")
                gp = sub.add_parser(parent, help=group_help, description=group_help)
                gp.set_defaults(_parser=gp)
                groups[parent] = gp.add_subparsers(dest=f"{parent}_command", metavar="COMMAND")
            target = groups[parent]
        p = target.add_parser(child or name, help=help_text, description=help_text)
        add_arguments(p)
        p.set_defaults(_run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 failure, 2 usage/input error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        (getattr(args, "_parser", None) or parser).print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except CLIError as exc:
        print(f"structreg: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError, RuntimeError, ImportError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"structreg: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("structreg: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
