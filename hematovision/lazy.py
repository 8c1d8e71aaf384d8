"""Names that stand for code not yet imported.

A sub-package's ``__init__`` maps each public name to the module that holds it; the module
is imported on first use (PEP 562), so ``from hematovision.explain import available_methods``
costs what the registry costs, not what TensorFlow does, and no ``__init__`` adds an
import cycle. A registry names the function behind each entry as
``"package.module:function"`` (:func:`resolve`), so listing the entries imports nothing
heavy.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

__all__ = ["lazy_exports", "resolve"]


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


def resolve(target: str) -> Callable:
    """The function a ``"package.module:function"`` string names, imported now."""
    module, _, name = target.partition(":")
    if not module or not name:
        raise ValueError(f"{target!r} is not of the form 'package.module:function'")
    return getattr(importlib.import_module(module), name)
