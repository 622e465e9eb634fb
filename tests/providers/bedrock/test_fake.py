"""The fake Bedrock itself: boto3's own client (botocore) talks to it unchanged, which
checks the fake's signature check and wire format against AWS's client; it refuses bad
signatures and broken conversations as Bedrock does; its scripts work."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from genroute.config import DeploymentParams
from genroute.providers.bedrock.auth import AwsAuth, model_path
from tests.fakes.bedrock_upstream import KEY_ID, REGION, SECRET, FakeBedrock, tool_use

SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeBedrock]:
    with FakeBedrock(chunk=1) as upstream:
        yield upstream


_clients: list[Any] = []


@pytest.fixture(autouse=True)
def _fresh(fake: FakeBedrock) -> Iterator[None]:
    fake.reset()
    yield
    while _clients:  # their connection pools hold sockets until closed
        _clients.pop().close()


def boto(fake: FakeBedrock, secret: str = SECRET) -> Any:
    import botocore.session
    from botocore.config import Config

    client = botocore.session.get_session().create_client(
        "bedrock-runtime",
        endpoint_url=fake.base_url,
        region_name=REGION,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )
    _clients.append(client)
    return client


HELLO = [{"role": "user", "content": [{"text": "hello"}]}]


def test_botocore_converses_with_the_fake(fake: FakeBedrock) -> None:
    reply = boto(fake).converse(modelId=SONNET, messages=HELLO, inferenceConfig={"maxTokens": 50})
    assert reply["output"]["message"]["content"] == [{"text": "Echo: hello"}]
    assert reply["stopReason"] == "end_turn" and reply["usage"]["totalTokens"] > 0
    assert fake.last_request.path == f"/model/{SONNET.replace(':', '%3A')}/converse"  # boto3's


def test_botocore_reads_the_fakes_stream_cut_at_every_byte(fake: FakeBedrock) -> None:
    fake.script("reply", content=[{"text": "Hi!"}, tool_use("f", {"a": 1}, "t1")])
    reply = boto(fake).converse_stream(modelId=SONNET, messages=HELLO)
    events = list(reply["stream"])
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    deltas = [e["contentBlockDelta"]["delta"] for e in events if "contentBlockDelta" in e]
    assert "".join(d.get("text", "") for d in deltas) == "Hi!"
    assert "".join(d["toolUse"]["input"] for d in deltas if "toolUse" in d) == '{"a": 1}'


def test_botocore_sees_the_fakes_errors_as_aws_errors(fake: FakeBedrock) -> None:
    from botocore.exceptions import ClientError

    fake.script("error", type="ThrottlingException", message="Too many requests")
    with pytest.raises(ClientError) as info:
        boto(fake).converse(modelId=SONNET, messages=HELLO)
    assert info.value.response["Error"]["Code"] == "ThrottlingException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    with pytest.raises(ClientError) as bad:
        boto(fake, secret="wrong").converse(modelId=SONNET, messages=HELLO)
    assert bad.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert bad.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    fake.script("stream_error", after=2, type="throttlingException")
    stream = boto(fake).converse_stream(modelId=SONNET, messages=HELLO)["stream"]
    with pytest.raises(Exception, match="Too many requests"):
        list(stream)
    stream.close()  # cut by the error, its connection is not back in the pool to be closed


async def post(
    fake: FakeBedrock,
    body: dict[str, Any],
    *,
    action: str = "converse",
    headers: dict[str, str] | None = None,
    sign: bool = True,
) -> tuple[int, dict[str, str], Any]:
    params = DeploymentParams(model="bedrock/x", aws_access_key_id=KEY_ID,
                              aws_secret_access_key=SECRET, aws_region_name=REGION)  # fmt: skip
    url = f"{fake.base_url}/model/{model_path(SONNET)}/{action}"
    data = __import__("orjson").dumps(body)
    sent = {"content-type": "application/json", **(headers or {})}
    if sign:
        sent = await AwsAuth(params, SONNET).sign(url, data, sent)
    async with aiohttp.ClientSession() as session, session.post(url, data=data, headers=sent) as r:
        return r.status, dict(r.headers), await r.json(content_type=None)


async def test_an_unsigned_or_tampered_request_is_a_403_with_aws_error_type(
    fake: FakeBedrock,
) -> None:
    status, headers, body = await post(fake, {"messages": HELLO}, sign=False)
    assert status == 403 and headers["x-amzn-ErrorType"].startswith("IncompleteSignatureException:")
    assert set(body) == {"message"}


CONVERSATIONS = {
    "assistant first": ([{"role": "assistant", "content": [{"text": "x"}]}], "must start with a user"),
    "not alternating": (HELLO + HELLO, "must alternate"),
    "empty content": ([{"role": "user", "content": []}], "is empty"),
    "blank text": ([{"role": "user", "content": [{"text": " "}]}], "is blank"),
    "result without use": (
        [*HELLO, {"role": "assistant", "content": [{"text": "ok"}]},
         {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "r"}]}}]}],
        "exceeds the number of toolUse blocks",
    ),
    "use without result": (
        [*HELLO, {"role": "assistant", "content": [tool_use("f", {}, "t1")]}, *HELLO],
        "Expected toolResult blocks at messages.2.content for the following Ids: t1",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CONVERSATIONS), ids=list(CONVERSATIONS))
async def test_conversations_bedrock_refuses_are_a_validation_exception(
    fake: FakeBedrock, case: str
) -> None:
    messages, message = CONVERSATIONS[case]
    status, headers, body = await post(fake, {"messages": messages})
    assert status == 400 and headers["x-amzn-ErrorType"].startswith("ValidationException:")
    assert message in body["message"]


async def test_tool_blocks_need_a_tool_config_and_the_shape_is_checked(fake: FakeBedrock) -> None:
    loop = [*HELLO, {"role": "assistant", "content": [tool_use("f", {}, "t1")]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "r"}]}}]}]  # fmt: skip
    status, _, body = await post(fake, {"messages": loop})
    assert status == 400 and "toolConfig field must be defined" in body["message"]
    tools = {"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object"}}}}]}
    status, _, body = await post(fake, {"messages": loop, "toolConfig": tools})
    assert status == 200 and body["output"]["message"]["content"] == [{"text": "Results: r"}]
    status, _, body = await post(fake, {"messages": HELLO, "inferenceConfig": {"temperature": 2}})
    assert status == 400 and "inferenceConfig.temperature: 2 outside 0..1" in body["message"]
    status, _, body = await post(fake, {"messages": HELLO, "stream": True})
    assert status == 400 and "body.stream: unknown member" in body["message"]


async def test_count_tokens(fake: FakeBedrock) -> None:
    status, _, body = await post(
        fake, {"input": {"converse": {"messages": HELLO}}}, action="count-tokens"
    )
    assert (status, body) == (200, {"inputTokens": 1})
