"""The latent deformation codes: encoding pairs, CSV files, CCA projection and
SVM classification (Krebs et al. 2018, Fig. 3).

Codes are the encoder's ``μ`` (and ``σ = exp(logvar / 2)``) per pair, ``(N, d)``
numpy arrays. Classification follows the paper: project the codes on the most
discriminative CCA components against one-hot groups and train an SVM on the
projection. The CCA is part of the classifier (:func:`make_classifier`), so in
cross-validation it is fitted on each fold's training part only (no leakage),
and folds are grouped by subject so slices of one subject never sit on both
sides of a split.
"""

from __future__ import annotations

import csv
import io
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, TransformerMixin

from ..core.layers import evaluating
from ..errors import DataError, InputError, StructregWarning
from ..io.files import atomic_write_text

if TYPE_CHECKING:
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import Pipeline

    from ..models.cvae import CVAERegistration

ID_COLUMNS = ("id", "subject", "group")


# ---------------------------------------------------------------------------- encoding


def encode_pairs(
    model: CVAERegistration, pairs: Sequence, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Encode each pair's deformation: ``(mu, sigma)``, float64 arrays ``(N, code_dim)``.

    Args:
        model: a :class:`structreg.models.cvae.CVAERegistration` (used in eval mode,
            its mode is restored afterwards).
        pairs: :class:`structreg.data.pair.Pair` s on the model's grid.
        batch_size: pairs per forward pass.
    """
    import torch

    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    d = model.config.code_dim
    if len(pairs) == 0:
        return np.zeros((0, d)), np.zeros((0, d))
    device = next(model.parameters()).device
    mus, sigmas = [], []
    with evaluating(model):
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            m = torch.from_numpy(np.stack([p.moving for p in chunk]).astype(np.float32))[:, None]
            f = torch.from_numpy(np.stack([p.fixed for p in chunk]).astype(np.float32))[:, None]
            mu, logvar = model.encode(m.to(device), f.to(device))
            mus.append(mu.double().cpu().numpy())
            sigmas.append(torch.exp(0.5 * logvar).double().cpu().numpy())
    return np.concatenate(mus), np.concatenate(sigmas)


# ---------------------------------------------------------------------------- CSV


@dataclass
class Codes:
    """Codes read from a CSV file: one row per pair."""

    ids: list[str]
    subjects: list[str]
    groups: list[str | None]
    mu: np.ndarray
    sigma: np.ndarray | None = None
    features: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


def write_codes_csv(
    path: str | os.PathLike,
    pairs: Sequence,
    mu: np.ndarray,
    sigma: np.ndarray | None = None,
    features: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write ``id, subject, group, mu_0..mu_{d-1}[, sigma_0..][, feature_*]`` atomically.

    ``subject`` falls back to the pair id and ``group`` to an empty field; ``features``
    (column name starting ``feature_`` -> ``(N,)`` values, NaN allowed) are explicit
    deformation features of the pairs (:mod:`structreg.analysis.features`).
    """
    mu = np.asarray(mu, dtype=np.float64)
    if mu.ndim != 2 or mu.shape[0] != len(pairs):
        raise InputError(f"mu must be (n_pairs={len(pairs)}, d), got {mu.shape}")
    if sigma is not None:
        sigma = np.asarray(sigma, dtype=np.float64)
        if sigma.shape != mu.shape:
            raise InputError(f"sigma shape {sigma.shape} differs from mu {mu.shape}")
    d = mu.shape[1]
    header = list(ID_COLUMNS) + [f"mu_{i}" for i in range(d)]
    if sigma is not None:
        header += [f"sigma_{i}" for i in range(d)]
    features = _checked_features(features or {}, len(pairs))
    header += list(features)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for i, pair in enumerate(pairs):
        subject = pair.subject if pair.subject is not None else pair.id
        row = [pair.id, subject, "" if pair.group is None else pair.group]
        row += [repr(float(v)) for v in mu[i]]
        if sigma is not None:
            row += [repr(float(v)) for v in sigma[i]]
        row += [repr(float(v[i])) for v in features.values()]
        writer.writerow(row)
    return atomic_write_text(path, buf.getvalue())


def _checked_features(features: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """``features`` as float64 ``(n,)`` arrays under names starting ``feature_``."""
    out = {}
    for name, values in features.items():
        array = np.asarray(values, dtype=np.float64).reshape(-1)
        if not name.startswith("feature_") or "," in name or array.shape != (n,):
            raise InputError(f"feature {name!r}: needs a 'feature_' name and {n} values")
        out[name] = array
    return out


def _indexed(header: list[str], prefix: str) -> list[int]:
    """Column positions of ``prefix_0, prefix_1, ...`` in order (checks the sequence)."""
    found = {}
    for pos, name in enumerate(header):
        if name.startswith(prefix + "_") and name[len(prefix) + 1 :].isdigit():
            found[int(name[len(prefix) + 1 :])] = pos
    if found and sorted(found) != list(range(len(found))):
        missing = sorted(set(range(max(found) + 1)) - set(found))
        raise DataError(
            f"columns {prefix}_0..{prefix}_{max(found)} incomplete "
            f"(missing {', '.join(f'{prefix}_{i}' for i in missing[:5])})"
        )
    return [found[i] for i in range(len(found))]


def read_codes_csv(path: str | os.PathLike) -> Codes:
    """Read a file written by :func:`write_codes_csv`.

    Raises:
        FileNotFoundError: no such file.
        DataError: (a ``ValueError``) missing ``id`` or ``mu_*`` columns, short rows,
            non-numeric or non-finite values, mismatched ``sigma_*`` columns, no rows.
    """
    path = Path(path)
    rows = _read_rows(path)
    header = [h.strip() for h in rows[0]]
    if "id" not in header:
        raise DataError(f"{path}: missing column 'id' (header: {', '.join(header[:6])})")
    mu_cols, sigma_cols = _code_columns(path, header)
    col = {name: header.index(name) for name in ID_COLUMNS if name in header}
    feature_cols = [i for i, h in enumerate(header) if h.startswith("feature_")]
    ids, subjects, groups, mu, sigma, feats = [], [], [], [], [], []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DataError(f"{path}, line {line}: {len(row)} fields, header has {len(header)}")
        pid = row[col["id"]].strip()
        ids.append(pid)
        subjects.append(row[col["subject"]].strip() or pid if "subject" in col else pid)
        group = row[col["group"]].strip() if "group" in col else ""
        groups.append(group or None)
        mu.append(_numbers(path, line, header, row, mu_cols))
        if sigma_cols:
            sigma.append(_numbers(path, line, header, row, sigma_cols))
        feats.append(_numbers(path, line, header, row, feature_cols, allow_nan=True))
    if not ids:
        raise DataError(f"{path}: no rows")
    return Codes(
        ids=ids,
        subjects=subjects,
        groups=groups,
        mu=np.asarray(mu, dtype=np.float64),
        sigma=np.asarray(sigma, dtype=np.float64) if sigma_cols else None,
        features={header[c]: np.asarray([f[j] for f in feats]) for j, c in enumerate(feature_cols)},
    )


def _read_rows(path: Path) -> list[list[str]]:
    """The non-blank CSV rows of ``path`` (header first; at least one row)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such codes file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text CSV file") from None
    rows = list(csv.reader(io.StringIO(text)))
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise DataError(f"{path}: empty codes file")
    return rows


def _code_columns(path: Path, header: list[str]) -> tuple[list[int], list[int]]:
    """Positions of the ``mu_*`` columns (at least one) and ``sigma_*`` columns (none or
    as many)."""
    mu_cols = _indexed(header, "mu")
    if not mu_cols:
        raise DataError(
            f"{path}: missing columns mu_0, mu_1, ... (header: {', '.join(header[:6])})"
        )
    sigma_cols = _indexed(header, "sigma")
    if sigma_cols and len(sigma_cols) != len(mu_cols):
        raise DataError(f"{path}: {len(sigma_cols)} sigma columns for {len(mu_cols)} mu columns")
    return mu_cols, sigma_cols


def _numbers(
    path: Path,
    line: int,
    header: list[str],
    row: list[str],
    cols: list[int],
    allow_nan: bool = False,
) -> list[float]:
    """The finite numbers (or NaN when ``allow_nan``) in columns ``cols`` of ``row``
    (line ``line`` of ``path``)."""
    out = []
    for c in cols:
        try:
            value = float(row[c])
        except ValueError:
            raise DataError(
                f"{path}, line {line}, column {header[c]}: not a number: {row[c]!r}"
            ) from None
        if not math.isfinite(value) and not (allow_nan and math.isnan(value)):
            raise DataError(f"{path}, line {line}, column {header[c]}: non-finite value {row[c]!r}")
        out.append(value)
    return out


# ---------------------------------------------------------------------------- CCA + SVM


def _one_hot(labels: Sequence, classes: Sequence) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    out = np.zeros((len(labels), len(classes)))
    out[np.arange(len(labels)), [index[v] for v in labels]] = 1.0
    return out


def _fit_cca(x: np.ndarray, labels: Sequence, n_components: int) -> tuple[Any, list]:
    """A CCA between ``x`` and the one-hot ``labels``; components capped at
    ``min(n_components, n_features, n_classes, n_samples - 1)``. Returns (cca, classes)."""
    from sklearn.cross_decomposition import CCA

    classes = sorted(set(labels))
    if len(classes) < 2:
        raise DataError(f"CCA needs at least 2 groups, got {len(classes)}")
    k = max(1, min(int(n_components), x.shape[1], len(classes), x.shape[0] - 1))
    cca = CCA(n_components=k, max_iter=1000)
    with warnings.catch_warnings():
        # a one-hot target has rank n_classes - 1: the last component is degenerate
        warnings.simplefilter("ignore")
        cca.fit(x, _one_hot(labels, classes))
    return cca, classes


class CCAProjection(TransformerMixin, BaseEstimator):
    """scikit-learn transformer: project ``X`` on the CCA components fitted
    against the one-hot class labels ``y`` given to :meth:`fit`.

    Used inside a :class:`sklearn.pipeline.Pipeline`, so cross-validation fits
    the projection on each training fold only.
    """

    def __init__(self, n_components: int = 5):
        self.n_components = n_components

    def fit(self, X: npt.ArrayLike, y: Sequence[Any] | np.ndarray) -> CCAProjection:
        X = np.asarray(X, dtype=np.float64)
        self.cca_, self.classes_ = _fit_cca(X, list(y), self.n_components)
        return self

    def transform(self, X: npt.ArrayLike) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.cca_.transform(np.asarray(X, dtype=np.float64))

    def fit_transform(self, X: npt.ArrayLike, y: Any = None, **fit_params: Any) -> np.ndarray:
        return self.fit(X, y).transform(X)


class PrincipalComponents(TransformerMixin, BaseEstimator):
    """scikit-learn transformer: the first ``n_components`` principal components of
    ``X (N, d)`` (``0``: ``X`` unchanged), capped at ``min(N - 1, d)`` of the data it is
    fitted on. Before the CCA it keeps the projection from fitting noise when there are
    about as many code dimensions as codes (CCA against one-hot groups is then exact on
    the training codes and meaningless on others)."""

    def __init__(self, n_components: int = 0):
        self.n_components = n_components

    def fit(self, X: npt.ArrayLike, y: Any = None) -> PrincipalComponents:
        from sklearn.decomposition import PCA

        X = np.asarray(X, dtype=np.float64)
        k = int(self.n_components)
        self.pca_ = None
        if k > 0:
            k = max(1, min(k, X.shape[0] - 1, X.shape[1]))
            self.pca_ = PCA(n_components=k, svd_solver="full").fit(X)
        return self

    def transform(self, X: npt.ArrayLike) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        return X if self.pca_ is None else self.pca_.transform(X)


def make_classifier(
    n_components: int = 5, seed: int = 0, pca: int = 0, svm_c: float = 1.0
) -> Pipeline:
    """``Pipeline(standardise -> PCA (pca components; 0: none) -> CCA projection on
    one-hot labels (n_components) -> standardise -> RBF SVC (C = svm_c))``."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("pca", PrincipalComponents(pca)),
            ("cca", CCAProjection(n_components)),
            ("rescale", StandardScaler()),
            ("svm", SVC(kernel="rbf", C=svm_c, random_state=seed)),
        ]
    )


