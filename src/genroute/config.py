"""Typed configuration, loaded and validated once at start-up.

The YAML layout is LiteLLM's: `model_list` (each entry `model_name`, `params` or its alias
`litellm_params`, and `model_info`), `router_settings`, `general_settings`,
`litellm_settings` and `environment_variables`. Any string of the form `os.environ/NAME`
is read from the environment. Every problem is reported as a `ConfigError` that names the
key and where it is, e.g. `config.yaml: model_list[1].params.api_kye: unknown key`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from genroute.observability.settings import CallbackRefs, ObservabilitySettings
from genroute.wire.base import format_validation_error

ENV_PREFIX = "os.environ/"
DEFAULT_MAX_REQUEST_MB = 32.0


class ConfigError(Exception):
    """The configuration is invalid; the message names the key and its place."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), validate_by_name=True)


class DeploymentParams(_Strict):
    """How to reach one deployment: `params` (or `litellm_params`) of a model_list entry."""

    model: str = Field(min_length=1)
    api_key: str | None = Field(default=None, repr=False)
    api_base: str | None = None
    api_version: str | None = None
    timeout: float | None = Field(default=None, gt=0)
    stream_timeout: float | None = Field(default=None, gt=0)
    rpm: int | None = Field(default=None, ge=0)
    tpm: int | None = Field(default=None, ge=0)
    weight: float | None = Field(default=None, ge=0)
    order: int | None = None
    max_parallel_requests: int | None = Field(default=None, ge=1)
    num_retries: int | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=1)
    organization: str | None = None
    extra_headers: dict[str, str] | None = None


