"""Classifier settings chosen by nested cross-validation, the deformation-feature
baseline, and the features themselves."""

import numpy as np
import pytest
import torch

from structreg.analysis.features import deformation_features, structure_ratios
from structreg.analysis.latent import (
    Codes,
    PrincipalComponents,
    SettingsGrid,
    classify_codes,
    classify_features,
    read_codes_csv,
    settings_label,
    write_codes_csv,
)
from structreg.data.labels import LabelTable
from structreg.data.pair import Pair
from structreg.errors import DataError, InputError
from structreg.models.cvae import CVAERegistration, ModelConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def noisy_codes(seed=0, n_classes=3, subjects=20, dim=40, factors=3):
    """Codes mixed from ``factors`` group-carrying factors into ``dim`` dimensions plus
    noise, about as many dimensions as training codes: a CCA on all of them fits the
    noise, one on a few principal components finds the factors."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.5, (n_classes, factors))
    mixing = rng.normal(0.0, 1.0, (factors, dim))
    codes, groups, subj = [], [], []
    for c in range(n_classes):
        for s in range(subjects):
            factor = centres[c] + rng.normal(0.0, 0.7, factors)
            codes.append(factor @ mixing + rng.normal(0.0, 1.0, dim))
            groups.append(f"G{c}")
            subj.append(f"G{c}_s{s}")
    return np.asarray(codes), groups, subj


def test_pca_before_cca_beats_cca_on_all_dimensions():
    codes, groups, subjects = noisy_codes()
    plain = classify_codes(codes, groups, subjects, folds=5)
    chosen = classify_codes(
        codes, groups, subjects, folds=5, grid=SettingsGrid(pca=(0, 3), svm_c=(1.0,))
    )
    assert chosen.accuracy_mean > plain.accuracy_mean + 0.1
    assert chosen.grid_size == 2 and len(chosen.fold_settings) == 5
    assert "PCA 3" in chosen.settings
    assert sum("PCA 3" in s for s in chosen.fold_settings) >= 4
    md = chosen.to_markdown()
    assert "nested cross-validation" in md and "PCA 3, CCA 5, C 1" in md


def test_principal_components_cap_and_pass_through():
    x = np.random.default_rng(0).normal(size=(6, 10))
    assert PrincipalComponents(40).fit(x).transform(x).shape == (6, 5)
    assert np.array_equal(PrincipalComponents(0).fit(x).transform(x), x)


def test_settings_grid_checks_and_labels():
    assert SettingsGrid().size == 15
    with pytest.raises(InputError):
        SettingsGrid(svm_c=(0.0,))
    with pytest.raises(InputError):
        SettingsGrid(pca=())
    params = {"pca__n_components": 0, "cca__n_components": 4, "svm__C": 10.0}
    assert settings_label(params) == "PCA none, CCA 4, C 10"


def test_feature_baseline_skips_incomplete_columns():
    rng = np.random.default_rng(1)
    groups = ["A"] * 20 + ["B"] * 20
    good = np.r_[rng.normal(0, 1, 20), rng.normal(4, 1, 20)]
    holes = rng.normal(size=40)
    holes[3] = np.nan
    codes = Codes(
        ids=[str(i) for i in range(40)],
        subjects=[str(i) for i in range(40)],
        groups=groups,
        mu=rng.normal(size=(40, 4)),
        features={"feature_good": good, "feature_holes": holes},
    )
    result = classify_features(codes, SettingsGrid(svm_c=(1.0,)), folds=5)
    assert result.accuracy_mean >= 0.9 and "features good" in result.settings
    codes.features = {"feature_holes": holes}
    with pytest.raises(DataError, match="without missing values"):
        classify_features(codes)


def test_structure_ratios_of_a_shift():
    labels = torch.zeros(1, 1, 20, 20, dtype=torch.int64)
    labels[0, 0, 5:15, 5:10] = 3
    labels[0, 0, 5:15, 10:15] = 2
    disp = torch.zeros(1, 2, 20, 20)
    table = LabelTable({"pool": (3,), "myo": (2,), "heart": (2, 3)})
    assert {k: float(v[0]) for k, v in structure_ratios(labels, disp, table).items()} == {
        "pool": 1.0,
        "myo": 1.0,
        "heart": 1.0,
    }
    # pull-back by -2 columns: every output column reads 2 to its left
    disp[:, 1] = -2.0
    ratios = structure_ratios(labels, disp, table)
    assert ratios["heart"][0] == pytest.approx(1.0)
    assert ratios["pool"][0] == pytest.approx(1.0)
    absent = structure_ratios(labels, disp, LabelTable({"rv": (7,)}))
    assert np.isnan(absent["rv"][0])


def test_deformation_features_written_and_read(tmp_path):
    torch.manual_seed(0)
    model = CVAERegistration(ModelConfig(image_size=(16, 16), latent_dim=4)).eval()
    rng = np.random.default_rng(0)
    table = LabelTable({"LV blood pool": (3,)})
    pairs = []
    for i in range(3):
        lab = np.zeros((16, 16), np.int16)
        lab[4:12, 4:12] = 3
        img = rng.random((16, 16)).astype(np.float32)
        pairs.append(
            Pair(
                moving=img,
                fixed=img,
                spacing=(2.0, 2.0),
                id=f"p{i}",
                group="A",
                moving_labels=lab,
                fixed_labels=lab,
                label_table=table,
            )
        )
    features = deformation_features(model, pairs, batch_size=2)
    assert list(features) == ["feature_LV_blood_pool"]
    assert features["feature_LV_blood_pool"].shape == (3,)
    assert np.all(np.abs(features["feature_LV_blood_pool"] - 1.0) < 0.2)  # an untrained net
    path = write_codes_csv(tmp_path / "c.csv", pairs, np.zeros((3, 4)), features=features)
    back = read_codes_csv(path)
    assert np.allclose(back.features["feature_LV_blood_pool"], features["feature_LV_blood_pool"])
    with pytest.raises(InputError):
        write_codes_csv(tmp_path / "d.csv", pairs, np.zeros((3, 4)), features={"x": np.ones(3)})
    pairs[0].moving_labels = None
    with pytest.raises(DataError, match="moving labels"):
        deformation_features(model, pairs)