@dataclass(frozen=True)
class SettingsGrid:
    """The classifier settings chosen among by (nested) cross-validation.

    Attributes:
        pca: principal components kept before the CCA (0: all code dimensions).
        components: CCA components fed to the SVM (capped by the groups).
        svm_c: the SVM's regularisation ``C``.
    """

    pca: tuple[int, ...] = (0, 10, 20, 40, 80)
    components: tuple[int, ...] = (5,)
    svm_c: tuple[float, ...] = (0.1, 1.0, 10.0)

    def __post_init__(self) -> None:
        for name in ("pca", "components", "svm_c"):
            values = getattr(self, name)
            if not values or any(not (v >= (0 if name == "pca" else 1e-12)) for v in values):
                raise InputError(f"classifier settings: {name} needs values > 0, got {values}")

    def param_grid(self) -> dict[str, list]:
        """The grid as ``GridSearchCV`` parameters of :func:`make_classifier`'s pipeline."""
        return {
            "pca__n_components": [int(v) for v in self.pca],
            "cca__n_components": [int(v) for v in self.components],
            "svm__C": [float(v) for v in self.svm_c],
        }

    @property
    def size(self) -> int:
        """Number of settings in the grid."""
        return len(self.pca) * len(self.components) * len(self.svm_c)


def settings_label(params: dict[str, Any]) -> str:
    """One-line name of chosen pipeline parameters, e.g. ``PCA 40, CCA 5, C 1``."""
    pca = int(params["pca__n_components"])
    return (
        f"PCA {pca if pca else 'none'}, CCA {int(params['cca__n_components'])}, "
        f"C {float(params['svm__C']):g}"
    )


