"""Where genroute's CPU per request goes, item by item (run by hand, not a test).

    .venv/bin/python bench/cpu_profile.py [--config open|default|production] [--mode generate]
        [--conns 32] [--seconds 20] [--rate 200] [--genroute CHECKOUT]

Starts the fake upstream (pinned to the load CPU) and one genroute worker (pinned to the
target CPU) with the chosen config, the same as bench/run.py's rows:

* `open`: no key, no ledger, no log, metrics or tracing (`genroute-open`);
* `default`: the master key (so the SQLite ledger), JSON request log, /metrics (`genroute`);
* `production`: a virtual key, the ledger on a fresh PostgreSQL database, a JSON request
  log to a file, /metrics and OTLP tracing at 100 % (`genroute-production`), or at 10 %
  (`production-10pct`), or without tracing (`production-notrace`);
* `python-proxy`: bench/python_proxy.py, the floor, for comparison.

After a warm-up, wrk loads it at `--conns` while py-spy (from bench/.work/tools-venv, or
PATH) samples the worker's threads (`--nonblocking`, so the worker is never paused) when
they hold the GIL (`--gil`: without it py-spy counts threads asleep in `time.sleep` or a
queue's `get` as busy in this mode; with it, C code that runs without the GIL, such as
SQLite's own work in aiosqlite's thread or the kernel's socket calls, is not seen, only
everything Python does). Each sample is put in one category, the one of the deepest
frame on its stack that a rule below names (a sample in aiohttp under the Router under the
governed layer is "aiohttp client"), and each category's share of the samples, times the
CPU per request measured from /proc over the same run, gives its µs per request.

py-spy cannot see inside C code: time in uvloop's own C code (sockets, the scheduler) with
no Python frame above the loop shows as "event loop"; the collector's pauses and C
extensions (pydantic-core, orjson, httptools) count for the Python frame that called
them. py-spy's sampling runs on the load CPU and slows the load side, so the profiled run's
throughput is lower than bench/run.py's; the shares are what this is for.

Writes bench/.work/profile-<config>-<mode>.{raw,md} and prints the table.
"""

from __future__ import annotations

import argparse
import collections
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import features
from harness import (
    WORK,
    BenchError,
    Cpus,
    Target,
    clean_env,
    free_port,
    genroute_exe,
    run_wrk,
    start_python_proxy,
    use_genroute,
    verify,
    wait_ready,
    wrk_command,
    wrk_summary,
)
from proctools import Procs, cpu_seconds

BENCH = Path(__file__).resolve().parent

# (category, substring of the frame "function (file:line)"); the deepest frame that matches
# a rule names the sample's category; within one frame the first rule that matches wins.
LOOP = "event loop (uvloop C code: sockets, timers, scheduling)"
RULES: list[tuple[str, str]] = [
    (LOOP, "Runner.run (asyncio/runners.py"),
    ("asyncio tasks, futures, queues (Python part)", "(asyncio/"),
    ("uvicorn: HTTP parsing and connection (httptools)", "HttpToolsProtocol."),
    ("uvicorn: ASGI send/receive, response framing", "RequestResponseCycle.send"),
    ("uvicorn: ASGI send/receive, response framing", "RequestResponseCycle.receive"),
    ("uvicorn: ASGI send/receive, response framing", "(uvicorn/"),
    ("edge: body read", "read_body (genroute/server/asgi.py"),
    ("edge: request JSON parse + pydantic validation", "parse_json (genroute/server/app.py"),
    ("response: serialisation (pydantic dump_json)", "dump_json (genroute/wire/"),
    ("stream relay (server/streaming.py, SSE framing)", "(genroute/server/streaming.py"),
    ("stream relay (server/streaming.py, SSE framing)", "(genroute/sse.py"),
    ("edge: path, auth, Call, headers (server/)", "(genroute/server/"),
    ("Call and records (call.py)", "(genroute/call.py"),
    ("observed layer: request log (record → JSON line)", "(genroute/observability/logs.py"),
    ("observed layer: call record", "(genroute/observability/records.py"),
    ("observed layer: metrics (prometheus_client)", "(genroute/observability/metrics.py"),
    ("observed layer: metrics (prometheus_client)", "(prometheus_client/"),
    ("observed layer: tracing spans (OpenTelemetry)", "(genroute/observability/tracing.py"),
    ("observed layer: tracing spans (OpenTelemetry)", "(opentelemetry/"),
    ("observed layer: the layer itself and callbacks", "(genroute/observability/"),
    ("ledger: queue and rows (store/ledger.py)", "(genroute/store/ledger.py"),
    ("database: SQLAlchemy, asyncpg, aiosqlite", "(sqlalchemy/"),
    ("database: SQLAlchemy, asyncpg, aiosqlite", "(asyncpg/"),
    ("database: SQLAlchemy, asyncpg, aiosqlite", "(aiosqlite/"),
    ("database: SQLAlchemy, asyncpg, aiosqlite", "(genroute/store/"),
    ("governed layer: auth, admit, settle", "(genroute/governance/"),
    ("metering and cost", "(genroute/pipeline/metering.py"),
    ("metering and cost", "(genroute/cost.py"),
    ("metering and cost", "(genai_prices/"),
    ("router: resolve, pick, attempt", "(genroute/routing/"),
    ("provider: request → upstream JSON (to_wire)", "to_wire (genroute/providers/"),
    ("provider: upstream reply → parse + validate", "parse_reply (genroute/providers/"),
    ("provider: upstream reply → parse + validate", "decode_event (genroute/providers/"),
    ("provider: upstream reply → parse + validate", "from_wire (genroute/providers/"),
    ("transport wrapper (JsonTransport, AiohttpTransport)", "(genroute/providers/transport.py"),
    ("provider: the rest (translate, stream decoders)", "(genroute/providers/"),
    (LOOP, "run_app (aiohttp/web.py"),
    ("python-proxy: the handler", "(python_proxy.py"),
    ("aiohttp server: HTTP parsing, responses (python-proxy)", "(aiohttp/web_"),
    ("aiohttp client: send request, read reply", "(aiohttp/"),
    ("aiohttp client: send request, read reply", "(yarl/"),
    ("aiohttp client: send request, read reply", "(multidict/"),
    ("python logging", "(logging/"),
]
THREADS = {
    "genroute-request-log": "request log: writer thread",
    "OtelBatchSpanProcessor": "tracing: span export thread (protobuf, HTTP)",
    "MainThread": "",
}


