"""The `genroute` command: `serve` the gateway, `check-config` a file, manage `keys` and
read `spend`, print the `--version`.

    serve.py  serve and check-config
    keys.py   keys create|list|delete and spend, on the configured database
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rich.console import Console

from genroute._version import __version__
from genroute.cli.keys import add_commands
from genroute.cli.serve import check_config, serve
from genroute.errors import ConfigError, GenrouteError

__all__ = ["build_parser", "main"]

err_console = Console(stderr=True)


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
    except GenrouteError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}", highlight=False)
        return 2
