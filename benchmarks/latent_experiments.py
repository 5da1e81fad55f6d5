"""Is the latent code meaningful? Transport and classification on the phantoms.

Cardiac (default):
1. Transport: codes of DCM pairs (low EF) decoded on NOR end-diastolic images, and NOR
   codes on DCM images; the ejection fraction of each result is measured from the
   target's ED labels warped by the transported deformation, next to the EF of the
   target's own registration and its true EF.
2. Classification of the 5 groups: SVM on 5 CCA components of z (CCA fitted inside
   each fold, folds grouped by subject), next to the same SVM on simple deformation
   features from the registration (EF, myocardial and RV area ratios).
Brain (``--anatomy brain``): the same with the groups normal/dementia and, instead of
the EF, the ventricle area change (label 4) of the warped baseline labels.

    .venv/bin/python benchmarks/latent_experiments.py --model runs/demo/model \\
        [--seed 1 --subjects 200]
    .venv/bin/python benchmarks/latent_experiments.py --anatomy brain --model runs/brain \\
        --subjects 100
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

    from structreg.analysis.latent import classify_codes, group_splitter
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
        mu.numpy().astype(np.float64), groups, subjects, n_components=5, folds=10, seed=0
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
        f"| SVM on 5 CCA components of z (d = {mu.shape[1]}) | "
        f"{from_z.accuracy_mean:.3f} ± {from_z.accuracy_std:.3f} |"
    )
    print(
        f"| SVM on deformation features ({measure_name} and area ratios of labels "
        f"{', '.join(map(str, others))}) | "
        f"{scores.mean():.3f} ± {scores.std():.3f} |"
    )
    print(f"| chance (majority class) | {chance:.3f} |")


if __name__ == "__main__":
    main()
