"""What each OpenAI model takes, end to end: google-genai sends what Gemini clients send
(a thinkingConfig on every call, as gemini-cli does for gemini-* names; temperature,
topP and maxOutputTokens) through genroute to a fake OpenAI that refuses what OpenAI
refuses per model (tests/fakes/openai_models.py). genroute decides from its model facts
(providers/models.py), overridden by `model_info`, what each deployment is sent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from google.genai import errors as genai_errors
from google.genai import types

from tests.conftest import InProcessGateway, genai_client
from tests.fakes.openai_upstream import AZURE_KEY, DEFAULT_KEY, FakeOpenAI

pytestmark = pytest.mark.e2e
KEY = "sk-facts-master"
# What gemini-cli sends with a gemini-2.5/3 name, plus sampling settings and a token cap.
CONFIG = types.GenerateContentConfig(
    thinking_config=types.ThinkingConfig(thinking_budget=8192, include_thoughts=True),
    temperature=0.3,
    top_p=0.9,
    max_output_tokens=200,
)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    models = {"prod-reasoner": "o4-mini", "declared-reasoner": "o3"}
    with FakeOpenAI(azure_models=models, pause=0.001) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def gw(fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessGateway]:
    def openai(model: str) -> dict[str, Any]:
        return {"model": f"openai/{model}", "api_key": DEFAULT_KEY, "api_base": fake.base_url}

    def azure(deployment: str) -> dict[str, Any]:
        return {"model": f"azure/{deployment}", "api_key": AZURE_KEY, "api_base": fake.base_url}

    config = {
        "model_list": [
            {"model_name": "gemini-*", "params": openai("gpt-4o")},
            {"model_name": "mini", "params": openai("gpt-4o-mini")},
            {"model_name": "reasoner", "params": openai("o4-mini")},
            {"model_name": "gpt5", "params": openai("gpt-5")},
            {
                "model_name": "azure-by-base-model",
                "params": azure("prod-reasoner"),
                "model_info": {"base_model": "azure/o4-mini"},
            },
            {
                "model_name": "azure-declared",
                "params": azure("declared-reasoner"),
                "model_info": {"supports_reasoning": True},
            },
            {
                "model_name": "overclaimed",
                "params": openai("gpt-4o"),
                "model_info": {"supports_reasoning": True},
            },
        ],
        "router_settings": {"model_group_alias": {"gemini-flash-latest": "mini"}},
        "general_settings": {"master_key": KEY},
    }
    gateway = InProcessGateway(config, tmp_path_factory.mktemp("facts"))
    yield gateway
    gateway.stop()


def ask(gw: InProcessGateway, model: str, *, stream: bool = False) -> str:
    client = genai_client(gw.base_url, KEY)
    if stream:
        chunks = client.models.generate_content_stream(model=model, contents="hi", config=CONFIG)
        return "".join(c.text or "" for c in chunks)
    return client.models.generate_content(model=model, contents="hi", config=CONFIG).text or ""


@pytest.mark.parametrize(
    "model", ["gemini-2.5-pro", "gemini-3.1-pro-preview", "gemini-flash-latest"]
)
def test_a_gemini_name_on_a_model_that_does_not_reason(
    gw: InProcessGateway, fake: FakeOpenAI, model: str
) -> None:
    for stream in (False, True):
        assert ask(gw, model, stream=stream) == "Echo: hi"
        body = fake.last_request.body
        assert "reasoning_effort" not in body
        assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.3, 0.9, 200)


@pytest.mark.parametrize(
    ("model", "sent_as", "effort"),
    [
        ("reasoner", "o4-mini", "medium"),
        ("gpt5", "gpt-5", "medium"),
        ("azure-by-base-model", "prod-reasoner", "medium"),
        ("azure-declared", "declared-reasoner", "medium"),
    ],
)
def test_a_reasoning_model_gets_an_effort_and_no_sampling_settings(
    gw: InProcessGateway, fake: FakeOpenAI, model: str, sent_as: str, effort: str
) -> None:
    for stream in (False, True):
        assert ask(gw, model, stream=stream) == "Echo: hi"
        request = fake.last_request
        assert sent_as in (request.deployment, request.body.get("model"))
        body = request.body
        assert body["reasoning_effort"] == effort
        assert body["max_completion_tokens"] == 200 and "max_tokens" not in body
        assert "temperature" not in body and "top_p" not in body


def test_a_wrong_model_info_meets_openai_s_refusal(gw: InProcessGateway) -> None:
    """`supports_reasoning: true` on gpt-4o is believed: OpenAI's 400 reaches the client,
    naming the parameter, which tells the operator what to fix."""
    with pytest.raises(genai_errors.ClientError) as err:
        ask(gw, "overclaimed")
    assert err.value.code == 400
    assert "'reasoning_effort' is not supported with this model" in str(err.value.message)