def cca_projection(
    codes: np.ndarray, groups: Sequence, n_components: int = 3, pca: int = 0
) -> np.ndarray:
    """Project ``codes (N, d)`` (standardised, then on their first ``pca`` principal
    components; 0: all dimensions) on CCA components fitted on all of them against the
    one-hot ``groups`` (for pictures; use :func:`classify_codes` for accuracy).
    Returns ``(N, k)``, ``k <= n_components``."""
    from sklearn.preprocessing import StandardScaler

    codes = np.asarray(codes, dtype=np.float64)
    x = PrincipalComponents(pca).fit_transform(StandardScaler().fit_transform(codes))
    cca, _ = _fit_cca(x, [str(g) for g in groups], n_components)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cca.transform(x)


def group_splitter(
    groups: Sequence[Any] | np.ndarray,
    subjects: Sequence[Any] | np.ndarray,
    folds: int = 10,
    seed: int = 0,
) -> tuple[StratifiedGroupKFold, int]:
    """The cross-validation splitter: ``StratifiedGroupKFold`` grouped by subject,
    with ``min(folds, fewest subjects in a class)`` folds. Returns ``(splitter, n_folds)``."""
    from sklearn.model_selection import StratifiedGroupKFold

    per_class: dict = {}
    for g, s in zip(groups, subjects, strict=False):
        per_class.setdefault(g, set()).add(s)
    fewest = min(len(s) for s in per_class.values())
    n = min(int(folds), fewest)
    if n < 2:
        small = [str(g) for g, s in per_class.items() if len(s) < 2]
        raise DataError(
            f"cross-validation needs at least 2 subjects per group; too few in: {', '.join(small)}"
        )
    return StratifiedGroupKFold(n_splits=n, shuffle=True, random_state=seed), n


