"""Prometheus metrics, served at `GET /metrics`.

Every metric is read from the finished call's `CallRecord`. Labels that can grow without bound
(model group, deployment, key alias, team, end user) keep their first N distinct values
(per worker, N from `observability.metrics.label_limits`); later values are counted as
`other`. Bounded labels can still multiply (groups x keys x end users), so each metric also
keeps at most `MAX_SERIES` label sets; beyond that, a call is counted in one series whose
every label is `other`. What `/metrics` renders is bounded whatever clients send.

With `genroute serve --workers N` the CLI sets `PROMETHEUS_MULTIPROC_DIR` (emptied at
start) before the workers start, and each scrape aggregates every worker's files.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from genroute.config.observability import MetricsSettings
from genroute.observability.records import CallRecord

__all__ = [
    "LATENCY_BUCKETS",
    "MAX_SERIES",
    "MULTIPROC_ENV",
    "OTHER",
    "OVERHEAD_BUCKETS",
    "BoundedLabel",
    "CooldownSource",
    "Metrics",
    "ValueSource",
    "router_cooldowns",
    "setup_multiprocess_dir",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
OTHER = "other"
MAX_SERIES = 2000  # label sets per metric, per worker
_AUTH_REASONS = {"API_KEY_MISSING", "API_KEY_INVALID"}  # genroute_auth_refused's reasons
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300, float("inf"))
OVERHEAD_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    float("inf"),
)

CooldownSource = Callable[[], Awaitable[Mapping[str, int]]]
ValueSource = Callable[[], Mapping[str, float]]


class BoundedLabel:
    """Keeps the first `limit` distinct values of a label; the rest read as `other`."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str | None) -> str:
        if not value:
            return ""
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) < self._limit:
                self._seen.add(value)
                return value
        return OTHER


