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
    label_table_option,
    parse_size,
    parse_spacing,
)
from ..errors import InputError, UsageError

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
    parser: argparse.ArgumentParser,
    *,
    split: str = "train",
    grid_from_model: bool = False,
    grid_help: str | None = None,
) -> None:
    """``--data``, ``--split``, ``--seed``, ``--size``, ``--spacing``, ``--subjects``,
    ``--slices``, ``--labels``, ``--label-table``. With ``grid_from_model`` the grid
    defaults to the model's (None). ``split`` is the command's default split; for
    ``pairs:`` data without a ``split`` column it is ``all``."""
    g = parser.add_argument_group("data")
    g.add_argument(
        "--data",
        default=DEFAULT_DATA,
        metavar="SPEC",
        help=f"{SPEC_HELP} (default: {DEFAULT_DATA})",
    )
    g.add_argument(
        "--split",
        default=None,
        choices=SPLIT_CHOICES,
        help=f"split to use: the data's own (a split column of a pairs CSV) or subject-wise "
        f"(default: {split}; all pairs of a pairs CSV without a split column)",
    )
    parser.set_defaults(command_split=split)
    _add_label_options(g)
    g.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the phantoms and of the train/val/test split (default: 0)",
    )
    _add_grid_options(g, grid_from_model, grid_help)
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


def _add_label_options(group: Any) -> None:
    """``--labels`` and ``--label-table`` in the data option group."""
    group.add_argument(
        "--labels",
        default=None,
        metavar="TABLE",
        help='label names, e.g. "1=CSF,2=GM,3=WM" or "2=myo,3=pool,left heart=2+3" '
        "(default: the data's table, else label 1..K)",
    )
    group.add_argument(
        "--label-table",
        default=None,
        metavar="FILE",
        help="label table file: VALUE<TAB>NAME lines and NAME = 2+3 composites",
    )


def _add_grid_options(group: Any, grid_from_model: bool, grid_help: str | None) -> None:
    """``--size`` and ``--spacing`` in the data option group (see :func:`add_data_options`)."""
    if grid_from_model:
        size, spacing = None, None
        size_help = f"processed image size ({grid_help or 'default and only choice: the model'})"
        spacing_help = f"processed voxel spacing in mm ({grid_help or 'default: the run'})"
    else:
        size, spacing = DEFAULT_SIZE, DEFAULT_SPACING
        size_help = f"processed image size in voxels (default: {'x'.join(map(str, size))})"
        spacing_help = f"processed voxel spacing in mm (default: {spacing[0]:g})"
    group.add_argument(
        "--size", type=_argument_type(parse_size), default=size, metavar="HxW", help=size_help
    )
    group.add_argument(
        "--spacing",
        type=_argument_type(parse_spacing),
        default=spacing,
        metavar="MM",
        help=spacing_help,
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


def add_affine(parser: argparse.ArgumentParser, more: str) -> None:
    """``--affine [METRIC]``: a rigid-then-affine stage first (``more`` ends the help)."""
    parser.add_argument(
        "--affine",
        nargs="?",
        const="ncc",
        default=None,
        choices=("ncc", "lcc", "mi"),
        metavar="METRIC",
        help="align each pair by a rigid then affine transform first (multi-resolution, on "
        "the world grid) with this similarity: ncc (default), lcc, or mi for different "
        f"contrasts; {more}",
    )


def add_model(parser: argparse.ArgumentParser) -> None:
    """``--model`` (a run folder or checkpoint file of ours)."""
    parser.add_argument(
        "--model",
        required=True,
        help="run folder, checkpoint or .safetensors file, or a bundled model "
        "(builtin:cardiac, builtin:brain; see structreg models)",
    )


def label_table_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~structreg.data.labels.LabelTable` of ``--labels`` / ``--label-table``
    (:func:`~structreg.data.spec.label_table_option`)."""
    return label_table_option(args.labels, args.label_table)


def resolve_split(args: argparse.Namespace) -> str:
    """``--split`` as given; else ``all`` for a pairs CSV without a split column; else
    the command's default."""
    if args.split:
        return str(args.split)
    from ..data.spec import parse_data_spec

    spec = parse_data_spec(args.data)
    if spec.kind == "pairs":
        from ..data.pairs import read_pairs_csv

        if not any(row.split for row in read_pairs_csv(spec.path)):
            return "all"
    return str(getattr(args, "command_split", "train"))


def data_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`structreg.data.spec.iter_pairs` (and
    ``load_pairs``) that the options of :func:`add_data_options` set."""
    return dict(
        seed=args.seed,
        size=args.size,
        spacing=args.spacing,
        n_subjects=args.subjects,
        n_slices=args.slices,
        label_table=label_table_from_args(args),
    )


def load_pairs_from_args(args: argparse.Namespace, **overrides: Any) -> list[Any]:
    """:func:`structreg.data.spec.load_pairs` with the options of :func:`add_data_options`;
    prints how many pairs it loaded and from which split."""
    from ..data.spec import load_pairs

    options = dict(split=resolve_split(args), **data_options(args))
    options.update(overrides)
    pairs = load_pairs(args.data, **options)
    print(f"{args.data}: {len(pairs)} pairs ({options['split']} split)")
    return pairs


def positive(name: str, value: int, minimum: int = 1) -> None:
    """Usage error unless ``value >= minimum``."""
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
