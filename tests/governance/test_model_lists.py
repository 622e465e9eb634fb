"""A key's model list, matched segment by segment: `*` never crosses a `/`."""

from __future__ import annotations

import fnmatch
import random

import pytest

from genroute.governance import model_allowed


@pytest.mark.parametrize(
    ("models", "model", "allowed"),
    [
        (["gemini-2.5-flash*"], "gemini-2.5-flash", True),
        (["gemini-2.5-flash*"], "gemini-2.5-flash-lite", True),
        (["gemini-2.5-flash*"], "gemini-2.5-flash/../gemini-2.5-pro", False),
        (["gemini-2.5-flash*"], "gemini-2.5-flash/x", False),
        (["gemini-2.5-flash?"], "gemini-2.5-flash/", False),
        (["gemini/*"], "gemini/gemini-2.5-pro", True),
        (["gemini/*"], "gemini/a/b", False),
        (["*/flash"], "team/flash", True),
        (["*/flash"], "a/b/flash", False),
        (["team/flash"], "team/flash", True),
        (["*"], "a/b/c", True),
        (["all-proxy-models"], "a/b", True),
        ([], "anything/at/all", True),
        (["demo"], "demo", True),
        (["demo"], "other", False),
    ],
)
def test_model_lists(models: list[str], model: str, allowed: bool) -> None:
    assert model_allowed(models, model) is allowed


def test_a_star_never_crosses_a_slash() -> None:
    """Property, over random patterns and names: a pattern allows a name only when each
    `/`-separated segment of the name matches the pattern's segment in the same place."""
    rng = random.Random(20240601)
    alphabet = "ab-.*?/"
    for _ in range(20_000):
        pattern = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))
        name = "".join(rng.choice("ab-./") for _ in range(rng.randint(1, 10)))
        if pattern in ("*", "all-proxy-models"):
            continue
        allowed = model_allowed([pattern], name)
        if allowed and "/" in name:
            assert pattern.count("/") == name.count("/"), (pattern, name)
        segments = list(zip(pattern.split("/"), name.split("/"), strict=False))
        expected = pattern.count("/") == name.count("/") and all(
            fnmatch.fnmatchcase(n, p) for p, n in segments
        )
        assert allowed is (expected or pattern == name), (pattern, name)
