"""Observability: structured request logs, callbacks, OpenTelemetry traces, Prometheus metrics.

    logs.py       one JSON (or text) line per request
    callbacks.py  user callbacks on bounded queues, off the request path
    sinks.py      built-in callbacks: JSON-lines file, batching webhook
    tracing.py    GenAI-convention spans, OTLP export, traceparent in and out
    metrics.py    Prometheus metrics for GET /metrics (multi-worker aware)
    records.py    the CallRecord every sink shares
    settings.py   the typed `observability:` config section
    core.py       `Observability`, which ties them to a Router hook and the HTTP edge

See the README, "Logging and observability".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from genroute.observability.callbacks import Callback
    from genroute.observability.core import Observability, ObservabilityHook
    from genroute.observability.records import CallRecord
    from genroute.config.observability import ObservabilitySettings

__all__ = ["CallRecord", "Callback", "Observability", "ObservabilityHook", "ObservabilitySettings"]

_WHERE = {
    "Callback": "callbacks",
    "CallRecord": "records",
    "Observability": "core",
    "ObservabilityHook": "core",
    "ObservabilitySettings": "settings",
}


def __getattr__(name: str) -> Any:
    # Lazy, so that importing genroute (whose config reads `settings`) stays light.
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'genroute.observability' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"genroute.observability.{module}"), name)
