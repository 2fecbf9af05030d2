"""Import direction (STYLE: dependencies point inward), checked on the source text.

Every module under `src/cronicorn` is parsed with `ast`; every import counts, including
function-local and `TYPE_CHECKING` ones (a lazy import is still a dependency). A name imported
from the package root (`from cronicorn import EngineConfig`) counts as the module the root
re-exports it from.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import cronicorn

SRC = Path(cronicorn.__file__).resolve().parent
PACKAGE = "cronicorn"

FORBIDDEN: dict[str, tuple[str, ...]] = {
    # Adapters do not depend on the engine that composes them, nor on the root (which
    # re-exports the engine).
    "ai": ("engine", ""),
    "executor": ("engine", ""),
    # The neutral ground both the engine and the adapters stand on.
    "runtime": ("engine", "ai", "executor", "store", ""),
}
"""Layer → layers it must not import ("" is the package root)."""

Dependency = tuple[str, str]
"""(importing module, imported module), both dotted."""


def root_exports() -> dict[str, str]:
    """The package root's lazy re-exports (`_EXPORTS` in `cronicorn/__init__.py`)."""
    for node in ast.parse((SRC / "__init__.py").read_text()).body:
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == "_EXPORTS"
            and node.value is not None
        ):
            exports = ast.literal_eval(node.value)
            assert isinstance(exports, dict)
            return exports
    raise AssertionError("cronicorn/__init__.py has no _EXPORTS")


def imported_modules(
    module: str, text: str, *, is_package: bool, exports: dict[str, str]
) -> Iterator[str]:
    """Every module that `module` (with source `text`) imports, relative imports resolved."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            if base == PACKAGE:
                for alias in node.names:
                    yield exports.get(alias.name, f"{PACKAGE}.{alias.name}")
            else:
                yield base


def layer(module: str) -> str | None:
    """`cronicorn.engine.config` → `engine`, `cronicorn.errors` → `errors`, the root → "";
    None for modules that are not ours."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    return parts[1] if len(parts) > 1 else ""


def package_dependencies() -> list[Dependency]:
    exports = root_exports()
    found: list[Dependency] = []
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        module = ".".join(parts[:-1] if is_package else parts)
        for imported in imported_modules(
            module, path.read_text(), is_package=is_package, exports=exports
        ):
            if layer(imported) is not None:
                found.append((module, imported))
    return found


def violations(deps: list[Dependency]) -> list[str]:
    bad = []
    for importer, imported in deps:
        source, target = layer(importer), layer(imported)
        assert source is not None
        assert target is not None
        if target in FORBIDDEN.get(source, ()):
            bad.append(f"{importer} imports {imported}")
        elif source == "domain" and target != "domain":
            # The domain is pure: it imports nothing of ours but itself.
            bad.append(f"{importer} imports {imported}")
    return bad


def test_dependencies_point_inward() -> None:
    assert violations(package_dependencies()) == []


def test_the_scan_sees_the_imports_it_checks() -> None:
    """A clean result means something only if the scan sees imports of every form."""
    deps = set(package_dependencies())
    assert ("cronicorn.ai.openai_planner", "cronicorn.ai.config") in deps  # module level
    assert ("cronicorn.ai", "cronicorn.ai.rules_planner") in deps  # inside a function
    assert ("cronicorn.engine.factory", "cronicorn.executor") in deps  # inside a function
    assert ("cronicorn.engine.config", "cronicorn.ai.config") in deps  # the allowed direction
    assert len({importer for importer, _ in deps}) > 100


@pytest.mark.parametrize(
    "dependency",
    [
        ("cronicorn.ai.openai_planner", "cronicorn.engine.ports"),
        ("cronicorn.executor", "cronicorn.engine"),
        ("cronicorn.executor.http", ""),
        ("cronicorn.runtime.clock", "cronicorn.store.db"),
        ("cronicorn.domain.models", "cronicorn.errors"),
        ("cronicorn.domain", "cronicorn.observability.redaction"),
    ],
)
def test_a_forbidden_dependency_is_reported(dependency: Dependency) -> None:
    importer, imported = dependency
    assert violations([(importer, imported or PACKAGE)]) != []


@pytest.mark.parametrize(
    "dependency",
    [
        ("cronicorn.engine.config", "cronicorn.ai.config"),
        ("cronicorn.ai.openai_planner", "cronicorn.runtime.clock"),
        ("cronicorn.executor.circuit", "cronicorn.domain.models"),
        ("cronicorn.domain.cron", "cronicorn.domain.models"),
    ],
)
def test_an_allowed_dependency_is_not_reported(dependency: Dependency) -> None:
    assert violations([dependency]) == []


@pytest.mark.parametrize(
    ("module", "is_package", "source", "expected"),
    [
        ("cronicorn.ai.x", False, "from cronicorn import EngineConfig", "cronicorn.engine.config"),
        ("cronicorn.ai.x", False, "from cronicorn import engine", "cronicorn.engine"),
        ("cronicorn.ai.x", False, "from ..engine import ports", "cronicorn.engine"),
        ("cronicorn.ai.x", False, "from ..engine.ports import Planner", "cronicorn.engine.ports"),
        ("cronicorn.ai", True, "from .config import RulesStrategy", "cronicorn.ai.config"),
        ("cronicorn.ai", True, "from ..engine import config", "cronicorn.engine"),
        ("cronicorn.ai.x", False, "import cronicorn.engine.ports as p", "cronicorn.engine.ports"),
    ],
)
def test_import_forms_are_resolved(
    module: str, is_package: bool, source: str, expected: str
) -> None:
    text = f"if True:\n    def f() -> None:\n        {source}\n"
    found = list(imported_modules(module, text, is_package=is_package, exports=root_exports()))
    assert found == [expected]
