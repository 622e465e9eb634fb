"""langchain-google-genai (ChatGoogleGenerativeAI, GoogleGenerativeAIEmbeddings) against a
genroute gateway, and the google-genai 2.x stream it reads, chunk by chunk; see checks.py
and tests/server/test_python_clients_e2e.py for the groups it names."""

from __future__ import annotations

from typing import Any

from checks import args, record_http, run
from google import genai
from google.oauth2.credentials import Credentials
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_google_genai import ChatGoogleGenerativeAI, GoogleGenerativeAIEmbeddings

ARGS = args()
URL, KEY = ARGS["url"], ARGS["key"]
record_http()


def chat(model: str, **options: Any) -> ChatGoogleGenerativeAI:
    options.setdefault("google_api_key", KEY)
    return ChatGoogleGenerativeAI(model=model, base_url=URL, max_retries=0, **options)


def invoke_and_stream(llm: ChatGoogleGenerativeAI, prompt: str) -> dict[str, Any]:
    reply = llm.invoke(prompt)
    total = None
    for chunk in llm.stream(f"stream {prompt}"):
        total = chunk if total is None else total + chunk
    assert total is not None
    return {
        "text": reply.text,
        "usage": reply.usage_metadata,
        "stream_text": total.text,
        "stream_usage": total.usage_metadata,
        "stream_finish": total.response_metadata.get("finish_reason"),
    }


def raw_chunks(model: str) -> list[dict[str, Any]]:
    """Every chunk as code written against Gemini reads it: candidates[0].content.parts."""
    client = genai.Client(api_key=KEY, http_options={"base_url": URL})
    seen = []
    for chunk in client.models.generate_content_stream(model=model, contents="lc raw chunks"):
        candidate = chunk.candidates[0]  # type: ignore[index]
        seen.append(
            {
                "role": candidate.content.role,  # type: ignore[union-attr]
                "parts": [p.text for p in candidate.content.parts],  # type: ignore[union-attr]
                "finish": candidate.finish_reason,
                "usage": chunk.usage_metadata.total_token_count if chunk.usage_metadata else None,
            }
        )
    return seen


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def tool_loop() -> dict[str, Any]:
    llm = chat("gpt-group").bind_tools([get_weather], tool_choice="get_weather")
    question = HumanMessage("What is the weather in Paris?")
    first = llm.invoke([question])
    call = first.tool_calls[0]  # type: ignore[attr-defined]
    answer = chat("gpt-group").invoke(
        [question, first, ToolMessage(get_weather(**call["args"]), tool_call_id=call["id"])]
    )
    return {"call": {"name": call["name"], "args": call["args"]}, "answer": answer.text}


def vertex_project() -> dict[str, Any]:
    llm = chat(
        "claude-group",
        vertexai=True,
        project="my-project",
        location="us-central1",
        credentials=Credentials(token=KEY),
        google_api_key=None,
    )
    return invoke_and_stream(llm, "lc vertex")


run(
    {
        # gemini-* names are served by gpt-4o: the client's thinking config must not break it.
        "wildcard_thinking": lambda: invoke_and_stream(
            chat("gemini-3-pro-preview", thinking_budget=1024, temperature=0.2), "lc wildcard"
        ),
        "reasoner_temperature": lambda: invoke_and_stream(
            chat("reasoner", thinking_level="low", temperature=0.2), "lc reasoner"
        ),
        "stream_openai": lambda: invoke_and_stream(chat("gpt-group"), "lc openai"),
        "stream_anthropic": lambda: invoke_and_stream(chat("claude-group"), "lc anthropic"),
        "chunks_openai": lambda: raw_chunks("gpt-group"),
        "chunks_anthropic": lambda: raw_chunks("claude-group"),
        "tool_loop": tool_loop,
        "embeddings": lambda: [
            len(v)
            for v in GoogleGenerativeAIEmbeddings(
                model="embedder", google_api_key=KEY, base_url=URL
            ).embed_documents(["first text", "second text"])
        ],
        "vertex_project": vertex_project,
        "vertex_express": lambda: invoke_and_stream(chat("gpt-group", vertexai=True), "lc express"),
    }
)
