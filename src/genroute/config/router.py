"""`router_settings`: how the Router picks, retries, cools down and falls back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import quote

from pydantic import Field, field_validator, model_validator

from genroute.config.base import Strict

__all__ = ["FallbackMap", "RouterSettings", "RoutingStrategy", "RoutingStrategyArgs"]


RoutingStrategy = Literal[
    "simple-shuffle",
    "least-busy",
    "latency-based-routing",
    "usage-based-routing",
    "usage-based-routing-v2",
]
FallbackMap = list[dict[str, list[str]]]


class RoutingStrategyArgs(Strict):
    """Tuning for the strategies (LiteLLM's `routing_strategy_args`)."""

    lowest_latency_buffer: float = Field(default=0.0, ge=0)


class RouterSettings(Strict):
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
    # Retries allowed per group: under this share of its recent calls, plus a floor.
    retry_budget_percent: float = Field(default=20.0, ge=0)
    retry_budget_min_retries: int = Field(default=10, ge=0)
    retry_budget_window: float = Field(default=10.0, gt=0)
    disable_retry_budget: bool = False
    # The largest upstream reply read (a stream's largest event), in MB.
    max_response_size_mb: float = Field(default=64.0, gt=0)
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
