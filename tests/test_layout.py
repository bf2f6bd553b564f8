"""The code's shape (ARCHITECTURE.md): few top-level modules, short modules and functions, no
import cycles (type-only ones included), one place that builds a model from a config, and
the config read by few modules."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

SRC = REPO / "src"
PACKAGE = SRC / "dlx"
MODULES = sorted(PACKAGE.rglob("*.py"))
#: dlx and its Hydra plugins: both held to the size limits
SIZED = [*MODULES, *sorted((SRC / "hydra_plugins").rglob("*.py"))]


def _name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The dlx modules ``path`` imports, at any depth, ``if TYPE_CHECKING`` blocks included."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dlx"):
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("dlx"))
    return out


def test_no_import_cycles_between_dlx_modules():
    """Counting lazy and type-only imports too; a submodule importing its own package (which
    Python imports first anyway) is no edge."""
    modules = {_name(p): p for p in MODULES}
    graph = {
        m: sorted(i for i in _imports(p) if i in modules and i != m and not m.startswith(i + "."))
        for m, p in modules.items()
    }
    done: set[str] = set()

    def visit(m: str, path: list[str]) -> list[str] | None:
        if m in path:
            return [*path[path.index(m) :], m]
        if m in done:
            return None
        for nxt in graph[m]:
            if cycle := visit(nxt, [*path, m]):
                return cycle
        done.add(m)
        return None

    cycles = [c for m in sorted(graph) if (c := visit(m, []))]
    assert not cycles, " -> ".join(cycles[0])


def test_few_top_level_modules_none_over_300_lines_no_function_over_50():
    assert len(list(PACKAGE.glob("*.py"))) <= 12
    long = {str(p): n for p in SIZED if (n := len(p.read_text().splitlines())) > 300}
    assert not long, long
    functions = {
        f"{p.relative_to(SRC)}:{n.name}": n.end_lineno - n.lineno + 1
        for p in SIZED
        for n in ast.walk(ast.parse(p.read_text()))
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.end_lineno - n.lineno >= 50
    }
    assert not functions, functions


def test_the_loop_fits_one_screen():
    tree = ast.parse((PACKAGE / "engine" / "loop.py").read_text())
    fit = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "fit")
    assert fit.end_lineno - fit.lineno + 1 <= 30


def test_one_place_builds_a_model_from_a_config():
    calls = [
        _name(p)
        for p in MODULES
        for n in ast.walk(ast.parse(p.read_text()))
        if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "build_model"
    ]
    assert calls == ["dlx.engine.build"]


def test_the_config_is_read_by_few_modules():
    """OmegaConf at the entry (the spec's parse), in the schema check (the registry), where
    Hydra's files are read (run dirs) and in the Hydra app; below the spec, typed parts."""
    readers = {
        _name(p) for p in MODULES if "omegaconf" in p.read_text() or "DictConfig" in p.read_text()
    }
    allowed = {"dlx.engine.spec", "dlx.registry", "dlx.engine.rundirs"}
    allowed |= {"dlx.sweep.app", "dlx.sweep.compose"}
    assert readers <= allowed, readers - allowed
