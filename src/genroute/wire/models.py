"""Google's `Model` resource and the models list."""

from __future__ import annotations

from genroute.wire.base import WireModel

__all__ = ["ListModelsResponse", "Model"]


class Model(WireModel):
    """A model as `GET models` describes it; `name` is `models/<id>`."""

    name: str
    base_model_id: str | None = None
    version: str | None = None
    display_name: str | None = None
    description: str | None = None
    input_token_limit: int | None = None
    output_token_limit: int | None = None
    supported_generation_methods: list[str] | None = None
    temperature: float | None = None
    max_temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    thinking: bool | None = None


class ListModelsResponse(WireModel):
    """The reply of `GET models`."""

    models: list[Model]
    next_page_token: str | None = None
