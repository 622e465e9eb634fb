"""`bench/run.py --soak MINUTES`: resident memory of genroute with every feature on, under
load at c=32 for a long while.

One genroute, one worker pinned like every target: a virtual key, the spend ledger on a
fresh PostgreSQL database, a JSON request log to a file, /metrics and OpenTelemetry
tracing at 100 % over OTLP/HTTP to the fake upstream. After a warm-up at c=32, wrk loads
it at c=32 (generateContent) for MINUTES while the RSS of its process tree, its CPU time
and the requests the fake upstream has answered are read every 10 s. The report: the
samples (one a minute), the first/last/min/max RSS and the growth from the first sample
to the last, against the issue's goal (flat within 10 %).
"""

from __future__ import annotations

import argparse
import subprocess
import time
from typing import Any

import features
from harness import (
    BenchError,
    Target,
    run_wrk,
    upstream_paths,
    verify,
    wrk_command,
    wrk_summary,
)
from proctools import Procs, cpu_seconds, tree_mib

SAMPLE_S = 10.0
WARMUP_S = 60.0
GENERATE_PATH = "POST /v1beta/models/gemini-2.5-flash:generateContent"


def _sample(target: Target, upstream_port: int, t0: float) -> dict[str, float]:
    served = upstream_paths(upstream_port).get(GENERATE_PATH, 0)
    return {
        "t": time.monotonic() - t0,
        "rss_mib": tree_mib(target.pgid, "VmRSS"),
        "cpu_s": cpu_seconds(target.pgid),
        "served": served,
    }


def _report(
    samples: list[dict[str, float]], summary: dict[str, Any], args: argparse.Namespace, env: Any
) -> str:
    first, last = samples[0], samples[-1]
    rss = [s["rss_mib"] for s in samples]
    growth = 100 * (last["rss_mib"] / first["rss_mib"] - 1)
    spread = 100 * (max(rss) / min(rss) - 1)
    flat = abs(growth) <= 10 and spread <= 10
    out = [
        f"### Soak: RSS over {args.soak:g} minutes at c=32, every feature on",
        "",
        f"Run {env['date']}, genroute {env['genroute']}, {env['machine']}; pinning: "
        f"{args.cpus.describe()}. One worker; virtual key, PostgreSQL ledger, JSON request log "
        "to a file, /metrics, OTLP tracing at 100 % to the fake's /v1/traces; "
        f"{WARMUP_S:g} s of warm-up at c=32 first.",
        "",
        "| minute | RSS MiB | req/s in the last interval | CPU% |",
        "|--:|--:|--:|--:|",
    ]
    shown = [s for i, s in enumerate(samples) if i % 6 == 0 or i == len(samples) - 1]
    prev = samples[0]
    for sample in samples[1:]:
        sample["rps"] = (sample["served"] - prev["served"]) / (sample["t"] - prev["t"])
        sample["cpu_pct"] = 100 * (sample["cpu_s"] - prev["cpu_s"]) / (sample["t"] - prev["t"])
        prev = sample
    for sample in shown:
        rps = f"{sample['rps']:.0f}" if "rps" in sample else "-"
        cpu = f"{sample['cpu_pct']:.0f}" if "cpu_pct" in sample else "-"
        out.append(f"| {sample['t'] / 60:.1f} | {sample['rss_mib']:.1f} | {rps} | {cpu} |")
    requests = summary.get("requests", 0)
    seconds = summary.get("duration_us", 1) / 1e6
    out += [
        "",
        f"- RSS first {first['rss_mib']:.1f} MiB, last {last['rss_mib']:.1f}, min {min(rss):.1f}, "
        f"max {max(rss):.1f} ({len(samples)} samples every {SAMPLE_S:g} s): growth first to last "
        f"**{growth:+.1f} %**, max/min {spread:.1f} % (goal: flat within 10 %: "
        f"{'met' if flat else '**not met**'})",
        f"- wrk: {requests} requests, {requests / seconds:.0f} req/s, p50 "
        f"{summary.get('p50_us', 0) / 1000:.2f} ms, p99 {summary.get('p99_us', 0) / 1000:.2f} ms, "
        f"errors {sum(summary.get(k, 0) for k in ('status_errors', 'timeouts', 'read_errors'))}",
    ]
    return "\n".join(out) + "\n"


def run(
    args: argparse.Namespace, procs: Procs, key: str, direct: Target, env: dict[str, str]
) -> str:
    ctx = features.Ctx(args, procs, key, direct)
    try:
        db = features.fresh_db(ctx, "genroute_bench_soak")
        if db is None:
            raise BenchError("the soak needs PostgreSQL at 127.0.0.1:5432 (createdb failed)")
        config = features.production_config(ctx, "genroute-soak", db)
        target = features.genroute(ctx, "genroute-soak", config, key, env=features.otlp_env(ctx))
        target.key = features.virtual_key(target, key)
        verify(target, direct.port)
        print(f"soak: warming up {WARMUP_S:g} s ...", flush=True)
        run_wrk(target, "generate", 32, 2, WARMUP_S, args.cpus.load)
        seconds = args.soak * 60
        cmd, wrk_env = wrk_command(target, "generate", 32, 2, seconds, args.cpus.load)
        t0 = time.monotonic()
        samples = [_sample(target, direct.port, t0)]
        print(f"soak: {args.soak:g} min at c=32, RSS every {SAMPLE_S:g} s", flush=True)
        with subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=wrk_env
        ) as wrk:
            while wrk.poll() is None:
                time.sleep(SAMPLE_S - (time.monotonic() - t0) % SAMPLE_S)
                if wrk.poll() is None:
                    samples.append(_sample(target, direct.port, t0))
                    print(f"  {samples[-1]['t']:6.0f} s  RSS {samples[-1]['rss_mib']:.1f} MiB")
            stdout, stderr = wrk.communicate()
        summary = wrk_summary(target, wrk.returncode, stdout, stderr)
        return _report(samples, summary, args, env)
    finally:
        procs.stop([p.pid for p in procs.started if p.pid != direct.pgid])
        features.drop_dbs(args)
