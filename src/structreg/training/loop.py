"""Training: the loss of Eq. 1, one optimisation step, validation, and the loop with
logging, checkpoints and exact resumption.

Loss (per batch)::

    total = lam · (1 − LCC_sym) + kl_weight · KL + mask_weight · P

* ``LCC_sym = symmetric_lcc(F, M, v)``: squared local correlation of
  ``F ∘ exp(−v/2)`` and ``M ∘ exp(v/2)`` (Gaussian window σ = 2, k = 9), averaged
  over pixels and batch - a number in [0, 1], 1 = perfect local match.
* ``KL``: closed-form ``KL(q(z|M,F) || N(0, I))`` **summed over the d latent
  dimensions and averaged over the batch**, in nats.
* ``P``: mean squared velocity (voxels²) outside the pair's mask (0 unless
  ``mask_weight > 0``; the velocity rather than ``exp(v)`` is penalised, which
  costs no extra exponentiation and vanishes exactly where ``exp(v)`` does).

Scale of the terms (the λ / KL decision). With these reductions and the
paper's λ (cardiac 82, brain 55), one nat of code information must buy 1/λ ≈
0.012 of pixel-mean LCC. That is too expensive: the optimiser switches the code
off (posterior collapse) and the decoder, conditioned on M, predicts roughly one
mean deformation per anatomy. Measured on the built-in cardiac phantom (400
training pairs, 40 validation pairs, 100×100, d = 144, batch 50, lr 5e-4, 300
steps; validation Dice over RV, myocardium and blood pool 0.597 before
registration):

===================  =========  ========  ==============  =======
kl_weight β          KL (nats)  val Dice  active z dims*  folding
===================  =========  ========  ==============  =======
1 (paper λ as is)    0.9        0.874     1 of 144        0 %
0.01 (≈ 1/d)         91         0.925     144 of 144      0 %
===================  =========  ========  ==============  =======

(* dimensions whose μ varies across training pairs with variance > 0.1.) With
the transposed-convolution decoder the gap was wider (β = 1: KL 0.2, Dice
0.602; β = 0.01: KL 82, Dice 0.898), and on random smooth warps of a synthetic
blob (64×64) β = 1 / 0.1 / 0.01 gave KL 1 / 24 / 117 nats and Dice 0.80 / 0.93
/ 0.96 from 0.58. So the default is ``kl_weight = 0.01``, about 1/d: in effect the KL
*averaged* over the latent dimensions (``K.mean`` over the last axis, a common
Keras idiom; the paper's code is not available to check which reduction it
used). That is a reading under which the paper's λ keeps an informative code,
as its transport and clustering experiments need. At β = 0.01 the codes
of the cardiac training pairs have mean |E[μ]| ≈ 0.31 and aggregate variance
≈ 0.65 per dimension (β = 1: 0.06 and 0.99, but uninformative). Raise β
towards 0.1 for a code closer to N(0, I) (sampling, transport), lower it for
closer registration.

Determinism: weight initialisation, data order (an explicit ``torch.Generator``)
and the reparameterisation noise (another one) all derive from ``seed``; a
checkpoint stores the model, the optimizer, the step, the epoch's permutation and
position in it, and every RNG state, so a resumed run ends with the same weights
as an uninterrupted one (on CPU; CUDA kernels are not all deterministic).
"""

from __future__ import annotations

import csv
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..layers import evaluating
from ..data.pair import Pair, collate_pairs
from ..losses import kl_divergence, outside_mask_penalty, symmetric_lcc
from ..models.cvae import CVAERegistration, ModelConfig
from ..ops.jacobian import folding_fraction
from ..ops.warp import warp
from .checkpoint import read_checkpoint, save_checkpoint
from .config import RESUMABLE_CHANGES, RunConfig, TrainConfig, resolve_device, save_config

__all__ = ["LossParts", "registration_loss", "train_step", "dice", "validate", "train",
           "LOG_COLUMNS"]

LOG_COLUMNS = ("step", "epoch", "loss", "lcc", "kl", "penalty", "val_loss", "val_lcc", "val_kl",
               "val_dice", "val_dice_before", "val_folding_pct", "step_time_s")


