"""Lazy re-exports for package `__init__` files (PEP 562).

A package lists what it re-exports (name → defining module); a name's module is imported on
first use, so importing one submodule of a package does not load its siblings (the engine's
HTTP client must not pull in FastAPI or SQLAlchemy through a package `__init__`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`; call it from the package's `__init__`:
    `__getattr__, __dir__ = lazy_exports(__name__, {"Name": "package.module"})`."""
    namespace = vars(sys.modules[package])

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__
