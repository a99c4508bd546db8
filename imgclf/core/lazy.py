"""A stage package's interface, imported on first use.

Each stage package names its interface in its ``__init__``: the functions and constants that
other stages, the rules and the scripts may use, by the module that defines them::

    _INTERFACE = {"jobs": ["check_seal"], "tf_jobs": ["final_train"], "plan": ["final_seeds"]}
    __all__, __getattr__ = lazy_interface(__name__, _INTERFACE)

Each name is imported from its module only when first asked for, so that the workflow, which
imports the load-time checks at every start, pulls in neither TensorFlow nor matplotlib.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any


def lazy_interface(package: str, modules: Mapping[str, Sequence[str]]) -> tuple[list[str], Callable[[str], Any]]:
    """``__all__`` and a module-level ``__getattr__`` for ``package``, serving each name of
    ``modules`` (module -> names) from its module."""
    home = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in home:
            raise AttributeError(f"module {package!r} has no attribute {name!r} (its interface: "
                                 f"{', '.join(sorted(home))})")
        return getattr(importlib.import_module(f"{package}.{home[name]}"), name)

    return sorted(home), __getattr__


def read_interface(init: str | Path) -> dict[str, str]:
    """A package's interface as its ``__init__`` declares it (name -> module), read without
    importing it (empty when it declares none)."""
    for node in ast.parse(Path(init).read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_INTERFACE" for t in node.targets):
            return {name: module for module, names in ast.literal_eval(node.value).items() for name in names}
    return {}