def categorise(stack: str) -> str:
    frames = stack.split(";")
    head = frames[0]
    if head.startswith("thread ("):
        name = head.split(": ", 1)[1] if ": " in head else ""
        frames = frames[1:]
        thread = next((v for k, v in THREADS.items() if name.startswith(k)), f"thread {name}")
        if thread:
            return thread
    category = "start-up / other main-thread frames"
    for frame in frames:
        for name, needle in RULES:
            if needle in frame:
                # asyncio's Python code counts for whoever called it, except when the loop
                # itself runs it (a timer, a task step)
                if needle == "(asyncio/" and category != LOOP:
                    break
                if needle == "(aiohttp/" and category.startswith("aiohttp server"):
                    break  # aiohttp's writer, parser and streams serve its server too
                category = name
                break
    return category


Leaves = dict[str, collections.Counter[str]]


def summarise(raw: Path) -> tuple[collections.Counter[str], Leaves, int]:
    """Samples per category, samples per leaf frame within each category, total samples."""
    by_category: collections.Counter[str] = collections.Counter()
    by_leaf: Leaves = collections.defaultdict(collections.Counter)
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        category = categorise(stack)
        by_category[category] += n
        by_leaf[category][_short(stack.rsplit(";", 1)[-1])] += n
    return by_category, by_leaf, total


