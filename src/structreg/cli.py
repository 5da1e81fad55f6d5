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


def command(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Register ``run(args) -> int`` as the handler of ``structreg <name>``."""
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="structreg",
        description="Learned diffeomorphic registration with a structured deformation encoding.",
    )
    parser.add_argument("--version", action="version", version=f"structreg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, add_arguments, run) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
        p.set_defaults(_run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 failure, 2 usage/input error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except CLIError as exc:
        print(f"structreg: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError, RuntimeError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"structreg: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("structreg: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
