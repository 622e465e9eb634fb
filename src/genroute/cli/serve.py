"""`genroute serve` (the gateway on uvicorn) and `genroute check-config` (a config, checked)."""

from __future__ import annotations

import argparse
import gc
import logging
import os
from typing import Any

from rich.console import Console
from rich.table import Table

from genroute._version import __version__
from genroute.config import Config, load_config
from genroute.defaults import DEFAULT_PROVIDERS, GEMINI_CLI_MODELS, default_config
from genroute.providers.catalog import facts_for

__all__ = [
    "CONFIG_ENV",
    "app_from_env",
    "check_config",
    "serve",
    "settle_heap",
    "unserved_client_defaults",
    "uvicorn_settings",
]

CONFIG_ENV = "GENROUTE_CONFIG"


def _load(path: str | None) -> Config:
    return load_config(path) if path else default_config()


def _models_table(config: Config) -> Table:
    table = Table(title="models", title_justify="left", show_edge=False)
    table.add_column("model_name")
    table.add_column("deployment")
    table.add_column("note")
    for entry in config.model_list:
        note = ""
        if entry.params.model.startswith("demo/"):
            note = "built-in demo model: local and deterministic, not a real LLM"
        elif "*" in entry.model_name:
            note = "wildcard"
        table.add_row(entry.model_name, entry.params.model, note)
    return table


def _banner(config: Config, host: str, port: int, workers: int) -> None:
    console = Console(stderr=True, highlight=False)
    console.print(
        f"[bold]genroute {__version__}[/bold] serving the Gemini API on http://{host}:{port}"
    )
    console.print(f"config: {config.source}; workers: {workers}")
    console.print(_models_table(config))
    if any(e.params.model.startswith("demo/") for e in config.model_list):
        facts = [facts_for(prefix) for prefix in DEFAULT_PROVIDERS]
        looked_for = ", ".join(var for f in facts if f is not None for var in f.key_env)
        console.print(
            f"[yellow]No provider key found ({looked_for}): serving the built-in 'demo' "
            "model, which is local and deterministic, not a real LLM.[/yellow]"
        )
    if config.general_settings.master_key is None:
        console.print("[yellow]No master_key configured: every caller is accepted.[/yellow]")


def settle_heap() -> None:
    """Once the app is built: move every object made so far out of the collector's sight
    (`gc.freeze`) and collect the young generation less often. The startup heap (pydantic
    schemas, SQLAlchemy, OpenTelemetry, ...) is large and lives for the whole process, and
    re-scanning it on every full collection cost ~25 % of the CPU per request."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(7000, 20, 20)


def app_from_env() -> object:
    """ASGI factory for worker processes: loads the config named by $GENROUTE_CONFIG."""
    from genroute.server import create_app

    config = _load(os.environ.get(CONFIG_ENV) or None)
    if config.litellm_settings.json_logs:
        from genroute.observability.logs import json_python_logs

        json_python_logs()
    app = create_app(config)
    settle_heap()
    return app


def uvicorn_settings(config: Config, host: str, port: int) -> dict[str, Any]:
    """uvicorn's settings for a config: httptools with genroute's limits on slow and idle
    clients (`genroute.server.protocol`; the header deadline and connection limit are read
    from the app), the keep-alive timeout and the listen backlog from general_settings."""
    general = config.general_settings
    return {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": "genroute.server.protocol:GuardedHttpToolsProtocol",
        "lifespan": "on",
        "access_log": False,
        "log_level": "warning",
        "timeout_graceful_shutdown": 30,
        "timeout_keep_alive": general.keep_alive_timeout,
        "limit_concurrency": general.max_connections,
        "backlog": general.backlog,
        "proxy_headers": False,
        "server_header": False,
    }


def serve(args: argparse.Namespace) -> int:
    """Run the gateway until interrupted."""
    import uvicorn

    config = _load(args.config)
    logging.basicConfig(
        level=logging.DEBUG if config.litellm_settings.set_verbose else logging.INFO
    )
    if config.litellm_settings.json_logs:
        from genroute.observability.logs import json_python_logs

        json_python_logs()
    _banner(config, args.host, args.port, args.workers)
    common = uvicorn_settings(config, args.host, args.port)
    if args.workers > 1:
        if args.config:
            os.environ[CONFIG_ENV] = os.path.abspath(args.config)
        from genroute.observability.metrics import setup_multiprocess_dir

        setup_multiprocess_dir()  # before the workers import prometheus_client
        uvicorn.run("genroute.cli.serve:app_from_env", factory=True, workers=args.workers, **common)
    else:
        from genroute.server import create_app

        app = create_app(config)
        settle_heap()
        uvicorn.run(app, **common)
    return 0


def unserved_client_defaults(config: Config) -> list[str]:
    """The model names gemini-cli calls on its own that this config does not serve."""
    from genroute.routing import Router

    router = Router.from_config(config, allow_ad_hoc_models=False)
    return [name for name in GEMINI_CLI_MODELS if not router.knows(name)]


def check_config(args: argparse.Namespace) -> int:
    """Validate a config without serving."""
    config = load_config(args.path)
    unserved = unserved_client_defaults(config)
    console = Console(highlight=False)
    console.print(f"[green]{args.path}: OK[/green] ({len(config.model_list)} deployments)")
    console.print(_models_table(config))
    if unserved:
        console.print(
            f"[yellow]warning: gemini-cli calls {', '.join(unserved)} on its own (its default "
            "auto mode, and its default with -m), and this config serves none of them: add a "
            "`gemini-*` wildcard entry, or map them with router_settings.model_group_alias."
            "[/yellow]"
        )
    return 0
