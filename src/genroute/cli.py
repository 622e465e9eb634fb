"""The `genroute` command: `serve` the gateway, `check-config` a file, print the `version`."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from genroute._version import __version__
from genroute.config import Config, ConfigError, load_config
from genroute.defaults import default_config

CONFIG_ENV = "GENROUTE_CONFIG"
err_console = Console(stderr=True)


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
        console.print(
            "[yellow]No provider key found (GEMINI_API_KEY, GOOGLE_API_KEY, OPENAI_API_KEY, "
            "ANTHROPIC_API_KEY): serving the built-in 'demo' model, which is local and "
            "deterministic, not a real LLM.[/yellow]"
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
    common = {
        "host": args.host,
        "port": args.port,
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "on",
        "access_log": False,
        "log_level": "warning",
        "timeout_graceful_shutdown": 30,
        "backlog": 4096,
        "proxy_headers": False,
        "server_header": False,
    }
    if args.workers > 1:
        if args.config:
            os.environ[CONFIG_ENV] = os.path.abspath(args.config)
        from genroute.observability.metrics import setup_multiprocess_dir

        setup_multiprocess_dir()  # before the workers import prometheus_client
        uvicorn.run("genroute.cli:app_from_env", factory=True, workers=args.workers, **common)
    else:
        from genroute.server import create_app

        app = create_app(config)
        settle_heap()
        uvicorn.run(app, **common)
    return 0


def check_config(args: argparse.Namespace) -> int:
    """Validate a config without serving."""
    config = load_config(args.path)
    from genroute.router import Router

    Router.from_config(config, allow_ad_hoc_models=False)
    console = Console(highlight=False)
    console.print(f"[green]{args.path}: OK[/green] ({len(config.model_list)} deployments)")
    console.print(_models_table(config))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="genroute", description="An LLM gateway speaking the Gemini API."
    )
    parser.add_argument("--version", action="version", version=f"genroute {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="run the proxy server")
    run.add_argument("--config", help="YAML config (default: the embedded default)")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=4000)
    run.add_argument("--workers", type=int, default=1)
    run.set_defaults(func=serve)
    check = sub.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("path")
    check.set_defaults(func=check_config)
    from genroute.governance.cli import add_commands

    add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `genroute` command."""
    args = build_parser().parse_args(argv)
    if getattr(args, "workers", 1) < 1:
        err_console.print("error: --workers must be at least 1")
        return 2
    try:
        return int(args.func(args))
    except ConfigError as exc:
        err_console.print(f"[red]config error[/red]\n{exc}", highlight=False)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from genroute.errors import GenrouteError

        if isinstance(exc, GenrouteError):
            err_console.print(f"[red]error:[/red] {exc.message}", highlight=False)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
