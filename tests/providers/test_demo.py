"""The demo provider: local and deterministic, behind the same model API as the others."""

from __future__ import annotations

from genroute.call import Operation
from genroute.providers.registry import build_provider
from genroute.providers.transport import MockTransport
from genroute.wire import (
    BatchEmbedContentsRequest,
    CountTokensRequest,
    EmbedContentRequest,
    GenerateContentRequest,
)
from tests.fakes.mock_http import call, spec

REQUEST = GenerateContentRequest.model_validate(
    {
        "contents": [{"role": "user", "parts": [{"text": "hello there"}]}],
        "generationConfig": {"maxOutputTokens": 5},
    }
)


def demo() -> tuple[object, MockTransport]:
    transport = MockTransport(lambda r: (_ for _ in ()).throw(AssertionError("no network")))
    return build_provider(spec("demo", "echo"), transport), transport


async def test_demo_answers_streams_and_counts_without_the_network() -> None:
    provider, transport = demo()
    whole = await provider.generate(call(), REQUEST)  # type: ignore[attr-defined]
    chunks = [c async for c in provider.stream(call(Operation.STREAM), REQUEST)]  # type: ignore[attr-defined]
    assert whole.text == "This is the genroute demo"
    assert "".join(c.text for c in chunks) == whole.text
    assert whole.candidates and whole.candidates[0].finish_reason == "MAX_TOKENS"
    counted = await provider.count_tokens(  # type: ignore[attr-defined]
        call(Operation.COUNT_TOKENS), CountTokensRequest(contents=REQUEST.contents)
    )
    assert counted.total_tokens == 2
    assert transport.requests == []


async def test_demo_embeddings_say_how_many_tokens_they_embedded() -> None:
    provider, _ = demo()
    one = EmbedContentRequest.model_validate({"content": {"parts": [{"text": "a b c"}]}})
    single = await provider.embed(call(Operation.EMBED), one)  # type: ignore[attr-defined]
    batch = await provider.batch_embed(  # type: ignore[attr-defined]
        call(Operation.BATCH_EMBED), BatchEmbedContentsRequest(requests=[one, one])
    )
    assert (single._input_tokens, batch._input_tokens) == (3, 6)
    assert batch.embeddings[0].values == single.embedding.values