def _short(frame: str) -> str:
    """`func (pkg/module.py:123)` → `func (module.py:123)`."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit('/', 1)[-1]}" if where else frame


def table(
    by_category: collections.Counter[str], by_leaf: Leaves, total: int, cpu_us: float, title: str
) -> str:
    out = [
        f"#### {title}",
        "",
        f"{total} samples; CPU per request in the profiled run {cpu_us:.0f} µs.",
        "",
        "| where | share | µs per request | its top frames (own samples, share of all) |",
        "|---|--:|--:|---|",
    ]
    for name, n in by_category.most_common():
        top = ", ".join(
            f"`{leaf}` {100 * k / total:.1f}" for leaf, k in by_leaf[name].most_common(3)
        )
        out.append(f"| {name} | {100 * n / total:.1f} % | {cpu_us * n / total:.0f} | {top} |")
    return "\n".join(out) + "\n"


def py_spy() -> str:
    local = WORK / "tools-venv" / "bin" / "py-spy"
    found = str(local) if local.exists() else shutil.which("py-spy")
    if found is None:
        raise BenchError(
            f"py-spy not found: python3 -m venv {WORK / 'tools-venv'} && "
            f"{WORK / 'tools-venv' / 'bin' / 'pip'} install py-spy"
        )
    return found


def start_target(args: argparse.Namespace, ctx: features.Ctx) -> Target:
    port = ctx.ports[0]
    if args.config == "python-proxy":
        return start_python_proxy(ctx.procs, "profile-python-proxy", port, ctx.args.cpus.target)
    if args.config == "open":
        return features.genroute(ctx, "profile-open", features.open_config(port), "")
    if args.config == "default":
        config = {"model_list": [features.gemini_entry(port)]}
        config["general_settings"] = {"master_key": ctx.key}
        log_file = WORK / "features" / "profile-default.requests.log"
        config["observability"] = {
            "logs": {"enabled": True, "format": "json", "destination": str(log_file)},
            "metrics": {"enabled": True},
            "tracing": {"enabled": False},
        }
        return features.genroute(ctx, "profile-default", config, ctx.key)
    db = features.fresh_db(ctx, "genroute_bench_profile")
    if db is None:
        raise BenchError("the production profile needs PostgreSQL at 127.0.0.1:5432")
    config = features.production_config(ctx, "profile-production", db)
    ratio = 0.1 if args.config == "production-10pct" else None
    env = features.otlp_env(ctx, ratio)
    if args.config == "production-notrace":
        config["observability"]["tracing"] = {"enabled": False}
        env = {}
    target = features.genroute(ctx, "profile-production", config, ctx.key, env=env)
    target.key = features.virtual_key(target, ctx.key)
    return target


def profile(args: argparse.Namespace, procs: Procs) -> str:
    cpus = sorted(os.sched_getaffinity(0))
    pins = Cpus(str(cpus[0]), str(cpus[1]))
    upstream_port = free_port()
    argv = [sys.executable, str(BENCH / "fake_upstream.py"), "--port", str(upstream_port)]
    upstream = procs.start("fake_upstream", argv, pins.load, clean_env())
    wait_ready("fake_upstream", upstream, upstream_port, 20)
    direct = Target(
        "direct", upstream_port, "gemini-2.5-flash", upstream.pid, "x", is_upstream=True
    )
    ns = argparse.Namespace(cpus=pins, upstream_ports=[upstream_port])
    ctx = features.Ctx(ns, procs, "sk-" + secrets.token_hex(16), direct)
    try:
        target = start_target(args, ctx)
        verify(target, upstream_port)
        threads = 2 if args.conns > 1 else 1
        run_wrk(target, args.mode, args.conns, threads, 5, pins.load)  # warm-up
        cmd, env = wrk_command(target, args.mode, args.conns, threads, args.seconds + 2, pins.load)
        raw = WORK / f"profile-{args.config}-{args.mode}-c{args.conns}.raw"
        with subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        ) as wrk:
            time.sleep(1)
            cpu0 = cpu_seconds(target.pgid)
            spy = [py_spy(), "record", "--pid", str(target.pgid), "--rate", str(args.rate)]
            spy += ["--duration", str(args.seconds), "--format", "raw", "--nonblocking"]
            spy += ["--threads", "--gil", "-o", str(raw)]
            subprocess.run(["taskset", "-c", pins.load, *spy], capture_output=True, check=True)
            cpu = cpu_seconds(target.pgid) - cpu0
            stdout, stderr = wrk.communicate()
        summary = wrk_summary(target, wrk.returncode, stdout, stderr)
        requests_in_window = summary["requests"] * args.seconds / (summary["duration_us"] / 1e6)
        cpu_us = 1e6 * cpu / requests_in_window
        by_category, by_leaf, total = summarise(raw)
        title = (
            f"genroute `{args.config}`, {args.mode}, c={args.conns} "
            f"({genroute_exe().parent.parent.parent.name}); wrk {summary['requests']} requests "
            f"in {summary['duration_us'] / 1e6:.0f} s under py-spy at {args.rate} Hz"
        )
        title += (
            f"; {total / args.rate:.1f} s sampled with the GIL held, {cpu:.1f} s of CPU used "
            f"by the worker over the {args.seconds} s"
        )
        text = table(by_category, by_leaf, total, cpu_us, title)
        raw.with_suffix(".md").write_text(text)
        return text
    finally:
        procs.stop_all()
        features.drop_dbs(ns)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config",
        choices=(
            "open",
            "default",
            "production",
            "production-10pct",
            "production-notrace",
            "python-proxy",
        ),
        default="open",
    )
    parser.add_argument("--mode", choices=("generate", "stream"), default="generate")
    parser.add_argument("--conns", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--genroute", help="a checkout with its own .venv (default: this one)")
    parser.add_argument("--summarise", type=Path, help="only summarise this .raw file")
    args = parser.parse_args()
    if args.summarise:
        by_category, by_leaf, total = summarise(args.summarise)
        print(table(by_category, by_leaf, total, 0.0, str(args.summarise)))
        return 0
    if args.genroute:
        use_genroute(Path(args.genroute).resolve() / ".venv" / "bin" / "genroute")
    procs = Procs(WORK / "logs", WORK)
    try:
        print(profile(args, procs))
    except BenchError as exc:
        print(f"profile failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
