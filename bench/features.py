"""The feature comparisons of bench/run.py (`--suite features`), each measured side by side.

Four groups, each started, checked, measured and stopped on its own, with its own `direct`
baseline measured in the same turns (targets alternate run by run, over several rounds):

* `translated`: the Gemini API in, OpenAI Chat Completions out. genroute and LiteLLM both
  serve `gpt-4o-mini` → `openai/gpt-4o-mini` at the fake upstream's `/v1`; the baseline is
  wrk posting the equivalent Chat Completions body straight to the fake (`direct-openai`);
* `router`: one deployment against the same group with three (distinct `model_info.id`,
  one fake upstream port each, `simple-shuffle`);
* `keys`: no master key and no database (no governance at all), the master key alone
  (which turns on the SQLite ledger), a virtual key on SQLite, a virtual key on PostgreSQL;
* `observability`: request logs, metrics and OTLP tracing (to the fake's `/v1/traces`)
  all on, against all off.

Rows aggregate the rounds: req/s is all requests over all measured time; p50 and p99 are
the medians of the rounds' values.
The markdown each group becomes, and the lines that sum it up, are in bench/feature_report.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from feature_checks import after_measuring, deployments_used
from feature_report import DESCRIBE, Group, summarise
from harness import (
    LEAN_OBSERVABILITY,
    UPSTREAM_KEY,
    WORK,
    BenchError,
    Target,
    measure_run,
    measure_ttfb,
    pause,
    request,
    start_genroute,
    start_litellm,
    start_python_proxy,
    verify,
)
from proctools import Procs, tree_mib

PG_DB = "genroute_bench"
PG_URL = f"postgresql://postgres@127.0.0.1:5432/{PG_DB}"
GEMINI_PRICES = {"input_cost_per_token": 3e-7, "output_cost_per_token": 2.5e-6}
NON_STREAM = (("generate", 1, 1), ("generate", 32, 2))
BOTH = (*NON_STREAM, ("stream", 1, 1), ("stream", 32, 2))
CHUNK_MODEL = "gemini-chunks-50"  # the fake streams 50 events for it
STREAMING = (
    ("ttfb", 1, 1),
    ("stream", 1, 1),
    ("stream-50", 1, 1),
    ("stream", 32, 2),
    ("stream-50", 32, 2),
)
STRIP_ON_SAVE = ("key",)  # never written to results.json: secrets


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--feature-duration", type=float, default=3.0, help="seconds per measured feature run"
    )
    parser.add_argument(
        "--feature-warmup", type=float, default=1.0, help="seconds of warm-up per feature run"
    )
    parser.add_argument(
        "--feature-rounds", type=int, default=3, help="rounds of the feature runs (interleaved)"
    )
    parser.add_argument(
        "--features",
        default="translated,router,keys,observability,production,workers,streaming",
        help="which feature groups to run (comma-separated)",
    )


def add_arguments_check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    chosen = [g.strip() for g in args.features.split(",") if g.strip()]
    if unknown := set(chosen) - set(GROUPS):
        parser.error(f"unknown feature groups: {', '.join(sorted(unknown))}")
    args.feature_groups = [g for g in GROUPS if g in chosen]
    if not 0 < args.feature_duration <= 60 or not 1 <= args.feature_rounds <= 20:
        parser.error("--feature-duration must be in (0, 60] and --feature-rounds in [1, 20]")


def print_row(row: dict[str, Any]) -> None:
    flag = f"  !! {row['errors']} errors" if row["errors"] else ""
    print(
        f" {row['rps']:9.0f} req/s  p50 {row['p50_us'] / 1000:7.2f} ms"
        f"  p99 {row['p99_us'] / 1000:7.2f} ms{flag}"
    )


# ---------------------------------------------------------------- configs and starts


def write_config(name: str, config: dict[str, Any]) -> Any:
    """The config in its own folder (so a SQLite ledger lands there), as JSON (= YAML)."""
    folder = WORK / "features" / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    path = folder / "config.yaml"
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def gemini_entry(port: int, dep_id: str | None = None) -> dict[str, Any]:
    params = {"model": "gemini/gemini-2.5-flash", "api_key": UPSTREAM_KEY}
    params["api_base"] = f"http://127.0.0.1:{port}"
    entry: dict[str, Any] = {"model_name": "bench-model", "params": params}
    if dep_id:
        entry["model_info"] = {"id": dep_id}
    return entry


def genroute(
    ctx: Ctx,
    name: str,
    config: dict[str, Any],
    key: str,
    model: str = "bench-model",
    env: dict[str, str] | None = None,
    *,
    workers: int = 1,
    cpu: str | None = None,
) -> Target:
    conf = write_config(name, config)
    cpu = cpu or ctx.args.cpus.target
    port, pid, start_s = start_genroute(ctx.procs, name, conf, cpu, env, workers=workers)
    return Target(name, port, model, pid, key, start_s=start_s)


def open_config(port: int) -> dict[str, Any]:
    """genroute with every feature off: no key, no ledger, no logs, metrics or tracing."""
    return {"model_list": [gemini_entry(port)], "observability": LEAN_OBSERVABILITY}


def production_config(ctx: Ctx, name: str, db_url: str) -> dict[str, Any]:
    """Every feature on: master key (virtual keys are made after start), the ledger on
    `db_url`, a JSON request log to a file, /metrics, tracing (the OTLP endpoint comes from
    the environment, see `otlp_env`)."""
    log_file = WORK / "features" / f"{name}.requests.log"
    log_file.unlink(missing_ok=True)
    observability = {
        "logs": {"enabled": True, "format": "json", "destination": str(log_file)},
        "metrics": {"enabled": True},
        "tracing": {"enabled": True},
    }
    general = {"master_key": ctx.key, "database_url": db_url}
    return {
        "model_list": [gemini_entry(ctx.ports[0])],
        "general_settings": general,
        "observability": observability,
    }


def otlp_env(ctx: Ctx, ratio: float | None = None) -> dict[str, str]:
    """OTLP/HTTP export to the fake's /v1/traces; with `ratio`, parent-based ratio sampling."""
    env = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{ctx.ports[0]}/v1/traces"}
    if ratio is not None:
        env |= {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio"}
        env["OTEL_TRACES_SAMPLER_ARG"] = f"{ratio:g}"
    return env


def fresh_db(ctx: Ctx, name: str) -> str | None:
    """A new, empty PostgreSQL database (dropped after the group); None if none can be made."""
    if shutil.which("createdb") is None:
        return None
    pg("dropdb", "--if-exists", name)
    if pg("createdb", name).returncode != 0:
        return None
    ctx.args.pg_dbs = [*getattr(ctx.args, "pg_dbs", []), name]
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def drop_dbs(args: argparse.Namespace) -> None:
    for name in getattr(args, "pg_dbs", []):
        pg("dropdb", "--if-exists", name)
    args.pg_dbs = []


@dataclass
class Ctx:
    """What every group needs: the run's arguments, processes, master key and upstream."""

    args: argparse.Namespace
    procs: Procs
    key: str
    direct: Target

    @property
    def ports(self) -> list[int]:
        return list(self.args.upstream_ports)


# ---------------------------------------------------------------- the groups


def translated(ctx: Ctx, group: Group) -> list[Target]:
    port = ctx.ports[0]
    base = f"http://127.0.0.1:{port}/v1"
    direct = Target("direct-openai", port, "gpt-4o-mini", ctx.direct.pgid, UPSTREAM_KEY, "openai")
    direct.is_upstream = True
    params = {"model": "openai/gpt-4o-mini", "api_key": UPSTREAM_KEY, "api_base": base}
    config: dict[str, Any] = {"model_list": [{"model_name": "gpt-4o-mini", "params": params}]}
    config["general_settings"] = {"master_key": ctx.key}
    gemini = {"model_list": [gemini_entry(port)], "general_settings": {"master_key": ctx.key}}
    ant_params = {"model": "anthropic/claude-sonnet-4-5", "api_key": UPSTREAM_KEY}
    ant_params["api_base"] = f"http://127.0.0.1:{port}"
    anthropic = {
        "model_list": [{"model_name": "claude-sonnet-4-5", "params": ant_params}],
        "general_settings": {"master_key": ctx.key},
    }
    targets = [
        direct,
        genroute(ctx, "genroute-gemini", gemini, ctx.key),
        genroute(ctx, "genroute-openai", config, ctx.key, "gpt-4o-mini"),
        genroute(ctx, "genroute-anthropic", anthropic, ctx.key, "claude-sonnet-4-5"),
    ]
    if ctx.args.litellm is None:
        group.notes.append("LiteLLM left out (not installed or failed earlier in this run)")
        return targets
    lconf: dict[str, Any] = {
        "model_list": [{"model_name": "gpt-4o-mini", "litellm_params": params}]
    }
    lconf |= {"litellm_settings": {"telemetry": False, "set_verbose": False}}
    lconf["general_settings"] = {"master_key": ctx.key}
    try:
        lite = start_litellm(
            ctx.procs,
            "litellm-openai",
            ctx.args.litellm,
            write_config("litellm-openai", lconf),
            ctx.args.cpus.target,
        )
    except BenchError as exc:
        group.notes.append(f"LiteLLM left out: {str(exc).splitlines()[0]}")
        return targets
    lite.model, lite.key = "gpt-4o-mini", ctx.key
    return [*targets, lite]


def router(ctx: Ctx, group: Group) -> list[Target]:
    master = {"master_key": ctx.key}
    one = {"model_list": [gemini_entry(ctx.ports[0], "dep-a")], "general_settings": master}
    three = {
        "model_list": [
            gemini_entry(port, dep)
            for port, dep in zip(ctx.ports, ("dep-a", "dep-b", "dep-c"), strict=True)
        ],
        "router_settings": {"routing_strategy": "simple-shuffle"},
        "general_settings": master,
    }
    return [
        ctx.direct,
        genroute(ctx, "router-1-deployment", one, ctx.key),
        genroute(ctx, "router-3-deployments", three, ctx.key),
    ]


def pg(*cmd: str) -> subprocess.CompletedProcess[str]:
    argv = [cmd[0], "-h", "127.0.0.1", "-U", "postgres", *cmd[1:]]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def virtual_key(target: Target, master: str) -> str:
    body = json.dumps({"key_alias": f"bench-{target.name}"})
    status, _, data = request(
        target.port, "POST", "/key/generate", {"x-goog-api-key": master}, body
    )
    if status != 200:
        raise BenchError(f"{target.name}: /key/generate returned {status}: {data[:300]!r}")
    return str(json.loads(data)["key"])


def keys(ctx: Ctx, group: Group) -> list[Target]:
    model_list = [gemini_entry(ctx.ports[0])]
    targets = [ctx.direct, genroute(ctx, "keys-open", {"model_list": model_list}, ctx.key)]
    master = {"model_list": model_list, "general_settings": {"master_key": ctx.key}}
    targets.append(genroute(ctx, "keys-master-sqlite", master, ctx.key))
    vkey = genroute(ctx, "keys-vkey-sqlite", master, ctx.key)
    vkey.key = virtual_key(vkey, ctx.key)
    targets.append(vkey)
    if shutil.which("createdb") is None:
        group.notes.append("PostgreSQL left out: createdb not found")
        return targets
    pg("dropdb", "--if-exists", PG_DB)
    made = pg("createdb", PG_DB)
    if made.returncode != 0:
        group.notes.append(f"PostgreSQL left out: createdb failed: {made.stderr.strip()[:200]}")
        return targets
    ctx.args.pg_created = True
    general = {"master_key": ctx.key, "database_url": PG_URL}
    target = genroute(
        ctx, "keys-vkey-postgres", {"model_list": model_list, "general_settings": general}, ctx.key
    )
    target.key = virtual_key(target, ctx.key)
    return [*targets, target]


def observability(ctx: Ctx, group: Group) -> list[Target]:
    model_list = [gemini_entry(ctx.ports[0])]
    general = {"master_key": ctx.key}
    on = {"logs": {"enabled": True, "format": "json"}, "metrics": {"enabled": True}}
    on["tracing"] = {"enabled": True}
    sink = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{ctx.ports[0]}/v1/traces"}
    conf_on = {"model_list": model_list, "general_settings": general, "observability": on}
    conf_off = {"model_list": model_list, "general_settings": general}
    conf_off["observability"] = LEAN_OBSERVABILITY
    conf_default = {"model_list": model_list, "general_settings": general}
    conf_default["observability"] = {"tracing": {"enabled": False}}
    return [
        ctx.direct,
        genroute(ctx, "obs-all-on", conf_on, ctx.key, env=sink),
        genroute(ctx, "obs-no-tracing", conf_default, ctx.key),
        genroute(ctx, "obs-all-off", conf_off, ctx.key),
    ]


def streaming(ctx: Ctx, group: Group) -> list[Target]:
    """Time to first byte at c=1, and streams of 5 and of 50 events (the cost of a chunk)."""
    port = ctx.ports[0]
    direct = Target("direct", port, "gemini-2.5-flash", ctx.direct.pgid, "x", is_upstream=True)
    direct.chunk_model = CHUNK_MODEL
    proxy = start_python_proxy(ctx.procs, "python-proxy", port, ctx.args.cpus.target)
    proxy.chunk_model = CHUNK_MODEL
    chunked = gemini_entry(port)
    chunked["model_name"] = "bench-chunks-50"
    chunked["params"]["model"] = f"gemini/{CHUNK_MODEL}"
    chunked["model_info"] = dict(GEMINI_PRICES)
    open_ = open_config(port)
    open_["model_list"].append(chunked)
    default = {"model_list": [gemini_entry(port), chunked]}
    default["general_settings"] = {"master_key": ctx.key}
    targets = [
        direct,
        proxy,
        genroute(ctx, "genroute-open", open_, ""),
        genroute(ctx, "genroute", default, ctx.key),
    ]
    for target in targets[2:]:
        target.chunk_model = "bench-chunks-50"
    return targets


def production(ctx: Ctx, group: Group) -> list[Target]:
    """The featureless genroute against every feature on (virtual key, PostgreSQL ledger,
    JSON log file, metrics, OTLP tracing at 100 % and at 10 %), and the same without
    tracing, so that the cost of 10 % sampling can be read against it."""
    targets = [ctx.direct, genroute(ctx, "genroute-open", open_config(ctx.ports[0]), "")]
    variants = (
        ("genroute-production", otlp_env(ctx)),
        ("genroute-production-10pct", otlp_env(ctx, 0.1)),
        ("genroute-production-notrace", None),
    )
    for name, env in variants:
        db = fresh_db(ctx, f"genroute_bench_{name.replace('-', '_')}")
        if db is None:
            group.notes.append(f"{name} left out: no PostgreSQL (createdb failed or missing)")
            continue
        config = production_config(ctx, name, db)
        if env is None:
            config["observability"]["tracing"] = {"enabled": False}
        target = genroute(ctx, name, config, ctx.key, env=env)
        target.key = virtual_key(target, ctx.key)
        targets.append(target)
    return targets


def workers(ctx: Ctx, group: Group) -> list[Target]:
    """`--workers 1` against `--workers 2`, featureless and with every feature on. One worker
    is pinned to the target CPU as everywhere else; two workers may run on every CPU (one
    CPU each is the point), so they share the second with the fake upstream and wrk."""
    every = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    cpu2 = every if ctx.args.cpus.target is not None else None
    open_ = open_config(ctx.ports[0])
    targets = [
        ctx.direct,
        genroute(ctx, "open-w1", open_, ""),
        genroute(ctx, "open-w2", open_, "", workers=2, cpu=cpu2),
    ]
    for name, count in (("production-w1", 1), ("production-w2", 2)):
        db = fresh_db(ctx, f"genroute_bench_{name.replace('-', '_')}")
        if db is None:
            group.notes.append(f"{name} left out: no PostgreSQL")
            continue
        config = production_config(ctx, name, db)
        cpu = cpu2 if count == 2 else None
        target = genroute(ctx, name, config, ctx.key, env=otlp_env(ctx), workers=count, cpu=cpu)
        target.key = virtual_key(target, ctx.key)
        targets.append(target)
    group.notes.append(
        f"CPUs: w1 on CPU {ctx.args.cpus.target}, w2 on CPUs {cpu2}; the fake upstream and wrk "
        f"on CPU {ctx.args.cpus.load}. On a 2-CPU machine w2 can reach at most "
        "1 + (1 - the load side's share of CPU 1) times w1"
    )
    return targets


# name: (title, how to start its targets, scenarios, the reference target)
GROUPS: dict[str, tuple[str, Callable[[Ctx, Group], list[Target]], tuple[Any, ...], str]] = {
    "translated": (
        "Translated path: Gemini API in, OpenAI Chat Completions out",
        translated,
        BOTH,
        "genroute-openai",
    ),
    "router": (
        "Router: one deployment vs three with simple-shuffle",
        router,
        NON_STREAM,
        "router-1-deployment",
    ),
    "keys": ("Keys and spend ledger", keys, NON_STREAM, "keys-master-sqlite"),
    "observability": (
        "Observability: logs + metrics + tracing on vs all off",
        observability,
        NON_STREAM,
        "obs-all-off",
    ),
    "production": (
        "Production settings: every feature on vs the featureless genroute",
        production,
        BOTH,
        "genroute-open",
    ),
    "workers": ("Workers: --workers 2 vs 1", workers, NON_STREAM, "open-w1"),
    "streaming": (
        "Streaming: time to first byte, and the cost of a chunk",
        streaming,
        STREAMING,
        "genroute-open",
    ),
}


# ---------------------------------------------------------------- running a group


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from the rounds of one (target, mode, c)."""
    first = runs[0]
    row = {k: first[k] for k in ("target", "mode", "conns", "threads")}
    seconds = sum(r["duration_us"] for r in runs) / 1e6
    row |= {"rounds": len(runs), "requests": sum(r["requests"] for r in runs)}
    row |= {"rps": row["requests"] / seconds, "errors": sum(r["errors"] for r in runs)}
    for key in first:
        if key.endswith("_us") and key not in ("duration_us", "p50_spread_us"):
            row[key] = statistics.median(r[key] for r in runs)
    row["target_cpu_s"] = sum(r["target_cpu_s"] for r in runs)
    row["cpu_us_per_req"] = 1e6 * row["target_cpu_s"] / row["requests"] if row["requests"] else 0
    row["p50_spread_us"] = max(r["p50_us"] for r in runs) - min(r["p50_us"] for r in runs)
    for key in ("target_cpu_pct", "upstream_cpu_pct", "wrk_cpu_pct", "other_cpu_pct"):
        row[key] = statistics.fmean(r[key] for r in runs)
    return row


def run_group(ctx: Ctx, name: str) -> Group:
    title, start, scenarios, reference = GROUPS[name]
    baseline = "direct-openai" if name == "translated" else "direct"
    group = Group(name, title, baseline, reference)
    started = len(ctx.procs.started)
    print(f"\n== {name}: {title}")
    try:
        targets = start(ctx, group)
        for target in targets:
            verify(target, ctx.ports[0])
            target.idle_rss_mib = tree_mib(target.pgid, "VmRSS")
            print(f"verified {target.name:20} (upstream {target.upstream_paths})")
        if name == "router":
            for target in targets[1:]:
                used = deployments_used(target)
                group.notes.append(f"{target.name}: 30 check calls served by {used}")
                if target.name.startswith("router-3") and len(used) < 2:
                    raise BenchError(f"{target.name}: one deployment served every call: {used}")
        served = {t.name: 2 for t in targets}
        if name == "router":
            served = {t.name: 32 for t in targets}
        runs: list[dict[str, Any]] = []
        durations = (ctx.args.feature_warmup, ctx.args.feature_duration)
        for rnd in range(ctx.args.feature_rounds):
            for mode, conns, threads in scenarios:
                for target in targets:
                    pause(targets, target)
                    print(
                        f"  r{rnd + 1} {target.name:20} {mode:8} c={conns:<3}", end="", flush=True
                    )
                    if mode == "ttfb":
                        row = measure_ttfb(target, durations, ctx.args.cpus, ctx.direct.pgid)
                    else:
                        row = measure_run(
                            target, mode, conns, threads, durations, ctx.args.cpus, ctx.direct.pgid
                        )
                    row["round"] = rnd + 1
                    runs.append(row)
                    served[target.name] += row["requests"] + row.get("warmup_requests", 0)
                    print_row(row)
        pause(targets, None)
        after_measuring(ctx, group, targets, served)
        group.runs = runs
        keys_ = dict.fromkeys((r["target"], r["mode"], r["conns"]) for r in runs)
        group.rows = [
            aggregate([r for r in runs if (r["target"], r["mode"], r["conns"]) == k]) for k in keys_
        ]
        for target in targets:
            target.peak_rss_mib = tree_mib(target.pgid, "VmHWM")
            info = {k: v for k, v in vars(target).items() if k not in STRIP_ON_SAVE}
            group.targets.append(info | {"describe": DESCRIBE.get(target.name, "")})
        summarise(group)
    finally:
        ctx.procs.stop([p.pid for p in ctx.procs.started[started:]])
        if name == "keys" and getattr(ctx.args, "pg_created", False):
            pg("dropdb", "--if-exists", PG_DB)
        drop_dbs(ctx.args)
    return group


def run_all(args: argparse.Namespace, procs: Procs, key: str, direct: Target) -> list[Group]:
    ctx = Ctx(args, procs, key, direct)
    groups = []
    for name in args.feature_groups:
        try:
            groups.append(run_group(ctx, name))
        except (BenchError, OSError, ValueError, KeyError) as exc:
            print(f"feature group {name} failed: {exc}")
            failed = Group(name, GROUPS[name][0], "", "")
            failed.notes.append(f"⚠ not measured: {str(exc).splitlines()[0][:300]}")
            groups.append(failed)
    return groups
