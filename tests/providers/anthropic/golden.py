"""Golden fixture helpers: load `tests/fixtures/anthropic/*`, and rewrite the expected
halves when GENROUTE_REGEN_GOLDEN=1 (then review the diff before keeping it)."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from genroute.config import DeploymentParams, ModelInfo
from genroute.providers.anthropic.profile import ModelProfile, profile_for
from genroute.providers.anthropic.translate import ReplyContext
from genroute.providers.base import DeploymentSpec

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "anthropic"
REGEN = os.environ.get("GENROUTE_REGEN_GOLDEN") == "1"


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def names(prefix: str, suffix: str = ".in.json") -> list[str]:
    """Case names of the fixtures `<prefix>_<name><suffix>`."""
    return sorted(p.name[: -len(suffix)] for p in FIXTURES.glob(f"{prefix}_*{suffix}"))


def expect(name: str, actual: Any) -> Any:
    """The expected output `<name>.out.json` (written from `actual` in regen mode)."""
    path = FIXTURES / f"{name}.out.json"
    if REGEN:
        path.write_text(json.dumps(actual, indent=1, ensure_ascii=False) + "\n")
    return load(path)


def profile(case: dict[str, Any]) -> ModelProfile:
    """The profile of the deployment a fixture names (`model`, `params`, `model_info`)."""
    model = case.get("model", "claude-sonnet-4-5")
    params = DeploymentParams(model=f"anthropic/{model}", **case.get("params", {}))
    spec = DeploymentSpec("anthropic", model, params, ModelInfo(**case.get("model_info", {})))
    return profile_for(spec)


def context(case: dict[str, Any]) -> ReplyContext:
    return ReplyContext(**case.get("context", {}))


def counter_ids() -> Callable[[], str]:
    """Deterministic tool_use ids for golden output: call_1, call_2, ..."""
    numbers = itertools.count(1)
    return lambda: f"call_{next(numbers)}"
