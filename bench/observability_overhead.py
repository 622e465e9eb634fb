"""What observability adds to one call, measured in process (run by hand, not a test).

    .venv/bin/python bench/observability_overhead.py [--calls 4000] [--rounds 5]

Each call goes through the real ASGI app, the pipeline (observed, metered, Router), the
Gemini provider, translation and `JsonTransport` (so the upstream observer, attempt spans
and `traceparent` injection are exercised); only the network is replaced, by a
`MockTransport` answering a canned 200 reply, so the numbers are the gateway's own CPU
time per call. Variants are interleaved round by round to cancel drift.
Prints p50/p99 per call and the p50 added over "off".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from opentelemetry.sdk.trace.export import (  # noqa: E402
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

from genroute.config import config_from_data  # noqa: E402
from genroute.observability import Observability  # noqa: E402
from genroute.observability.tracing import Tracing  # noqa: E402
from genroute.pipeline import build_pipeline  # noqa: E402
from genroute.providers.transport import HttpRequest, HttpResponse, MockTransport  # noqa: E402
from genroute.routing import Router  # noqa: E402
from genroute.server.app import GatewayApp  # noqa: E402

REPLY = json.dumps(
    {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": "Hi there!"}]}, "finishReason": "STOP"}
        ],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8},
        "modelVersion": "gemini-2.5-flash",
    }
).encode()
BODY = json.dumps({"contents": [{"role": "user", "parts": [{"text": "Hello"}]}]}).encode()
PATH = "/v1beta/models/flash:generateContent"


def _answer(request: HttpRequest) -> HttpResponse:
    return HttpResponse(200, {"content-type": "application/json"}, REPLY)


class _Drop(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _app(obs: Observability | None) -> GatewayApp:
    config = config_from_data(
        {
            "model_list": [
                {
                    "model_name": "flash",
                    "params": {
                        "model": "gemini/gemini-2.5-flash",
                        "api_key": "k",
                        "api_base": "http://upstream.invalid",
                    },
                }
            ]
        }
    )
    router = Router.from_config(config, allow_ad_hoc_models=False, transport=MockTransport(_answer))
    pipeline = build_pipeline(
        config, router=router, governance=False, observability=obs or Observability()
    )
    return GatewayApp(pipeline, config)


def _variants(tmp: str) -> dict[str, Callable[[], Observability | None]]:
    def obs(logs: bool, metrics: bool, tracing: bool, callback: bool = False) -> Observability:
        settings: dict[str, Any] = {
            "logs": {"enabled": logs, "destination": os.path.join(tmp, "requests.log")},
            "metrics": {"enabled": metrics},
            "tracing": {"enabled": False},
        }
        if callback:
            settings["callbacks"] = [{"type": "jsonl", "path": os.path.join(tmp, "cb.jsonl")}]
        o = Observability.from_settings(settings, environ={}, server=True)
        if tracing:
            o.tracing = Tracing(processor=BatchSpanProcessor(_Drop()))
        return o

    return {
        "off": lambda: None,
        "logs": lambda: obs(True, False, False),
        "metrics": lambda: obs(False, True, False),
        "tracing": lambda: obs(False, False, True),
        "logs+metrics+tracing": lambda: obs(True, True, True),
        "all+jsonl callback": lambda: obs(True, True, True, callback=True),
    }


async def _call(app: GatewayApp) -> None:
    scope = {
        "type": "http",
        "method": "POST",
        "path": PATH,
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    await app(scope, receive, send)


async def main(calls: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        variants = _variants(tmp)
        observers = {name: make() for name, make in variants.items()}
        built = {name: _app(obs) for name, obs in observers.items()}
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for app in built.values():  # warm up
            for _ in range(300):
                await _call(app)
        for _ in range(rounds):
            for name, app in built.items():
                times = samples[name]
                for _ in range(calls):
                    started = time.perf_counter()
                    await _call(app)
                    times.append(time.perf_counter() - started)
                    await asyncio.sleep(0)  # let callback workers run, as a server's I/O would
        for obs in observers.values():
            if obs is not None:
                await obs.aclose()
        base = statistics.median(samples["off"])
        print(f"{'variant':<22} {'p50 µs':>8} {'p99 µs':>8} {'added p50 µs':>13}")
        for name, times in samples.items():
            times.sort()
            p50 = statistics.median(times)
            p99 = times[int(len(times) * 0.99)]
            print(f"{name:<22} {p50 * 1e6:8.1f} {p99 * 1e6:8.1f} {(p50 - base) * 1e6:13.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(args.calls, args.rounds))
