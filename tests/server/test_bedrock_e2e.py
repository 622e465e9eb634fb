"""End to end over AWS Bedrock: google-genai and gemini-cli, unchanged, → genroute → the
fake Bedrock (real HTTP, SigV4 checked on every request, binary event streams cut at every
byte).

Covers generate and stream, parallel tool calls mapped back by id, thinking across a tool
loop, images, JSON output, countTokens, throttling (429 with RetryInfo) before and during a
stream, a wrong upstream secret, a fallback from another group to Bedrock Claude, virtual
keys with spend priced from genai-prices' `aws` rows, the request log, and the embedded
default picking Bedrock up from the AWS environment.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.genai import errors, types

from tests.conftest import Gateway, InProcessGateway, eventually, genai_client, refused_port
from tests.curl import curl, sse_events
from tests.fakes.bedrock_upstream import KEY_ID, REGION, SECRET, FakeBedrock, reasoning, tool_use
from tests.server.test_gemini_cli_e2e import SECRET as CLI_SECRET
from tests.server.test_gemini_cli_e2e import gemini_bin, run_gemini_cli, workspace

pytestmark = pytest.mark.e2e
__all__ = ["gemini_bin"]

MASTER = "sk-cli-master"  # the key run_gemini_cli sends
SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"
AWS_ENV = ("AWS_",)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeBedrock]:
    with FakeBedrock(chunk=1) as upstream:
        yield upstream


@pytest.fixture(autouse=True)
def _fresh(fake: FakeBedrock) -> None:
    fake.reset()


@pytest.fixture(scope="module", autouse=True)
def _no_aws_from_the_shell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No AWS setup of the developer's, and no instance metadata lookups."""
    saved = {k: v for k, v in os.environ.items() if k.startswith(AWS_ENV)}
    for name in saved:
        del os.environ[name]
    tmp = tmp_path_factory.mktemp("aws")
    os.environ.update({"AWS_CONFIG_FILE": str(tmp / "config"),
                       "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "credentials"),
                       "AWS_EC2_METADATA_DISABLED": "true"})  # fmt: skip
    yield
    for name in [k for k in os.environ if k.startswith(AWS_ENV)]:
        del os.environ[name]
    os.environ.update(saved)


def bedrock(fake: FakeBedrock, model: str = SONNET, **extra: Any) -> dict[str, Any]:
    return {"model": f"bedrock/{model}", "aws_access_key_id": KEY_ID,
            "aws_secret_access_key": SECRET, "aws_region_name": REGION,
            "api_base": fake.base_url, **extra}  # fmt: skip


@pytest.fixture(scope="module")
def gateway(
    fake: FakeBedrock, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessGateway]:
    tmp = tmp_path_factory.mktemp("bedrock-gateway")
    config = {
        "model_list": [
            {"model_name": "claude", "params": bedrock(fake)},
            {"model_name": "haiku", "params": bedrock(fake, HAIKU)},
            {
                "model_name": "wrong-secret",
                "params": {**bedrock(fake), "aws_secret_access_key": "x"},
            },
            {
                "model_name": "primary",
                "params": {
                    "model": "gemini/gemini-2.5-flash",
                    "api_key": "k",
                    "api_base": f"http://127.0.0.1:{refused_port()}",
                },
            },
        ],
        "router_settings": {"fallbacks": [{"primary": ["claude"]}], "num_retries": 0},
        "general_settings": {
            "master_key": MASTER,
            "database_url": f"sqlite:///{tmp / 'spend.db'}",
            "spend_flush_interval": 0.1,
        },
    }
    gw = InProcessGateway(config, tmp)
    yield gw
    gw.stop()


def client(gateway: InProcessGateway, key: str = MASTER) -> Any:
    return genai_client(gateway.base_url, key)


@pytest.fixture(scope="module")
def sdk(gateway: InProcessGateway) -> Any:
    """google-genai pointed at the gateway, with the master key."""
    return client(gateway)


def records(gateway: InProcessGateway) -> list[dict[str, Any]]:
    lines = [json.loads(x) for x in gateway.log().splitlines() if x.startswith("{")]
    return [x for x in lines if "request_id" in x and "operation" in x]


def record_where(gateway: InProcessGateway, **wanted: Any) -> dict[str, Any]:
    """The last request-log line with these values (lines are written off the loop)."""

    def found() -> list[dict[str, Any]]:
        return [r for r in records(gateway) if all(r.get(k) == v for k, v in wanted.items())]

    eventually(lambda: bool(found()))
    return found()[-1]


def test_generate_and_stream(sdk: Any, gateway: InProcessGateway, fake: FakeBedrock) -> None:
    response = sdk.models.generate_content(model="claude", contents="hello there")
    assert response.text == "Echo: hello there"
    assert response.model_version == SONNET and response.usage_metadata.total_token_count
    chunks = list(sdk.models.generate_content_stream(model="claude", contents="hi you"))
    assert "".join(c.text or "" for c in chunks) == "Echo: hi you"
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert [r.action for r in fake.requests] == ["converse", "converse-stream"]
    assert all("authorization" in r.headers for r in fake.requests)


