"""Typed settings of the `observability:` config section, and the LiteLLM keys it reads.

    observability:
      logs:      {enabled, format: auto|json|text, destination: stdout|stderr|<path>,
                  include_content, redact_patterns, max_content_chars}
      metrics:   {enabled, require_auth: true, label_limits: {key_alias: 50, end_user: 50}}
      tracing:   {enabled: auto|true|false}      # auto: on when OTEL_EXPORTER_OTLP_* is set
      callbacks: ["module:object", {type: jsonl, path: ...}, {type: webhook, url: ...}]
      callback_queue_size: 1000

`litellm_settings.json_logs`, `callbacks`, `success_callback`, `failure_callback` and
`turn_off_message_logging` are read too (see `genroute.config.general`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

BUILTIN_CALLBACKS = frozenset({"jsonl", "webhook", "generic_api"})
_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def check_callback_ref(name: str) -> str:
    """A `module:object` path or a built-in callback name; anything else is refused."""
    name = name.strip()
    if name in BUILTIN_CALLBACKS or _REF.match(name):
        return name
    raise ValueError(
        f"callback {name!r} is not supported: give a `module:object` path to a genroute "
        f"callback, or one of the built-in names {', '.join(sorted(BUILTIN_CALLBACKS))} "
        "(LiteLLM's own integrations such as 'langfuse' are not available in genroute)"
    )


def _check_refs(value: list[str]) -> list[str]:
    return [check_callback_ref(v) for v in value]


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


CallbackRefs = Annotated[list[str], BeforeValidator(_as_list), AfterValidator(_check_refs)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class LogSettings(_Strict):
    """One structured record per request."""

    enabled: bool = True
    format: Literal["auto", "json", "text"] = "auto"
    destination: str = "stdout"
    include_content: bool = False
    redact_patterns: list[str] = Field(default_factory=list)
    max_content_chars: int = Field(default=4000, ge=0)

    @field_validator("redact_patterns")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"redact pattern {pattern!r} is not a valid regex: {exc}"
                ) from None
        return value


class MetricsSettings(_Strict):
    """Prometheus metrics at GET /metrics."""

    enabled: bool = True
    # The master key is needed (when one is configured): the metrics name key aliases, teams
    # and end users. `false` opens /metrics to a scraper that cannot send a key.
    require_auth: bool = True
    label_limits: dict[
        Literal["key_alias", "end_user", "team_id", "model_group", "deployment"], int
    ] = Field(default_factory=dict)

    def limit(self, label: str) -> int:
        """How many distinct values a label keeps before the rest become `other`."""
        defaults = {
            "key_alias": 50,
            "end_user": 50,
            "team_id": 50,
            "model_group": 200,
            "deployment": 200,
        }
        for name, limit in self.label_limits.items():
            if name == label:
                return limit
        return defaults.get(label, 50)


class TracingSettings(_Strict):
    """OpenTelemetry traces, exported over OTLP as the standard `OTEL_*` variables say."""

    enabled: Literal["auto"] | bool = "auto"


OTLP_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def tracing_wanted(setting: str | bool, environ: Mapping[str, str]) -> bool:
    """Whether to trace: `auto` means an OTLP endpoint is set and the SDK is not disabled."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if setting == "auto":
        if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
            return False
        return any(environ.get(name) for name in OTLP_ENDPOINT_VARS)
    return bool(setting)


class JsonlCallback(_Strict):
    """Append every record as a JSON line to a file."""

    type: Literal["jsonl"]
    path: str = Field(min_length=1)
    events: Literal["all", "success", "failure"] = "all"


class WebhookCallback(_Strict):
    """POST records in batches (a JSON array) to a URL."""

    type: Literal["webhook"]
    url: str = Field(min_length=1)
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    batch_size: int = Field(default=100, ge=1)
    flush_interval: float = Field(default=2.0, gt=0)
    timeout: float = Field(default=10.0, gt=0)
    events: Literal["all", "success", "failure"] = "all"


class ObjectCallback(_Strict):
    """A callback object or function named by its `module:object` path."""

    type: Literal["object"] = "object"
    path: Annotated[str, AfterValidator(check_callback_ref)]
    events: Literal["all", "success", "failure"] = "all"


CallbackSpec = Annotated[
    JsonlCallback | WebhookCallback | ObjectCallback, Field(discriminator="type")
]


class ObservabilitySettings(_Strict):
    """The `observability:` section."""

    logs: LogSettings = Field(default_factory=LogSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    callbacks: list[CallbackSpec] = Field(default_factory=list)
    callback_queue_size: int = Field(default=1000, ge=1)
    callback_timeout: float = Field(default=30.0, gt=0)

    @field_validator("callbacks", mode="before")
    @classmethod
    def _strings_are_paths(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"type": "object", "path": v} if isinstance(v, str) else v for v in value]
        return value


__all__ = [
    "BUILTIN_CALLBACKS",
    "CallbackRefs",
    "CallbackSpec",
    "JsonlCallback",
    "LogSettings",
    "MetricsSettings",
    "ObjectCallback",
    "ObservabilitySettings",
    "TracingSettings",
    "WebhookCallback",
    "check_callback_ref",
    "tracing_wanted",
]
