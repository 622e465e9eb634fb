"""pydantic-ai (GoogleModel, GoogleProvider) against a genroute gateway: agent runs, streams,
typed output (a forced `final_result` tool), a tool loop, thinking settings and Vertex
mode; see checks.py and tests/server/test_python_clients_e2e.py for the groups it names.

The tool loops run first: the test scripts the fake upstreams' first answers to call
`weather`."""

from __future__ import annotations

import asyncio
from typing import Any

from checks import args, record_http, run
from google import genai
from google.oauth2.credentials import Credentials
from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.models.google import GoogleModel, GoogleModelSettings
from pydantic_ai.providers.google import GoogleProvider

ARGS = args()
URL, KEY = ARGS["url"], ARGS["key"]
record_http()
PROVIDER = GoogleProvider(api_key=KEY, base_url=URL)
THINKING = GoogleModelSettings(
    temperature=0.2, top_p=0.9, google_thinking_config={"thinking_budget": 2048}
)


class City(BaseModel):
    name: str
    population: int


def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def model(name: str, provider: GoogleProvider = PROVIDER) -> GoogleModel:
    return GoogleModel(name, provider=provider)


async def tool_loop(name: str) -> dict[str, Any]:
    result = await Agent(model(name), tools=[weather]).run("What is the weather in Paris?")
    returns = [
        part.content
        for message in result.all_messages()
        for part in message.parts
        if part.part_kind == "tool-return"
    ]
    return {"output": result.output, "tool_returns": returns}


async def run_and_stream(agent: Agent[None, str], prompt: str) -> dict[str, Any]:
    result = await agent.run(prompt)
    async with agent.run_stream(f"stream {prompt}") as streamed:
        deltas = [d async for d in streamed.stream_text(delta=True)]
        usage = streamed.usage
    return {
        "output": result.output,
        "output_tokens": result.usage.output_tokens,
        "stream": "".join(deltas),
        "stream_output_tokens": usage.output_tokens,
    }


async def typed(name: str) -> dict[str, Any]:
    result = await Agent(model(name), output_type=City).run("Name a city.")
    return result.output.model_dump()


async def vertex() -> dict[str, Any]:
    client = genai.Client(
        vertexai=True,
        project="my-project",
        location="us-central1",
        credentials=Credentials(token=KEY),
        http_options={"base_url": URL},
    )
    return await run_and_stream(
        Agent(model("claude-group", GoogleProvider(client=client))), "pa vx"
    )


def sync(coroutine: Any) -> Any:
    return lambda: asyncio.run(coroutine())


run(
    {
        "tool_loop_openai": sync(lambda: tool_loop("gpt-group")),
        "tool_loop_anthropic": sync(lambda: tool_loop("claude-group")),
        # gemini-* names are served by gpt-4o: thinking and sampling settings must not break it.
        "wildcard_thinking": sync(
            lambda: run_and_stream(Agent(model("gemini-2.5-pro"), model_settings=THINKING), "pa wc")
        ),
        "reasoner_settings": sync(
            lambda: run_and_stream(Agent(model("reasoner"), model_settings=THINKING), "pa o4")
        ),
        "stream_openai": sync(lambda: run_and_stream(Agent(model("gpt-group")), "pa openai")),
        "stream_anthropic": sync(lambda: run_and_stream(Agent(model("claude-group")), "pa claude")),
        "typed_openai": sync(lambda: typed("gpt-group")),
        "typed_anthropic": sync(lambda: typed("claude-group")),
        "vertex": sync(vertex),
    }
)