@dataclass
class LossParts:
    """Terms of the training loss (0-d tensors).

    Attributes:
        total: the optimised loss.
        lcc: mean symmetric LCC (similarity in [0, 1], higher is better).
        kl: KL divergence in nats per pair (summed over latent dims).
        penalty: outside-mask penalty in voxels² (0 when unused).
    """

    total: torch.Tensor
    lcc: torch.Tensor
    kl: torch.Tensor
    penalty: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        return {k: float(getattr(self, k).detach()) for k in ("total", "lcc", "kl", "penalty")}


def registration_loss(mu: torch.Tensor, logvar: torch.Tensor, velocity: torch.Tensor,
                      moving: torch.Tensor, fixed: torch.Tensor, *, lam: float,
                      kl_weight: float = 1.0, mask: torch.Tensor | None = None,
                      mask_weight: float = 0.0, steps: int = 4, sigma: float = 2.0,
                      kernel_size: int = 9) -> LossParts:
    """Eq. 1: ``lam · (1 − LCC_sym) + kl_weight · KL + mask_weight · P``.

    Args:
        mu, logvar: ``(N, d)`` posterior parameters.
        velocity: ``(N, ndim, *S)`` in voxels (``M ∘ exp(v) ≈ F``).
        moving, fixed: ``(N, C, *S)``.
        mask: ``(N, 1, *S)`` region where motion is allowed (needed when
            ``mask_weight > 0``).
        steps: squarings used for the half transforms ``exp(±v/2)``.
    """
    similarity = symmetric_lcc(fixed, moving, velocity, steps=steps, sigma=sigma,
                               kernel_size=kernel_size)
    kl = kl_divergence(mu, logvar, reduction="mean")
    if mask_weight > 0:
        if mask is None:
            raise ValueError("registration_loss: mask_weight > 0 needs masks in the data "
                             "(set train.mask_weight=0 or provide masks)")
        penalty = outside_mask_penalty(velocity, mask)
    else:
        penalty = velocity.new_zeros(())
    total = lam * (1.0 - similarity) + kl_weight * kl + mask_weight * penalty
    return LossParts(total=total, lcc=similarity, kl=kl, penalty=penalty)


def train_step(model: CVAERegistration, optimizer: torch.optim.Optimizer,
               batch: dict[str, torch.Tensor], config: TrainConfig,
               generator: torch.Generator | None = None) -> LossParts:
    """One optimisation step on ``batch`` (``moving``, ``fixed``, optional ``mask``),
    with ``z`` sampled by the reparameterisation trick from ``generator``."""
    model.train()
    mu, logvar, _, velocity = model.sample_velocity(batch["moving"], batch["fixed"], True,
                                                    generator)
    parts = registration_loss(mu, logvar, velocity, batch["moving"], batch["fixed"],
                              lam=config.lam, kl_weight=config.kl_weight,
                              mask=batch.get("mask"), mask_weight=config.mask_weight,
                              steps=model.config.steps, sigma=config.lcc_sigma,
                              kernel_size=config.lcc_kernel)
    optimizer.zero_grad(set_to_none=True)
    parts.total.backward()
    optimizer.step()
    return parts


def dice(moved_labels: torch.Tensor, fixed_labels: torch.Tensor,
         labels: Sequence[int]) -> torch.Tensor:
    """Dice overlap per pair and label value.

    Args:
        moved_labels, fixed_labels: ``(N, 1, *S)`` integer label maps.
        labels: label values to score.
    Returns:
        ``(N, len(labels))`` float64; NaN where the label is absent from both maps.
    """
    out = torch.empty(moved_labels.shape[0], len(labels), dtype=torch.float64)
    for j, value in enumerate(labels):
        a = (moved_labels == value).flatten(1)
        b = (fixed_labels == value).flatten(1)
        inter = (a & b).sum(1).double()
        size = a.sum(1).double() + b.sum(1).double()
        out[:, j] = torch.where(size > 0, 2 * inter / size.clamp_min(1), torch.nan).cpu()
    return out


def _nanmean(x: torch.Tensor) -> float:
    x = x[~torch.isnan(x)]
    return float(x.mean()) if x.numel() else math.nan


def _label_values(data: dict[str, Any]) -> list[int]:
    if data.get("fixed_labels") is None or data.get("moving_labels") is None:
        return []
    values = torch.cat([data["fixed_labels"].unique(), data["moving_labels"].unique()]).unique()
    return [int(v) for v in values if int(v) != 0]