@dataclass
class ClassificationResult:
    """Cross-validated classification of codes into groups."""

    accuracy_mean: float
    accuracy_std: float
    chance: float
    fold_accuracies: list[float]
    confusion: np.ndarray  # rows: true class, columns: predicted, summed over folds
    classes: list[str]
    n_components: int
    n_folds: int
    n_samples: int
    n_subjects: int
    predictions: np.ndarray | None = field(repr=False, default=None)
    n_components_requested: int | None = None
    settings: str = ""
    fold_settings: list[str] = field(default_factory=list)
    grid_size: int = 1
    pca: int = 0

    def to_markdown(self, title: str = "Classification from latent codes") -> str:
        asked = self.n_components_requested
        capped = (
            f" (of {asked} requested: capped by the groups, the code size or the "
            f"training fold size)"
            if asked and asked != self.n_components
            else ""
        )
        lines = [
            f"# {title}",
            "",
            *self._settings_lines(),
            f"SVM on {self.n_components} CCA components{capped} (CCA fitted inside each "
            f"fold), "
            f"{self.n_folds}-fold stratified cross-validation grouped by subject; "
            f"{self.n_samples} codes from {self.n_subjects} subjects, "
            f"{len(self.classes)} groups.",
            "",
            "| measure | value |",
            "|---|---|",
            f"| accuracy (mean ± std over folds) | {self.accuracy_mean:.3f} ± "
            f"{self.accuracy_std:.3f} |",
            f"| chance level (majority class) | {self.chance:.3f} |",
            f"| per-fold accuracy | {', '.join(f'{a:.3f}' for a in self.fold_accuracies)} |",
            "",
            "## Confusion matrix (rows: true, columns: predicted; all folds)",
            "",
            "| true \\ predicted | " + " | ".join(self.classes) + " |",
            "|---|" + "---|" * len(self.classes),
        ]
        for name, row in zip(self.classes, self.confusion, strict=False):
            lines.append(f"| {name} | " + " | ".join(str(int(v)) for v in row) + " |")
        return "\n".join(lines) + "\n"

    def _settings_lines(self) -> list[str]:
        """The settings paragraph: fixed, or chosen by nested cross-validation."""
        if self.grid_size <= 1:
            return [f"Settings: {self.settings}.", ""] if self.settings else []
        chosen = ", ".join(f"{k} ({v} folds)" for k, v in _counts(self.fold_settings))
        return [
            f"Settings chosen among {self.grid_size} by nested cross-validation (an inner "
            f"grouped cross-validation on each outer training part; the outer test part "
            f"never takes part): {chosen}. On all codes the inner search chooses "
            f"{self.settings}.",
            "",
        ]


