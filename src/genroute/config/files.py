"""The `files` section (where uploaded files are kept, and their limits) and the
`cached_contents` section (Gemini's context caches, for every group).

    cached_contents:
      min_tokens: 1024                # default: Gemini's (4096 for *pro* models, else 1024)
      default_ttl_seconds: 3600       # when a create gives neither ttl nor expireTime

and the `batches` section (batch jobs, which genroute runs itself):

    batches:
      mode: genroute                  # genroute runs batches ("provider" is not available yet)
      concurrency: 4                  # requests of batches in flight per instance
      busy_concurrency: 1             # ... while any interactive call is in flight on it
      rate_limit_retries: 10          # a rate-limited request is put back this often
      max_backoff_seconds: 60         # the longest pause after a rate-limited request
      max_requests: 10000             # per batch
      lease_seconds: 30               # an instance that stops holds a batch this long
      poll_interval: 1.0              # seconds between looks for work

    files:
      storage: local                  # local (a directory) or s3 (S3-compatible storage)
      directory: /var/lib/genroute/files   # local: default `genroute-files` next to the config
      s3:                             # storage: s3
        bucket: genroute-files
        prefix: files/
        endpoint_url: http://127.0.0.1:9000   # MinIO, Ceph, R2...; default AWS's
        region: us-east-1
        access_key_id: os.environ/AWS_ACCESS_KEY_ID         # default: botocore's chain
        secret_access_key: os.environ/AWS_SECRET_ACCESS_KEY
      max_file_size_mb: 2048          # per file (Gemini's own limit is 2 GB)
      allowed_mime_types: ["*"]       # patterns: ["image/*", "application/pdf", "text/*"]
      ttl_hours: 48                   # a file's life, as on Gemini
      max_inline_mb: 20               # the most sent inline to a provider without a Files API
      gemini_inline_max_mb: 1         # Gemini deployments: inline up to this, else uploaded
      upstream_processing_wait_seconds: 30   # the most a call waits for such an upload to
                                      # leave PROCESSING (videos), else a 400 to retry

Every instance of a gateway must see the same bytes: with several instances, use `s3`
(the metadata is in the database, shared already).
"""

from __future__ import annotations

import fnmatch
from typing import Literal

from pydantic import Field, field_validator, model_validator

from genroute.config.base import Strict

__all__ = ["BatchesSettings", "CachedContentsSettings", "FilesSettings", "S3Settings"]

MB = 1024 * 1024


class S3Settings(Strict):
    """An S3-compatible bucket (AWS S3, MinIO, Ceph, R2, ...)."""

    bucket: str = Field(min_length=3, max_length=63)
    prefix: str = ""
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = Field(default=None, repr=False)
    secret_access_key: str | None = Field(default=None, repr=False)
    session_token: str | None = Field(default=None, repr=False)
    addressing_style: Literal["path", "virtual"] = "path"
    part_size_mb: float = Field(default=8.0, ge=5.0, le=512.0)
    timeout: float = Field(default=60.0, gt=0)

    @field_validator("endpoint_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("endpoint_url must be an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _both_keys(self) -> S3Settings:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError(
                "access_key_id and secret_access_key go together (or leave both out for "
                "botocore's credential chain)"
            )
        return self


class FilesSettings(Strict):
    """Uploaded files: storage, size and type limits, lifetime, how providers get them."""

    storage: Literal["local", "s3"] = "local"
    directory: str | None = None
    s3: S3Settings | None = None
    max_file_size_mb: float = Field(default=2048.0, gt=0)
    allowed_mime_types: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    ttl_hours: float = Field(default=48.0, gt=0)
    max_inline_mb: float = Field(default=20.0, gt=0)
    gemini_inline_max_mb: float = Field(default=1.0, ge=0)
    upstream_processing_wait_seconds: float = Field(default=30.0, ge=0)

    @model_validator(mode="after")
    def _s3_when_chosen(self) -> FilesSettings:
        if self.storage == "s3" and self.s3 is None:
            raise ValueError("storage: s3 needs an s3 section (bucket, endpoint_url, ...)")
        return self

    @field_validator("allowed_mime_types")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if "/" not in pattern and pattern != "*":
                raise ValueError(f"{pattern!r} is not a MIME type pattern (e.g. image/*)")
        return [p.lower() for p in value]

    @property
    def max_file_bytes(self) -> int:
        """The size limit of one file, in bytes."""
        return int(self.max_file_size_mb * MB)

    @property
    def max_inline_bytes(self) -> int:
        """The most sent inline to a provider that has no Files API."""
        return int(self.max_inline_mb * MB)

    @property
    def gemini_inline_bytes(self) -> int:
        """The most sent inline to a Gemini deployment (larger files are uploaded)."""
        return int(self.gemini_inline_max_mb * MB)

    def allows(self, mime_type: str) -> bool:
        """Whether files of this MIME type may be uploaded."""
        mime = mime_type.split(";")[0].strip().lower()
        return any(fnmatch.fnmatchcase(mime, p) for p in self.allowed_mime_types)


class CachedContentsSettings(Strict):
    """Cached contents: the smallest one that may be made, and the default lifetime."""

    min_tokens: int | None = Field(default=None, ge=0)
    default_ttl_seconds: float = Field(default=3600.0, gt=0)

    def minimum(self, model: str) -> int:
        """The fewest tokens a cache for `model` may hold (Gemini's own minimums)."""
        if self.min_tokens is not None:
            return self.min_tokens
        return 4096 if "pro" in model.lower() else 1024


class BatchesSettings(Strict):
    """Batch jobs: how many requests run at once (fewer while clients wait), how they back
    off when rate limited, how large a batch may be, the lease."""

    enabled: bool = True
    mode: str = "genroute"  # who runs batches: genroute, through the pipeline
    concurrency: int = Field(default=4, ge=1, le=256)
    busy_concurrency: int = Field(default=1, ge=0, le=256)
    rate_limit_retries: int = Field(default=10, ge=0)
    max_backoff_seconds: float = Field(default=60.0, ge=0)
    max_requests: int = Field(default=10_000, ge=1)
    lease_seconds: float = Field(default=30.0, ge=1)
    poll_interval: float = Field(default=1.0, gt=0)

    @field_validator("mode")
    @classmethod
    def _genroute_runs_them(cls, value: str) -> str:
        if value == "provider":
            raise ValueError(
                "'provider' (the providers' own batch APIs, Gemini's and OpenAI's, at their "
                "discount) is not available yet: genroute runs every batch itself through "
                "the pipeline for every model group (mode: genroute, the default), priced at "
                "the deployments' interactive rates; leave mode out"
            )
        if value != "genroute":
            raise ValueError(f"{value!r} is not a batch mode: genroute is the one there is")
        return value

    @model_validator(mode="after")
    def _busy_below_concurrency(self) -> BatchesSettings:
        if self.busy_concurrency > self.concurrency:
            raise ValueError(
                f"busy_concurrency ({self.busy_concurrency}) is more than concurrency "
                f"({self.concurrency}): it is the smaller limit used while clients wait"
            )
        return self
