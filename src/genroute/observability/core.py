"""`Observability`: logs, metrics, traces and callbacks behind one Router hook.

    obs = Observability.from_config(config)          # None when everything is off
    router = Router(config=config, hooks=[obs.hook])

The hook's `before_call` starts the request span and installs a per-call upstream observer
(`genroute.providers.transport.upstream_observer`) that times each upstream HTTP request
into `ctx.upstream_seconds`, opens one child span per attempt and injects `traceparent`.
`after_call` builds one `CallRecord` and hands it to the log, the metrics and the callback
queues. The HTTP edge calls `edge_end` so that requests refused before the Router's hooks
ran (bad JSON, unknown model, a budget hook's refusal) are recorded too.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

from genroute.context import CallContext
from genroute.errors import GenrouteError
from genroute.observability.callbacks import Dispatcher, Sink, load_object
from genroute.observability.logs import RequestLog
from genroute.observability.metrics import CooldownSource, Metrics
from genroute.observability.records import Redactor, build_record, contents_text, finish_context
from genroute.config.observability import (
    JsonlCallback,
    ObjectCallback,
    ObservabilitySettings,
    WebhookCallback,
    tracing_wanted,
)
from genroute.providers.observe import upstream_observer

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from genroute.config import Config
    from genroute.observability.tracing import Tracing

log = logging.getLogger("genroute.observability")
MAX_LIVE_CALLS = 100_000


class _Call:
    """One call in flight: its request span and the observer of its upstream requests."""

    __slots__ = ("ctx", "request", "span", "tracing", "upstream_seconds")

    def __init__(
        self, ctx: CallContext, request: Any, span: Span | None, tracing: Tracing | None
    ) -> None:
        self.ctx = ctx
        self.request = request
        self.span = span
        self.tracing = tracing
        self.upstream_seconds = 0.0

    @contextmanager
    def upstream(self, url: str) -> Iterator[Mapping[str, str]]:
        ctx = self.ctx
        if ctx.finished_at is not None:  # a stale observer left in this task's context
            yield {}
            return
        started = time.perf_counter()
        try:
            if self.span is not None and self.tracing is not None:
                with self.tracing.attempt(self.span, ctx, url) as headers:
                    yield headers
            else:
                yield {}
        finally:
            # Kept apart: the Router may time its attempts into ctx.upstream_seconds itself.
            self.upstream_seconds += time.perf_counter() - started


class _Edge:
    """A request at the HTTP edge: whether the Router's hooks recorded it."""

    __slots__ = ("ctx", "otel_token", "recorded", "var_token")

    def __init__(self, ctx: CallContext, otel_token: object | None) -> None:
        self.ctx = ctx
        self.otel_token = otel_token
        self.recorded = False
        self.var_token: Token[_Edge | None] | None = None


_edge: ContextVar[_Edge | None] = ContextVar("genroute_edge_call", default=None)


class ObservabilityHook:
    """The CallHook that feeds every finished Router call to `Observability.finish`."""

    def __init__(self, obs: Observability) -> None:
        self._obs = obs
        self._live: dict[int, _Call] = {}

    async def before_call(self, ctx: CallContext, request: Any) -> None:
        obs = self._obs
        tracing = obs.tracing
        span = tracing.start_call(ctx, request) if tracing is not None else None
        call = _Call(ctx, request if obs.redactor is not None else None, span, tracing)
        if obs.redactor is not None:
            ctx.response_text = []  # the Router collects the answer's text
        if len(self._live) >= MAX_LIVE_CALLS:  # calls refused by a later hook never finish
            self._live.clear()
        self._live[id(ctx)] = call
        upstream_observer.set(call.upstream)

    async def after_call(self, ctx: CallContext, error: GenrouteError | None) -> None:
        call = self._live.pop(id(ctx), None)
        if call is not None and not ctx.upstream_seconds:
            ctx.upstream_seconds = call.upstream_seconds
        edge = _edge.get()
        if edge is not None and edge.ctx is ctx:
            edge.recorded = True
        self._obs.finish(ctx, call)

    def take(self, ctx: CallContext) -> _Call | None:
        """Forget a call the Router will not finish (refused by a later hook)."""
        return self._live.pop(id(ctx), None)

    async def aclose(self) -> None:
        """Flush and close every sink (called by `Router.aclose`)."""
        await self._obs.aclose()


