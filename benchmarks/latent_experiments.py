"""Is the latent code meaningful? Transport and classification on the phantoms.

Cardiac (default):
1. Transport: codes of DCM pairs (low EF) decoded on NOR end-diastolic images, and NOR
   codes on DCM images; the ejection fraction of each result is measured from the
   target's ED labels warped by the transported deformation, next to the EF of the
   target's own registration and its true EF.
2. Classification of the 5 groups: SVM on CCA components of z after a PCA (PCA size,
   C chosen by nested cross-validation; folds grouped by subject), next to an SVM on
   simple deformation features from the registration (EF, myocardial and RV area ratios).
Brain (``--anatomy brain``): the same with the groups normal/dementia and, instead of
the EF, the ventricle area change (label 4) of the warped baseline labels.

    .venv/bin/python benchmarks/latent_experiments.py --model runs/demo/model \\
        [--seed 1 --subjects 200]
    .venv/bin/python benchmarks/latent_experiments.py --anatomy brain --model runs/brain \\
        --subjects 100

``measure``: zero motion (each test moving image registered to itself) and the
statistics of samples from N(0, I) and from the aggregate prior beside those of the
registered pairs, with a figure; ``explore``: classification accuracy of code variants
(mu, a posterior sample, the halves of an antisymmetric code) x PCA / CCA / C settings
on validation codes.

    .venv/bin/python benchmarks/latent_experiments.py measure --model builtin:cardiac \\
        --figure docs/results/img/latent_samples_cardiac.png
    .venv/bin/python benchmarks/latent_experiments.py explore --codes seed2.csv [--half 144]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch


def ef_from_warp(ed_labels: torch.Tensor, disp: torch.Tensor, label: int = 3) -> np.ndarray:
    """EF = 1 - area(label in ED labels warped by disp) / area(label at ED), per item."""
    from structreg.core.ops import warp

    moved = warp(ed_labels.double(), disp.double(), mode="nearest").round()
    ed = (ed_labels == label).flatten(1).sum(1).double()
    es = (moved == label).flatten(1).sum(1).double()
    return (1.0 - es / ed.clamp_min(1)).numpy()


def area_ratio(ed_labels: torch.Tensor, disp: torch.Tensor, label: int) -> np.ndarray:
    return 1.0 - ef_from_warp(ed_labels, disp, label)


def main() -> None:
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    from structreg.analysis.latent import SettingsGrid, classify_codes, group_splitter
    from structreg.data import collate_pairs
    from structreg.data.phantoms.cardiac import ejection_fraction
    from structreg.data.spec import load_pairs
    from structreg.methods import result_from_velocity
    from structreg.methods.ours import CVAERegistrar
    from structreg.training.checkpoint import load_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="runs/demo/model")
    p.add_argument(
        "--seed", type=int, default=1, help="phantom seed (1: subjects unseen in training)"
    )
    p.add_argument("--subjects", type=int, default=200)
    p.add_argument("--anatomy", default="cardiac", choices=["cardiac", "brain"])
    args = p.parse_args()
    brain = args.anatomy == "brain"
    # measure: cardiac EF (1 - ES/ED blood pool); brain ventricle growth (ES/ED - 1, label 4)
    label = 4 if brain else 3
    sign = -1.0 if brain else 1.0
    measure_name = "ventricle area change" if brain else "EF"

    model, _ = load_model(args.model, "cpu")
    pairs = load_pairs(
        f"phantom:{args.anatomy}",
        split="all",
        seed=args.seed,
        n_subjects=args.subjects,
        size=tuple(model.config.image_size),
    )
    batch = collate_pairs(pairs)
    own = CVAERegistrar(model).register(batch["moving"], batch["fixed"])
    groups = np.array([p.group for p in pairs])
    subjects = np.array([p.subject for p in pairs])
    true_ef = sign * np.array(
        [ejection_fraction(p.moving_labels, p.fixed_labels, label) for p in pairs]
    )
    own_ef = sign * ef_from_warp(batch["moving_labels"], own.disp, label)

    print(f"{len(pairs)} unseen phantom pairs (seed {args.seed}); model {args.model}\n")
    print(
        f"## Transport ({measure_name} from the target's moving labels warped by the deformation)\n"
    )
    print(
        f"| source code -> target image | n | transported {measure_name} | target's own "
        f"registration | target's truth |"
    )
    print("|---|---|---|---|---|")
    combos = (
        (("dementia", "normal"), ("normal", "dementia"), ("normal", "normal"))
        if brain
        else (("DCM", "NOR"), ("NOR", "DCM"), ("HCM", "NOR"), ("NOR", "NOR"))
    )
    for src, tgt in combos:
        s_idx, t_idx = np.where(groups == src)[0], np.where(groups == tgt)[0]
        if src == tgt:  # other subjects of the same group: a control
            t_idx = np.roll(t_idx, 1)
        n = min(len(s_idx), len(t_idx))
        s_idx, t_idx = s_idx[:n], t_idx[:n]
        with torch.no_grad():
            model.eval()
            mu, _ = model.encode(batch["moving"][s_idx], batch["fixed"][s_idx])
            velocity = model.decode(mu, batch["moving"][t_idx])
        moved = result_from_velocity(batch["moving"][t_idx], velocity, steps=model.config.steps)
        ef = sign * ef_from_warp(batch["moving_labels"][t_idx], moved.disp, label)
        fold = 100 * float((moved.jacobian_det <= 0).float().mean())
        print(
            f"| {src} -> {tgt} | {n} | {ef.mean():.3f} ± {ef.std():.3f} | "
            f"{own_ef[t_idx].mean():.3f} ± {own_ef[t_idx].std():.3f} | "
            f"{true_ef[t_idx].mean():.3f} ± {true_ef[t_idx].std():.3f} |"
            + (f" (folding {fold:.2f} %)" if fold else "")
        )

    print(f"\n## Classification of the {len(set(groups))} groups (10-fold CV grouped by subject)\n")
    with torch.no_grad():
        model.eval()
        mu, _ = model.encode(batch["moving"], batch["fixed"])
    from_z = classify_codes(
        mu.numpy().astype(np.float64), groups, subjects, folds=10, seed=0, grid=SettingsGrid()
    )
    others = (1, 2, 3) if brain else (2, 1)  # brain: CSF, GM, WM; cardiac: myocardium, RV
    features = np.stack(
        [own_ef] + [area_ratio(batch["moving_labels"], own.disp, v) for v in others], axis=1
    )
    splitter, _ = group_splitter(groups, subjects, folds=10, seed=0)
    clf = make_pipeline(StandardScaler(), SVC(kernel="rbf"))
    scores = cross_val_score(clf, features, groups, groups=subjects, cv=splitter)
    chance = max(np.mean(groups == g) for g in set(groups))
    print("| classifier | accuracy (mean ± std over folds) |")
    print("|---|---|")
    print(
        f"| SVM on CCA components of z (d = {mu.shape[1]}; nested choice, on all codes: "
        f"{from_z.settings}) | "
        f"{from_z.accuracy_mean:.3f} ± {from_z.accuracy_std:.3f} |"
    )
    print(
        f"| SVM on deformation features ({measure_name} and area ratios of labels "
        f"{', '.join(map(str, others))}) | "
        f"{scores.mean():.3f} ± {scores.std():.3f} |"
    )
    print(f"| chance (majority class) | {chance:.3f} |")


# ---------------------------------------------------------------------------- zero motion


def zero_motion(model, pairs, spacing) -> dict:
    """|u| (mm) of each pair's moving image registered to itself: max and mean over
    all pixels and pairs, and the largest per-pair max."""
    from structreg.data import collate_pairs
    from structreg.methods.ours import CVAERegistrar

    moving = collate_pairs(pairs)["moving"]
    disp = CVAERegistrar(model, batch_size=64).register(moving, moving).disp.double()
    mm = disp * torch.tensor(spacing, dtype=torch.float64).view(1, -1, 1, 1)
    magnitude = mm.norm(dim=1)
    return {
        "pairs": len(pairs),
        "max_mm": float(magnitude.max()),
        "mean_mm": float(magnitude.mean()),
        "median_pair_max_mm": float(magnitude.flatten(1).max(1).values.median()),
    }


# ---------------------------------------------------------------------------- samples


def field_statistics(result, labels, spacing, label: int, sign: float) -> dict[str, np.ndarray]:
    """Per field: mean |u| (mm) over the image, std of det J over the image, and the
    change of structure ``label`` (EF for the cardiac blood pool, ``sign`` = 1; the
    ventricle growth for the brain, ``sign`` = -1)."""
    disp = result.disp.detach().double().cpu()
    mm = disp * torch.tensor(spacing, dtype=torch.float64).view(1, -1, 1, 1)
    det = result.jacobian_det.detach().double().cpu()
    return {
        "magnitude_mm": mm.norm(dim=1).flatten(1).mean(1).numpy(),
        "jacobian_std": det.flatten(1).std(1).numpy(),
        "change": sign * ef_from_warp(labels, disp, label),
    }


def sample_statistics(model, pairs, spacing, prior, per_image: int, seed: int, anatomy: str):
    """Statistics (:func:`field_statistics`) of the registered pairs and of
    ``per_image`` samples on each pair's moving image from N(0, I) and from ``prior``.
    Returns ``{source: {statistic: (n,) array}}`` and the first image's samples."""
    from structreg.analysis.sampling import sample_deformations
    from structreg.data import collate_pairs
    from structreg.methods.ours import CVAERegistrar

    label, sign = (4, -1.0) if anatomy == "brain" else (3, 1.0)
    batch = collate_pairs(pairs)
    registered = CVAERegistrar(model, batch_size=64).register(batch["moving"], batch["fixed"])
    out = {
        "registered pairs": field_statistics(
            registered, batch["moving_labels"], spacing, label, sign
        )
    }
    shown = {}
    for name, source in (("N(0, I)", None), ("aggregate posterior", prior)):
        generator = torch.Generator().manual_seed(seed)
        parts = []
        for i in range(len(pairs)):
            res = sample_deformations(
                model, batch["moving"][i : i + 1], per_image, generator=generator, prior=source
            )
            labels = batch["moving_labels"][i : i + 1].expand(per_image, -1, -1, -1)
            parts.append(field_statistics(res, labels, spacing, label, sign))
            if i == 0:
                shown[name] = res
        out[name] = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return out, shown