WEATHER = types.FunctionDeclaration(
    name="get_weather",
    parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}},
)


def test_parallel_tool_calls_with_thinking_across_the_loop(
    sdk: Any, gateway: InProcessGateway, fake: FakeBedrock
) -> None:
    fake.script("reply", content=[reasoning("Two cities."), tool_use("get_weather", {"city": "Paris"}),
                                  tool_use("get_weather", {"city": "Rome"})])  # fmt: skip
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])],
        thinking_config=types.ThinkingConfig(thinking_budget=2048, include_thoughts=True),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    history: list[Any] = [types.Content(role="user", parts=[types.Part(text="Paris and Rome?")])]
    first = sdk.models.generate_content(model="claude", contents=history, config=config)
    calls = first.function_calls or []
    assert [c.args["city"] for c in calls] == ["Paris", "Rome"] and calls[0].id != calls[1].id
    assert any(p.thought for p in first.candidates[0].content.parts)
    answers = [types.Part(function_response=types.FunctionResponse(
        id=c.id, name=c.name, response={"output": f"sunny in {c.args['city']}"})) for c in calls]  # fmt: skip
    history += [first.candidates[0].content, types.Content(role="user", parts=answers)]
    second = sdk.models.generate_content(model="claude", contents=history, config=config)
    assert second.text == "Results: sunny in Paris | sunny in Rome"
    sent = fake.last_request.body
    assert next(iter(sent["messages"][1]["content"][0])) == "reasoningContent"
    assert sent["additionalModelRequestFields"]["reasoning_config"]["budget_tokens"] == 2048


def test_images_json_output_and_count_tokens(
    sdk: Any, gateway: InProcessGateway, fake: FakeBedrock
) -> None:
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    )
    image = types.Part.from_bytes(data=png, mime_type="image/png")
    response = sdk.models.generate_content(model="claude", contents=[image, "what?"])
    assert response.text == "Echo: what?"
    block = fake.last_request.body["messages"][0]["content"][0]["image"]
    assert base64.b64decode(block["source"]["bytes"]) == png
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    config = types.GenerateContentConfig(
        response_mime_type="application/json", response_json_schema=schema
    )
    for model in ("claude", "haiku"):  # native outputConfig, and a forced tool
        answer = sdk.models.generate_content(model=model, contents="city?", config=config)
        assert json.loads(answer.text) == {"city": "example"}
    counted = sdk.models.count_tokens(model="claude", contents="one two three")
    assert counted.total_tokens == 3
    assert fake.last_request.path.endswith(
        "/model/anthropic.claude-sonnet-4-5-20250929-v1:0/count-tokens"
    )


def test_throttling_is_a_429_with_retry_info_before_and_during_a_stream(
    sdk: Any, gateway: InProcessGateway, fake: FakeBedrock
) -> None:
    fake.script("error", type="ThrottlingException", message="Too many requests, please wait.")
    with pytest.raises(errors.APIError) as info:
        sdk.models.generate_content(model="claude", contents="hi")
    assert info.value.code == 429 and info.value.status == "RESOURCE_EXHAUSTED"
    details = info.value.details["error"]["details"]
    assert any(d.get("retryDelay") == "1s" for d in details)
    fake.script("stream_error", after=4, type="throttlingException")
    received = []
    with pytest.raises(errors.APIError) as mid:
        for chunk in sdk.models.generate_content_stream(model="claude", contents="a b c"):
            received.append(chunk.text)
    assert received and mid.value.code == 429


def test_a_validation_error_names_bedrocks_field(
    sdk: Any, gateway: InProcessGateway, fake: FakeBedrock
) -> None:
    fake.script("error", type="ValidationException",
                message="The text field in the ContentBlock object at messages.0.content.0 is blank.")  # fmt: skip
    with pytest.raises(errors.APIError) as info:
        sdk.models.generate_content(model="claude", contents="hi")
    assert info.value.code == 400 and "messages.0.content.0" in info.value.message


def test_a_wrong_secret_is_refused_by_the_fake_and_reported(
    sdk: Any, gateway: InProcessGateway, fake: FakeBedrock
) -> None:
    with pytest.raises(errors.APIError) as info:
        sdk.models.generate_content(model="wrong-secret", contents="hi")
    assert info.value.code == 401 and "signature we calculated does not match" in info.value.message
    assert fake.last_request.headers["authorization"].startswith("AWS4-HMAC-SHA256 ")


def test_a_fallback_from_another_group_lands_on_bedrock_claude(
    sdk: Any, gateway: InProcessGateway
) -> None:
    response = sdk.models.generate_content(model="primary", contents="fall back")
    assert response.text == "Echo: fall back" and response.model_version == SONNET
    record = record_where(gateway, fallbacks=["claude"])
    assert (record["provider"], record["model_group"], record["attempts"]) == (
        "bedrock",
        "claude",
        2,
    )


