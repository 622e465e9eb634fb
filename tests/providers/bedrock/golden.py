"""Golden fixture helpers: load `tests/fixtures/bedrock/*`, and rewrite the expected halves
when GENROUTE_REGEN_GOLDEN=1 (then review the diff before keeping it)."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from genroute.config import DeploymentParams, ModelInfo
from genroute.providers.base import DeploymentSpec
from genroute.providers.bedrock.profile import BedrockProfile, profile_for
from genroute.providers.bedrock.response import ReplyContext

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "bedrock"
REGEN = os.environ.get("GENROUTE_REGEN_GOLDEN") == "1"
SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


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


def spec(case: dict[str, Any]) -> DeploymentSpec:
    """The deployment a fixture names (`model`, `params`, `model_info`)."""
    model = case.get("model", SONNET)
    params = DeploymentParams(model=f"bedrock/{model}", **case.get("params", {}))
    return DeploymentSpec("bedrock", model, params, ModelInfo(**case.get("model_info", {})))


def profile(case: dict[str, Any]) -> BedrockProfile:
    return profile_for(spec(case))


def context(case: dict[str, Any]) -> ReplyContext:
    return ReplyContext(**{"model": SONNET, **case.get("context", {})})


def counter_ids() -> Callable[[], str]:
    """Deterministic toolUse ids for golden output: call_1, call_2, ..."""
    numbers = itertools.count(1)
    return lambda: f"call_{next(numbers)}"
