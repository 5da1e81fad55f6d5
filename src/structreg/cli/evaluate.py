"""``structreg evaluate``: compare registration methods on a data set."""

from __future__ import annotations

import argparse

from .options import add_data_options, add_device, add_out, load_pairs_from_args

NAME = "evaluate"
HELP = "compare methods on a data set: per-pair CSV, Table-1 markdown, figures"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_data_options(
        p,
        split="test",
        grid_from_model=True,
        grid_help="default: that of the first trained method's run, else 100x100 at 2 mm",
    )
    p.add_argument(
        "--methods",
        required=True,
        action="append",
        help="comma-separated method specs (repeatable): ours:MODEL (a run folder, file "
        "or builtin:NAME; options refine=N, refine_lr, refine_tol, refine_patience, "
        "adapt_decoder=K, refine_decoder_lr, refine_field=N, field_lr, field_smooth, "
        "field_grid, field_blur, adapt=N), voxelmorph:RUN (adapt=N), "
        "lcc-demons[:OPTIONS] (levels, iterations=A/B/C, sigma_sim, sigma_fluid, "
        "sigma_diffusion, max_step, steps, eps), ants-syn[:OPTIONS] (transform, metric, "
        "radius, iterations=A/B/C, grad_step, flow_sigma, total_sigma, threads, seed, "
        "defaults=true), dipy-syn[:OPTIONS] (level_iters=A/B/C, radius, sigma_diff, "
        "step_length, ss_sigma_factor, opt_tol, inv_iter), identity; on any: "
        "batch_size=N, label=NAME, affine=ncc|lcc|mi (a rigid then affine stage first); "
        "e.g. lcc-demons:sigma_fluid=0.5,max_step=2,label=tuned",
    )
    add_out(p)
    add_device(p)
    p.add_argument("--figure-pairs", type=int, default=4, help="pairs in the panel (default: 4)")
    p.add_argument(
        "--primary",
        default="ours",
        help="method the paired Wilcoxon tests compare with each other one (default: ours)",
    )


def run(args: argparse.Namespace) -> int:
    from ..errors import DataError
    from ..evaluation.evaluate import run_evaluation
    from ..methods import build_methods, parse_methods
    from ..training.config import resolve_device
    from ..training.run import DataSettings, model_data_settings

    specs = parse_methods(args.methods)
    device = str(resolve_device(args.device))
    methods = build_methods(specs, device=device)
    runs = [
        model_data_settings(s.target)
        for s in specs
        if s.name in ("ours", "voxelmorph") and s.target
    ]
    grid = runs[0] if runs else DataSettings()
    pairs = load_pairs_from_args(
        args, size=tuple(args.size or grid.size), spacing=tuple(args.spacing or grid.spacing)
    )
    if not pairs:
        raise DataError(f"no pairs in {args.data} ({args.split} split)")
    summary = run_evaluation(
        pairs, methods, args.out, n_figure=args.figure_pairs, primary=args.primary
    )
    print(summary["table"])
    print(
        f"wrote {args.out}/table.md, pairs.csv and figures ({len(pairs)} pairs, "
        f"{summary['failed']} failed runs)"
    )
    return 1 if summary["failed"] else 0
