"""Configs shipped with the package load and resolve by name."""

import pytest

from structreg.configs import resolve_config


def test_unknown_config_lists_the_bundled_ones(tmp_path):
    listed = "bundled configs: brain, brain-inter, brain3d, cardiac, demo"
    with pytest.raises(FileNotFoundError, match=listed):
        resolve_config("nope")
    own = tmp_path / "mine.toml"
    own.write_text("[train]\nsteps = 3\n")
    assert resolve_config(own) == own
