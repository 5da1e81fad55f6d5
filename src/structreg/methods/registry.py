"""Method specs and the registry that turns them into :class:`~.base.Registrar` s.

A method spec is ``NAME[:TARGET][,key=value...]``:

| spec | method |
|---|---|
| ``ours:RUN_DIR`` | the CVAE of a run folder (or a checkpoint file) |
| ``voxelmorph:RUN_DIR`` | a VoxelMorph-2 run folder |
| ``lcc-demons`` or ``lcc-demons:sigma_fluid=1.5,iterations=40/30/20`` | LCC-Demons |
| ``identity`` | no registration |
| ``ants-syn`` or ``ants-syn:iterations=40/20/0,radius=2`` | ANTs SyN, CC metric (antspyx) |
| ``dipy-syn`` or ``dipy-syn:level_iters=100/50/25`` | DIPY SyN, CC metric (dipy) |

Options every method takes: ``batch_size=N`` (pairs per call), ``label=TEXT``
(the name shown in tables, e.g. to compare two runs of one method) and
``affine=ncc|lcc|mi`` (a rigid-then-affine stage before the method, with that
similarity: :class:`~structreg.methods.affine.AffineFirst`). List values
are written with ``/`` (``iterations=40/30/20``). A comma-separated list of specs
(``--methods``) is split at the commas that start a new method: an item of the
form ``key=value`` continues the method before it.

New methods plug in with :func:`add_method`; nothing else needs to change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from .affine import AffineFirst, AffineOptions
from .base import Registrar

__all__ = [
    "MethodSpec",
    "add_method",
    "build_method",
    "build_methods",
    "method_names",
    "parse_method_spec",
    "parse_methods",
]

COMMON_OPTIONS = ("batch_size", "label", "affine")


@dataclass(frozen=True)
class MethodSpec:
    """A parsed method spec.

    Attributes:
        name: registered method name.
        target: the text after ``NAME:`` that is not an option (a run folder), or None.
        options: ``key=value`` options in the order given (values as text).
    """

    name: str
    target: str | None = None
    options: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        parts = ([self.target] if self.target else []) + [f"{k}={v}" for k, v in self.options]
        return self.name + (":" + ",".join(parts) if parts else "")

    def refuse_target(self) -> None:
        """Raise :class:`InputError` when the spec names a target the method does not take."""
        if self.target is not None:
            raise InputError(
                f"method {self.name} takes no run folder or file, got {self.target!r}"
                f" (options are written key=value)"
            )

    def require_target(self, what: str = "a run folder") -> str:
        """The target, or :class:`InputError` naming what the method needs."""
        if not self.target:
            raise InputError(f"method {self.name} needs {what}: {self.name}:RUN_DIR")
        return self.target

    def converted(self, defaults: Mapping[str, Any]) -> dict[str, Any]:
        """The method-specific options converted to the types of ``defaults``.

        Args:
            defaults: option name -> a default value whose type (int, float,
                bool, str, list/tuple of int or float) the text is converted to.
        Raises:
            InputError: an unknown option or a value that does not convert.
        """
        out: dict[str, Any] = {}
        for key, text in self.options:
            if key in ("label", "affine"):
                continue
            if key not in defaults:
                known = ", ".join(sorted(set(defaults) | set(COMMON_OPTIONS)))
                raise InputError(f"method {self.name}: unknown option {key!r} (known: {known})")
            out[key] = _convert(self.name, key, text, defaults[key])
        return out

    @property
    def label(self) -> str | None:
        """The ``label=`` option, if given."""
        return dict(self.options).get("label")

    @property
    def affine(self) -> str | None:
        """The ``affine=METRIC`` option (an affine stage first), if given."""
        return dict(self.options).get("affine")


def dataclass_defaults(cls: type) -> dict[str, Any]:
    """Field name -> default value of a dataclass (for :meth:`MethodSpec.converted`)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _convert(method: str, key: str, text: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, (list, tuple)):
            kind = type(default[0]) if default else float
            values = [kind(v) for v in text.split("/")]
            return type(default)(values)
        return text
    except ValueError:
        raise InputError(
            f"method {method}: option {key}={text!r} is not a valid {type(default).__name__}"
        ) from None


