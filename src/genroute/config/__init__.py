"""Typed configuration, loaded and validated once at start-up.

The YAML layout is LiteLLM's: `model_list` (each entry `model_name`, `params` or its alias
`litellm_params`, and `model_info`), `router_settings`, `general_settings`,
`litellm_settings`, `observability`, `files` and `environment_variables`. Any string of the form
`os.environ/NAME` is read from the environment. Every problem is reported as a
`ConfigError` that names the key and where it is, e.g.
`config.yaml: model_list[1].params.api_kye: unknown key`.

    deployments.py    model_list entries: params and model_info
    router.py         router_settings
    general.py        general_settings and litellm_settings
    observability.py  the observability section
    files.py          the files, cached_contents and batches sections (resource APIs)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from genroute.config.base import Strict
from genroute.config.cache import embedding_model_problem
from genroute.config.deployments import DeploymentParams, ModelEntry, ModelInfo
from genroute.config.files import (
    BatchesSettings,
    CachedContentsSettings,
    FilesSettings,
    S3Settings,
)
from genroute.config.general import DEFAULT_MAX_REQUEST_MB, GeneralSettings, LitellmSettings
from genroute.config.observability import ObservabilitySettings
from genroute.config.router import RouterSettings, RoutingStrategyArgs
from genroute.errors import ConfigError
from genroute.wire.base import format_validation_error

__all__ = [
    "DEFAULT_MAX_REQUEST_MB",
    "ENV_PREFIX",
    "BatchesSettings",
    "CachedContentsSettings",
    "Config",
    "ConfigError",
    "DeploymentParams",
    "FilesSettings",
    "GeneralSettings",
    "LitellmSettings",
    "ModelEntry",
    "ModelInfo",
    "ObservabilitySettings",
    "RouterSettings",
    "RoutingStrategyArgs",
    "S3Settings",
    "config_from_data",
    "load_config",
    "resolve_env",
]

ENV_PREFIX = "os.environ/"


class Config(Strict):
    """The whole configuration."""

    model_list: list[ModelEntry] = Field(default_factory=list)
    router_settings: RouterSettings = Field(default_factory=RouterSettings)
    general_settings: GeneralSettings = Field(default_factory=GeneralSettings)
    litellm_settings: LitellmSettings = Field(default_factory=LitellmSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    files: FilesSettings = Field(default_factory=FilesSettings)
    cached_contents: CachedContentsSettings = Field(default_factory=CachedContentsSettings)
    batches: BatchesSettings = Field(default_factory=BatchesSettings)
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

    @model_validator(mode="after")
    def _cache_embeds_with_a_group(self) -> Config:
        settings = self.litellm_settings
        if settings.cache and settings.cache_params.semantic:
            problem = embedding_model_problem(
                settings.cache_params,
                [entry.model_name for entry in self.model_list],
                self.router_settings.model_group_alias,
            )
            if problem is not None:
                raise ValueError(problem)
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
