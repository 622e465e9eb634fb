"""Every public module under genroute.providers says what it exports, and exports only
names it defines or re-exports on purpose (after httpx's test_exported_members)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import genroute.providers

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(genroute.providers.__path__, "genroute.providers.")
    if not info.name.rsplit(".", 1)[-1].startswith("_")
)
PACKAGES_WITHOUT_EXPORTS = {"genroute.providers"}


@pytest.mark.parametrize("name", MODULES)
def test_every_public_module_has_an_all_of_names_it_has(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__doc__, f"{name} has no docstring"
    if name in PACKAGES_WITHOUT_EXPORTS:
        return
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what it does not have: {missing}"


def test_the_modules_are_small() -> None:
    for name in MODULES:
        module = importlib.import_module(name)
        assert module.__file__ is not None
        with open(module.__file__, encoding="utf-8") as source:
            lines = sum(1 for _ in source)
        assert lines <= 600, f"{name} has {lines} lines"
