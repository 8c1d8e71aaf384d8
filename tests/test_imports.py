"""The house rules, read from the source: no circles between the package's modules, no
module longer than one sitting's read, no private name borrowed from another module, no
Streamlit in the package, no TensorFlow, LIME or SHAP in the pages."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from .conftest import ROOT

PACKAGE = ROOT / "hematovision"
APP = [ROOT / "streamlit_app.py", *sorted((ROOT / "pages").glob("*.py")),
       *sorted((ROOT / "dashboard").glob("*.py"))]
# Everything that imports the package: the package itself, the app, the scripts.
CALLERS = [*sorted(PACKAGE.rglob("*.py")), *APP, *sorted((ROOT / "benchmarks").glob("*.py")),
           *sorted((ROOT / "scripts").glob("*.py"))]
MAX_LINES = 350


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, load_time_only: bool) -> set[str]:
    """Absolute names imported by ``path``: with ``load_time_only``, those run when the
    module loads (not inside functions, not under ``if TYPE_CHECKING``)."""
    name = _module_name(path)
    found: set[str] = set()

    def visit(nodes) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    package = name.split(".") if path.name == "__init__.py" else \
                        name.split(".")[:-1]
                    package = package[:len(package) - node.level + 1]
                    base = ".".join(package + ([base] if base else []))
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
            if load_time_only:
                for field in ("body", "orelse", "finalbody", "handlers"):
                    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                             ast.ClassDef)):
                        visit(getattr(node, field, []))
            else:
                visit(ast.iter_child_nodes(node))

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for other in sorted(graph[module]):
            if state.get(other) == 1:
                return path[path.index(other):] + [other]
            if other not in state and (found := visit(other)):
                return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return None


def _with_parents(names: set[str]) -> set[str]:
    """Importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` first."""
    return {".".join(name.split(".")[:end]) for name in names
            for end in range(1, name.count(".") + 2)}


def test_the_package_s_modules_import_each_other_without_a_circle():
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {name: {other for other in _with_parents(_imports(path, load_time_only=True))
                    if other in modules and other != name and not name.startswith(other + ".")}
             for name, path in modules.items()}
    assert _cycle(graph) is None


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")),
                         ids=lambda path: str(path.relative_to(ROOT)))
def test_every_module_reads_in_one_sitting(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines: split it by concept"


def _private_imports(path: Path) -> list[str]:
    """``from hematovision... import _name``: a helper borrowed across modules."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and not node.level and (
                (node.module or "").split(".")[0] == "hematovision"):
            found += [f"{node.module}.{alias.name}" for alias in node.names
                      if alias.name.startswith("_")]
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) \
                else [node.module or ""]
            found += [name for name in names if name.split(".")[0] == "hematovision"
                      and any(part.startswith("_") and not part.startswith("__")
                              for part in name.split("."))]
    return found


@pytest.mark.parametrize("path", CALLERS, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_private_name_is_imported_across_modules(path):
    assert _private_imports(path) == []


def test_a_private_import_is_found(tmp_path):
    source = tmp_path / "borrower.py"
    source.write_text("from hematovision.io.dataset import rank, _secret\n"
                      "import hematovision._hidden\n")
    assert _private_imports(source) == ["hematovision.io.dataset._secret",
                                        "hematovision._hidden"]


def test_a_circle_is_found():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")),
                         ids=lambda path: str(path.relative_to(ROOT)))
def test_the_package_never_imports_streamlit(path):
    assert not {name for name in _imports(path, load_time_only=False)
                if name.split(".")[0] == "streamlit"}


@pytest.mark.parametrize("path", APP, ids=lambda path: str(path.relative_to(ROOT)))
def test_pages_never_import_tensorflow_lime_or_shap(path):
    heavy = {"tensorflow", "keras", "lime", "shap"}
    assert not {name for name in _imports(path, load_time_only=False)
                if name.split(".")[0] in heavy}