@torch.no_grad()
def validate(model: CVAERegistration, data: dict[str, Any], config: TrainConfig,
             batch_size: int | None = None) -> dict[str, float]:
    """Deterministic registration (``z = μ``, eval mode) of a validation set.

    Args:
        data: :func:`structreg.data.collate_pairs` output (tensors on the model's
            device).
    Returns:
        ``val_loss``, ``val_lcc``, ``val_kl`` (as in training, with ``z = μ``),
        ``val_dice`` (mean over pairs and the non-zero label values present of the
        Dice of the warped moving labels against the fixed labels; NaN without
        labels), ``val_dice_before`` (same without registration) and
        ``val_folding_pct`` (% of pixels with det J ≤ 0).
    """
    n = data["moving"].shape[0]
    batch_size = batch_size or config.batch_size
    labels = _label_values(data)
    sums = {"val_loss": 0.0, "val_lcc": 0.0, "val_kl": 0.0, "val_folding_pct": 0.0}
    dices, dices_before = [], []
    with evaluating(model):
        for start in range(0, n, batch_size):
            sl = slice(start, start + batch_size)
            moving, fixed = data["moving"][sl], data["fixed"][sl]
            out = model(moving, fixed, sample=False)
            mask = data["mask"][sl] if data.get("mask") is not None else None
            parts = registration_loss(out.mu, out.logvar, out.velocity, moving, fixed,
                                      lam=config.lam, kl_weight=config.kl_weight, mask=mask,
                                      mask_weight=config.mask_weight if mask is not None else 0.0,
                                      steps=model.config.steps, sigma=config.lcc_sigma,
                                      kernel_size=config.lcc_kernel)
            m = moving.shape[0]
            sums["val_loss"] += float(parts.total) * m
            sums["val_lcc"] += float(parts.lcc) * m
            sums["val_kl"] += float(parts.kl) * m
            sums["val_folding_pct"] += 100.0 * float(folding_fraction(out.disp).sum())
            if labels:
                ml, fl = data["moving_labels"][sl], data["fixed_labels"][sl]
                moved = warp(ml.to(out.disp.dtype), out.disp, mode="nearest").round().long()
                dices.append(dice(moved, fl, labels))
                dices_before.append(dice(ml, fl, labels))
    result = {k: v / n for k, v in sums.items()}
    result["val_dice"] = _nanmean(torch.cat(dices)) if dices else math.nan
    result["val_dice_before"] = _nanmean(torch.cat(dices_before)) if dices_before else math.nan
    return result


# -- RNG state ------------------------------------------------------------------------

def _capture_rng(shuffle: torch.Generator, noise: torch.Generator) -> dict[str, Any]:
    """Every RNG state as tensors and plain containers (``weights_only``-loadable)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": str(np_state[0]), "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                  "cached_gaussian": float(np_state[4])},
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]},
        "shuffle": shuffle.get_state(),
        "noise": noise.get_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: dict[str, Any], shuffle: torch.Generator, noise: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    npy = state["numpy"]
    np.random.set_state((npy["name"], npy["keys"].numpy().astype(np.uint32), npy["pos"],
                         npy["has_gauss"], npy["cached_gaussian"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    shuffle.set_state(state["shuffle"])
    noise.set_state(state["noise"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _seed_everything(seed: int) -> tuple[torch.Generator, torch.Generator]:
    """Seed the global RNGs; return (data-order generator, noise generator)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    shuffle = torch.Generator().manual_seed(seed)
    noise = torch.Generator().manual_seed(seed + 0x5EED)
    return shuffle, noise


# -- data ---------------------------------------------------------------------------

def _prepare(pairs: Sequence[Pair], model_config: ModelConfig, what: str,
             device: torch.device) -> dict[str, Any]:
    if not pairs:
        raise ValueError(f"train: no {what} pairs")
    want = tuple(model_config.image_size)
    for p in pairs:
        if not isinstance(p, Pair):
            raise TypeError(f"train: {what} pairs must be structreg.data.Pair, got {type(p).__name__}")
        if tuple(p.moving.shape) != want:
            raise ValueError(f"train: {what} pair {p.id} has shape {tuple(p.moving.shape)} but the "
                             f"model is built for image_size {want} (resample the data or set "
                             f"model.image_size)")
    batch = collate_pairs(pairs)
    return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


# -- logging ------------------------------------------------------------------------