def _counts(items: Sequence[str]) -> list[tuple[str, int]]:
    """``(item, count)`` pairs, most frequent first (ties in first-seen order)."""
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return sorted(counts.items(), key=lambda kv: -kv[1])


def classify_codes(
    codes: np.ndarray,
    groups: Sequence,
    subjects: Sequence | None = None,
    n_components: int = 5,
    folds: int = 10,
    seed: int = 0,
    grid: SettingsGrid | None = None,
    inner_folds: int = 5,
) -> ClassificationResult:
    """Cross-validated SVM on the CCA projection of ``codes`` (Krebs et al. 2018).

    Args:
        codes: ``(N, d)`` latent codes (or any features).
        groups: ``N`` class labels (converted to str).
        subjects: ``N`` subject ids; folds never split a subject (default: each code
            its own subject).
        n_components: CCA components fed to the SVM when ``grid`` is None (capped by
            the number of groups and the code dimension); no PCA, ``C = 1``.
        folds: outer folds of ``StratifiedGroupKFold`` (fewer when a class has fewer
            subjects).
        seed: fold shuffling.
        grid: settings to choose among by nested cross-validation: on each outer
            training part an inner grouped ``inner_folds``-fold search picks the
            settings, which are then scored on the outer test part only.
        inner_folds: folds of the inner search.
    """
    from sklearn.metrics import confusion_matrix

    x, y, subj = _classification_inputs(codes, groups, subjects)
    classes = sorted(set(y))
    if len(classes) < 2:
        raise DataError(f"need at least 2 groups to classify, got {classes}")
    grid = grid or SettingsGrid(pca=(0,), components=(int(n_components),), svm_c=(1.0,))
    if 0 in grid.pca:  # a CCA on all code dimensions is among the settings
        warn_few_codes(x)
    splitter, n_folds = group_splitter(y, subj, folds, seed)
    predictions, accuracies, k_used, chosen = _cross_validate(
        x, y, subj, splitter, grid, (seed, inner_folds)
    )
    counts = np.array([np.sum(y == c) for c in classes])
    params = _search(x, y, subj, grid, (seed, inner_folds))[1]
    return ClassificationResult(
        accuracy_mean=float(np.mean(accuracies)),
        accuracy_std=float(np.std(accuracies)),
        chance=float(counts.max() / counts.sum()),
        fold_accuracies=accuracies,
        confusion=confusion_matrix(y, predictions.astype(str), labels=classes),
        classes=classes,
        n_components=k_used,
        n_folds=n_folds,
        n_samples=len(y),
        n_subjects=len(set(subj)),
        predictions=predictions.astype(str),
        n_components_requested=max(grid.components),
        settings=settings_label(params),
        fold_settings=chosen,
        grid_size=grid.size,
        pca=int(params["pca__n_components"]),
    )


