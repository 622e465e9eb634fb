"""Instructions per request of one genroute worker, counted by valgrind's callgrind (run by
hand, not a test): the before/after figure that a busy machine does not blur.

    .venv/bin/python bench/callgrind_run.py --genroute bench/.work/current \
        --genroute bench/.work/before --config open --config default --mode generate

For each checkout (a folder with its own `.venv`, as bench/run.py's `--genroute` and
`--baseline` make them, or a bare worktree, run with this venv's packages and the
checkout's `src` first on the path) and each config, it starts the fake upstream, then `genroute serve`
under `valgrind --tool=callgrind --instr-atstart=no` (one worker, no pinning), sends
`--warmup` requests, switches the counting on (`callgrind_control -i on`), sends
`--requests` more from `--conns` keep-alive connections, switches it off and dumps. Every
thread of the worker is counted (the event loop, the SQLite thread, the span exporter). The
instruction count is what the CPU executed for those requests, whatever else runs on the
machine; wall-clock figures are not meaningful under valgrind (it runs ~50x slower). Work
done on a timer is made to depend on the request count instead (the ledger flushes every
1000 rows, spans export every 512, the key cache does not expire during the run), so that
2000 requests after 200 of warm-up always include two ledger flushes.

Configs (as bench/cpu_profile.py's): `open` (no key, no ledger, no log, metrics or
tracing), `openai` and `anthropic` (the same in front of the fake's OpenAI Chat
Completions and Anthropic Messages APIs: the translated path), `lean` (master key and SQLite ledger only), `default` (master key, so the
SQLite ledger, JSON request log to a file, /metrics), `production` (a virtual key, the ledger on a fresh PostgreSQL database, JSON log
file, /metrics, OTLP tracing at 100 % to the fake's /v1/traces), `production-10pct`
(tracing sampled at 10 %), `production-notrace`; and `python-proxy`, bench/python_proxy.py
(aiohttp server and client, uvloop, bytes in and out: the Python limit) under the same
load, measured once whatever the checkouts. Prints a table, and writes it to
bench/.work/callgrind/<label>.md with the raw callgrind files beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness import (
    LEAN_OBSERVABILITY,
    REQUEST_BODY,
    UPSTREAM_KEY,
    WORK,
    BenchError,
    clean_env,
    free_port,
    request,
    wait_ready,
)
from proctools import Procs

BENCH = Path(__file__).resolve().parent
OUT = WORK / "callgrind"
PATHS = {
    "generate": "/v1beta/models/bench-model:generateContent",
    "stream": "/v1beta/models/bench-model:streamGenerateContent?alt=sse",
}


# Translated configs: the provider model and the API base path at the fake upstream.
TRANSLATED = {
    "openai": ("openai/gpt-4o-mini", "/v1"),
    "anthropic": ("anthropic/claude-sonnet-4-5", ""),
}


def config_for(
    kind: str, upstream: int, key: str, folder: Path, db: str | None, chunks: int = 0
) -> dict[str, Any]:
    """The genroute config of one profile config (see the module docstring); `chunks`: a
    model the fake upstream streams that many events for (else 5)."""
    entry = {
        "model_name": "bench-model",
        "params": {
            "model": f"gemini/gemini-2.5-flash-chunks-{chunks}"
            if chunks
            else "gemini/gemini-2.5-flash",
            "api_key": UPSTREAM_KEY,
            "api_base": f"http://127.0.0.1:{upstream}",
        },
    }
    if kind in TRANSLATED:  # the featureless genroute in front of another API
        model, path = TRANSLATED[kind]
        entry["params"] = {
            "model": model,
            "api_key": UPSTREAM_KEY,
            "api_base": f"http://127.0.0.1:{upstream}{path}",
        }
    config: dict[str, Any] = {"model_list": [entry]}
    if kind == "open" or kind in TRANSLATED:
        config["observability"] = LEAN_OBSERVABILITY
        return config
    log = {"enabled": True, "format": "json", "destination": str(folder / "requests.log")}
    tracing = {"enabled": kind in ("production", "production-10pct")}
    config["observability"] = {"logs": log, "metrics": {"enabled": True}, "tracing": tracing}
    if kind == "lean":  # the master key and the ledger, no log, metrics or tracing
        config["observability"] = LEAN_OBSERVABILITY
    # Timers off the request path fire by the wall clock, which valgrind slows ~50x: the
    # ledger flushes when 1000 rows have queued (not every second), the key cache keeps
    # what it loaded, spans export when 512 have queued (OTEL_BSP_SCHEDULE_DELAY below),
    # so that each such cost is counted for the requests it serves, as at full speed.
    config["general_settings"] = {"master_key": key, "spend_flush_interval": 600}
    config["general_settings"]["key_cache_ttl"] = 600
    if kind.startswith("production"):
        assert db is not None
        config["general_settings"]["database_url"] = db
    return config


def fresh_db(name: str) -> str:
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    for cmd in (["dropdb", "--if-exists"], ["createdb"]):
        subprocess.run([*cmd, "-h", "127.0.0.1", "-U", "postgres", name], check=True)
    return url


async def load(port: int, path: str, key: str, count: int, conns: int) -> int:
    """`count` requests over `conns` keep-alive connections; how many answered 200."""
    import aiohttp

    headers = {"x-goog-api-key": key, "content-type": "application/json"}
    left = count
    ok = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal left, ok
        while left > 0:
            left -= 1
            async with session.post(f"http://127.0.0.1:{port}{path}", data=REQUEST_BODY) as r:
                await r.read()
                ok += r.status == 200

    connector = aiohttp.TCPConnector(limit=conns)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(
        connector=connector, headers=headers, timeout=timeout
    ) as session:
        await asyncio.gather(*(worker(session) for _ in range(conns)))
    return ok


def measure(args: argparse.Namespace, checkout: Path, kind: str, procs: Procs) -> dict[str, Any]:
    python = checkout / ".venv" / "bin" / "python"
    exe = checkout / ".venv" / "bin" / "genroute"
    if not exe.exists():  # a bare checkout: this venv's packages, the checkout's source
        python, exe = Path(sys.executable), Path(sys.executable).with_name("genroute")
    name = (
        f"{checkout.name}-{kind}-{args.mode}" if kind != "python-proxy" else f"{kind}-{args.mode}"
    )
    folder = OUT / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    upstream = free_port()
    fake = procs.start(
        f"cg-fake-{name}", [sys.executable, str(BENCH / "fake_upstream.py"), "--port", str(upstream)],
        None, clean_env(),
    )  # fmt: skip
    wait_ready("fake_upstream", fake, upstream, 20)
    key = "sk-" + secrets.token_hex(16)
    db = fresh_db(f"genroute_cg_{os.getpid()}") if kind.startswith("production") else None
    conf = folder / "config.yaml"
    conf.write_text(json.dumps(config_for(kind, upstream, key, folder, db, args.chunks)))
    env = clean_env() | {"PYTHONPATH": str(checkout / "src")}
    if kind in ("production", "production-10pct"):
        env["OTEL_BSP_SCHEDULE_DELAY"] = "600000"
        env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = f"http://127.0.0.1:{upstream}/v1/traces"
        if kind == "production-10pct":
            env |= {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio"}
            env["OTEL_TRACES_SAMPLER_ARG"] = "0.1"
    port = free_port()
    out = folder / "callgrind.out"
    argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    if kind == "python-proxy":  # the Python limit: bytes in, bytes out, same load
        argv += [sys.executable, str(BENCH / "python_proxy.py"), "--port", str(port)]
        argv += ["--upstream", f"http://127.0.0.1:{upstream}", "--upstream-key", UPSTREAM_KEY]
    else:
        argv += [str(python), str(exe), "serve", "--config", str(conf), "--host", "127.0.0.1"]
        argv += ["--port", str(port), "--workers", "1"]
    proc = procs.start(f"cg-{name}", argv, None, env, cwd=folder)
    try:
        wait_ready(name, proc, port, 600)
        client_key = key
        if kind.startswith("production"):
            body = json.dumps({"key_alias": "callgrind"})
            status, _, data = request(port, "POST", "/key/generate", {"x-goog-api-key": key}, body)
            if status != 200:
                raise BenchError(f"{name}: /key/generate returned {status}: {data[:200]!r}")
            client_key = str(json.loads(data)["key"])
        path = PATHS[args.mode]
        if kind == "python-proxy" and args.chunks:  # it passes the model name on as it is
            path = path.replace("bench-model", f"gemini-2.5-flash-chunks-{args.chunks}")
        asyncio.run(load(port, path, client_key, args.warmup, args.conns))
        subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True,
                       capture_output=True)  # fmt: skip
        started = time.monotonic()
        ok = asyncio.run(load(port, path, client_key, args.requests, args.conns))
        seconds = time.monotonic() - started
        subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], check=True,
                       capture_output=True)  # fmt: skip
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True,
                       capture_output=True)  # fmt: skip
        total = sum(instructions(p) for p in folder.glob("callgrind.out*"))
    finally:
        procs.stop([proc.pid, fake.pid])
        if db is not None:
            subprocess.run(["dropdb", "--if-exists", "-h", "127.0.0.1", "-U", "postgres",
                            db.rsplit("/", 1)[1]], check=False)  # fmt: skip
    if ok != args.requests:
        raise BenchError(f"{name}: {args.requests - ok} of {args.requests} requests failed")
    return {"name": name, "instructions": total, "per_request": total / args.requests,
            "seconds": seconds}  # fmt: skip


def instructions(path: Path) -> int:
    """The instruction count of one callgrind dump (its `totals:` line; a dump taken with
    the counting switched off has `summary: 0`)."""
    counts = [
        int(line.split()[1])
        for line in path.read_text(errors="replace").splitlines()
        if line.startswith(("summary:", "totals:"))
    ]
    return max(counts, default=0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genroute", action="append", type=Path, required=True,
                        help="a checkout with its own .venv (repeatable)")  # fmt: skip
    parser.add_argument("--config", action="append",
                        choices=("open", "lean", "default", "production", "production-10pct",
                                 "production-notrace", "python-proxy", *TRANSLATED))  # fmt: skip
    parser.add_argument("--mode", choices=tuple(PATHS), default="generate")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--conns", type=int, default=8)
    parser.add_argument("--label", default="latest")
    parser.add_argument("--chunks", type=int, default=0,
                        help="stream this many events (the fake's -chunks-N models); 0: 5")  # fmt: skip
    args = parser.parse_args()
    procs = Procs(WORK / "logs", WORK)
    rows = []
    try:
        for kind in args.config or ["open"]:
            for checkout in args.genroute[:1] if kind == "python-proxy" else args.genroute:
                row = measure(args, checkout.resolve(), kind, procs)
                rows.append(row)
                print(f"{row['name']}: {row['per_request'] / 1e6:.3f} M instructions/request")
    finally:
        procs.stop_all()
    lines = [
        f"callgrind, {args.mode}, {args.requests} requests over {args.conns} connections "
        f"after {args.warmup} of warm-up",
        "",
        "| checkout-config-mode | M instructions / request |",
        "|---|--:|",
        *(f"| {r['name']} | {r['per_request'] / 1e6:.3f} |" for r in rows),
    ]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{args.label}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
