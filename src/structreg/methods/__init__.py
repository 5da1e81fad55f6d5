"""Registration methods behind one contract (:class:`Registrar`) and one registry.

Built-in methods: ``ours`` (the CVAE), ``lcc-demons``, ``voxelmorph``, ``identity``,
and the optional classical baselines ``ants-syn`` (antspyx) and ``dipy-syn`` (dipy),
which import their package only when built (``pip install 'structreg[classical]'``).
:func:`build_method` turns a spec string (``ours:RUN_DIR``, ``lcc-demons:max_step=0.5``)
into a registrar; :func:`add_method` registers a new one.
"""

from . import identity, lcc_demons, ours, voxelmorph  # noqa: F401  (register the built-ins)

# the optional classical baselines, registered after the others (isort would merge the lines)
from . import ants_syn, dipy_syn  # noqa: F401  # isort: skip
from .base import Registrar, RegistrationResult, result_from_velocity
from .registry import (
    MethodSpec,
    add_method,
    build_method,
    build_methods,
    method_help,
    method_names,
    parse_method_spec,
    parse_methods,
)

__all__ = [
    "MethodSpec",
    "Registrar",
    "RegistrationResult",
    "add_method",
    "build_method",
    "build_methods",
    "method_help",
    "method_names",
    "parse_method_spec",
    "parse_methods",
    "result_from_velocity",
]
