"""The core table of bench/run.py as Markdown: the rows, the start-up and memory table, the
ratios to nginx, python-proxy and LiteLLM, issue 12's passthrough goals and the comparison
with the baseline (its twin for the feature groups is feature_report.py)."""

from __future__ import annotations

import argparse
from typing import Any

from harness import REQUEST_BODY, Cpus, Target, ms

__all__ = ["GENROUTE_ROWS", "report"]

GENROUTE_ROWS = ("genroute", "genroute-lean", "genroute-open")


def _core_table(rows: list[dict[str, Any]], direct: dict[tuple[str, int], Any]) -> list[str]:
    out = [
        "| target | mode | c | req/s | p50 ms | p99 ms | +p50 ms | +p99 ms | errors "
        "| CPU µs/req | CPU% target | CPU% upstream | CPU% wrk | CPU% other |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        base = direct.get((r["mode"], r["conns"]))
        add50 = ms(r["p50_us"] - base["p50_us"]) if base and r["target"] != "direct" else "-"
        add99 = ms(r["p99_us"] - base["p99_us"]) if base and r["target"] != "direct" else "-"
        errors = f"**{r['errors']}** ⚠" if r["errors"] else "0"
        out.append(
            f"| {r['target']} | {r['mode']} | {r['conns']} | {r['rps']:.0f} | {ms(r['p50_us'])} "
            f"| {ms(r['p99_us'])} | {add50} | {add99} | {errors} | {r['cpu_us_per_req']:.0f} "
            f"| {r['target_cpu_pct']:.0f} | {r['upstream_cpu_pct']:.0f} | {r['wrk_cpu_pct']:.0f} "
            f"| {r['other_cpu_pct']:.0f} |"
        )
    return out


def _targets_lines(rows: list[dict[str, Any]], direct: dict[tuple[str, int], Any]) -> list[str]:
    """The issue's passthrough goals, for each genroute row against python-proxy."""
    by = {(r["target"], r["mode"], r["conns"]): r for r in rows}
    out = []
    for name in GENROUTE_ROWS:
        for mode in ("generate", "stream"):
            row, floor = by.get((name, mode, 32)), by.get(("python-proxy", mode, 32))
            one, base = by.get((name, mode, 1)), direct.get((mode, 1))
            if not row or not floor or not one or not base:
                continue
            ratio = row["rps"] / floor["rps"]
            add50, add99 = one["p50_us"] - base["p50_us"], one["p99_us"] - base["p99_us"]
            verdicts = [
                f"req/s at c=32 {ratio:.2f}x python-proxy (goal ≥ 1: {_met(ratio >= 1)})",
                f"CPU {row['cpu_us_per_req']:.0f} µs/req vs python-proxy "
                f"{floor['cpu_us_per_req']:.0f} (goal ≤ 200: {_met(row['cpu_us_per_req'] <= 200)})",
                f"+p50 at c=1 {ms(add50)} ms (goal ≤ 0.5: {_met(add50 <= 500)})",
                f"+p99 at c=1 {ms(add99)} ms (goal ≤ 1: {_met(add99 <= 1000)})",
            ]
            out.append(f"- {name}, {mode}: " + "; ".join(verdicts))
    return out


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _baseline_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Each genroute row against its `-baseline` twin (the old code), scenario by scenario."""
    by = {(r["target"], r["mode"], r["conns"]): r for r in rows}
    pairs = [
        (r, by[(r["target"] + "-baseline", r["mode"], r["conns"])])
        for r in rows
        if (r["target"] + "-baseline", r["mode"], r["conns"]) in by
    ]
    if not pairs:
        return []
    out = [
        "",
        "Against the baseline (the old code, same config, same run): Δ is now vs before.",
        "",
        "| row | mode | c | req/s now | req/s before | Δ req/s | p50 ms now / before "
        "| p99 ms now / before | CPU µs/req now / before |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    slower = []
    for now, old in pairs:
        delta = 100 * (now["rps"] / old["rps"] - 1) if old["rps"] else 0.0
        if delta < -3:
            slower.append(f"{now['target']} {now['mode']} c={now['conns']} ({delta:+.0f}%)")
        out.append(
            f"| {now['target']} | {now['mode']} | {now['conns']} | {now['rps']:.0f} "
            f"| {old['rps']:.0f} | {delta:+.1f}% | {ms(now['p50_us'])} / {ms(old['p50_us'])} "
            f"| {ms(now['p99_us'])} / {ms(old['p99_us'])} "
            f"| {now['cpu_us_per_req']:.0f} / {old['cpu_us_per_req']:.0f} |"
        )
    out.append("")
    if slower:
        out.append(f"- rows more than 3 % slower than the baseline: {', '.join(slower)}")
    else:
        out.append("- no row is more than 3 % slower in req/s than the baseline in this run")
    return out


def report(
    env: dict[str, str], targets: list[Target], rows: list[dict[str, Any]], args: argparse.Namespace
) -> str:
    cpus: Cpus = args.cpus
    direct = {(r["mode"], r["conns"]): r for r in rows if r["target"] == "direct"}
    baseline = f", baseline {env['baseline']}" if env.get("baseline") else ""
    out = [
        f"## Core: genroute, nginx, the Python limit and LiteLLM, {env['date']}",
        "",
        f"- machine: {env['machine']}",
        f"- versions: genroute {env['genroute']}{baseline}, nginx {env['nginx']}, "
        f"LiteLLM {env['litellm']}, wrk {env['wrk']}, Python {env['python']}",
        f"- pinning: {cpus.describe()}; gateways not being measured are paused (SIGSTOP)",
        f"- load: wrk, {args.duration:g} s per run after a {args.warmup:g} s warm-up, "
        f"{args.rounds} round(s) (several: req/s over all, p50/p99 the rounds' median); "
        f"c=1 is `-t1 -c1`, c=32 is `-t2 -c32`; request body {len(REQUEST_BODY)} B; "
        "fake upstream answers at once (~1 KB JSON, or 5 SSE events)",
        "- latency is to the last byte (for a stream, the whole stream); "
        "+p50/+p99 are the target's minus `direct`'s in the same run",
        "- CPU µs/req: CPU time of the target's process tree during the measured run ÷ requests "
        "(for `direct`, the fake upstream's); CPU% is of one CPU; `other` is the rest of the "
        "machine (this script, other users): high values mean a noisy run",
        "- rows: `genroute` = master key (so the SQLite ledger) + JSON request log + /metrics; "
        "`genroute-lean` = the same without log and metrics; `genroute-open` = no key, no "
        "ledger, no log, metrics or tracing (featureless); `python-proxy` = bench/python_proxy.py "
        "(aiohttp server + client, uvloop, bytes in and out), the Python limit; `-baseline` = "
        "the same config on the old code",
        "",
        *_core_table(rows, direct),
        "",
        "| target | start s | idle RSS MiB | peak RSS MiB | upstream path used |",
        "|---|--:|--:|--:|---|",
    ]
    for t in targets:
        name = "direct (fake upstream)" if t.name == "direct" else t.name
        paths = "<br>".join(f"`{p}`" for p in t.upstream_paths)
        out.append(
            f"| {name} | {t.start_s:.1f} | {t.idle_rss_mib:.0f} | {t.peak_rss_mib:.0f} | {paths} |"
        )
    out += ["", "RSS is summed over the process tree; peak is the sum of VmHWM.", ""]
    add = {
        (r["target"], r["mode"]): r["p50_us"] - direct[(r["mode"], 1)]["p50_us"]
        for r in rows
        if r["conns"] == 1 and (r["mode"], 1) in direct
    }
    names = [t.name for t in targets[1:]]
    for mode in ("generate", "stream"):
        added = [f"{t} {ms(add[(t, mode)])}" for t in names if (t, mode) in add]
        if added:
            out.append(f"- added p50 at c=1, {mode} (ms): {', '.join(added)}")
    rps = {(r["target"], r["mode"], r["conns"]): r["rps"] for r in rows}
    for name in [n for n in names if n.startswith("genroute")]:
        for mode in ("generate", "stream"):
            g, parts = rps.get((name, mode, 32)), []
            if g and (n := rps.get(("nginx", mode, 32))):
                parts.append(f"{100 * g / n:.0f}% of nginx")
            if g and (py := rps.get(("python-proxy", mode, 32))):
                parts.append(f"{100 * g / py:.0f}% of python-proxy")
            if g and (lt := rps.get(("litellm", mode, 32))):
                parts.append(f"{g / lt:.1f}x LiteLLM")
            if parts:
                out.append(f"- {name} throughput at c=32, {mode}: {', '.join(parts)}")
    out += ["", "The issue's passthrough goals:", "", *_targets_lines(rows, direct)]
    out += _baseline_lines(rows)
    flagged = [r for r in rows if r["errors"]]
    if flagged or args.notes:
        out.append("")
    for r in flagged:
        out.append(
            f"- ⚠ {r['target']} {r['mode']} c={r['conns']}: {r['errors']} errors "
            "(non-2xx, socket errors and timeouts; see results.json)"
        )
    for note in args.notes:
        out.append(f"- {note}")
    return "\n".join(out) + "\n"