def statistics_table(stats: dict, measure: str) -> str:
    """Markdown: mean ± std of each statistic per source and the samples' relative
    difference of the mean from the registered pairs'."""
    names = {"magnitude_mm": "mean |u| (mm)", "jacobian_std": "std of det J", "change": measure}
    ref = stats["registered pairs"]
    lines = [
        "| source | n | " + " | ".join(names.values()) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for source, values in stats.items():
        cells = []
        for key in names:
            v = values[key]
            cell = f"{np.nanmean(v):.3f} ± {np.nanstd(v):.3f}"
            if source != "registered pairs":
                rel = (np.nanmean(v) - np.nanmean(ref[key])) / abs(np.nanmean(ref[key]))
                cell += f" ({100 * rel:+.0f} %)"
            cells.append(cell)
        lines.append(f"| {source} | {len(values['change'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def samples_figure(moving, shown: dict, out: str, count: int = 4) -> None:
    """Rows: samples from each prior on one moving image (moved image over det J)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1.6 * (count + 1), 3.3 * len(shown)))
    rows = 2 * len(shown)
    for r, (name, res) in enumerate(shown.items()):
        ax = fig.add_subplot(rows, count + 1, 2 * r * (count + 1) + 1)
        ax.imshow(moving[0, 0].numpy().T, cmap="gray", origin="lower")
        ax.set_title("moving", fontsize=7)
        ax.set_axis_off()
        fig.add_subplot(rows, count + 1, (2 * r + 1) * (count + 1) + 1).text(
            0.5, 0.5, f"z ~ {name}", ha="center", va="center", fontsize=8, wrap=True
        )
        fig.axes[-1].set_axis_off()
        for i in range(count):
            ax = fig.add_subplot(rows, count + 1, 2 * r * (count + 1) + i + 2)
            ax.imshow(res.moved[i, 0].detach().numpy().T, cmap="gray", origin="lower")
            ax.set_title(f"{'normal' if name.startswith('N(') else 'aggregate'} {i}", fontsize=7)
            ax.set_axis_off()
            ax = fig.add_subplot(rows, count + 1, (2 * r + 1) * (count + 1) + i + 2)
            det = res.jacobian_det[i, 0].detach().numpy().T
            ax.imshow(det, cmap="RdBu_r", vmin=0, vmax=2, origin="lower")
            ax.set_title(f"det J {det.min():.2f}..{det.max():.2f}", fontsize=6)
            ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def measure(argv=None) -> None:
    """Zero motion and the samples' statistics of one model (markdown on stdout)."""
    from structreg.analysis.prior import load_aggregate_prior, prior_path
    from structreg.data.spec import load_pairs
    from structreg.training.checkpoint import load_model
    from structreg.training.run import model_spacing

    p = argparse.ArgumentParser(description="zero motion and sample statistics")
    p.add_argument("--model", required=True)
    p.add_argument("--data", default="phantom:cardiac")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--subjects", type=int, default=250)
    p.add_argument("--split", default="test")
    p.add_argument("--per-image", type=int, default=4)
    p.add_argument("--figure", default=None)
    p.add_argument("--prior-file", default=None, help="default: the model's own")
    args = p.parse_args(argv)
    model, _ = load_model(args.model, "cpu")
    spacing = model_spacing(args.model)
    pairs = load_pairs(
        args.data,
        split=args.split,
        seed=args.seed,
        n_subjects=args.subjects,
        size=tuple(model.config.image_size),
        spacing=spacing,
    )
    print(
        f"model {args.model}; {args.data} seed {args.seed}, {args.subjects} subjects, "
        f"{args.split} split: {len(pairs)} pairs\n"
    )
    z = zero_motion(model, pairs, spacing)
    print("## Zero motion (each moving image registered to itself)\n")
    print(
        f"max |u| {z['max_mm']:.4f} mm, mean {z['mean_mm']:.4f} mm, median per-pair max "
        f"{z['median_pair_max_mm']:.4f} mm over {z['pairs']} images\n"
    )
    path = args.prior_file or prior_path(args.model)
    prior = load_aggregate_prior(path, model.config.code_dim)
    anatomy = "brain" if "brain" in args.data else "cardiac"
    stats, shown = sample_statistics(model, pairs, spacing, prior, args.per_image, 0, anatomy)
    print(f"## Samples ({args.per_image} per moving image) vs registered pairs\n")
    measure_name = "ventricle growth" if anatomy == "brain" else "EF (blood pool)"
    print(statistics_table(stats, measure_name))
    if args.figure:
        samples_figure(collate_pairs_moving(pairs), shown, args.figure)
        print(f"figure: {args.figure}")


def collate_pairs_moving(pairs) -> torch.Tensor:
    """The first pair's moving image ``(1, 1, *S)``."""
    return torch.from_numpy(np.asarray(pairs[0].moving, dtype=np.float32))[None, None]


# ---------------------------------------------------------------------------- explore


def explore_rows(codes, half: int | None) -> list[tuple[str, np.ndarray]]:
    """The code variants compared: mu, one posterior sample per pair, and for an
    antisymmetric code (``half`` = d) each half alone."""
    rng = np.random.default_rng(0)
    rows = [("mu", codes.mu)]
    if codes.sigma is not None:
        rows.append(
            (
                "z = mu + sigma eps (one sample)",
                codes.mu + codes.sigma * rng.normal(size=codes.mu.shape),
            )
        )
    if half:
        rows += [
            ("mu, first half (z_MF)", codes.mu[:, :half]),
            ("mu, second half (z_FM)", codes.mu[:, half:]),
        ]
    return rows


def explore(argv=None) -> None:
    """What drives the classification: accuracy (10-fold CV grouped by subject, fixed
    settings) of code variants x PCA / CCA / C settings on one codes CSV (validation
    subjects: never the test subjects)."""
    from structreg.analysis.latent import SettingsGrid, classify_codes, read_codes_csv

    p = argparse.ArgumentParser(description="classification settings on validation codes")
    p.add_argument("--codes", required=True)
    p.add_argument("--half", type=int, default=None, help="d of an antisymmetric code")
    args = p.parse_args(argv)
    codes = read_codes_csv(args.codes)
    settings = [(pca, k, c) for pca in (0, 10, 20, 40, 80) for k in (2, 5) for c in (1.0, 10.0)]
    head = " | ".join(f"PCA {pca or 'none'} CCA {k} C {c:g}" for pca, k, c in settings)
    print(f"{len(codes)} codes of {args.codes}\n\n| code | {head} |")
    print("|---|" + "---|" * len(settings))
    for name, x in explore_rows(codes, args.half):
        cells = []
        for pca, k, c in settings:
            grid = SettingsGrid(pca=(pca,), components=(k,), svm_c=(c,))
            r = classify_codes(x, codes.groups, codes.subjects, grid=grid, folds=10)
            cells.append(f"{r.accuracy_mean:.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    import sys

    commands = {"measure": measure, "explore": explore}
    if len(sys.argv) > 1 and sys.argv[1] in commands:
        commands[sys.argv[1]](sys.argv[2:])
    else:
        main()