def classify_features(
    codes: Codes, grid: SettingsGrid | None = None, **options: Any
) -> ClassificationResult:
    """The deformation-feature baseline: :func:`classify_codes` on ``codes.features``
    (columns with a missing value or one value only left out), choosing only the SVM's
    ``C`` and the CCA components of ``grid`` (no PCA of a few features). ``options``:
    ``folds``, ``seed``, ``inner_folds`` of :func:`classify_codes`.

    Raises:
        DataError: no feature without missing values.
    """
    names = [k for k, v in codes.features.items() if np.isfinite(v).all() and np.ptp(v) > 0]
    if not names:
        raise DataError("no deformation features without missing values and with a spread")
    grid = grid or SettingsGrid()
    x = np.stack([codes.features[k] for k in names], axis=1)
    features_grid = SettingsGrid(pca=(0,), components=grid.components, svm_c=grid.svm_c)
    result = classify_codes(x, codes.groups, codes.subjects, grid=features_grid, **options)
    result.settings += f"; features {', '.join(n.removeprefix('feature_') for n in names)}"
    return result


def _classification_inputs(
    codes: np.ndarray, groups: Sequence, subjects: Sequence | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked inputs of :func:`classify_codes`: codes ``(N, d)`` float64, groups and
    subjects ``(N,)`` str arrays (subjects default to ``0 .. N-1``)."""
    x = np.asarray(codes, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise InputError(f"codes must be a non-empty (N, d) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise InputError("codes contain NaN or Inf")
    if len(groups) != len(x):
        raise InputError(f"{len(groups)} groups for {len(x)} codes")
    if any(g is None or str(g) == "" for g in groups):
        raise DataError("every code needs a group to classify (some are empty)")
    y = np.asarray([str(g) for g in groups])
    subj = np.asarray([str(s) for s in (subjects if subjects is not None else range(len(x)))])
    if len(subj) != len(x):
        raise InputError(f"{len(subj)} subjects for {len(x)} codes")
    return x, y, subj


def warn_few_codes(codes: np.ndarray) -> None:
    """A :class:`~structreg.errors.StructregWarning` when there are no more codes than
    code dimensions: CCA then separates the training codes perfectly (each group
    collapses to one point) and neither the scatter nor the fit means anything."""
    n, d = codes.shape
    if n <= d:
        warnings.warn(
            f"{n} codes of {d} dimensions: CCA needs more codes than dimensions (embed "
            f"more pairs, e.g. --subjects); the projection and accuracy are not meaningful",
            StructregWarning,
            stacklevel=3,
        )


def _search(
    x: np.ndarray, y: np.ndarray, subj: np.ndarray, grid: SettingsGrid, seeds: tuple[int, int]
) -> tuple[Pipeline, dict[str, Any]]:
    """The classifier of the ``grid`` settings that scores best in a grouped
    ``seeds[1]``-fold cross-validation on ``(x, y)``, refitted on all of them, and its
    parameters (the grid's first settings when it has one, or when a group has fewer
    than 2 subjects to cross-validate with)."""
    from sklearn.model_selection import GridSearchCV

    seed, inner_folds = seeds
    model = make_classifier(seed=seed)
    first = {k: v[0] for k, v in grid.param_grid().items()}
    try:
        splitter, _ = group_splitter(y, subj, inner_folds, seed)
    except DataError:  # too few subjects per group to choose: the grid's first settings
        splitter = None
    if grid.size == 1 or splitter is None:
        return model.set_params(**first).fit(x, y), first
    search = GridSearchCV(model, grid.param_grid(), cv=splitter, error_score="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(x, y, groups=subj)
    return search.best_estimator_, search.best_params_


def _cross_validate(
    x: np.ndarray,
    y: np.ndarray,
    subj: np.ndarray,
    splitter: StratifiedGroupKFold,
    grid: SettingsGrid,
    seeds: tuple[int, int],
) -> tuple[np.ndarray, list[float], int, list[str]]:
    """Choose settings (:func:`_search`) on each training fold of ``splitter`` and
    predict its test fold. Returns the out-of-fold prediction of each code ``(N,)``
    (object array), the accuracy of each fold, the CCA components used (those of the
    last fold) and each fold's chosen settings."""
    predictions = np.empty(len(y), dtype=object)
    accuracies, chosen = [], []
    k_used = 0
    for train, test in splitter.split(x, y, subj):
        model, params = _search(x[train], y[train], subj[train], grid, seeds)
        k_used = model.named_steps["cca"].cca_.n_components
        chosen.append(settings_label(params))
        pred = model.predict(x[test])
        predictions[test] = pred
        accuracies.append(float(np.mean(pred == y[test])))
    return predictions, accuracies, k_used, chosen


# ---------------------------------------------------------------------------- figure


def cca_scatter(
    codes: np.ndarray,
    groups: Sequence,
    out: str | os.PathLike,
    title: str = "latent codes on the 3 most discriminative CCA components",
    pca: int = 0,
) -> Path:
    """3-D scatter of the first 3 CCA components (fitted on all codes after ``pca``
    principal components, 0: none; for the picture only), coloured by group. Fewer
    components (2 groups) are padded with 0."""
    from matplotlib.figure import Figure

    from ..viz.figures import figure_format, save_figure

    figure_format(out)
    labels = [str(g) for g in groups]
    proj = cca_projection(codes, labels, 3, pca)
    if proj.shape[1] < 3:
        proj = np.hstack([proj, np.zeros((len(proj), 3 - proj.shape[1]))])
    fig = Figure(figsize=(6, 5))
    ax = fig.add_subplot(projection="3d")
    colours = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2")
    for i, name in enumerate(sorted(set(labels))):
        sel = np.asarray([g == name for g in labels])
        ax.scatter(
            proj[sel, 0],
            proj[sel, 1],
            proj[sel, 2],
            s=14,
            label=name,
            color=colours[i % len(colours)],
            depthshade=False,
        )
    ax.set_xlabel("CCA 1")
    ax.set_ylabel("CCA 2")
    ax.set_zlabel("CCA 3")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    return save_figure(fig, out)
