"""Sub-packages name their public functions without importing them.

A sub-package's ``__init__`` maps each public name to the module that holds it; the module
is imported on first use (PEP 562), so ``from hematovision.explain import available_methods``
costs what the registry costs, not what TensorFlow does, and no ``__init__`` adds an
import cycle.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

__all__ = ["lazy_exports"]


def lazy_exports(package: str, public: dict[str, tuple[str, ...]]
                 ) -> tuple[list[str], Callable[[str], object], Callable[[], list[str]]]:
    """``__all__``, ``__getattr__`` and ``__dir__`` for ``package``, whose ``public`` maps
    each module (relative to the package) to the names it contributes."""
    where = {name: module for module, names in public.items() for name in names}

    def __getattr__(name: str):
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{where[name]}"), name)

    def __dir__() -> list[str]:
        return sorted(where)

    return list(where), __getattr__, __dir__