class Observability:
    """The request log, metrics, tracing and callbacks of one gateway or SDK Router."""

    def __init__(
        self,
        *,
        logs: RequestLog | None = None,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
        callbacks: Dispatcher | None = None,
        redactor: Redactor | None = None,
        metrics_require_auth: bool = False,
    ) -> None:
        self.logs = logs
        self.metrics = metrics
        self.tracing = tracing
        self.callbacks = callbacks if callbacks is not None and callbacks.sinks else None
        self.redactor = redactor
        self.metrics_require_auth = metrics_require_auth
        self.hook = ObservabilityHook(self)
        self._closed = False

    @property
    def enabled(self) -> bool:
        """Whether any sink is on (else the hook need not be installed)."""
        return any(x is not None for x in (self.logs, self.metrics, self.tracing, self.callbacks))

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        cooldowns: CooldownSource | None = None,
        environ: Mapping[str, str] | None = None,
        server: bool = True,
    ) -> Observability:
        """Build from `observability:` and the LiteLLM keys; ConfigError for a bad callback."""
        return cls.from_settings(
            config.observability,
            litellm_settings=config.litellm_settings,
            cooldowns=cooldowns,
            environ=environ,
            server=server,
            source=config.source,
        )

    @classmethod
    def from_settings(
        cls,
        settings: ObservabilitySettings | Mapping[str, Any],
        *,
        litellm_settings: Any = None,
        cooldowns: CooldownSource | None = None,
        environ: Mapping[str, str] | None = None,
        server: bool = False,
        source: str = "observability",
    ) -> Observability:
        """Build from settings (or their dict), e.g. for an SDK Router's `hooks=[obs.hook]`."""
        if not isinstance(settings, ObservabilitySettings):
            settings = ObservabilitySettings.model_validate(dict(settings))
        if litellm_settings is None:
            from genroute.config import LitellmSettings

            litellm_settings = LitellmSettings()
        lite = litellm_settings
        env = os.environ if environ is None else environ
        logs = None
        if settings.logs.enabled:
            logs = RequestLog(settings.logs, json_logs=lite.json_logs)
        metrics = (
            Metrics(settings.metrics, cooldowns=cooldowns) if settings.metrics.enabled else None
        )
        tracing = None
        if tracing_wanted(settings.tracing.enabled, env):
            from opentelemetry.trace import SpanKind

            from genroute.observability.tracing import Tracing

            tracing = Tracing(request_kind=SpanKind.SERVER if server else SpanKind.INTERNAL)
        redactor = None
        if settings.logs.include_content and not lite.turn_off_message_logging:
            redactor = Redactor(settings.logs.redact_patterns, settings.logs.max_content_chars)
        sinks = build_sinks(settings, lite, env, metrics, source=source)
        return cls(
            logs=logs,
            metrics=metrics,
            tracing=tracing,
            callbacks=Dispatcher(sinks),
            redactor=redactor,
            metrics_require_auth=settings.metrics.require_auth,
        )

    @classmethod
    def for_callbacks(cls, callbacks: Sequence[Any], *, queue_size: int = 1000) -> Observability:
        """Callbacks only: what `Router(callbacks=[...])` installs."""
        sinks = [
            Sink(_name_of(cb), cb, queue_size=queue_size) for cb in callbacks if cb is not None
        ]
        return cls(callbacks=Dispatcher(sinks))

    # -- the HTTP edge ----------------------------------------------------------------------

    def edge_start(self, ctx: CallContext, headers: Sequence[tuple[bytes, bytes]]) -> _Edge:
        """At the edge, before the Router: honour an incoming `traceparent`."""
        token = self.tracing.attach_incoming(headers) if self.tracing is not None else None
        edge = _Edge(ctx, token)
        edge.var_token = _edge.set(edge)
        return edge

    def edge_end(
        self, edge: _Edge, error: BaseException | None, *, operation: str, model: str
    ) -> None:
        """After the edge handled a call: record it if the Router's hooks did not."""
        ctx = edge.ctx
        try:
            if not edge.recorded:
                if ctx.model_group is None:
                    ctx.operation, ctx.model_group = operation, model
                finish_context(ctx, error)
                call = self.hook.take(ctx)
                if call is None and self.tracing is not None:
                    call = _Call(ctx, None, self.tracing.start_call(ctx, None), self.tracing)
                self.finish(ctx, call)
        except Exception:
            log.exception("observability failed for request %s", ctx.request_id)
        finally:
            if edge.var_token is not None:
                _edge.reset(edge.var_token)
            if edge.otel_token is not None and self.tracing is not None:
                self.tracing.detach(edge.otel_token)

    # -- the end of every call --------------------------------------------------------------

    def finish(self, ctx: CallContext, call: _Call | None) -> None:
        """Feed a finished call to every sink."""
        span = call.span if call is not None else None
        if span is not None and self.tracing is not None:
            self.tracing.end_call(span, ctx)
        if self.metrics is not None:
            self.metrics.observe(ctx)
        if self.logs is None and self.callbacks is None:
            return
        record = build_record(ctx)
        if span is not None:
            sc = span.get_span_context()
            record.trace_id, record.span_id = f"{sc.trace_id:032x}", f"{sc.span_id:016x}"
        if self.redactor is not None and call is not None and call.request is not None:
            record.request_contents = self.redactor(contents_text(call.request))
            if ctx.response_text is not None:
                record.response_text = self.redactor("".join(ctx.response_text))
        if self.logs is not None:
            self.logs.write(record)
        if self.callbacks is not None:
            self.callbacks.emit(record)

    async def render_metrics(self) -> tuple[bytes, str] | None:
        """The /metrics exposition, or None when metrics are off."""
        if self.metrics is None:
            return None
        await self.metrics.refresh_cooldowns()
        return self.metrics.render()

    async def aclose(self) -> None:
        """Flush callbacks and traces, close files; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self.callbacks is not None:
            await self.callbacks.aclose()
        if self.tracing is not None:
            self.tracing.shutdown()
        if self.logs is not None:
            self.logs.close()
        if self.metrics is not None:
            self.metrics.process_exit()


def _name_of(target: Any) -> str:
    name = getattr(target, "__qualname__", None) or type(target).__qualname__
    return str(name)


def build_sinks(
    settings: ObservabilitySettings,
    lite: Any,
    env: Mapping[str, str],
    metrics: Metrics | None,
    *,
    source: str = "<config>",
) -> list[Sink]:
    """One Sink per configured callback (`observability.callbacks` and LiteLLM's keys)."""
    from genroute.config import ConfigError
    from genroute.observability.sinks import JsonlFile, Webhook

    specs: list[tuple[str, Any]] = [(s.events, s) for s in settings.callbacks]
    for key, events in (("callbacks", "all"), ("success_callback", "success")):
        specs += [(events, name) for name in getattr(lite, key)]
    specs += [("failure", name) for name in lite.failure_callback]
    sinks: list[Sink] = []
    for events, spec in specs:
        where = f"{source}: callback {spec if isinstance(spec, str) else spec.type}"
        try:
            name, target = _target(spec, env, JsonlFile, Webhook)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        sinks.append(
            Sink(
                name,
                target,
                events=events,
                queue_size=settings.callback_queue_size,
                timeout=settings.callback_timeout,
                on_drop=(lambda n: metrics.callback_dropped.labels(n).inc()) if metrics else None,
                on_error=(lambda n: metrics.callback_errors.labels(n).inc()) if metrics else None,
            )
        )
    return sinks


def _target(spec: Any, env: Mapping[str, str], jsonl: Any, webhook: Any) -> tuple[str, Any]:
    if isinstance(spec, JsonlCallback):
        return "jsonl", jsonl(spec.path)
    if isinstance(spec, WebhookCallback):
        return "webhook", webhook(
            spec.url,
            headers=spec.headers,
            batch_size=spec.batch_size,
            flush_interval=spec.flush_interval,
            timeout=spec.timeout,
        )
    path = spec.path if isinstance(spec, ObjectCallback) else spec
    if path == "jsonl":
        file = env.get("GENROUTE_CALLBACK_JSONL_PATH")
        if not file:
            raise ValueError(
                "set GENROUTE_CALLBACK_JSONL_PATH, or configure observability.callbacks"
            )
        return "jsonl", jsonl(file)
    if path in ("webhook", "generic_api"):
        url = env.get("GENROUTE_WEBHOOK_URL") or env.get("GENERIC_LOGGER_ENDPOINT")
        if not url:
            raise ValueError("set GENROUTE_WEBHOOK_URL (or GENERIC_LOGGER_ENDPOINT)")
        return "webhook", webhook(url)
    return path, load_object(path)
