"""`genroute keys create|list|delete` and `genroute spend`, on the configured database.

They open the database of `--config` (its `general_settings.database_url`, or the default
SQLite file next to it) directly. Running gateways see a change within
`general_settings.key_cache_ttl` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

from rich.console import Console
from rich.table import Table

from genroute.config import load_config
from genroute.defaults import default_config
from genroute.governance import database_url
from genroute.store import Store, hash_key, parse_duration
from genroute.store.repo import utcnow
from genroute.store.spend import SpendFilter, spend_report

__all__ = ["SPEND_GROUPS", "add_commands", "keys_create", "keys_delete", "keys_list", "spend"]

SPEND_GROUPS = {"model": "model", "key": "key", "end-user": "end_user", "team": "team"}


def _store(args: argparse.Namespace) -> Store:
    config = load_config(args.config) if args.config else default_config()
    url = database_url(config)
    if url is None:
        raise SystemExit(
            "no database: set general_settings.database_url or master_key in the --config file"
        )
    return Store(url)


def _run(args: argparse.Namespace, work: Any) -> int:
    async def main() -> int:
        store = _store(args)
        try:
            await store.start()
            coroutine: Coroutine[Any, Any, int] = work(store)
            return await coroutine
        finally:
            await store.aclose()

    return asyncio.run(main())


def _money(value: Any) -> str:
    return "" if value is None else f"${float(value):.4f}"


def keys_create(args: argparse.Namespace) -> int:
    """Create a key and print it (the only time it is shown)."""
    fields: dict[str, Any] = {
        "key_alias": args.alias,
        "models": [m.strip() for m in args.models.split(",")] if args.models else [],
        "max_budget": args.max_budget,
        "budget_duration": args.budget_duration,
        "rpm_limit": args.rpm,
        "tpm_limit": args.tpm,
        "max_parallel_requests": args.parallel,
        "team_id": args.team,
        "user_id": args.user,
        "duration": args.duration,
    }
    for name in ("budget_duration", "duration"):
        if fields[name]:
            parse_duration(fields[name])

    async def work(store: Store) -> int:
        row = await store.create_key({k: v for k, v in fields.items() if v is not None})
        console = Console(highlight=False)
        console.print(f"[green]created[/green] {row['key']}")
        console.print("Keep it now: genroute stores only its hash and cannot show it again.")
        return 0

    return _run(args, work)


def keys_list(args: argparse.Namespace) -> int:
    """Every key as a table."""

    async def work(store: Store) -> int:
        table = Table(title="keys", title_justify="left", show_edge=False)
        for column in ("alias", "key", "team", "models", "spend", "max_budget", "limits", "state"):
            table.add_column(column)
        for row in await store.list("key"):
            limits = "/".join(
                str(row[k] or "-") for k in ("rpm_limit", "tpm_limit", "max_parallel_requests")
            )
            expired = row["expires"] and row["expires"] <= utcnow().isoformat()
            state = "blocked" if row["blocked"] else ("expired" if expired else "active")
            table.add_row(
                row["key_alias"] or "",
                row["key_name"],
                row["team_id"] or "",
                ",".join(row["models"] or []) or "all",
                _money(row["spend"]),
                _money(row["max_budget"]),
                limits,
                state,
            )
        Console().print(table)
        return 0

    return _run(args, work)


def keys_delete(args: argparse.Namespace) -> int:
    """Delete keys named by the key itself, its hash or its alias."""

    async def work(store: Store) -> int:
        tokens: list[str] = []
        for name in args.keys:
            by_alias = await store.key_by_alias(name)
            if by_alias is not None:
                tokens.append(by_alias["key_hash"])
            elif len(name) == 64:
                tokens.append(name)
            else:
                tokens.append(hash_key(name))
        deleted = await store.delete("key", tokens)
        Console(highlight=False).print(f"deleted {len(deleted)} of {len(args.keys)} keys")
        return 0 if len(deleted) == len(args.keys) else 1

    return _run(args, work)


def spend(args: argparse.Namespace) -> int:
    """Spend since a duration ago, by day and by model, key, team or end user."""
    since: timedelta = parse_duration(args.since)
    group = SPEND_GROUPS[args.by]

    async def work(store: Store) -> int:
        rows = await spend_report(store, group, SpendFilter(start=utcnow() - since))
        table = Table(title=f"spend by {args.by}, last {args.since}", title_justify="left")
        columns = ("day", args.by, "requests", "refused", "prompt tokens", "output tokens", "spend")
        for column in columns:
            table.add_column(column, justify="right" if "tok" in column else "left")
        total = 0.0
        for row in rows:
            total += row["spend"]
            table.add_row(
                row["day"],
                str(row[group] if row[group] is not None else "-"),
                str(row["requests"]),  # refused calls included: "refused" says how many
                str(row["refused"]),
                str(row["prompt_tokens"]),
                str(row["output_tokens"]),
                _money(row["spend"]),
            )
        table.add_section()
        requests, refused = (str(sum(r[k] for r in rows)) for k in ("requests", "refused"))
        table.add_row("total", "", requests, refused, "", "", _money(total))
        Console().print(table)
        return 0

    return _run(args, work)


def add_commands(sub: Any) -> None:
    """Register `keys` and `spend` on the `genroute` parser's subcommands."""
    keys = sub.add_parser("keys", help="manage virtual keys in the configured database")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key and print it once")
    create.add_argument("--alias")
    create.add_argument("--models", help="comma-separated model names (default: all)")
    create.add_argument("--max-budget", type=float)
    create.add_argument("--budget-duration", help="e.g. 1d, 7d, 30d")
    create.add_argument("--rpm", type=int)
    create.add_argument("--tpm", type=int)
    create.add_argument("--parallel", type=int)
    create.add_argument("--duration", help="the key expires after this long, e.g. 30d")
    create.add_argument("--team")
    create.add_argument("--user")
    create.set_defaults(func=keys_create)
    listing = keys_sub.add_parser("list", help="list keys")
    listing.set_defaults(func=keys_list)
    delete = keys_sub.add_parser("delete", help="delete keys (by key, hash or alias)")
    delete.add_argument("keys", nargs="+")
    delete.set_defaults(func=keys_delete)
    for parser in (create, listing, delete):
        parser.add_argument("--config", help="YAML config naming the database")
    report = sub.add_parser("spend", help="spend report from the ledger")
    report.add_argument("--by", choices=list(SPEND_GROUPS), default="model")
    report.add_argument("--since", default="7d", help="e.g. 1d, 7d, 30d")
    report.add_argument("--config", help="YAML config naming the database")
    report.set_defaults(func=spend)
