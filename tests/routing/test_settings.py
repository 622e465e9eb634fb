"""router_settings: every key typed and validated, LiteLLM's shapes accepted, typos refused."""

from __future__ import annotations

import pytest

from genroute.config import ConfigError, config_from_data
from genroute.routing import Router

ENTRIES = [
    {"model_name": "a", "params": {"model": "demo/a", "num_retries": 1}},
    {"model_name": "b", "params": {"model": "demo/b"}},
    {"model_name": "gemini-*", "params": {"model": "gemini/gemini-*", "api_key": "k"}},
]


def load(settings: dict[str, object]) -> Router:
    config = config_from_data({"model_list": ENTRIES, "router_settings": settings}, source="t")
    return Router.from_config(config)


def test_every_setting_loads() -> None:
    router = load(
        {
            "routing_strategy": "usage-based-routing-v2",
            "routing_strategy_args": {"lowest_latency_buffer": 0.5},
            "num_retries": 2,
            "retry_after": 1,
            "retry_backoff_base": 0.2,
            "max_retry_backoff": 10,
            "fallbacks": [{"a": ["b"]}, {"b": "gemini-2.5-flash"}],
            "default_fallbacks": ["b"],
            "context_window_fallbacks": [{"a": ["gemini-2.5-pro"]}],
            "content_policy_fallbacks": [{"a": ["b"]}],
            "max_fallbacks": 3,
            "allowed_fails": 1,
            "allowed_fails_window": 30,
            "cooldown_time": 10,
            "disable_cooldowns": False,
            "redis_host": "127.0.0.1",
            "redis_port": "6380",
            "redis_password": "p@ss",
            "redis_key_prefix": "x",
            "redis_socket_timeout": 0.2,
            "redis_reconnect_interval": 2,
        }
    )
    settings = router.config.router_settings
    assert settings.fallbacks == [{"a": ["b"]}, {"b": ["gemini-2.5-flash"]}]
    assert settings.redis_connection_url() == "redis://:p%40ss@127.0.0.1:6380/0"
    assert "p@ss" not in repr(settings)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"num_retry": 2}, "router_settings.num_retry"),
        ({"routing_strategy": "round-robin"}, "routing_strategy"),
        ({"num_retries": -1}, "num_retries"),
        ({"fallbacks": [{"a": ["nope"]}]}, "router_settings.fallbacks[0].a: no model group 'nope'"),
        ({"default_fallbacks": ["nope"]}, "default_fallbacks: no model group 'nope'"),
        ({"fallbacks": ["b"]}, "fallbacks"),
        ({"redis_url": "redis://x", "redis_host": "x"}, "not both"),
        ({"routing_strategy_args": {"ttl": 5}}, "routing_strategy_args.ttl"),
    ],
)
def test_bad_settings_fail_clearly(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load(settings)


def test_unknown_deployment_key_still_fails() -> None:
    with pytest.raises(ConfigError, match="num_retrys"):
        config_from_data(
            {"model_list": [{"model_name": "a", "params": {"model": "demo/a", "num_retrys": 1}}]}
        )


def test_deployment_ids_are_stable_and_keyless() -> None:
    entries = [
        {"model_name": "g", "params": {"model": "gemini/gemini-2.5-flash", "api_key": "secret-1"}},
        {"model_name": "g", "params": {"model": "gemini/gemini-2.5-flash", "api_key": "secret-2"}},
        {"model_name": "g", "params": {"model": "demo/x"}, "model_info": {"id": "mine"}},
    ]
    ids = [d.id for d in Router(entries).group("g")]
    assert ids == [d.id for d in Router(entries).group("g")]
    assert len(set(ids)) == 3 and ids[2] == "mine"
    assert all("secret" not in i for i in ids) and ids[0].startswith("gemini/gemini-2.5-flash#")
    with pytest.raises(ConfigError, match="used twice"):
        Router(
            [
                *entries,
                {"model_name": "h", "params": {"model": "demo/y"}, "model_info": {"id": "mine"}},
            ]
        )
