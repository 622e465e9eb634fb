"""`model_list` entries: how to reach a deployment (`params`) and what it is (`model_info`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from genroute.config.base import Strict

__all__ = ["DeploymentParams", "ModelEntry", "ModelInfo"]


class DeploymentParams(Strict):
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
    # AWS (bedrock/), LiteLLM's names. Unset: botocore's credential chain (the AWS_*
    # variables, the shared credentials and config files, SSO, container and instance roles).
    aws_access_key_id: str | None = Field(default=None, repr=False)
    aws_secret_access_key: str | None = Field(default=None, repr=False)
    aws_session_token: str | None = Field(default=None, repr=False)
    aws_region_name: str | None = None
    aws_profile_name: str | None = None
    aws_bedrock_runtime_endpoint: str | None = None  # LiteLLM's name; `api_base` wins
    # Google Vertex AI (vertex_ai/), LiteLLM's names: the project and region, and the
    # credentials (a service-account JSON file's path, or that JSON as a string or mapping).
    # Unset: $VERTEXAI_PROJECT / $VERTEXAI_LOCATION and application default credentials.
    vertex_project: str | None = None
    vertex_location: str | None = None
    vertex_credentials: str | dict[str, Any] | None = Field(default=None, repr=False)
    # Leave out what the provider cannot take instead of answering 400 (LiteLLM's name).
    # None: `litellm_settings.drop_params` decides.
    drop_params: bool | None = None


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
    cache_storage_cost_per_token_per_hour: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _only_known_extras(self) -> ModelInfo:
        for key, value in (self.model_extra or {}).items():
            if key.startswith("supports_"):
                if not isinstance(value, bool):
                    raise ValueError(f"{key} must be true or false")
                continue
            raise ValueError(f"unknown key {key!r}")
        return self


class ModelEntry(Strict):
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
