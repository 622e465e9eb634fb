"""Config loading: LiteLLM files load unchanged; every bad key is named with its place."""

from __future__ import annotations

from pathlib import Path

import pytest

from genroute.config import ConfigError, config_from_data, load_config
from genroute.defaults import default_config

LITELLM_YAML = """
model_list:
  - model_name: gemini-2.5-flash
    litellm_params:
      model: gemini/gemini-2.5-flash
      api_key: os.environ/TEST_GEMINI_KEY
      rpm: 60
  - model_name: gemini-2.5-flash
    litellm_params:
      model: gemini/gemini-2.5-flash
      api_key: os.environ/TEST_GEMINI_KEY
      api_base: http://127.0.0.1:9/v1beta
      timeout: 30
      weight: 2
    model_info:
      id: second
      max_input_tokens: 1048576
      supports_vision: true
router_settings:
  routing_strategy: simple-shuffle
  model_group_alias: {"gemini-pro": "gemini-2.5-flash"}
general_settings:
  master_key: sk-1234
  max_request_size_mb: 5
litellm_settings:
  drop_params: true
  request_timeout: 30
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_litellm_config_loads_unchanged(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, LITELLM_YAML), environ={"TEST_GEMINI_KEY": "k-1"})
    first, second = config.model_list
    assert first.params.model == "gemini/gemini-2.5-flash"
    assert first.params.api_key == "k-1"
    assert first.params.rpm == 60
    assert second.params.weight == 2 and second.model_info.id == "second"
    assert config.router_settings.model_group_alias == {"gemini-pro": "gemini-2.5-flash"}
    assert config.general_settings.master_key == "sk-1234"
    assert config.general_settings.max_request_bytes == 5 * 1024 * 1024


def test_params_is_the_native_spelling() -> None:
    config = config_from_data({"model_list": [{"model_name": "a", "params": {"model": "demo/x"}}]})
    assert config.model_list[0].params.model == "demo/x"


def test_api_key_is_not_in_repr() -> None:
    config = config_from_data(
        {
            "model_list": [
                {"model_name": "a", "params": {"model": "demo/x", "api_key": "secret-123"}}
            ]
        }
    )
    assert "secret-123" not in repr(config)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"model_list": [{"model_name": "a", "params": {"model": "m", "api_kye": "k"}}]},
            "model_list[0].params.api_kye: unknown field",
        ),
        (
            {"model_list": [{"model_name": "a", "litellm_params": {"model": "m", "rpm": "lots"}}]},
            "model_list[0].litellm_params.rpm:",
        ),
        ({"model_list": [{"model_name": "a"}]}, "model_list[0].params: required field is missing"),
        (
            {
                "model_list": [
                    {"model_name": "a", "params": {"model": "m"}, "model_info": {"colour": 1}}
                ]
            },
            "model_list[0].model_info: unknown key 'colour'",
        ),
        (
            {"router_settings": {"routing_strategy": "coin-toss"}},
            "router_settings.routing_strategy:",
        ),
        (
            {"general_settings": {"master_key": ""}},
            "general_settings.master_key: master_key must not be empty",
        ),
        (
            {"general_settings": {"max_request_size_mb": -1}},
            "general_settings.max_request_size_mb:",
        ),
        ({"surprise": 1}, "surprise: unknown field"),
        (
            {"router_settings": {"model_group_alias": {"x": "missing"}}},
            "model_group_alias.x: no model_name 'missing'",
        ),
        (
            {
                "model_list": [
                    {"model_name": "a", "params": {"model": "m"}, "litellm_params": {"model": "m"}}
                ]
            },
            "either params or litellm_params",
        ),
    ],
)
def test_bad_config_names_the_key(data: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_data(data, source="c.yaml")
    assert expected in str(info.value)
    assert str(info.value).startswith("c.yaml: ")


def test_missing_env_var_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, LITELLM_YAML), environ={})
    assert (
        "model_list[0].litellm_params.api_key: environment variable TEST_GEMINI_KEY is not set"
        in str(info.value)
    )


def test_environment_variables_section_feeds_os_environ_references() -> None:
    config = config_from_data(
        {
            "environment_variables": {"MY_KEY": "from-section"},
            "model_list": [
                {"model_name": "a", "params": {"model": "demo/x", "api_key": "os.environ/MY_KEY"}}
            ],
        },
        environ={},
    )
    assert config.model_list[0].params.api_key == "from-section"


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "model_list: [\n"))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- 1\n"))


def test_default_config_demo_without_keys_and_gemini_with_one() -> None:
    demo = default_config({})  # the demo model, also under the Gemini names clients send
    assert [(e.model_name, e.params.model) for e in demo.model_list] == [
        ("demo", "demo/echo"),
        ("gemini-*", "demo/echo"),
    ]
    gemini = default_config({"GEMINI_API_KEY": "g"})
    names = [e.model_name for e in gemini.model_list]
    assert "demo" not in names and "gemini-*" in names
    assert gemini.model_list[0].params.api_key == "g"
