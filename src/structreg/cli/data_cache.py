"""``structreg data cache``: preprocess a data set once into a folder that training streams."""

from __future__ import annotations

import argparse

from ..data.spec import DEFAULT_TEST_FRACTION, DEFAULT_VAL_FRACTION
from .options import add_data_options

NAME = "data cache"
HELP = "preprocess a data set once into a cache folder (train streams it with --data cache:DIR)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_data_options(p, split="all")
    p.add_argument("--out", required=True, help="cache folder (created; refused if not empty)")
    p.add_argument(
        "--val-fraction",
        type=float,
        default=DEFAULT_VAL_FRACTION,
        help="fraction of subjects assigned to validation when the data have no split of "
        f"their own (default: {DEFAULT_VAL_FRACTION}; phantoms and ACDC also keep "
        f"{DEFAULT_TEST_FRACTION} of the subjects for testing, as train does)",
    )


def cache_splits(pairs: list, kind: str, seed: int, val_fraction: float) -> list[str]:
    """Each pair's split, as ``structreg train`` would split the same data: the data's
    own split column, else subject-wise (a test split held out except for pairs CSVs)."""
    from ..data.dataset import split_by_subject
    from ..data.spec import has_own_split

    if has_own_split(pairs):
        return [str(p.meta["split"]) for p in pairs]
    test_fraction = 0.0 if kind == "pairs" else DEFAULT_TEST_FRACTION
    parts = split_by_subject(
        pairs, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction
    )
    split_of = {id(p): name for name, members in parts.items() for p in members}
    return [split_of[id(p)] for p in pairs]


def run(args: argparse.Namespace) -> int:
    from collections import Counter

    from ..data.cache import write_cache
    from ..data.spec import iter_pairs, parse_data_spec
    from ..errors import UsageError
    from .options import data_options

    if not 0 <= args.val_fraction < 1:
        raise UsageError(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    spec = parse_data_spec(args.data)
    if spec.kind == "cache":
        raise UsageError("--data is already a cache")
    # one pair in memory at a time (pairs CSV, ACDC); the split once all are written
    pairs = iter_pairs(spec, **data_options(args))
    cache = write_cache(
        pairs,
        args.out,
        splits=lambda infos: cache_splits(infos, spec.kind, args.seed, args.val_fraction),
        source={
            "data": str(spec),
            "seed": args.seed,
            "size": list(args.size),
            "spacing": list(args.spacing),
            "subjects": args.subjects,
            "slices": args.slices,
            "val_fraction": args.val_fraction,
        },
    )
    records = cache.index["pairs"]
    subjects = {r["subject"] if r["subject"] is not None else r["id"] for r in records}
    groups = Counter(str(r["group"]) for r in records)
    labelled = cache.n if "moving_labels" in cache.arrays else 0
    print(
        f"{cache.n} pairs from {len(subjects)} subjects, {'x'.join(map(str, cache.shape))} "
        f"voxels at {'x'.join(f'{v:g}' for v in cache.spacing)} mm, {labelled} with labels; "
        f"groups: {', '.join(f'{g} {n}' for g, n in sorted(groups.items()))}"
    )
    counts = Counter(r["split"] for r in records)
    print(
        f"wrote {cache.root}: {cache.n} pairs ("
        + ", ".join(f"{k} {counts[k]}" for k in ("train", "val", "test") if counts[k])
        + f"); train with --data cache:{cache.root}"
    )
    return 0
