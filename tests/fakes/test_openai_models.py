"""The fake OpenAI refuses, per model, what OpenAI refuses, with OpenAI's error bodies, as
the official `openai` client reads them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.fakes.openai_models import model_refusal, rules_for
from tests.fakes.openai_upstream import DEFAULT_KEY, FakeOpenAI

if TYPE_CHECKING:
    import openai

HI = [{"role": "user", "content": "hi"}]


def sdk() -> Any:
    """The openai SDK, imported on first use: ~0.35 s of CPU that every xdist worker would
    otherwise pay collecting."""
    import openai

    return openai


@pytest.fixture(scope="module")
def client() -> Iterator[openai.OpenAI]:
    with FakeOpenAI(pause=0) as fake:
        client = sdk().OpenAI(api_key=DEFAULT_KEY, base_url=f"{fake.base_url}/v1", max_retries=0)
        yield client
        client.close()


def refused(client: openai.OpenAI, **body: Any) -> dict[str, Any]:
    with pytest.raises(sdk().BadRequestError) as err:
        client.chat.completions.create(messages=HI, **body)
    assert err.value.status_code == 400
    error: dict[str, Any] = err.value.body
    assert error["type"] == "invalid_request_error"
    return error


@pytest.mark.parametrize(
    "model", ["gpt-4o", "gpt-4o-mini", "gpt-4.1-nano", "gpt-3.5-turbo", "chatgpt-4o-latest"]
)
def test_reasoning_effort_is_refused_by_models_that_do_not_reason(
    client: openai.OpenAI, model: str
) -> None:
    error = refused(client, model=model, reasoning_effort="low")
    assert error["message"] == (
        "Unsupported parameter: 'reasoning_effort' is not supported with this model."
    )
    assert (error["param"], error["code"]) == ("reasoning_effort", "unsupported_parameter")
    # The same body without it is answered, with max_tokens and any temperature.
    reply = client.chat.completions.create(
        model=model, messages=HI, max_tokens=10, temperature=0.2, top_p=0.9
    )
    assert reply.choices[0].message.content == "Echo: hi"


@pytest.mark.parametrize("model", ["o1", "o3", "o4-mini", "gpt-5", "gpt-5-mini", "gpt-5.1"])
def test_reasoning_models_refuse_sampling_and_max_tokens(client: openai.OpenAI, model: str) -> None:
    error = refused(client, model=model, temperature=0.7)
    assert error["message"] == (
        "Unsupported value: 'temperature' does not support 0.7 with this model. "
        "Only the default (1) value is supported."
    )
    assert (error["param"], error["code"]) == ("temperature", "unsupported_value")
    error = refused(client, model=model, top_p=0.5)
    assert error["message"] == "Unsupported parameter: 'top_p' is not supported with this model."
    assert (error["param"], error["code"]) == ("top_p", "unsupported_parameter")
    error = refused(client, model=model, max_tokens=100)
    assert error["message"] == (
        "Unsupported parameter: 'max_tokens' is not supported with this model. "
        "Use 'max_completion_tokens' instead."
    )
    assert (error["param"], error["code"]) == ("max_tokens", "unsupported_parameter")
    assert refused(client, model=model, presence_penalty=0.1)["param"] == "presence_penalty"
    reply = client.chat.completions.create(
        model=model, messages=HI, temperature=1, max_completion_tokens=100, reasoning_effort="high"
    )
    assert reply.choices[0].message.content == "Echo: hi"


def test_reasoning_effort_values_per_model(client: openai.OpenAI) -> None:
    error = refused(client, model="gpt-5", reasoning_effort="none")
    assert error["message"] == (
        "Unsupported value: 'reasoning_effort' does not support 'none' with this model. "
        "Supported values are: 'minimal', 'low', 'medium', and 'high'."
    )
    assert (error["param"], error["code"]) == ("reasoning_effort", "unsupported_value")
    assert refused(client, model="o3", reasoning_effort="minimal")["code"] == "unsupported_value"
    error = refused(client, model="o1-mini", reasoning_effort="low")
    assert error["code"] == "unsupported_parameter"
    assert refused(client, model="o3-mini", temperature=1)["message"] == (
        "Unsupported parameter: 'temperature' is not supported with this model."
    )
    for model, effort in (("gpt-5.1", "none"), ("gpt-5.2", "xhigh"), ("ft:o4-mini:acme", "low")):
        reply = client.chat.completions.create(model=model, messages=HI, reasoning_effort=effort)
        assert reply.choices[0].message.content == "Echo: hi"


def test_models_openai_does_not_have_are_refused_nothing() -> None:
    body = {"reasoning_effort": "high", "temperature": 0.1, "max_tokens": 5, "top_p": 0.2}
    for model in ("llama3.2", "gpt-oss-120b", "Qwen/QwQ-32B", "mistral-large-latest"):
        assert rules_for(model) is None and model_refusal(model, body) is None


def test_an_azure_deployment_is_checked_as_the_model_behind_it() -> None:
    openai = sdk()
    with FakeOpenAI(azure_models={"prod-reasoner": "o4-mini"}, pause=0) as fake:
        azure = openai.AzureOpenAI(
            api_key="azure-upstream-key",
            azure_endpoint=fake.base_url,
            api_version="2024-10-21",
            max_retries=0,
        )
        with pytest.raises(openai.BadRequestError) as err:
            azure.chat.completions.create(model="prod-reasoner", messages=HI, max_tokens=5)
        assert err.value.body["param"] == "max_tokens"
        reply = azure.chat.completions.create(
            model="prod-reasoner",
            messages=HI,
            max_completion_tokens=5,
        )
        assert reply.choices[0].message.content == "Echo: hi"
        azure.close()
