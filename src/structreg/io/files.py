"""Atomic file writing: write to a temporary file in the target folder, then rename,
so a crash or an error never leaves a half-written output or destroys an old one."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    The temporary name keeps ``path``'s suffixes (``suffix`` overrides) so writers
    that pick a format from the extension (``.nii.gz``, ``.png``) still work. On
    an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes) if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 files; give the result the permissions of a normal write
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` and atomically move the result to ``path``.

    A writer that fails inside a C++ library (``torch.save`` on a full disk says
    ``[enforce fail at inline_container.cc] ... unexpected pos``) is reported as an
    ``OSError`` naming ``path``; ``path`` itself is untouched.
    """
    try:
        with atomic_path(path) as tmp:
            write(tmp)
    except RuntimeError as exc:
        raise OSError(
            f"{path}: could not be written (disk full or an I/O error: "
            f"{' '.join(str(exc).split())[:160]})"
        ) from None
    return Path(path)


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` whole.

    Outputs written into it appear together or not at all: on an exception the
    temporary folder is removed and an existing ``path`` keeps its old contents.
    """
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.rmdir(old)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write UTF-8 text to ``path``."""
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


_RESERVED = {
    "con",
    "prn",
    "aux",
    "nul",
    *(f"com{i}" for i in range(1, 10)),
    *(f"lpt{i}" for i in range(1, 10)),
}


def safe_name(text: str, taken: set[str] | None = None, max_length: int = 100) -> str:
    """A file name made from ``text`` (an id from the data) that cannot leave its folder.

    Path separators, ``..``, control and other unusual characters become ``_``;
    reserved device names (``con``, ``nul``, ...) get a ``_`` suffix; the name is cut
    to ``max_length`` characters; an empty result is ``pair``. With ``taken`` the name
    is made unique (``_2``, ``_3``, ...) and added to it (compared case-insensitively).
    """
    name = re.sub(r"[^A-Za-z0-9._-]", "_", text).strip(". ")[:max_length] or "pair"
    if name.split(".")[0].lower() in _RESERVED:
        name = f"{name}_"
    if taken is None:
        return name
    unique, k = name, 1
    while unique.lower() in taken:
        k += 1
        unique = f"{name[: max_length - len(str(k)) - 1]}_{k}"
    taken.add(unique.lower())
    return unique


def inside(root: str | os.PathLike, name: str) -> Path:
    """``root / name``, refused (:class:`~structreg.errors.InputError`) when it resolves
    outside ``root``."""
    from ..errors import InputError

    base = Path(root).resolve()
    target = (base / name).resolve()
    if target != base and base not in target.parents:
        raise InputError(f"refusing to write outside {root}: {name!r}")
    return Path(root) / name