class Metrics:
    """The gateway's metrics in a registry of their own (no process-wide state)."""

    def __init__(
        self, settings: MetricsSettings, *, cooldowns: CooldownSource | None = None
    ) -> None:
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry(auto_describe=True)
        self._cooldowns = cooldowns
        self._values: list[ValueSource] = []
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._series: dict[Any, int] = {}  # label sets made, per metric
        self._group = BoundedLabel(settings.limit("model_group"))
        self._deployment = BoundedLabel(settings.limit("deployment"))
        self._key = BoundedLabel(settings.limit("key_alias"))
        self._team = BoundedLabel(settings.limit("team_id"))
        self._user = BoundedLabel(settings.limit("end_user"))
        r = self.registry
        route = ["model_group", "deployment"]
        self.requests = Counter(
            "genroute_requests",
            "Requests by model group, deployment, HTTP status and error status.",
            [*route, "status_code", "error_status", "stream"],
            registry=r,
        )
        self.latency = Histogram(
            "genroute_request_latency_seconds",
            "Whole-request latency.",
            route,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "genroute_time_to_first_token_seconds",
            "Time to the first streamed chunk.",
            route,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.overhead = Histogram(
            "genroute_gateway_overhead_seconds",
            "Latency minus time spent waiting on upstreams.",
            ["model_group"],
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        who = ["model_group", "key_alias", "team_id", "end_user"]
        self.tokens = Counter(
            "genroute_tokens",
            "Tokens by model group, caller and direction (input/output).",
            [*who, "direction"],
            registry=r,
        )
        self.cost = Counter("genroute_cost_usd", "Spend in USD.", who, registry=r)
        self.retries = Counter(
            "genroute_retries",
            "Upstream attempts beyond the first, other than fallbacks.",
            ["model_group"],
            registry=r,
        )
        self.fallbacks = Counter(
            "genroute_fallbacks", "Fallbacks to another model group.", ["model_group"], registry=r
        )
        self.cooldown = Gauge(
            "genroute_deployments_in_cooldown",
            "Deployments currently cooling down, by model group.",
            ["model_group"],
            multiprocess_mode="livemax",
            registry=r,
        )
        self.cache = Counter(
            "genroute_cache_requests",
            "Calls the response cache had a part in, by result (hit, semantic-hit, miss).",
            ["model_group", "result"],
            registry=r,
        )
        self.cache_bytes = Counter(
            "genroute_cache_hit_bytes",
            "Bytes of cached answers served.",
            ["model_group"],
            registry=r,
        )
        self.cache_saved = Counter(
            "genroute_cache_saved_usd",
            "What the answers served from the cache cost when they were made (USD).",
            ["model_group"],
            registry=r,
        )
        self.callback_dropped = Counter(
            "genroute_callback_events_dropped",
            "Callback events dropped because the callback's queue was full.",
            ["callback"],
            registry=r,
        )
        self.callback_errors = Counter(
            "genroute_callback_errors",
            "Callback invocations that raised or timed out.",
            ["callback"],
            registry=r,
        )
        self.auth_refusals = Counter(
            "genroute_auth_refused",
            "Requests refused for a missing or unknown key (never ledger rows).",
            ["status_code", "reason"],
            registry=r,
        )

    def _child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, kept: prometheus-client's lookup takes a lock and
        several µs. A metric with `MAX_SERIES` label sets counts new ones as all `other`."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            made = self._series.get(metric, 0)
            if made >= MAX_SERIES:
                overflow = (OTHER,) * len(labels)
                if labels != overflow:
                    return self._child(metric, *overflow)
            self._series[metric] = made + 1
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe(self, record: CallRecord) -> None:
        """Count one finished call."""
        group = self._group(record.model_group)
        deployment = self._deployment(record.deployment_id)
        self._child(
            self.requests,
            group,
            deployment,
            str(record.status_code),
            record.error_status or "",
            "true" if record.stream else "false",
        ).inc()
        latency = record.latency_ms
        if latency is not None:
            self._child(self.latency, group, deployment).observe(latency / 1000)
            if record.overhead_ms is not None:
                self._child(self.overhead, group).observe(record.overhead_ms / 1000)
        ttft = record.time_to_first_token_ms
        if ttft is not None:
            self._child(self.ttft, group, deployment).observe(ttft / 1000)
        cost = record.cost
        if record.input_tokens is not None or record.output_tokens is not None or cost:
            who = (
                group,
                self._key(record.key_alias),
                self._team(record.team_id),
                self._user(record.end_user),
            )
            if record.input_tokens:
                self._child(self.tokens, *who, "input").inc(record.input_tokens)
            if record.output_tokens:
                self._child(self.tokens, *who, "output").inc(record.output_tokens)
            if cost:
                self._child(self.cost, *who).inc(cost)
        if record.cache is not None:
            self._cached(group, record)
        retries = record.attempts - 1 - len(record.fallbacks)
        if retries > 0:
            self._child(self.retries, group).inc(retries)
        if record.fallbacks:
            self._child(self.fallbacks, group).inc(len(record.fallbacks))

    def auth_refused(self, error: BaseException) -> None:
        """Count a request refused for a missing or unknown key, by status and reason
        (`API_KEY_MISSING`, `API_KEY_INVALID`: a bounded set of label values)."""
        code = getattr(error, "code", 0)
        reason = ""
        for detail in getattr(error, "details", None) or ():
            if isinstance(detail, dict) and detail.get("reason") in _AUTH_REASONS:
                reason = detail["reason"]
        self._child(self.auth_refusals, str(code), reason).inc()

    def _cached(self, group: str, record: CallRecord) -> None:
        self._child(self.cache, group, record.cache or "").inc()
        if record.cache_hit_bytes:
            self._child(self.cache_bytes, group).inc(record.cache_hit_bytes)
        if record.cache_saved_cost:
            self._child(self.cache_saved, group).inc(record.cache_saved_cost)

    def set_cooldown_source(self, source: CooldownSource | None) -> None:
        """Where `refresh_cooldowns` reads the number of cooling deployments per group."""
        self._cooldowns = source

    async def refresh_cooldowns(self) -> None:
        """Read the Router's cooldowns into the gauge (at scrape time)."""
        if self._cooldowns is None:
            return
        try:
            counts = await self._cooldowns()
        except Exception:  # a broken accessor must not break /metrics
            return
        for group, count in counts.items():
            self.cooldown.labels(self._group(group)).set(count)

    def process_exit(self) -> None:
        """In a multi-worker server, drop this worker's live gauges from the aggregate."""
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    def add_values(self, source: ValueSource) -> None:
        """Also export the values `source()` returns at each scrape (name → value; names
        ending `_total` are counters, the rest gauges): state other parts keep, such as
        the spend ledger's and the database's. In a multi-worker server they are the
        scraped worker's own."""
        self._values.append(source)

    def _value_families(self) -> list[Any]:
        families: list[Any] = []
        for source in self._values:
            try:
                values = source()
            except Exception:  # a broken source must not break /metrics
                continue
            for name, value in sorted(values.items()):
                if name.endswith("_total"):
                    family: Any = CounterMetricFamily(
                        name.removesuffix("_total"), name, value=value
                    )
                else:
                    family = GaugeMetricFamily(name, name, value=value)
                families.append(family)
        return families

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:
            registry = self.registry
        text = generate_latest(registry)
        if self._values:
            extra = CollectorRegistry(auto_describe=False)
            extra.register(_Families(self._value_families()))
            text += generate_latest(extra)
        return text, CONTENT_TYPE_LATEST


class _Families:
    """A collector that yields metric families made at scrape time."""

    def __init__(self, families: list[Any]) -> None:
        self._families = families

    def collect(self) -> Any:
        return iter(self._families)


def setup_multiprocess_dir(environ: MutableMapping[str, str] | None = None) -> str:
    """Before workers start: point `PROMETHEUS_MULTIPROC_DIR` at an empty directory.

    A directory the operator set is emptied of stale `.db` files (counted again otherwise);
    without one, a temporary directory is made and removed when this process exits.
    """
    env = os.environ if environ is None else environ
    path = env.get(MULTIPROC_ENV)
    if path:
        os.makedirs(path, exist_ok=True)
        for name in os.listdir(path):
            if name.endswith(".db"):
                os.unlink(os.path.join(path, name))
    else:
        path = tempfile.mkdtemp(prefix="genroute-metrics-")
        atexit.register(shutil.rmtree, path, True)
        env[MULTIPROC_ENV] = path
    return path


def router_cooldowns(router: Any) -> CooldownSource:
    """A cooldown source reading `Router.health()`: cooling deployments per model group."""

    async def read() -> Mapping[str, int]:
        report = await router.health()
        counts: dict[str, int] = {}
        for item in report.get("healthy_endpoints", []):
            counts.setdefault(item["model_group"], 0)
        for item in report.get("unhealthy_endpoints", []):
            counts[item["model_group"]] = counts.get(item["model_group"], 0) + 1
        return counts

    return read
