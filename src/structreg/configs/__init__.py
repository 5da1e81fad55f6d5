"""Configs shipped with the package: ``cardiac.toml``, ``brain.toml``, ``brain-inter.toml``,
``brain3d.toml`` and ``cardiac3d.toml`` (3-D volumes), ``demo.toml``."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path


def bundled_names() -> list[str]:
    """Names of the bundled configs (file names without ``.toml``)."""
    folder = resources.files(__name__)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def resolve_config(name_or_path: str | os.PathLike) -> Path:
    """A config file path: an existing file as given, else a bundled config by name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = str(name_or_path)
    if os.sep not in name and not name.endswith(".toml") and name in bundled_names():
        return Path(str(resources.files(__name__) / f"{name}.toml"))
    raise FileNotFoundError(
        f"config not found: {name_or_path} (bundled configs: {', '.join(bundled_names())})"
    )
