"""``structreg <command>``: the command-line interface, one module per command.

Each command module defines ``NAME`` (two words for a command group, such as
``"data preview"``), ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.
Heavy imports (torch, nibabel, matplotlib) happen inside ``run``, after argument
parsing, so ``structreg --help`` and usage errors return at once.

Errors: an expected failure (:class:`~structreg.errors.StructregError`: bad input,
missing file, tampered checkpoint) and an operating-system error (a missing
file, a full disk) are printed as one line ``structreg: error: ...`` with exit
status 1, or 2 for usage errors; ``structreg --debug ...`` shows their traceback.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
import traceback
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from .. import __version__
from . import (
    adapt,
    classify,
    data_cache,
    data_preview,
    demo,
    embed,
    evaluate,
    export,
    interpolate,
    models,
    register,
    sample,
    train,
    transport,
    tune,
)

COMMANDS: tuple[ModuleType, ...] = (
    demo,
    train,
    adapt,
    register,
    evaluate,
    tune,
    data_preview,
    data_cache,
    embed,
    classify,
    transport,
    sample,
    interpolate,
    export,
    models,
)
GROUPS = {"data": "look at and check data sets"}


def build_parser() -> argparse.ArgumentParser:
    """The ``structreg`` parser with every command of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="structreg",
        description="Learned diffeomorphic registration with a structured deformation encoding.",
    )
    parser.add_argument("--version", action="version", version=f"structreg {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an error instead of one line"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, Any] = {}
    for module in COMMANDS:
        parent, _, child = module.NAME.partition(" ")
        target = sub
        if child:
            if parent not in groups:
                group_help = GROUPS.get(parent, f"{parent} commands")
                gp = sub.add_parser(parent, help=group_help, description=group_help)
                gp.set_defaults(group_parser=gp)
                groups[parent] = gp.add_subparsers(dest=f"{parent}_command", metavar="COMMAND")
            target = groups[parent]
        p = target.add_parser(child or module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        _add_threads(p)
        p.set_defaults(command_run=module.run)
    return parser


def _threads(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an int >= 1, got {text!r}")
    return value


def _add_threads(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=_threads,
        default=None,
        metavar="N",
        help="CPU threads of PyTorch and NumPy/SciPy (default: $STRUCTREG_THREADS, else "
        "half the cores; STRUCTREG_THREADS=0: one per core); on a busy machine fewer "
        "threads run much faster",
    )


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """Our warnings as one line ``structreg: warning: ...``; others as Python prints them."""
    from ..errors import StructregWarning

    if issubclass(category, StructregWarning):
        print(f"structreg: warning: {_one_line(Exception(str(message)))}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 failure, 2 usage error)."""
    from ..core.threads import thread_limit
    from ..errors import StructregError, UsageError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command_run", None):
        (getattr(args, "group_parser", None) or parser).print_help()
        return 2
    warnings.showwarning = _show_warning
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        with thread_limit(getattr(args, "threads", None)):
            return int(args.command_run(args) or 0)
    except (StructregError, OSError) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"structreg: error: {_one_line(exc)}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    except KeyboardInterrupt:
        print("structreg: interrupted", file=sys.stderr)
        return 130
