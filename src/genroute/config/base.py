"""The base of every config section: unknown keys are errors, names and aliases both accepted."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Strict"]


class Strict(BaseModel):
    """A config section: unknown keys are refused, so a typo is named instead of ignored."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), validate_by_name=True)
