"""Latent codes: encoding pairs, the codes CSV, CCA + SVM classification."""

import numpy as np
import pytest
import torch

from structreg.analysis.latent import (
    CCAProjection,
    cca_projection,
    cca_scatter,
    classify_codes,
    encode_pairs,
    group_splitter,
    make_classifier,
    read_codes_csv,
    write_codes_csv,
)
from structreg.data.pair import Pair
from structreg.models.cvae import CVAERegistration, ModelConfig


def synthetic_codes(seed=0, n_classes=5, subjects=10, slices=2, dim=20, spread=3.0):
    """Gaussian clusters: one centre per class, one offset per subject, noise per slice."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, spread, (n_classes, dim))
    codes, groups, subj = [], [], []
    for c in range(n_classes):
        for s in range(subjects):
            offset = rng.normal(0.0, 0.5, dim)
            for _ in range(slices):
                codes.append(centres[c] + offset + rng.normal(0.0, 1.0, dim))
                groups.append(f"G{c}")
                subj.append(f"G{c}_s{s}")
    return np.asarray(codes), groups, subj


def shuffle_by_subject(groups, subjects, seed=0):
    """Permute the group labels across subjects (each subject keeps one label)."""
    first = {}
    for g, s in zip(groups, subjects, strict=True):
        first.setdefault(s, g)
    names = list(first)
    labels = np.random.default_rng(seed).permutation([first[s] for s in names])
    new = dict(zip(names, labels, strict=True))
    return [new[s] for s in subjects]


def test_cca_svm_separates_separable_codes():
    codes, groups, subjects = synthetic_codes()
    result = classify_codes(codes, groups, subjects, n_components=5, folds=10, seed=0)
    assert result.accuracy_mean >= 0.9
    assert result.chance == pytest.approx(0.2)
    assert result.n_folds == 10 and len(result.fold_accuracies) == 10
    assert result.confusion.shape == (5, 5) and result.confusion.sum() == len(codes)
    assert np.trace(result.confusion) / len(codes) >= 0.9
    md = result.to_markdown()
    assert "±" in md and "chance level" in md and "| G0 |" in md


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shuffled_groups_fall_to_chance(seed):
    codes, groups, subjects = synthetic_codes()
    shuffled = shuffle_by_subject(groups, subjects, seed=seed)
    result = classify_codes(codes, shuffled, subjects, seed=seed)
    assert result.accuracy_mean <= result.chance + 0.15


def test_cca_is_fitted_inside_each_fold_only():
    """Pure-noise codes of high dimension: a CCA fitted on all codes (leak) separates
    the groups almost perfectly; the pipeline, fitted per fold, stays near chance."""
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(60, 50))
    groups = [f"G{i % 3}" for i in range(60)]
    subjects = [f"s{i}" for i in range(60)]
    from sklearn.svm import SVC

    leaked = cca_projection(codes, groups, 2)
    leak_acc = SVC().fit(leaked, groups).score(leaked, groups)
    assert leak_acc > 0.9
    result = classify_codes(codes, groups, subjects, n_components=2, folds=5)
    assert result.accuracy_mean <= result.chance + 0.2


def test_folds_never_split_a_subject():
    codes, groups, subjects = synthetic_codes(subjects=6, slices=3)
    splitter, n = group_splitter(groups, subjects, folds=10, seed=0)
    assert n == 6  # fewer folds: each class has only 6 subjects
    subj = np.asarray(subjects)
    seen_test = []
    for train, test in splitter.split(codes, groups, subjects):
        assert not set(subj[train]) & set(subj[test])
        seen_test.extend(test)
    assert sorted(seen_test) == list(range(len(codes)))
    with pytest.raises(ValueError, match="at least 2 subjects"):
        group_splitter(["A", "A", "B"], ["s1", "s2", "s3"])


def test_classifier_pipeline_contains_the_cca():
    codes, groups, _ = synthetic_codes()
    pipe = make_classifier(n_components=5).fit(codes, groups)
    cca = pipe.named_steps["cca"]
    assert isinstance(cca, CCAProjection) and cca.transform(codes).shape == (len(codes), 5)
    assert cca_projection(codes, groups, 3).shape == (len(codes), 3)


def test_classify_input_errors():
    codes, groups, subjects = synthetic_codes(n_classes=2, subjects=3)
    with pytest.raises(ValueError, match="2 groups"):
        classify_codes(codes, ["A"] * len(codes), subjects)
    with pytest.raises(ValueError, match="NaN"):
        bad = codes.copy()
        bad[0, 0] = np.nan
        classify_codes(bad, groups, subjects)
    with pytest.raises(ValueError, match="groups for"):
        classify_codes(codes, groups[:-1], subjects)


def test_cca_scatter_writes_a_figure(tmp_path):
    codes, groups, _ = synthetic_codes(subjects=3)
    out = cca_scatter(codes, groups, tmp_path / "scatter.png")
    assert out.is_file() and out.stat().st_size > 5000
    two, g2, _ = synthetic_codes(n_classes=2, subjects=3)  # only 2 CCA components
    assert cca_scatter(two, g2, tmp_path / "two.png").is_file()


def _pairs(n, size=(32, 32)):
    rng = np.random.default_rng(0)
    return [
        Pair(
            moving=rng.random(size).astype(np.float32),
            fixed=rng.random(size).astype(np.float32),
            spacing=(2.0, 2.0),
            id=f"p{i}",
            subject=f"s{i // 2}" if i % 3 else None,
            group=["NOR", "DCM"][i % 2] if i != 4 else None,
        )
        for i in range(n)
    ]


def test_encode_pairs_shapes_and_batches():
    torch.manual_seed(0)
    model = CVAERegistration(ModelConfig(image_size=(32, 32), latent_dim=8))
    model.train()
    pairs = _pairs(5)
    mu, sigma = encode_pairs(model, pairs, batch_size=2)
    assert mu.shape == (5, 8) and sigma.shape == (5, 8) and (sigma > 0).all()
    assert model.training  # mode restored
    mu_all, _ = encode_pairs(model, pairs, batch_size=64)
    assert np.allclose(mu, mu_all, atol=1e-5)
    with torch.no_grad():
        model.eval()
        ref, _ = model.encode(
            torch.from_numpy(pairs[3].moving)[None, None],
            torch.from_numpy(pairs[3].fixed)[None, None],
        )
    assert np.allclose(mu[3], ref[0].numpy(), atol=1e-5)


def test_codes_csv_round_trip(tmp_path):
    pairs = _pairs(5)
    rng = np.random.default_rng(1)
    mu, sigma = rng.normal(size=(5, 8)), rng.random((5, 8))
    path = write_codes_csv(tmp_path / "codes.csv", pairs, mu, sigma)
    header = path.read_text().splitlines()[0].split(",")
    assert header[:4] == ["id", "subject", "group", "mu_0"] and header[-1] == "sigma_7"
    codes = read_codes_csv(path)
    assert codes.ids == [p.id for p in pairs]
    assert codes.subjects == [p.subject or p.id for p in pairs]
    assert codes.groups == [p.group for p in pairs]
    assert np.array_equal(codes.mu, mu) and np.array_equal(codes.sigma, sigma)
    # without sigma
    codes = read_codes_csv(write_codes_csv(tmp_path / "mu.csv", pairs, mu))
    assert codes.sigma is None and np.array_equal(codes.mu, mu)
    assert not list(tmp_path.glob("*.tmp*"))


@pytest.mark.parametrize(
    "text, message",
    [
        ("subject,group,mu_0\ns,A,1\n", "missing column 'id'"),
        ("id,subject,group\na,s,A\n", "missing columns mu_0"),
        ("id,group,mu_0,mu_1\na,A,1,x\n", "not a number"),
        ("id,group,mu_0,mu_1\na,A,1,nan\n", "non-finite"),
        ("id,group,mu_0,mu_2\na,A,1,2\n", "incomplete"),
        ("id,group,mu_0\na,A\n", "fields"),
        ("id,group,mu_0\n", "no rows"),
        ("", "empty"),
    ],
)
def test_codes_csv_errors(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_codes_csv(path)


def test_codes_csv_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_codes_csv(tmp_path / "nope.csv")


def test_fewer_codes_than_dimensions_are_warned_about():
    import warnings

    from structreg.analysis.latent import classify_codes
    from structreg.errors import StructregWarning

    rng = np.random.default_rng(0)
    groups = ["a", "b"] * 3
    with pytest.warns(StructregWarning, match="6 codes of 8 dimensions"):
        classify_codes(rng.normal(size=(6, 8)), groups, folds=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StructregWarning)
        classify_codes(rng.normal(size=(40, 4)), ["a", "b"] * 20, folds=2)