class ModelInfo(BaseModel):
    """Facts about a deployment: limits, prices and capability flags (`supports_*`)."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    id: str | None = None
    mode: Literal["chat", "completion", "embedding"] | None = None
    base_model: str | None = None
    description: str | None = None
    display_name: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_input_tokens: int | None = Field(default=None, ge=1)
    max_output_tokens: int | None = Field(default=None, ge=1)
    input_cost_per_token: float | None = Field(default=None, ge=0)
    output_cost_per_token: float | None = Field(default=None, ge=0)
    cache_read_input_token_cost: float | None = Field(default=None, ge=0)
    cache_creation_input_token_cost: float | None = Field(default=None, ge=0)
    output_cost_per_reasoning_token: float | None = Field(default=None, ge=0)
    input_cost_per_token_above_200k_tokens: float | None = Field(default=None, ge=0)
    output_cost_per_token_above_200k_tokens: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _only_known_extras(self) -> ModelInfo:
        for key, value in (self.model_extra or {}).items():
            if key.startswith("supports_"):
                if not isinstance(value, bool):
                    raise ValueError(f"{key} must be true or false")
                continue
            raise ValueError(f"unknown key {key!r}")
        return self


class ModelEntry(_Strict):
    """One deployment in `model_list`; entries sharing a `model_name` form a group."""

    model_name: str = Field(min_length=1)
    params: DeploymentParams = Field(validation_alias=AliasChoices("params", "litellm_params"))
    model_info: ModelInfo = Field(default_factory=ModelInfo)

    @model_validator(mode="before")
    @classmethod
    def _one_params_key(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "params" in data and "litellm_params" in data:
            raise ValueError("give either params or litellm_params, not both")
        return data


RoutingStrategy = Literal[
    "simple-shuffle",
    "least-busy",
    "latency-based-routing",
    "usage-based-routing",
    "usage-based-routing-v2",
]
FallbackMap = list[dict[str, list[str]]]


class RoutingStrategyArgs(_Strict):
    """Tuning for the strategies (LiteLLM's `routing_strategy_args`)."""

    lowest_latency_buffer: float = Field(default=0.0, ge=0)


class RouterSettings(_Strict):
    """How the Router picks, retries, cools down and falls back; see the README, "Router"."""

    routing_strategy: RoutingStrategy = "simple-shuffle"
    routing_strategy_args: RoutingStrategyArgs = Field(default_factory=RoutingStrategyArgs)
    model_group_alias: dict[str, str] = Field(default_factory=dict)
    timeout: float | None = Field(default=None, gt=0)
    stream_timeout: float | None = Field(default=None, gt=0)
    num_retries: int = Field(default=0, ge=0)
    retry_after: float = Field(default=0.0, ge=0)
    retry_backoff_base: float = Field(default=0.5, gt=0)
    max_retry_backoff: float = Field(default=8.0, ge=0)
    fallbacks: FallbackMap = Field(default_factory=list)
    default_fallbacks: list[str] = Field(default_factory=list)
    context_window_fallbacks: FallbackMap = Field(default_factory=list)
    content_policy_fallbacks: FallbackMap = Field(default_factory=list)
    max_fallbacks: int = Field(default=5, ge=0)
    allowed_fails: int = Field(default=3, ge=0)
    allowed_fails_window: float = Field(default=60.0, gt=0)
    cooldown_time: float = Field(default=5.0, ge=0)
    disable_cooldowns: bool = False
    redis_url: str | None = Field(default=None, repr=False)
    redis_host: str | None = None
    redis_port: int = Field(default=6379, ge=1, le=65535)
    redis_password: str | None = Field(default=None, repr=False)
    redis_key_prefix: str = Field(default="genroute:router", min_length=1)
    redis_socket_timeout: float = Field(default=0.5, gt=0)
    redis_reconnect_interval: float = Field(default=5.0, gt=0)

    @field_validator(
        "fallbacks", "context_window_fallbacks", "content_policy_fallbacks", mode="before"
    )
    @classmethod
    def _fallback_lists(cls, value: Any) -> Any:
        # LiteLLM's shape: [{"group": ["fallback", ...]}]; a single name may stand alone.
        if isinstance(value, list):
            return [
                {k: [v] if isinstance(v, str) else v for k, v in item.items()}
                if isinstance(item, Mapping)
                else item
                for item in value
            ]
        return value

    @model_validator(mode="after")
    def _one_redis_address(self) -> RouterSettings:
        if self.redis_url and self.redis_host:
            raise ValueError("give either redis_url or redis_host, not both")
        return self

    def redis_connection_url(self) -> str | None:
        """The Redis URL for shared router state: `redis_url`, else one built from host/port."""
        if self.redis_url:
            return self.redis_url
        if not self.redis_host:
            return None
        auth = f":{quote(self.redis_password, safe='')}@" if self.redis_password else ""
        return f"redis://{auth}{self.redis_host}:{self.redis_port}/0"

    @field_validator("model_group_alias", mode="before")
    @classmethod
    def _alias_targets(cls, value: Any) -> Any:
        # LiteLLM also allows {"alias": {"model": "group", "hidden": true}}.
        if isinstance(value, Mapping):
            return {k: (v.get("model") if isinstance(v, Mapping) else v) for k, v in value.items()}
        return value


class GeneralSettings(_Strict):
    """Gateway-wide settings: the master key, storage and request limits."""

    master_key: str | None = Field(default=None, repr=False)
    database_url: str | None = Field(default=None, repr=False)
    redis_url: str | None = Field(default=None, repr=False)
    spend_flush_interval: float = Field(default=1.0, gt=0)
    key_cache_ttl: float = Field(default=2.0, ge=0)
    max_request_size_mb: float = Field(default=DEFAULT_MAX_REQUEST_MB, gt=0)
    end_user_header: str = "x-genroute-end-user"

    @field_validator("master_key")
    @classmethod
    def _master_key_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("master_key must not be empty")
        return value

    @property
    def max_request_bytes(self) -> int:
        """The body size limit in bytes."""
        return int(self.max_request_size_mb * 1024 * 1024)


class LitellmSettings(_Strict):
    """The part of LiteLLM's `litellm_settings` that genroute honours."""

    request_timeout: float | None = Field(default=None, gt=0)
    set_verbose: bool = False
    drop_params: bool | None = None
    # Observability (genroute.observability): JSON request logs and callbacks.
    json_logs: bool | None = None
    turn_off_message_logging: bool | None = None
    callbacks: CallbackRefs = Field(default_factory=list)
    success_callback: CallbackRefs = Field(default_factory=list)
    failure_callback: CallbackRefs = Field(default_factory=list)


class Config(_Strict):
    """The whole configuration."""

    model_list: list[ModelEntry] = Field(default_factory=list)
    router_settings: RouterSettings = Field(default_factory=RouterSettings)
    general_settings: GeneralSettings = Field(default_factory=GeneralSettings)
    litellm_settings: LitellmSettings = Field(default_factory=LitellmSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    environment_variables: dict[str, str] = Field(default_factory=dict)
    source: str = Field(default="<built-in>", exclude=True)

    @model_validator(mode="after")
    def _aliases_point_at_groups(self) -> Config:
        names = {entry.model_name for entry in self.model_list}
        for alias, target in self.router_settings.model_group_alias.items():
            if target not in names:
                raise ValueError(
                    f"router_settings.model_group_alias.{alias}: no model_name {target!r} in model_list"
                )
        return self


def _path_text(path: list[str | int]) -> str:
    text = ""
    for item in path:
        text += f"[{item}]" if isinstance(item, int) else (f".{item}" if text else str(item))
    return text


def resolve_env(node: Any, environ: Mapping[str, str], path: list[str | int]) -> Any:
    """Replace every `os.environ/NAME` string with the variable's value."""
    if isinstance(node, str) and node.startswith(ENV_PREFIX):
        name = node[len(ENV_PREFIX) :]
        if name not in environ:
            raise ConfigError(
                f"{_path_text(path)}: environment variable {name} is not set "
                f"(the config asks for it with {node!r})"
            )
        return environ[name]
    if isinstance(node, Mapping):
        return {k: resolve_env(v, environ, [*path, str(k)]) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve_env(v, environ, [*path, i]) for i, v in enumerate(node)]
    return node


def config_from_data(
    data: Any, *, source: str = "<data>", environ: Mapping[str, str] | None = None
) -> Config:
    """Validate already-parsed YAML/JSON data into a Config."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    env: dict[str, str] = dict(os.environ if environ is None else environ)
    extra_env = data.get("environment_variables") or {}
    if isinstance(extra_env, Mapping):
        for key, value in extra_env.items():
            env.setdefault(str(key), str(value))
    try:
        resolved = resolve_env(dict(data), env, [])
        return Config.model_validate({**resolved, "source": source})
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except ValidationError as exc:
        problems = format_validation_error(exc, camel=False).split("; ")
        raise ConfigError("\n".join(f"{source}: {p}" for p in problems)) from None


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate a YAML config file; raises ConfigError naming any bad key."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the config file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from None
    config = config_from_data(data, source=str(file), environ=environ)
    for key, value in config.environment_variables.items():
        os.environ.setdefault(key, value)
    return config