@dataclass(frozen=True)
class _Entry:
    name: str
    help: str
    build: Callable[[MethodSpec, str], Registrar]


_METHODS: dict[str, _Entry] = {}


def add_method(
    name: str, help: str
) -> Callable[[Callable[[MethodSpec, str], Any]], Callable[[MethodSpec, str], Any]]:
    """Register ``build(spec, device) -> Registrar`` as the builder of method ``name``."""

    def decorate(build: Callable[[MethodSpec, str], Any]) -> Callable[[MethodSpec, str], Any]:
        if name in _METHODS:
            raise InputError(f"method {name!r} is registered twice")
        _METHODS[name] = _Entry(name, help, build)
        return build

    return decorate


def method_names() -> list[str]:
    """Registered method names, in registration order."""
    return list(_METHODS)


def method_help() -> dict[str, str]:
    """Method name -> one-line description."""
    return {name: entry.help for name, entry in _METHODS.items()}


def parse_method_spec(text: str) -> MethodSpec:
    """Parse one spec ``NAME[:TARGET][,key=value...]`` (see the module doc)."""
    name, _, rest = str(text).strip().partition(":")
    name = name.strip()
    if name not in _METHODS:
        raise InputError(f"unknown method {name!r} (known: {', '.join(method_names())})")
    target, options = None, []
    for part in (p.strip() for p in rest.split(",")) if rest.strip() else ():
        key, eq, value = part.partition("=")
        if eq:
            if not key.strip():
                raise InputError(f"method {name}: malformed option {part!r} (key=value)")
            options.append((key.strip(), value.strip()))
        elif part and target is None:
            target = part
        elif part:
            raise InputError(f"method {name}: two targets given ({target!r} and {part!r})")
    return MethodSpec(name, target, tuple(options))


def _split_specs(text: str) -> list[str]:
    items: list[str] = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        eq, colon = item.find("="), item.find(":")
        continues = eq > 0 and (colon < 0 or eq < colon)
        if continues and items:
            items[-1] += "," + item
        else:
            items.append(item)
    return items


def parse_methods(text: str | Iterable[str]) -> list[MethodSpec]:
    """Parse a comma-separated list of specs (or several such strings)."""
    texts = [text] if isinstance(text, str) else list(text)
    specs = [parse_method_spec(item) for t in texts for item in _split_specs(t)]
    if not specs:
        raise InputError("no methods given")
    return specs


def build_method(spec: str | MethodSpec, device: str = "cpu") -> Registrar:
    """The registrar of one spec on ``device`` (models are loaded here)."""
    spec = parse_method_spec(spec) if isinstance(spec, str) else spec
    registrar = _METHODS[spec.name].build(spec, device)
    if spec.label:
        registrar.name = spec.label
    if spec.affine:
        spacing = tuple(getattr(registrar, "spacing", None) or (1.0, 1.0, 1.0))
        registrar = AffineFirst(registrar, AffineOptions(metric=spec.affine), spacing)
    return registrar


def build_methods(specs: str | Sequence[str | MethodSpec], device: str = "cpu") -> list[Registrar]:
    """Registrars of several specs; names (labels) must be unique."""
    parsed = (
        parse_methods(specs)
        if isinstance(specs, str)
        else [parse_method_spec(s) if isinstance(s, str) else s for s in specs]
    )
    registrars = [build_method(s, device) for s in parsed]
    names = [r.name for r in registrars]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(
            f"method name(s) {', '.join(repeated)} given twice; tell them apart "
            f"with label=..., e.g. ours:RUN_A,label=ours-a"
        )
    return registrars