def _call(gateway: InProcessGateway, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(gateway.base_url + path, data=data, method=method,
                                     headers={"x-goog-api-key": MASTER, "content-type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=15) as reply:
        return json.loads(reply.read())


def test_a_virtual_key_pays_for_bedrock_at_aws_prices(gateway: InProcessGateway) -> None:
    key = _call(
        gateway, "POST", "/key/generate", {"key_alias": "bedrock-user", "models": ["claude"]}
    )["key"]
    keyed = client(gateway, key)
    response = keyed.models.generate_content(model="claude", contents="price me")
    usage = response.usage_metadata
    with pytest.raises(errors.APIError) as refused:
        keyed.models.generate_content(model="haiku", contents="not mine")
    assert refused.value.code == 403

    def spent() -> float:
        return float(_call(gateway, "GET", f"/key/info?key={key}")["info"]["spend"])

    eventually(lambda: spent() > 0)
    # Claude Sonnet 4.5 through a regional (us.) inference profile: $3.30 per million input
    # tokens, $16.50 per million output (10 % over the global profile's price).
    expected = usage.prompt_token_count * 3.3e-6 + usage.candidates_token_count * 16.5e-6
    assert spent() == pytest.approx(expected, rel=0.01)
    record = record_where(gateway, key_alias="bedrock-user", status_code=200)
    assert (record["provider"], record["provider_model"]) == ("bedrock", SONNET)
    assert record["cost"] == pytest.approx(expected, rel=0.01) and record["status_code"] == 200


def test_gemini_cli_tool_loop_through_bedrock(
    gemini_bin: Path, gateway: InProcessGateway, fake: FakeBedrock, tmp_path: Path
) -> None:
    work, secret = workspace(tmp_path)
    fake.script("reply", content=[tool_use("read_file", {"file_path": str(secret)})])
    output = run_gemini_cli(gemini_bin, gateway, "claude", work, "What does secret.txt say?")  # type: ignore[arg-type]
    assert CLI_SECRET in output["response"]
    calls = [r for r in fake.requests if r.action == "converse-stream"]
    assert len(calls) >= 2
    first, last = calls[0].body, calls[-1].body
    assert any(t["toolSpec"]["name"] == "read_file" for t in first["toolConfig"]["tools"])
    results = [b["toolResult"] for m in last["messages"] for b in m["content"] if "toolResult" in b]
    assert results and CLI_SECRET in json.dumps(results)
    assert output["stats"]["tools"]["byName"]["read_file"]["success"] == 1


def test_the_embedded_default_serves_bedrock_from_the_aws_environment(
    fake: FakeBedrock, tmp_path: Path
) -> None:
    env = {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": REGION,
           "AWS_BEDROCK_RUNTIME_ENDPOINT": fake.base_url, "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_CONFIG_FILE": str(tmp_path / "c"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "k")}  # fmt: skip
    gw = Gateway(None, tmp_path, env)
    default_sdk = genai_client(gw.base_url, "any")
    try:
        answer = default_sdk.models.generate_content(
            model=f"bedrock/{SONNET}", contents="from the environment"
        )
        assert answer.text == "Echo: from the environment"
        stand_in = default_sdk.models.generate_content(
            model="gemini-2.5-pro", contents="a gemini name"
        )
        assert stand_in.text == "Echo: a gemini name"
        assert fake.last_request.model == "global.anthropic.claude-sonnet-4-5-20250929-v1:0"
    except urllib.error.URLError:
        raise AssertionError(gw.log()) from None
    finally:
        gw.stop()


def test_curl_as_in_googles_rest_samples(gateway: InProcessGateway) -> None:
    """Google's REST samples, with only the host and the key changed, against Claude on
    Bedrock: an answer, a stream, and a Google-shaped error."""
    body = {"contents": [{"parts": [{"text": "Explain how AI works"}]}]}
    status, text = curl(gateway.base_url, "/v1beta/models/claude:generateContent", body, MASTER)
    assert status == 200, text
    answer = json.loads(text)
    assert answer["candidates"][0]["content"]["parts"][0]["text"] == "Echo: Explain how AI works"
    path = "/v1beta/models/claude:streamGenerateContent?alt=sse"
    status, text = curl(gateway.base_url, path, body, MASTER, stream=True)
    events = sse_events(text)
    assert status == 200 and len(events) > 1
    assert "".join(p["text"] for e in events for p in e["candidates"][0]["content"]["parts"]) == (
        "Echo: Explain how AI works"
    )
    status, text = curl(gateway.base_url, "/v1beta/models/claude:generateContent", {}, MASTER)
    error = json.loads(text)["error"]
    assert (status, error["code"], error["status"]) == (400, 400, "INVALID_ARGUMENT")
    assert "contents" in error["message"]
