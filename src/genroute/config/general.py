"""`general_settings` (master key, storage, request limits) and `litellm_settings`."""

from __future__ import annotations

from pydantic import Field, field_validator

from genroute.config.base import Strict
from genroute.config.cache import CacheParams
from genroute.config.observability import CallbackRefs

__all__ = ["DEFAULT_MAX_REQUEST_MB", "GeneralSettings", "LitellmSettings"]

DEFAULT_MAX_REQUEST_MB = 32.0


class GeneralSettings(Strict):
    """Gateway-wide settings: the master key, storage and request limits."""

    master_key: str | None = Field(default=None, repr=False)
    database_url: str | None = Field(default=None, repr=False)
    redis_url: str | None = Field(default=None, repr=False)
    spend_flush_interval: float = Field(default=1.0, gt=0)
    key_cache_ttl: float = Field(default=2.0, ge=0)
    max_request_size_mb: float = Field(default=DEFAULT_MAX_REQUEST_MB, gt=0)
    end_user_header: str = "x-genroute-end-user"
    # Slow and idle clients (`genroute serve`): seconds to send the request line and headers
    # (from the connection opening, or a kept-alive request's first byte; 408 and closed),
    # seconds to send the whole body (408 and closed), seconds a stream's client may take to
    # read a chunk (the stream and connection end), seconds a connection may stay idle
    # between requests; open connections per worker before requests get a 503; the listen
    # backlog.
    request_header_timeout: float = Field(default=10.0, gt=0)
    request_body_timeout: float = Field(default=60.0, gt=0)
    response_write_timeout: float = Field(default=60.0, gt=0)
    keep_alive_timeout: float = Field(default=5.0, gt=0)
    max_connections: int = Field(default=2048, ge=1)
    backlog: int = Field(default=4096, ge=1)
    # PostgreSQL connections per instance: a pool of database_pool_size, plus up to
    # database_max_overflow more under load (docs/scaling.md).
    database_pool_size: int = Field(default=10, ge=1)
    database_max_overflow: int = Field(default=10, ge=0)
    # Governance under faults (docs/keys-and-spend.md): seconds any database call may take;
    # seconds past key_cache_ttl a cached key, team or end-user row keeps serving while the
    # database cannot be reached; the directory of the spend journal and spool (default: a
    # `genroute-spool` directory next to the config file) and its size bound; the socket
    # timeout of governance's Redis client; the output tokens a budget holds for a model
    # whose output limit is unknown.
    database_timeout: float = Field(default=5.0, gt=0)
    key_cache_max_stale: float = Field(default=900.0, ge=0)
    spend_spool_dir: str | None = None
    spend_spool_max_mb: float = Field(default=256.0, gt=0)
    redis_socket_timeout: float = Field(default=0.5, gt=0)
    default_max_output_tokens: int = Field(default=65_536, ge=1)
    # Seconds an admin UI session (/ui, docs/ui.md) lasts after signing in.
    ui_session_ttl: float = Field(default=8 * 3600.0, ge=60)

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


class LitellmSettings(Strict):
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
    # The response cache (genroute.cache, docs/cache.md): on with `cache: true`.
    cache: bool = False
    cache_params: CacheParams = Field(default_factory=CacheParams)