def _read_log(path: Path, max_step: int) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            try:
                step = int(row["step"])
            except (KeyError, ValueError):
                continue
            if step <= max_step:
                rows.append({k: _num(v) for k, v in row.items()})
    return rows


def _num(text: str | None) -> Any:
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


class _Logger:
    """``train_log.csv`` (one row per step) and optional TensorBoard."""

    def __init__(self, out_dir: Path, rows: list[dict[str, Any]], tensorboard: bool):
        self.path = out_dir / "train_log.csv"
        self.rows = rows
        # Rewrite what the checkpoint covers (drops steps logged after it), then append.
        text = ",".join(LOG_COLUMNS) + "\n" + "".join(
            ",".join(_fmt(r.get(c)) for c in LOG_COLUMNS) + "\n" for r in rows)
        from ..io_utils import atomic_write_text
        atomic_write_text(self.path, text)
        self.fh = self.path.open("a", newline="", encoding="utf-8")
        self.writer = csv.writer(self.fh)
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(log_dir=str(out_dir / "tensorboard"))
            except Exception:  # noqa: BLE001 - TensorBoard is optional
                self.tb = None

    def log(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.writer.writerow([_fmt(row.get(c)) for c in LOG_COLUMNS])
        self.fh.flush()
        if self.tb is not None:
            for key in LOG_COLUMNS[2:]:
                value = row.get(key)
                if isinstance(value, float) and math.isfinite(value):
                    group = "val" if key.startswith("val_") else "train"
                    self.tb.add_scalar(f"{group}/{key}", value, row["step"])

    def close(self) -> None:
        self.fh.close()
        if self.tb is not None:
            self.tb.close()


# -- the loop -----------------------------------------------------------------------

def _check_resume(saved: RunConfig, current: RunConfig, path: Path) -> None:
    if saved.model != current.model:
        diff = [k for k, v in current.model.to_dict().items() if saved.model.to_dict()[k] != v]
        raise ValueError(f"cannot resume from {path}: model settings differ ({', '.join(diff)})")
    s, c = saved.train.to_dict(), current.train.to_dict()
    diff = [k for k in c if s[k] != c[k] and k not in RESUMABLE_CHANGES]
    if diff:
        raise ValueError(f"cannot resume from {path}: train settings differ "
                         f"({', '.join(f'{k}: {s[k]!r} -> {c[k]!r}' for k in diff)}); only "
                         f"{', '.join(sorted(RESUMABLE_CHANGES))} may change")


def train(model_config: ModelConfig, train_config: TrainConfig, train_pairs: Sequence[Pair],
          val_pairs: Sequence[Pair] | None, out_dir: str | os.PathLike, resume: bool = False,
          progress: bool = True) -> list[dict[str, Any]]:
    """Train a :class:`CVAERegistration` and write the run folder.

    Args:
        model_config, train_config: the run's settings.
        train_pairs: training pairs, all of spatial shape ``model_config.image_size``.
        val_pairs: validation pairs (may be empty/None: no validation).
        out_dir: run folder; receives ``config.toml`` (resolved settings),
            ``train_log.csv`` (columns :data:`LOG_COLUMNS`, one row per step,
            validation columns filled at validation steps), ``checkpoint.pt``
            (latest, for resuming) and ``best.pt`` (best validation Dice, or
            lowest validation loss without labels, or the final model without a
            validation set); ``tensorboard/`` when TensorBoard is installed.
        resume: continue from ``out_dir/checkpoint.pt`` up to ``train_config``'s
            step budget; the result equals an uninterrupted run with the same
            seed. Without ``resume`` an existing run folder is refused.
        progress: show a tqdm progress bar.
    Returns:
        The log rows (dicts keyed by :data:`LOG_COLUMNS`) from step 1 to the last.
    """
    config = RunConfig(model=model_config, train=train_config)
    cfg = train_config
    out_dir = Path(out_dir)
    ckpt_path, best_path = out_dir / "checkpoint.pt", out_dir / "best.pt"
    if not resume and ckpt_path.exists():
        raise FileExistsError(f"{out_dir} already holds a run (checkpoint.pt); resume it or "
                              f"choose another output folder")
    if resume and not ckpt_path.is_file():
        raise FileNotFoundError(f"cannot resume: no checkpoint.pt in {out_dir}")
    device = resolve_device(cfg.device)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)

    train_data = _prepare(train_pairs, model_config, "training", device)
    val_data = _prepare(val_pairs, model_config, "validation", device) if val_pairs else None
    n = train_data["moving"].shape[0]
    batch_size = min(cfg.batch_size, n)
    per_epoch = n // batch_size
    max_steps = cfg.steps if cfg.steps > 0 else cfg.epochs * per_epoch
    if cfg.mask_weight > 0 and train_data.get("mask") is None:
        raise ValueError("train: mask_weight > 0 but the training pairs have no masks")

    shuffle, noise = _seed_everything(cfg.seed)
    model = CVAERegistration(model_config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, epoch, position, perm = 0, 0, 0, None
    best = None  # best validation score (higher is better)
    rows: list[dict[str, Any]] = []
    if resume:
        ckpt = read_checkpoint(ckpt_path)
        _check_resume(ckpt["config"], config, ckpt_path)
        if ckpt["optimizer"] is None or ckpt["rng"] is None or ckpt.get("loop") is None:
            raise ValueError(f"cannot resume from {ckpt_path}: it holds no training state")
        model.load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(ckpt["optimizer"])
        _restore_rng(ckpt["rng"], shuffle, noise)
        loop = ckpt["loop"]
        step, epoch, position = ckpt["step"], loop["epoch"], loop["position"]
        perm, best = loop["perm"], loop["best"]
        if perm is not None and perm.numel() != n:
            raise ValueError(f"cannot resume from {ckpt_path}: it was trained on {perm.numel()} "
                             f"pairs, now {n}")
        rows = _read_log(out_dir / "train_log.csv", step)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, out_dir / "config.toml")
    logger = _Logger(out_dir, rows, cfg.tensorboard)

    def state() -> dict[str, Any]:
        return {"rng": _capture_rng(shuffle, noise),
                "loop": {"epoch": epoch, "position": position, "perm": perm, "best": best}}

    bar = None
    try:
        from tqdm.auto import tqdm
        bar = tqdm(total=max_steps, initial=step, disable=not progress, dynamic_ncols=True,
                   desc="train", unit="step")
        while step < max_steps:
            t0 = time.perf_counter()
            if position == 0 or perm is None:
                perm = torch.randperm(n, generator=shuffle)
                position = 0
            idx = perm[position * batch_size:(position + 1) * batch_size].to(device)
            batch = {k: train_data[k].index_select(0, idx) for k in ("moving", "fixed")}
            if cfg.mask_weight > 0:
                batch["mask"] = train_data["mask"].index_select(0, idx)
            row_epoch = epoch
            parts = train_step(model, optimizer, batch, cfg, noise).as_floats()
            if not math.isfinite(parts["total"]):
                raise RuntimeError(f"training diverged at step {step + 1} (loss {parts['total']}); "
                                   f"try a smaller train.lr")
            step += 1
            position += 1
            if position == per_epoch:
                position, epoch = 0, epoch + 1
            row: dict[str, Any] = {"step": step, "epoch": row_epoch, "loss": parts["total"],
                                   "lcc": parts["lcc"], "kl": parts["kl"],
                                   "penalty": parts["penalty"]}
            last = step == max_steps
            improved = False
            if val_data is not None and ((cfg.val_every and step % cfg.val_every == 0) or last):
                metrics = validate(model, val_data, cfg, batch_size)
                row.update(metrics)
                score = (metrics["val_dice"] if math.isfinite(metrics["val_dice"])
                         else -metrics["val_loss"])
                if best is None or score > best:
                    best, improved = score, True
            row["step_time_s"] = time.perf_counter() - t0
            logger.log(row)
            if improved:
                save_checkpoint(best_path, model, config, step=step, rng=None, loop=None)
            if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or last:
                save_checkpoint(ckpt_path, model, config, optimizer=optimizer, step=step, **state())
            bar.update(1)
            postfix = {"loss": f"{parts['total']:.3g}", "lcc": f"{parts['lcc']:.3f}",
                       "kl": f"{parts['kl']:.3g}"}
            if "val_dice" in row and math.isfinite(row["val_dice"]):
                postfix["dice"] = f"{row['val_dice']:.3f}"
            bar.set_postfix(postfix, refresh=False)
    finally:
        if bar is not None:
            bar.close()
        logger.close()
    if val_data is None:  # no validation: "best" is the final model
        save_checkpoint(best_path, model, config, step=step, rng=None, loop=None)
    return logger.rows
