"""Every result of the docs' results pages from scratch:
``python experiments/reproduce.py --out DIR --budget B`` (``make results BUDGET=B``).

The stages are the results pages' own commands (each a ``structreg`` command line, or a
script of ``benchmarks/``), run in order into ``DIR``; a stage whose output is
complete is skipped, an interrupted training is resumed, so a killed run goes on
where it stopped. ``DIR/RESULTS.md`` collects every table with its provenance
line (the command, the budget, the machine and the date). With ``--docs DOCS`` the same
tables are also written as pages of the documentation site (``DOCS/index.md`` and one
page per table; ``make results`` writes ``docs/results/generated/``); ``--pages-only``
writes those pages from a finished run folder without running any stage.

Budgets:

- ``quick``: every stage at a reduced size, to check on a 2-core CPU in well
  under an hour that the whole chain runs and which way each comparison goes:
  100 training steps on the phantoms (the demo too), a 400-subject inter-subject
  brain model of 100 steps, a grid of 8 LCC-Demons settings, 20 fine-tuning steps,
  the 3-D models at 100 steps on fewer volumes. Its tables are not the results pages'.
- ``standard``: the results pages' protocol on a 2-core CPU (its tables came from it):
  300 training steps for both learned methods (VoxelMorph-2 also for the wall
  time ours took), LCC-Demons tuned on the validation split over 48 settings, the
  inter-subject brain model at 600 steps on 1600 subjects; the 3-D demo and
  ``cardiac3d`` at their configs' step budgets.
- ``full``: each learned method trained until its validation score stops
  improving (early stopping, patience 10 validations every 200 steps, at most
  20,000 steps), the full LCC-Demons grid. Meant for a GPU.

The validation score that picks each run's ``best.pt`` (and stops it early) is the
Dice, except on the brain phantom: there it is the validation loss
(``train.monitor=loss``), because the nearest-neighbour Dice does not see the
phantom's sub-voxel atrophy (VoxelMorph-2's validation Dice equals no
registration's at every validation of its first 400 steps).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from structreg.errors import InputError, StructregError

__all__ = ["BUDGETS", "Budget", "Stage", "docs_pages", "machine", "plan", "reproduce"]


@dataclass(frozen=True)
class Budget:
    """How much each stage may spend.

    Attributes:
        steps: step budget of every phantom training (the cap, with early stopping).
        patience: early-stopping patience in validations (0: train every step).
        val_every: validation cadence (steps).
        demons_grid: the LCC-Demons grid searched on the validation split.
        brain_inter_steps: steps of the inter-subject brain model.
        equal_time: also train VoxelMorph-2 for the wall time ours took.
        refine: steps of per-pair refinement of ours' code in the evaluations.
        demo_steps: training steps of the demo (None: its config's).
        brain_inter_subjects: subjects the inter-subject brain model trains on.
        brain_inter_test: held-out subjects (phantom seed 1) it is evaluated on.
        fine_tune_steps: steps of each fine-tuning comparison's two trainings.
        volume_steps: steps of the 3-D trainings (None: their configs').
        volume_subjects: subjects of the 3-D brain volumes.
        cardiac3d_subjects: subjects of the 3-D cardiac stacks.
    """

    steps: int
    patience: int
    val_every: int
    demons_grid: dict[str, list[str]]
    brain_inter_steps: int
    equal_time: bool = True
    refine: int = 50
    demo_steps: int | None = None
    brain_inter_subjects: int = 1600
    brain_inter_test: int = 100
    fine_tune_steps: int = 150
    volume_steps: int | None = None
    volume_subjects: int = 400
    cardiac3d_subjects: int = 250


_STANDARD_GRID = {
    # wide enough that the cardiac and brain choices of the first grid (σ_fluid 0.5 / 1,
    # σ_diffusion 1, max_step 2: its edges) are inside it
    "sigma_fluid": ["0.25", "0.5", "1", "2"],
    "sigma_diffusion": ["0.5", "1", "2.5"],
    "max_step": ["0.5", "1", "2", "3"],
}

BUDGETS = {
    "quick": Budget(
        steps=100,
        patience=0,
        val_every=25,
        # the standard grid's choices on both phantoms lie inside this one
        demons_grid={
            "sigma_fluid": ["0.5", "2"],
            "sigma_diffusion": ["0.5", "1"],
            "max_step": ["1", "2"],
        },
        brain_inter_steps=100,
        demo_steps=100,
        brain_inter_subjects=400,
        brain_inter_test=40,
        fine_tune_steps=20,
        volume_steps=100,
        volume_subjects=200,
        cardiac3d_subjects=100,
    ),
    "standard": Budget(
        steps=300,
        patience=0,
        val_every=50,
        demons_grid=_STANDARD_GRID,
        brain_inter_steps=600,
    ),
    "full": Budget(
        steps=20000,
        patience=10,
        val_every=200,
        demons_grid={
            "sigma_fluid": ["0.25", "0.5", "1", "2"],
            "sigma_diffusion": ["0.5", "1", "1.5", "2.5"],
            "max_step": ["0.5", "1", "2", "3"],
            "iterations": ["40/30/20", "100/60/40"],
        },
        brain_inter_steps=20000,
    ),
}


def _phantom(kind: str, subjects: int, *extra: str) -> list[str]:
    """The data options of a phantom of ``subjects`` subjects (``extra``: more options)."""
    return ["--data", f"phantom:{kind}", "--subjects", str(subjects), *extra]


CARDIAC = _phantom("cardiac", 250)
BRAIN = _phantom("brain", 150)


def _brain_inter(b: Budget) -> list[str]:
    """The inter-subject brain model's training data (standard: 1600 subjects, 1120
    training pairs)."""
    return _phantom("brain-inter", b.brain_inter_subjects)


def _brain_inter_test(b: Budget) -> list[str]:
    """Its test pairs: subjects drawn with another phantom seed, none seen in training."""
    data, subjects = ["--data", "phantom:brain-inter", "--seed", "1"], str(b.brain_inter_test)
    return [*data, "--subjects", subjects, "--split", "all"]


def _brain_3d(b: Budget) -> list[str]:
    """The 3-D demo's volumes (its test pairs are evaluate's test split of them)."""
    return _phantom("brain-inter", b.volume_subjects, "--size", "24x28x24", "--spacing", "6")


def _cardiac_3d(b: Budget) -> list[str]:
    return _phantom("cardiac", b.cardiac3d_subjects, "--size", "48x48x12", "--spacing", "3x3x8")


PEERS = "lcc-demons,ants-syn,identity"


@dataclass
class Stage:
    """One step of the reproduction.

    Attributes:
        name: short name (progress bar, ``RESULTS.md``).
        argv: a ``structreg`` command line, or ``["python", script, ...]``.
        done: the file whose existence marks the stage complete.
        resume: for a training, its run folder (resumed when it holds a run).
        report: the file the stage's table is read from (markdown), if any.
        title: the section title of that table in ``RESULTS.md``.
        before: runs right before the stage and returns extra arguments (a time
            budget from an earlier stage's log; or it prepares the output folder).
    """

    name: str
    argv: list[str]
    done: Path
    resume: Path | None = None
    report: Path | None = None
    title: str = ""
    before: Callable[[], list[str]] | None = None
    figures: list[Path] = field(default_factory=list)

    @property
    def command(self) -> str:
        """The stage's command line (without arguments computed when it runs)."""
        return _command(self.argv)

    def is_done(self) -> bool:
        """``done`` exists and, for a training, its run finished: it reached the step
        budget its command line sets (else its config's) or stopped early. A run
        interrupted after its first validation already holds ``best.pt``, so the file
        alone does not mark a training complete."""
        if not self.done.is_file():
            return False
        if self.resume is None:
            return True
        return _training_finished(self.resume, self.argv)


def _training_finished(run_dir: Path, argv: Sequence[str]) -> bool:
    """True when the run in ``run_dir`` reached the steps ``argv`` asks for (its
    ``--set train.steps=N``, else the checkpoint's own budget) or stopped early."""
    import torch

    from structreg.training.run import RunFolder

    run = RunFolder(run_dir)
    if not run.checkpoint.is_file():
        return False
    ckpt = torch.load(run.checkpoint, map_location="cpu", weights_only=True)
    if (ckpt.get("loop") or {}).get("stopped"):
        return True
    steps = int(ckpt["config"]["train"]["steps"])
    for arg in argv:
        if arg.startswith("train.steps="):
            steps = int(arg.partition("=")[2])
    return int(ckpt["step"]) >= steps


def _command(argv: Sequence[str]) -> str:
    head = ["structreg"] if argv[0] != "python" else []
    return shlex.join(head + list(argv))


def _monitor_set(monitor: str) -> list[str]:
    """``train.monitor`` where it is not the default (the Dice)."""
    return ["--set", f"train.monitor={monitor}"] if monitor != "dice" else []


def _train_set(budget: Budget, monitor: str = "dice") -> list[str]:
    """The step budget, validation cadence, early-stopping patience and the validation
    score that picks ``best.pt`` (and stops early)."""
    out = ["--set", f"train.steps={budget.steps}", "--set", f"train.val_every={budget.val_every}"]
    if budget.patience:
        out += ["--set", f"train.patience={budget.patience}"]
    return out + _monitor_set(monitor)


def _max_seconds(run_dir: Path) -> Callable[[], list[str]]:
    """A time budget: the training wall time of the run in ``run_dir``."""

    def extra() -> list[str]:
        return ["--set", f"train.max_seconds={_ours_seconds(run_dir)():.1f}"]

    return extra


def _train_seconds(run_dir: Path) -> Callable[[], list[str]]:
    """Train for the wall time of the run in ``run_dir`` (no step budget)."""
    return _then(_max_seconds(run_dir), lambda: ["--set", "train.steps=1000000"])


def _continue_from(
    source: Path, target: Path, steps: int | None = None, seconds: Callable[[], float] | None = None
) -> Callable[[], list[str]]:
    """Copy the run ``source`` into ``target`` when it is a beginning of the run
    ``target`` trains: it trained at most ``steps`` steps, or at most ``seconds()``
    seconds (or stopped on that same time budget), and ``target`` holds no run yet.
    ``target`` then resumes it, and a resumed run equals an uninterrupted one (a run
    whose budget ``source`` already reached trains no further step)."""

    def prepare() -> list[str]:
        import shutil

        import torch

        from structreg.training.run import RunFolder

        src, dst = RunFolder(source), RunFolder(target)
        if dst.holds_run() or not src.checkpoint.is_file():
            return []
        ckpt = torch.load(src.checkpoint, weights_only=True)
        loop = ckpt.get("loop") or {}
        if steps is not None and int(ckpt["step"]) > steps:
            return []
        stopped_on_time = str(loop.get("stopped") or "").startswith("time budget")
        took = float(loop.get("seconds", 0))
        if seconds is not None and not stopped_on_time and took >= seconds():
            return []
        dst.path.mkdir(parents=True, exist_ok=True)
        for name in (src.checkpoint, src.best, src.config_file, src.log_file, src.data_file):
            if name.is_file():
                shutil.copy2(name, dst.path / name.name)
        return []

    return prepare


def _then(*steps: Callable[[], list[str]]) -> Callable[[], list[str]]:
    """Run ``steps`` in order; their extra arguments, concatenated."""

    def run() -> list[str]:
        out: list[str] = []
        for step in steps:
            out += step()
        return out

    return run


def _ours_seconds(run_dir: Path) -> Callable[[], float]:
    def seconds() -> float:
        from structreg.viz.curves import learning_curve

        return float(learning_curve(run_dir).seconds[-1])

    return seconds


def _grid_args(grid: dict[str, list[str]]) -> list[str]:
    out: list[str] = []
    for key, values in grid.items():
        out += ["--grid", key, *values]
    return out


def _best_spec(tune_dir: Path) -> str:
    return (tune_dir / "best.txt").read_text().strip()


def _phantom_stages(
    name: str,
    data: list[str],
    config: str,
    ours_run: Path | None,
    root: Path,
    budget: Budget,
    monitor: str = "dice",
) -> list[Stage]:
    """Train (ours unless given, VoxelMorph-2), tune LCC-Demons, evaluate everything.

    ``monitor``: the validation score early stopping watches (``train.monitor``).
    """
    d = root / name
    stages = []
    if ours_run is None:
        ours_run = d / "ours"
        stages.append(
            Stage(
                f"{name}: train ours",
                [
                    "train",
                    *data,
                    "--config",
                    config,
                    "--out",
                    str(ours_run),
                    *_train_set(budget, monitor),
                ],
                ours_run / "best.pt",
                resume=ours_run,
            )
        )
    vm, vm_time = d / "voxelmorph", d / "voxelmorph_time"
    kind = f"{budget.steps}steps" if not budget.patience else "converged"
    methods = [
        f"ours:{ours_run}",
        f"ours:{ours_run},refine={budget.refine},label=ours-refined",
        f"voxelmorph:{vm},label=voxelmorph-{kind}",
    ]
    vm_argv = ["train", "--method", "voxelmorph", *data]
    equal_steps = vm_argv + [
        "--out",
        str(vm),
        *_train_set(budget, monitor),
        "--set",
        "train.max_seconds=0",
    ]
    # with a plain step budget, equal steps and equal time are one trajectory (same
    # seed): train to the first of the two budgets, then continue a copy to the other,
    # so that VoxelMorph-2 trains for the longer of the two budgets, not their sum
    one_trajectory = budget.equal_time and not budget.patience
    first = d / "voxelmorph_first"
    if one_trajectory:
        stages.append(
            Stage(
                f"{name}: train VoxelMorph-2 (the first of the step budget and ours' wall time)",
                vm_argv + ["--out", str(first), *_train_set(budget, monitor)],
                first / "best.pt",
                resume=first,
                before=_max_seconds(ours_run),
            )
        )
    stages.append(
        Stage(
            f"{name}: train VoxelMorph-2",
            equal_steps,
            vm / "best.pt",
            resume=vm,
            before=_continue_from(first, vm, steps=budget.steps) if one_trajectory else None,
        )
    )
    if budget.equal_time:
        prepare = _train_seconds(ours_run)
        if one_trajectory:
            seconds = _ours_seconds(ours_run)
            prepare = _then(_continue_from(first, vm_time, seconds=seconds), prepare)
        stages.append(
            Stage(
                f"{name}: train VoxelMorph-2 for ours' wall time",
                vm_argv
                + ["--out", str(vm_time), "--set", f"train.val_every={budget.val_every}"]
                + _monitor_set(monitor),
                vm_time / "best.pt",
                resume=vm_time,
                before=prepare,
            )
        )
        methods.append(f"voxelmorph:{vm_time},label=voxelmorph-time")
    tune_dir = d / "tune_demons"
    stages.append(
        Stage(
            f"{name}: tune LCC-Demons (validation split)",
            [
                "tune",
                *data,
                "--split",
                "val",
                "--out",
                str(tune_dir),
                *_grid_args(budget.demons_grid),
            ],
            tune_dir / "best.txt",
            report=tune_dir / "tuning.md",
            title=f"{name}: LCC-Demons tuned on the validation split",
        )
    )
    evaluation = d / "eval"

    def tuned() -> list[str]:
        return ["--methods", f"{_best_spec(tune_dir)},label=lcc-demons-tuned"]

    stages.append(
        Stage(
            f"{name}: evaluate",
            ["evaluate", *data, "--out", str(evaluation), "--methods", ",".join(methods)]
            + ["--methods", "lcc-demons,ants-syn,dipy-syn,identity"],
            evaluation / "table.md",
            report=evaluation / "table.md",
            title=f"{name} phantom, test split",
            before=tuned,
            figures=[evaluation / "registration.png", evaluation / "dice_boxplot.png"],
        )
    )
    return stages


def _volume_stages(root: Path, budget: Budget) -> list[Stage]:
    """The 3-D results: the 3-D demo, VoxelMorph-2 trained at its steps and batch, and
    both with the classical peers on the same volumes; ``cardiac3d`` trained on
    short-axis stacks and evaluated with the classical peers."""
    import tomllib

    from structreg.configs import resolve_config

    demo3d, peers = root / "demo3d", root / "demo3d_peers"
    vm3d = root / "demo3d_voxelmorph"
    cardiac, cardiac_eval = root / "cardiac3d", root / "cardiac3d_eval"
    brain_3d, cardiac_3d = _brain_3d(budget), _cardiac_3d(budget)
    if budget.patience:
        converge = _train_set(budget)
    elif budget.volume_steps:
        converge = ["--set", f"train.steps={budget.volume_steps}"]
    else:
        converge = []
    # VoxelMorph-2 at ours' steps and batch (the brain3d config's)
    ours = tomllib.loads(resolve_config("brain3d").read_text())["train"]
    vm_budget = converge or ["--set", f"train.steps={ours['steps']}"]
    if not budget.patience:
        vm_budget = vm_budget + ["--set", f"train.val_every={ours['val_every']}"]
    demo_args = ["--steps", str(budget.volume_steps)] if budget.volume_steps else []
    if budget.volume_subjects != 400:
        demo_args += ["--subjects", str(budget.volume_subjects)]
    return [
        Stage(
            "3-D demo",
            ["demo", "--dims", "3", "--out", str(demo3d), *demo_args],
            demo3d / "report.md",
            report=demo3d / "report.md",
            title="The 3-D demo",
            figures=[demo3d / "registration.png"],
        ),
        Stage(
            "3-D brain volumes: train VoxelMorph-2",
            ["train", "--method", "voxelmorph", *brain_3d, "--out", str(vm3d), *vm_budget]
            + ["--set", f"train.batch_size={ours['batch_size']}"],
            vm3d / "best.pt",
            resume=vm3d,
        ),
        Stage(
            "3-D brain volumes: evaluate with the peers",
            ["evaluate", *brain_3d, "--out", str(peers)]
            + ["--methods", f"ours:{demo3d / 'model'},voxelmorph:{vm3d},{PEERS}"],
            peers / "table.md",
            report=peers / "table.md",
            title="3-D inter-subject brain phantom (the 3-D demo's test volumes)",
        ),
        Stage(
            "cardiac3d: train ours",
            ["train", *cardiac_3d, "--config", "cardiac3d", "--out", str(cardiac), *converge],
            cardiac / "best.pt",
            resume=cardiac,
        ),
        Stage(
            "cardiac3d: evaluate",
            ["evaluate", *cardiac_3d, "--out", str(cardiac_eval)]
            + ["--methods", f"ours:{cardiac},{PEERS}"],
            cardiac_eval / "table.md",
            report=cardiac_eval / "table.md",
            title="3-D cardiac phantom stacks, test split",
            figures=[cardiac_eval / "registration.png"],
        ),
    ]


def plan(
    out: str | Path, budget: str = "standard", benchmarks: str | Path | None = None
) -> list[Stage]:
    """The stages of a reproduction into ``out`` (nothing runs).

    Args:
        benchmarks: the repository's ``benchmarks/`` folder (the latent experiments
            and the real-image benchmark are scripts there); None: those stages are
            left out.
    """
    if budget not in BUDGETS:
        raise InputError(f"unknown budget {budget!r} (choose {', '.join(BUDGETS)})")
    b = BUDGETS[budget]
    root = Path(out)
    demo = root / "demo"
    stages = [
        Stage(
            "demo",
            ["demo", "--out", str(demo)] + (["--steps", str(b.demo_steps)] if b.demo_steps else []),
            demo / "report.md",
            report=demo / "report.md",
            title="The demo",
            figures=[demo / "registration.png"],
        ),
    ]
    # quick, standard: the demo's model is ours on the cardiac phantom (its steps);
    # full: ours is trained to convergence like the others
    cardiac_ours = demo / "model" if not b.patience else None
    stages += _phantom_stages("cardiac", CARDIAC, "cardiac", cardiac_ours, root, b)
    # the brain phantom's atrophy moves tissue by about a voxel: its nearest-neighbour
    # Dice misses most of what a method learns (VoxelMorph-2's stays at no
    # registration's), so the validation loss picks best.pt and stops training there
    stages += _phantom_stages("brain", BRAIN, "brain", None, root, b, monitor="loss")
    stages += _volume_stages(root, b)
    if benchmarks is not None:
        bench = Path(benchmarks)
        cardiac_model = cardiac_ours or root / "cardiac" / "ours"
        for anatomy, model in (("cardiac", cardiac_model), ("brain", root / "brain" / "ours")):
            report = root / f"latent_{anatomy}.md"
            stages.append(
                Stage(
                    f"latent experiments ({anatomy})",
                    [
                        "python",
                        str(bench / "latent_experiments.py"),
                        "--anatomy",
                        anatomy,
                        "--model",
                        str(model),
                    ],
                    report,
                    report=report,
                    title=f"latent experiments, {anatomy} phantom",
                )
            )
        inter = root / "brain_inter"
        stages.append(
            Stage(
                "brain-inter: train ours",
                ["train", *_brain_inter(b), "--config", "brain-inter", "--out", str(inter)]
                + [
                    "--set",
                    f"train.steps={b.brain_inter_steps}",
                    "--set",
                    f"train.val_every={b.val_every}",
                ]
                + (["--set", f"train.patience={b.patience}"] if b.patience else []),
                inter / "best.pt",
                resume=inter,
            )
        )
        inter_eval = root / "brain_inter_eval"
        stages.append(
            Stage(
                "brain-inter: evaluate",
                ["evaluate", *_brain_inter_test(b), "--out", str(inter_eval), "--methods"]
                + [
                    f"ours:{inter},ours:{inter},refine={b.refine},label=ours-refined",
                    "--methods",
                    "lcc-demons,ants-syn,dipy-syn,identity",
                ],
                inter_eval / "table.md",
                report=inter_eval / "table.md",
                title="inter-subject brain phantom, held-out subjects (seed 1)",
                figures=[inter_eval / "dice_boxplot.png"],
            )
        )
        real = root / "real_pairs"
        stages.append(
            Stage(
                "real inter-subject brain pairs",
                ["python", str(bench / "real_pairs.py"), "--model", str(inter), "--out", str(real)]
                + ["--refine", str(b.refine)],
                real / "table.md",
                report=real / "table.md",
                title="real inter-subject brain slices",
                figures=[real / "registration.png", real / "dice_boxplot.png"],
            )
        )
        for cohort, data in (
            ("inter-subject", []),
            (
                "longitudinal",
                ["--data", "phantom:brain", "--subjects", "40", "--val-fraction", "0.1"],
            ),
        ):
            tuned = root / ("fine_tune" if cohort == "inter-subject" else f"fine_tune_{cohort}")
            stages.append(
                Stage(
                    f"fine-tuning the brain model ({cohort} cohort)",
                    ["python", str(bench / "fine_tune.py"), "--init", str(inter)]
                    + ["--out", str(tuned), *data]
                    + (["--steps", str(b.fine_tune_steps)] if b.fine_tune_steps != 150 else []),
                    tuned / "report.md",
                    report=tuned / "report.md",
                    title=f"fine-tuning the inter-subject brain model on a small {cohort} cohort",
                    figures=[tuned / "fine_tune_curves.png"],
                )
            )
        bundled = root / "bundled"
        stages.append(
            Stage(
                "bundled models",
                ["python", str(bench / "bundle_models.py"), "--results", str(root)]
                + ["--out", str(bundled)],
                bundled / "report.md",
                report=bundled / "report.md",
                title="bundled models (copy into src/structreg/pretrained/)",
            )
        )
    return stages


def machine() -> str:
    """The CPU model and thread count, and the GPU when one is used."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    text = f"{cpu}, {os.cpu_count()} CPU threads"
    import torch

    if torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)}"
    return text


def _run_stage(stage: Stage, log: Path) -> list[str]:
    """Run one stage (its output into ``log``); returns the command line it ran."""
    from structreg.training.run import RunFolder

    if stage.resume is not None:
        # a training killed before its first checkpoint left nothing to resume
        RunFolder(stage.resume).discard_unstarted()
    argv = list(stage.argv) + (stage.before() if stage.before else [])
    if stage.resume is not None and RunFolder(stage.resume).holds_run():
        argv.append("--resume")
    if argv[0] == "python":
        cmd = [sys.executable, *argv[1:]]
    else:
        cmd = [sys.executable, "-m", "structreg", *argv]
    with log.open("a", encoding="utf-8") as fh:
        fh.write(f"\n$ {shlex.join(cmd)}\n")
        fh.flush()
        result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=fh, text=True, check=False)
        fh.write(result.stdout)
    if result.returncode != 0:
        raise InputError(f"stage '{stage.name}' failed (exit {result.returncode}); see {log}")
    if argv[0] == "python" and stage.report is not None:
        from structreg.io.files import atomic_write_text

        stage.report.parent.mkdir(parents=True, exist_ok=True)
        if not stage.report.is_file():
            atomic_write_text(stage.report, result.stdout)
    return argv


def reproduce(
    out: str | Path,
    budget: str = "standard",
    benchmarks: str | Path | None = None,
    progress: bool = True,
    only: Sequence[str] = (),
) -> Path:
    """Run (or finish) every stage of :func:`plan` and write ``out/RESULTS.md``.

    Args:
        only: run only the stages whose name starts with one of these (their
            dependencies must be complete).
    Returns:
        The path of ``RESULTS.md``.
    """
    from tqdm.auto import tqdm

    from structreg.io.files import atomic_write_text

    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    stages = plan(root, budget, benchmarks)
    log = root / "reproduce.log"
    seconds: dict[str, float] = {}
    bar = tqdm(stages, desc="reproduce", unit="stage", disable=not progress)
    for stage in bar:
        bar.set_postfix_str(stage.name)
        if stage.is_done() or (only and not any(stage.name.startswith(o) for o in only)):
            continue
        t0 = time.perf_counter()
        argv = _run_stage(stage, log)
        seconds[stage.name] = time.perf_counter() - t0
        with (root / "stage_seconds.tsv").open("a", encoding="utf-8") as fh:
            fh.write(f"{stage.name}\t{seconds[stage.name]:.1f}\n")
        with (root / "commands.tsv").open("a", encoding="utf-8") as fh:
            fh.write(f"{stage.name}\t{_command(argv)}\n")
    curves = learning_curve_panels(root, budget)
    if curves:
        from structreg.viz.curves import learning_curves_figure

        learning_curves_figure(curves, root / "learning_curves.png")
    results = root / "RESULTS.md"
    atomic_write_text(results, results_text(stages, budget, root))
    return results


def learning_curve_panels(root: Path, budget: str) -> dict[str, dict[str, Path]]:
    """Data set -> {method -> run folder} of the learned methods trained so far."""
    b = BUDGETS[budget]
    cardiac_ours = root / "demo" / "model" if not b.patience else root / "cardiac" / "ours"
    panels: dict[str, dict[str, Path]] = {}
    for name, ours in (("cardiac", cardiac_ours), ("brain", root / "brain" / "ours")):
        runs = {
            "ours": ours,
            "VoxelMorph-2": root / name / "voxelmorph",
            "VoxelMorph-2 (ours' wall time)": root / name / "voxelmorph_time",
        }
        runs = {k: v for k, v in runs.items() if (v / "train_log.csv").is_file()}
        if runs:
            panels[f"{name} phantom"] = runs
    return panels


def _stage_times(root: Path) -> dict[str, float]:
    path = root / "stage_seconds.tsv"
    out: dict[str, float] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            name, _, value = line.rpartition("\t")
            out[name] = out.get(name, 0.0) + float(value)
    return out


def _commands(root: Path) -> dict[str, str]:
    """Stage name -> the command line that last ran it."""
    path = root / "commands.tsv"
    out: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            name, _, command = line.partition("\t")
            out[name] = command
    return out


def results_text(stages: Sequence[Stage], budget: str, root: Path) -> str:
    """``RESULTS.md``: provenance, then each stage's table with its command."""
    from structreg import __version__

    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    times, commands = _stage_times(root), _commands(root)
    total = sum(times.values())
    lines = [
        f"# Results (`make results BUDGET={budget}`)",
        "",
        f"Made on {date} with structreg {__version__} on {machine()}; "
        f"{total / 60:.1f} min of stages in all (sum over the runs that made them).",
        "",
        "| stage | seconds |",
        "|---|---|",
        *[f"| {s.name} | {times[s.name]:.0f} |" for s in stages if s.name in times],
        "",
    ]
    for stage in stages:
        if stage.report is None or not stage.report.is_file():
            continue
        lines += [
            f"## {stage.title}",
            "",
            f"Made by `{commands.get(stage.name, stage.command)}` (budget {budget}; "
            f"{machine()}; {date}).",
            "",
            stage.report.read_text().rstrip(),
            "",
        ]
        lines += [f"![{f.stem}]({f.relative_to(root)})" for f in stage.figures if f.is_file()]
        lines.append("")
    curves = root / "learning_curves.png"
    if curves.is_file():
        lines += ["## Learning curves", "", f"![learning curves]({curves.name})", ""]
    return "\n".join(lines)


def provenance(root: Path) -> tuple[str, str]:
    """(date, machine) of the run in ``root``: from its ``RESULTS.md`` when written,
    else today (UTC) and this machine."""
    results = root / "RESULTS.md"
    if results.is_file():
        found = re.search(r"Made on (\S+) with structreg \S+ on (.+?);", results.read_text())
        if found:
            return found.group(1), found.group(2)
    return datetime.now(timezone.utc).strftime("%Y-%m-%d"), machine()


def page_name(title: str) -> str:
    """The file name of a table's page: its title in lower case, words joined by '-'."""
    words = re.findall(r"[a-z0-9]+", title.lower())
    return "-".join(words)[:80] + ".md"


def page_text(text: str, root: Path, report: Path) -> str:
    """A stage's markdown report as part of a docs page: headings one level down (the
    page has its own title), and links and images, which point into the run folder,
    as the run folder's paths in plain text (so the page builds without them)."""
    lines, fence = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence and re.match(r"#{1,5} ", line):
            line = "#" + line
        lines.append(line)

    def as_path(found: re.Match) -> str:
        alt, target = found.group(2), found.group(3)
        if re.match(r"[a-z]+://|#", target):
            return found.group(0)
        path = (report.parent / target).resolve()
        shown = path.relative_to(root.resolve()) if path.is_relative_to(root.resolve()) else path
        kind = "figure" if found.group(1) else "file"
        return f"{alt} ({kind} `{root.name}/{shown}`)"

    return re.sub(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)", as_path, "\n".join(lines))


def docs_pages(stages: Sequence[Stage], budget: str, root: Path, docs: Path) -> list[Path]:
    """Write the tables of a reproduce run as documentation pages.

    ``docs/index.md`` lists the run's provenance, its stage times and one link per
    table; each stage with a report gets ``docs/<title>.md`` with its command, budget,
    machine and date. Pages of an earlier run that this run did not write are removed.

    Returns:
        The pages written, the index first.
    """
    from structreg.io.files import atomic_write_text

    date, where = provenance(root)
    times, commands = _stage_times(root), _commands(root)
    docs.mkdir(parents=True, exist_ok=True)
    written, links = [], []
    for stage in stages:
        if stage.report is None or not stage.report.is_file():
            continue
        page = docs / page_name(stage.title)
        command = commands.get(stage.name, stage.command)
        made = f"Made by `{command}` (budget {budget}; {where}; {date})."
        body = page_text(stage.report.read_text().rstrip(), root, stage.report)
        atomic_write_text(page, f"# {stage.title}\n\n{made}\n\n{body}\n")
        written.append(page)
        links.append(f"- [{stage.title}]({page.name})")
    index = docs / "index.md"
    atomic_write_text(index, _index_text(stages, budget, (date, where), times, links))
    for old in docs.glob("*.md"):
        if old != index and old not in written:
            old.unlink()
    return [index, *written]


def _index_text(
    stages: Sequence[Stage],
    budget: str,
    made: tuple[str, str],
    times: dict[str, float],
    links: list[str],
) -> str:
    """The index page of :func:`docs_pages`: provenance, stage times, the tables."""
    total = sum(times.values())
    rows = [f"| {s.name} | {times[s.name]:.0f} |" for s in stages if s.name in times]
    return "\n".join(
        [
            f"# The last reproduce run (budget {budget})",
            "",
            "These pages are written by `make results` (`python experiments/reproduce.py "
            f"--budget {budget} --docs DIR`) and replaced by its next run; the results "
            "pages around them state which budget and run each of their tables comes from.",
            "",
            f"Made on {made[0]} on {made[1]}; {total / 60:.1f} min of stages in all.",
            "",
            "## Tables",
            "",
            *links,
            "",
            "## Stage times",
            "",
            "| stage | seconds |",
            "|---|---|",
            *rows,
            "",
        ]
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line of ``python experiments/reproduce.py`` (``make results``)."""
    p = argparse.ArgumentParser(
        prog="experiments/reproduce.py",
        description="regenerate every results table and figure (demo, comparisons, latent, "
        "real pairs)",
    )
    p.add_argument("--out", default="runs/results", help="results folder (default: runs/results)")
    p.add_argument(
        "--budget",
        default="standard",
        choices=tuple(BUDGETS),
        help="quick: every stage at a reduced size, well under an hour on a 2-core CPU "
        "(a check, not the results pages' numbers); standard: their protocol (300 "
        "training steps; about 3.1 h on a 2-core CPU); full: every learned method "
        "trained until it stops improving (meant for a GPU) (default: standard)",
    )
    p.add_argument(
        "--benchmarks",
        default=str(Path(__file__).resolve().parents[1] / "benchmarks"),
        help="the repository's benchmarks/ folder, for the latent experiments and the "
        "real-image benchmark; 'none' leaves them out (default: the repository's)",
    )
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="STAGE",
        help="run only the stages whose name starts with this (repeatable)",
    )
    p.add_argument("--list", action="store_true", help="print the stages' commands and exit")
    p.add_argument(
        "--docs",
        default=None,
        metavar="DIR",
        help="also write the tables as documentation pages into DIR (make results: "
        "docs/results/generated)",
    )
    p.add_argument(
        "--pages-only",
        action="store_true",
        help="with --docs: write the pages from the finished run in --out, run no stage",
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run (or list) the stages; a failing stage is one line naming its log (exit 1)."""
    args = parse_args(argv)
    bench = None if args.benchmarks == "none" else Path(args.benchmarks)
    try:
        if bench is not None and not (bench / "latent_experiments.py").is_file():
            raise InputError(f"no benchmarks folder at {bench} (or --benchmarks none)")
        if args.list:
            for stage in plan(args.out, args.budget, bench):
                print(f"{stage.name}: {stage.command}")
            return 0
        if args.pages_only:
            return _pages_only(args, bench)
        results = reproduce(args.out, args.budget, bench, only=args.only)
        if args.docs:
            pages = docs_pages(
                plan(args.out, args.budget, bench), args.budget, Path(args.out), Path(args.docs)
            )
            print(f"wrote {len(pages)} pages into {args.docs}")
    except StructregError as exc:
        print(f"reproduce: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {results}")
    return 0


def _pages_only(args: argparse.Namespace, bench: Path | None) -> int:
    """``--pages-only``: the docs pages of the run in ``--out``, no stage run."""
    if not args.docs:
        raise InputError("--pages-only needs --docs DIR")
    if not (Path(args.out) / "RESULTS.md").is_file():
        raise InputError(f"{args.out}: no RESULTS.md (not a finished reproduce run)")
    pages = docs_pages(
        plan(args.out, args.budget, bench), args.budget, Path(args.out), Path(args.docs)
    )
    print(f"wrote {len(pages)} pages into {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
