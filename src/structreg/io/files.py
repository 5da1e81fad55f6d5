"""Atomic file writing: write to a temporary file in the target folder, then rename,
so a crash or an error never leaves a half-written output or destroys an old one.

Also what keeps outputs where they belong: :func:`safe_name` (a file name from an id in
the data), :func:`inside` (refuse a name that leaves its folder),
:func:`check_inputs_outside` (an output folder replaced whole must not hold an input),
:func:`leftovers` (what a killed atomic write left), and :func:`available_memory`, the
budget that readers check a header's claimed size against before allocating.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
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


# what mkstemp / mkdtemp add between prefix and suffix
_TEMPORARY = r"[a-z0-9_]{8}\.(?:tmp|old)(?:\..*)?"

_RESERVED = {
    "con",
    "prn",
    "aux",
    "nul",
    *(f"com{i}" for i in range(1, 10)),
    *(f"lpt{i}" for i in range(1, 10)),
}
# names a batch output folder keeps for its own files (pipeline/batch.py's summaries)
_RESERVED_FILES = re.compile(r"summary(?:\.part\d+)?\.csv", re.IGNORECASE)


def safe_name(text: str, taken: set[str] | None = None, max_length: int = 100) -> str:
    """A file name made from ``text`` (an id from the data) that cannot leave its folder.

    Path separators, ``..``, control and other unusual characters become ``_``;
    reserved device names (``con``, ``nul``, ...) and the names of a batch folder's own
    files (``summary.csv``, ``summary.part3.csv``) get a ``_`` suffix; the name is cut
    to ``max_length`` characters; an empty result is ``pair``. With ``taken`` the name
    is made unique (``_2``, ``_3``, ...) and added to it (compared case-insensitively).
    """
    name = re.sub(r"[^A-Za-z0-9._-]", "_", text).strip(". ")[:max_length] or "pair"
    if name.split(".")[0].lower() in _RESERVED or _RESERVED_FILES.fullmatch(name):
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


def check_inputs_outside(
    out: str | os.PathLike, inputs: Iterable[str | os.PathLike | None]
) -> None:
    """Refuse (:class:`~structreg.errors.DataError`) an input file that lies in the
    output folder ``out`` (links resolved): the folder is replaced whole, which would
    destroy it. ``inputs`` may hold None (an input not given)."""
    from ..errors import DataError

    base = Path(out).resolve()
    for item in inputs:
        if item is None:
            continue
        path = Path(item)
        target = path.resolve()
        if target == base or base in target.parents:
            raise DataError(
                f"{path}: an input lies in the output folder {out}, which is replaced "
                f"whole; write the outputs to another folder"
            )


def is_leftover(name: str, of: str | None = None) -> bool:
    """True for the name of a temporary file or folder a killed atomic write left
    (``.NAME.xxxxxxxx.tmp``, ``.NAME.xxxxxxxx.tmp.nii.gz``, ``.NAME.xxxxxxxx.old``), of
    the target ``of`` (any target when None)."""
    target = re.escape(of) if of is not None else r".+"
    return re.fullmatch(rf"\.{target}\.{_TEMPORARY}", name) is not None


def leftovers(folder: str | os.PathLike, of: str) -> list[Path]:
    """The temporary files and folders that killed atomic writes of ``folder / of``
    left behind (:func:`atomic_path`, :func:`atomic_folder`); links are never listed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.glob(f".{glob.escape(of)}.*")
        if is_leftover(p.name, of) and not p.is_symlink()
    )


def remove_leftovers(folder: str | os.PathLike, of: str) -> list[Path]:
    """Remove :func:`leftovers` of ``folder / of``; returns them."""
    import shutil

    removed = leftovers(folder, of)
    for path in removed:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    return removed


def available_memory() -> int | None:
    """Bytes of memory this process may still allocate (Linux ``MemAvailable``, else
    the physical memory), or None where that cannot be told."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def memory_shortfall(nbytes: float) -> str | None:
    """None when ``nbytes`` fit in :func:`available_memory`; else a phrase for an error
    message (``"about 98.0 TB, more than the 21.3 GB of memory available"``)."""
    free = available_memory()
    if free is None or nbytes <= free:
        return None
    return f"about {format_bytes(nbytes)}, more than the {format_bytes(free)} of memory available"


def format_bytes(nbytes: float) -> str:
    """``1.5e9`` -> ``"1.5 GB"`` (decimal units)."""
    units = ("B", "kB", "MB", "GB", "TB", "PB", "EB")
    value, k = float(nbytes), 0
    while abs(value) >= 1000 and k < len(units) - 1:
        value, k = value / 1000, k + 1
    return f"{int(value)} B" if k == 0 else f"{value:.1f} {units[k]}"
