"""Configs shipped with the package load and resolve by name."""

import pytest

from structreg.configs import bundled_names, resolve_config
from structreg.training.config import load_config


@pytest.mark.parametrize("name", ["cardiac", "brain", "demo"])
def test_bundled_configs_load(name):
    assert name in bundled_names()
    config = load_config(resolve_config(name))
    assert config.model.latent_dim == 144 and config.model.steps == 4
    assert config.train.lam == (55.0 if name == "brain" else 82.0)


def test_unknown_config_lists_the_bundled_ones(tmp_path):
    with pytest.raises(FileNotFoundError, match="bundled configs: brain, cardiac, demo"):
        resolve_config("nope")
    own = tmp_path / "mine.toml"
    own.write_text("[train]\nsteps = 3\n")
    assert resolve_config(own) == own
