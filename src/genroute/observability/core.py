"""`Observability`: the request log, metrics, traces and callbacks of one gateway or Client.

    obs = Observability.from_config(config)
    api = Observed(inner, obs)                 # genroute.observability.layer

The observed layer calls `start` when a call begins (the request span) and `finish` when
it ends, however it ends; `finish` builds one `CallRecord` and hands it to the log, the
metrics, the trace and the callback queues. Calls the HTTP edge refuses before they reach
the pipeline (a malformed body, say) are recorded with `refused`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from genroute.call import Call
from genroute.config.observability import (
    JsonlCallback,
    ObjectCallback,
    ObservabilitySettings,
    WebhookCallback,
    tracing_wanted,
)
from genroute.errors import ConfigError
from genroute.observability.callbacks import Dispatcher, Sink, load_object
from genroute.observability.logs import RequestLog
from genroute.observability.metrics import CooldownSource, Metrics
from genroute.observability.recent import DEFAULT_RECENT_CALLS, RecentCalls
from genroute.observability.records import Redactor, build_record, contents_text

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from genroute.config import Config
    from genroute.observability.tracing import Tracing

__all__ = ["Observability", "build_sinks"]

log = logging.getLogger("genroute.observability")


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
        recent: RecentCalls | None = None,
    ) -> None:
        self.logs = logs
        self.recent = recent
        self.metrics = metrics
        self.tracing = tracing
        self.callbacks = callbacks if callbacks is not None and callbacks.sinks else None
        self.redactor = redactor
        self.metrics_require_auth = metrics_require_auth
        self._closed = False

    @property
    def enabled(self) -> bool:
        """Whether any sink is on (else the observed layer need not be installed)."""
        sinks = (self.logs, self.metrics, self.tracing, self.callbacks, self.recent)
        return any(x is not None for x in sinks)

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        cooldowns: CooldownSource | None = None,
        environ: Mapping[str, str] | None = None,
        server: bool = True,
    ) -> Observability:
        """Build from `observability:` and the LiteLLM keys; ConfigError for a bad callback.
        A gateway with a master key also keeps its recent calls for the admin UI."""
        ui = server and config.general_settings.master_key is not None
        return cls.from_settings(
            config.observability,
            litellm_settings=config.litellm_settings,
            cooldowns=cooldowns,
            environ=environ,
            server=server,
            source=config.source,
            recent_calls=DEFAULT_RECENT_CALLS if ui else 0,
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
        recent_calls: int = 0,
    ) -> Observability:
        """Build from settings (or their dict), e.g. for `genroute.Client(observability=...)`;
        `recent_calls`: how many finished calls to keep in memory (`RecentCalls`)."""
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
        recent = None
        if recent_calls > 0:
            recent = RecentCalls(recent_calls, content_logged=redactor is not None)
        return cls(
            logs=logs,
            metrics=metrics,
            tracing=tracing,
            callbacks=Dispatcher(sinks),
            redactor=redactor,
            metrics_require_auth=settings.metrics.require_auth,
            recent=recent,
        )

    @classmethod
    def for_callbacks(cls, callbacks: Sequence[Any], *, queue_size: int = 1000) -> Observability:
        """Callbacks only: what `genroute.Client(callbacks=[...])` installs."""
        observability = cls()
        observability.add_callbacks(callbacks, queue_size=queue_size)
        return observability

    def add_callbacks(self, callbacks: Sequence[Any], *, queue_size: int = 1000) -> None:
        """Also tell these callback objects (or functions) about every finished call."""
        sinks = [
            Sink(_name_of(cb), cb, queue_size=queue_size) for cb in callbacks if cb is not None
        ]
        if not sinks:
            return
        existing = self.callbacks.sinks if self.callbacks is not None else []
        self.callbacks = Dispatcher([*existing, *sinks])

    # -- the start and end of every call --------------------------------------------------

    def start(self, call: Call, request: Any) -> Span | None:
        """The call's request span (None when tracing is off)."""
        return self.tracing.start_call(call, request) if self.tracing is not None else None

    def finish(
        self,
        call: Call,
        error: BaseException | None,
        *,
        finished: float,
        span: Span | None = None,
        request: Any = None,
        response_text: str | None = None,
    ) -> None:
        """Feed a finished call to every sink; never raises."""
        try:
            self._finish(call, error, finished, span, request, response_text)
        except Exception:
            log.exception("observability failed for request %s", call.request_id)

    def _finish(
        self,
        call: Call,
        error: BaseException | None,
        finished: float,
        span: Span | None,
        request: Any,
        response_text: str | None,
    ) -> None:
        outputs = (self.metrics, self.logs, self.callbacks, self.recent, span)
        if all(x is None for x in outputs):
            return
        record = build_record(call, error, finished)
        if span is not None and self.tracing is not None:
            self.tracing.end_call(span, record, finished)
            sc = span.get_span_context()
            record.trace_id, record.span_id = f"{sc.trace_id:032x}", f"{sc.span_id:016x}"
        if self.metrics is not None:
            self.metrics.observe(record)
        if self.logs is None and self.callbacks is None and self.recent is None:
            return
        if self.redactor is not None:
            if request is not None and getattr(request, "contents", None) is not None:
                record.request_contents = self.redactor(contents_text(request))
            if response_text is not None:
                record.response_text = self.redactor(response_text)
        if self.logs is not None:
            self.logs.write(record)
        if self.callbacks is not None:
            self.callbacks.emit(record)
        if self.recent is not None:
            self.recent.add(record, call.route.attempts)

    def refused(self, call: Call, error: BaseException) -> None:
        """Record a call the edge refused before it reached the pipeline."""
        try:
            span = self.start(call, None)
        except Exception:
            span = None
        self.finish(call, error, finished=time.perf_counter(), span=span)

    def auth_refused(self, error: BaseException) -> None:
        """Count a request refused for a missing or unknown key (metrics only: no log
        line, no ledger row, whatever the volume)."""
        if self.metrics is not None:
            self.metrics.auth_refused(error)

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
