"""Option builders shared by the commands, and the glue from options to library calls.

Nothing heavy is imported here: the parser is built before any command runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, TypeVar

from ..data.defaults import DEFAULT_SIZE, DEFAULT_SPACING
from ..data.spec import (
    DEFAULT_DATA,
    DEFAULT_PHANTOM_SUBJECTS,
    SPEC_HELP,
    SPLIT_CHOICES,
    parse_size,
    parse_spacing,
)
from ..errors import InputError

T = TypeVar("T")


def _argument_type(parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse ``type=`` that reports a parser's :class:`InputError` as a usage error."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except InputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


def add_data_options(
    parser: argparse.ArgumentParser, *, split: str = "train", grid_from_model: bool = False
) -> None:
    """``--data``, ``--split``, ``--seed``, ``--size``, ``--spacing``, ``--subjects``,
    ``--slices``. With ``grid_from_model`` the grid defaults to the model's (None)."""
    g = parser.add_argument_group("data")
    g.add_argument(
        "--data",
        default=DEFAULT_DATA,
        metavar="SPEC",
        help=f"{SPEC_HELP} (default: {DEFAULT_DATA})",
    )
    g.add_argument(
        "--split",
        default=split,
        choices=SPLIT_CHOICES,
        help=f"subject-wise split to use (default: {split})",
    )
    g.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the phantoms and of the train/val/test split (default: 0)",
    )
    if grid_from_model:
        size, spacing = None, None
        size_help = "processed image size (default and only choice: the model's)"
        spacing_help = "processed voxel spacing in mm (default: the run's, from data.json)"
    else:
        size, spacing = DEFAULT_SIZE, DEFAULT_SPACING
        size_help = f"processed image size in voxels (default: {'x'.join(map(str, size))})"
        spacing_help = f"processed voxel spacing in mm (default: {spacing[0]:g})"
    g.add_argument(
        "--size", type=_argument_type(parse_size), default=size, metavar="HxW", help=size_help
    )
    g.add_argument(
        "--spacing",
        type=_argument_type(parse_spacing),
        default=spacing,
        metavar="MM",
        help=spacing_help,
    )
    g.add_argument(
        "--subjects",
        type=int,
        default=None,
        metavar="N",
        help=f"number of subjects (phantoms: default {DEFAULT_PHANTOM_SUBJECTS}; "
        "ACDC/CSV: the first N, default all)",
    )
    g.add_argument(
        "--slices",
        type=int,
        default=None,
        metavar="N",
        help="phantoms: slices per subject (default 1); ACDC/CSV volumes: "
        "central slices per volume (default 9)",
    )


def add_out(
    parser: argparse.ArgumentParser, help: str = "output folder", default: str | None = None
) -> None:
    """``--out`` (required unless a default is given)."""
    if default is None:
        parser.add_argument("--out", required=True, help=help)
    else:
        parser.add_argument("--out", default=default, help=f"{help} (default: {default})")


def add_device(parser: argparse.ArgumentParser, default: str | None = "auto") -> None:
    """``--device``."""
    shown = default if default is not None else "from the config"
    parser.add_argument(
        "--device", default=default, help=f"auto, cpu, cuda, cuda:N (default: {shown})"
    )


def add_model(parser: argparse.ArgumentParser) -> None:
    """``--model`` (a run folder or checkpoint file of ours)."""
    parser.add_argument("--model", required=True, help="run folder or checkpoint file")


def load_pairs_from_args(args: argparse.Namespace, **overrides: Any) -> list[Any]:
    """:func:`structreg.data.spec.load_pairs` with the options of :func:`add_data_options`."""
    from ..data.spec import load_pairs

    options = dict(
        split=args.split,
        seed=args.seed,
        size=args.size,
        spacing=args.spacing,
        n_subjects=args.subjects,
        n_slices=args.slices,
    )
    options.update(overrides)
    return load_pairs(args.data, **options)


def positive(name: str, value: int, minimum: int = 1) -> None:
    """Usage error unless ``value >= minimum``."""
    from ..errors import UsageError

    if value < minimum:
        raise UsageError(f"{name} must be >= {minimum}, got {value}")


def data_summary(pairs: Any) -> str:
    """One line: pairs, subjects, shape, spacing and pairs per group."""
    from collections import Counter

    subjects = {p.subject if p.subject is not None else p.id for p in pairs}
    groups = Counter(str(p.group) for p in pairs)
    shape = "x".join(str(n) for n in pairs[0].moving.shape)
    spacing = "x".join(f"{s:g}" for s in pairs[0].spacing)
    labelled = sum(p.moving_labels is not None and p.fixed_labels is not None for p in pairs)
    per_group = ", ".join(f"{g} {n}" for g, n in sorted(groups.items()))
    return (
        f"{len(pairs)} pairs from {len(subjects)} subjects, {shape} voxels at {spacing} mm, "
        f"{labelled} with labels; groups: {per_group}"
    )
