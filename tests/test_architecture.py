"""The shape of the code: no import cycles, small documented modules, a stated public API.

The layering itself (wire → providers → routing → pipeline → server/sdk/cli) is an
import-linter contract in pyproject.toml, checked by `lint-imports` in scripts/test.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

import genroute

SRC = Path(genroute.__file__).resolve().parent
DOCS = SRC.parent.parent / "docs"
MAX_LINES = 600


def _modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found.append((name, path))
    return found


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm: the groups of modules that import each other, however indirectly."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            groups.append(group)

    for node in list(graph):
        if node not in index:
            visit(node)
    return groups


def test_no_import_cycle_anywhere_lazy_imports_included() -> None:
    graph = grimp.build_graph("genroute")
    # The package's own __init__ re-exports the public API; nothing inside imports it.
    edges = {
        module: set(graph.find_modules_directly_imported_by(module)) - {"genroute"}
        for module in graph.modules
        if module != "genroute"
    }
    cycles = [sorted(g) for g in _strongly_connected(edges) if len(g) > 1]
    assert cycles == []
    importers = graph.find_modules_that_directly_import("genroute")
    assert importers == set(), "modules inside genroute must import submodules, not the root"


@pytest.mark.parametrize(("name", "path"), _modules(), ids=[n for n, _ in _modules()])
def test_module_is_documented_small_and_declares_its_api(name: str, path: Path) -> None:
    source = path.read_text()
    tree = ast.parse(source)
    assert ast.get_docstring(tree), f"{name}: no module docstring"
    assert len(source.splitlines()) <= MAX_LINES, f"{name}: over {MAX_LINES} lines"
    if path.name == "__main__.py":
        return
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name}: no __all__"
    missing = [n for n in exported if not hasattr(module, n)]
    assert missing == [], f"{name}: __all__ names what it does not define"


def _documented_api() -> list[str]:
    """The names docs/sdk.md lists under its "Public API" heading."""
    text = (DOCS / "sdk.md").read_text()
    section = text.split("## Public API", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("- "):
            names.update(re.findall(r"`genroute\.(\w+)`", line.split(":", 1)[0]))
    return sorted(names)


def test_package_exports_are_what_the_docs_say() -> None:
    assert sorted(genroute.__all__) == _documented_api()
    for name in genroute.__all__:
        assert getattr(genroute, name) is not None


def test_call_state_lives_on_the_stack() -> None:
    """No table keyed by `id(...)`, and every ContextVar set is reset in the same module."""
    for name, path in _modules():
        source = path.read_text()
        assert "[id(" not in source and "id(ctx)" not in source, name
        if "ContextVar(" in source:
            assert ".reset(" in source, f"{name}: a ContextVar set without a reset"


def test_one_error_tree_and_one_first_env() -> None:
    from genroute import errors

    classes = [getattr(errors, n) for n in errors.__all__ if isinstance(getattr(errors, n), type)]
    exceptions = [c for c in classes if issubclass(c, BaseException)]
    assert all(issubclass(c, errors.GenrouteError) for c in exceptions)
    names = {c.__name__ for c in exceptions}
    assert {"ConfigError", "StoreError", "GroupUnavailable", "GroupRateLimited"} <= names
    defined_elsewhere = [
        name
        for name, path in _modules()
        if name != "genroute.errors"
        and re.search(r"^class \w+\((\w+\.)?(Exception|GenrouteError)\)", path.read_text(), re.M)
    ]
    assert defined_elsewhere == []
    first_envs = [name for name, path in _modules() if "def first_env(" in path.read_text()]
    assert first_envs == ["genroute.providers.catalog"]


def test_the_embedded_default_loads_no_library_it_does_not_use(tmp_path: Path) -> None:
    """The gateway's app for the embedded default (no Redis, no semantic cache, no
    webhook, no SDK) is made without importing redis-py, numpy, aiohttp or google-genai:
    each is imported by the feature that uses it (~0.35 s of every start-up)."""
    code = (
        "import json, sys\n"
        "import genroute.cli\n"
        "from genroute.defaults import default_config\n"
        "from genroute.server import create_app\n"
        "create_app(default_config())\n"
        "names = ('redis', 'numpy', 'aiohttp', 'google.genai')\n"
        "print(json.dumps([n for n in names if n in sys.modules]))\n"
    )
    made = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert json.loads(made.stdout) == []
