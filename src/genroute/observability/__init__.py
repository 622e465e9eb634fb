"""Observability: structured request logs, callbacks, OpenTelemetry traces, Prometheus metrics.

    logs.py       one JSON (or text) line per request
    callbacks.py  user callbacks on bounded queues, off the request path
    sinks.py      built-in callbacks: JSON-lines file, batching webhook
    tracing.py    GenAI-convention spans, OTLP export, traceparent in and out
    metrics.py    Prometheus metrics for GET /metrics (multi-worker aware)
    records.py    the CallRecord every sink shares
    core.py       `Observability`, which ties them together
    layer.py      `Observed`, the pipeline layer that records every call

The settings of the `observability:` config section are in `genroute.config.observability`.

See docs/observability.md.
"""

from __future__ import annotations

from genroute.config.observability import ObservabilitySettings
from genroute.observability.callbacks import Callback
from genroute.observability.core import Observability
from genroute.observability.layer import Observed
from genroute.observability.records import CallRecord

__all__ = ["CallRecord", "Callback", "Observability", "ObservabilitySettings", "Observed"]
