"""Configs shipped with the package load and resolve by name."""

import pytest

from structreg.configs import resolve_config


def test_unknown_config_lists_the_bundled_ones(tmp_path):
    listed = (
        "bundled configs: brain, brain-inter, brain3d, cardiac, cardiac-bundle, cardiac3d, demo"
    )
    with pytest.raises(FileNotFoundError, match=listed):
        resolve_config("nope")
    own = tmp_path / "mine.toml"
    own.write_text("[train]\nsteps = 3\n")
    assert resolve_config(own) == own


@pytest.mark.parametrize("name", ["brain3d", "cardiac3d"])
def test_the_3d_configs_build_antisymmetric_volume_models_trained_one_sided(name):
    from structreg.configs import bundled_names
    from structreg.models.cvae import CVAERegistration
    from structreg.training.config import load_config

    assert name in bundled_names()
    config = load_config(resolve_config(name))
    assert config.model.ndim == 3 and config.model.antisymmetric
    assert not config.train.lcc_symmetric
    model = CVAERegistration(config.model)
    assert model.num_parameters() < 200_000
