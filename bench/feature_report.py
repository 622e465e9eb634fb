"""The markdown of bench/run.py's feature comparisons (`--suite features`): a `Group` of
measured rows, what each target is (`DESCRIBE`), the lines that sum each group up, and one
results block per group.

bench/features.py starts, measures and stops the targets; this module only reads the rows.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness import ms

CHUNKS = (5, 50)  # events per stream: the fake's default, and CHUNK_MODEL's


@dataclass
class Group:
    """One feature comparison: its targets, the aggregated rows and what they say."""

    name: str
    title: str
    baseline: str  # the `direct` target of this group
    reference: str  # the target the others are compared with
    targets: list[dict[str, Any]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


DESCRIBE = {
    "direct-openai": "wrk → fake `/v1/chat/completions` (no gateway)",
    "genroute-gemini": "genroute, `gemini/gemini-2.5-flash` (passthrough), master key",
    "genroute-openai": "genroute, `openai/gpt-4o-mini`, master key",
    "genroute-anthropic": "genroute, `anthropic/claude-sonnet-4-5` (fake `/v1/messages`), master key",
    "genroute-open": "no key, no ledger, no logs/metrics/tracing: the featureless genroute",
    "genroute-production": "virtual key, PostgreSQL ledger, JSON log file, metrics, OTLP tracing 100 %",
    "genroute-production-10pct": "the same, tracing sampled at 10 % (parentbased_traceidratio)",
    "genroute-production-notrace": "the same without tracing",
    "open-w1": "featureless, `--workers 1`",
    "open-w2": "featureless, `--workers 2`",
    "production-w1": "every feature on (tracing 100 %), `--workers 1`",
    "production-w2": "every feature on (tracing 100 %), `--workers 2`",
    "litellm-openai": "LiteLLM, `openai/gpt-4o-mini`, master key, no DB",
    "direct": "wrk → fake Gemini (no gateway)",
    "router-1-deployment": "one deployment (`dep-a`)",
    "router-3-deployments": "three deployments (`dep-a/b/c`, 3 upstream ports), simple-shuffle",
    "keys-open": "no master key, no database: no governance",
    "keys-master-sqlite": "master key only (→ SQLite ledger `genroute.db`)",
    "keys-vkey-sqlite": "virtual key, SQLite ledger",
    "keys-vkey-postgres": "virtual key, PostgreSQL ledger",
    "obs-all-on": "JSON request log + /metrics + OTLP tracing to the fake's `/v1/traces`",
    "obs-no-tracing": "JSON request log + /metrics, no tracing (the default without OTLP)",
    "obs-all-off": "logs, metrics and tracing off (`genroute-lean`)",
}


def _row(group: Group, target: str, mode: str, conns: int) -> dict[str, Any] | None:
    return next(
        (r for r in group.rows if (r["target"], r["mode"], r["conns"]) == (target, mode, conns)),
        None,
    )


def added(group: Group, target: str, mode: str = "generate") -> float | None:
    """p50 at c=1 over the group's direct baseline, in µs."""
    row, base = _row(group, target, mode, 1), _row(group, group.baseline, mode, 1)
    return row["p50_us"] - base["p50_us"] if row and base else None


def rps(group: Group, target: str, mode: str = "generate") -> float | None:
    row = _row(group, target, mode, 32)
    return row["rps"] if row else None


def _vs(group: Group, target: str, ref: str, limit_ms: float | None = None) -> str:
    """`target` against `ref`: p50 at c=1 and req/s at c=32."""
    a, b, ra, rb = added(group, target), added(group, ref), rps(group, target), rps(group, ref)
    if a is None or b is None or ra is None or rb is None:
        return f"{target} vs {ref}: not measured"
    verdict = ""
    if limit_ms is not None:
        met = (a - b) / 1000 < limit_ms
        verdict = f" (target < {limit_ms:g} ms: {'met' if met else '**not met**'})"
    return (
        f"{target} vs {ref}: p50 at c=1 {'+' if a >= b else ''}{ms(a - b)} ms{verdict}; "
        f"req/s at c=32 {ra:.0f} vs {rb:.0f} ({100 * (ra / rb - 1):+.0f}%)"
    )


def _ratio(
    group: Group, target: str, ref: str, mode: str, goal: float | None = None, conns: int = 32
) -> str | None:
    """req/s of `target` as a multiple of `ref`'s, with the issue's goal when given."""
    a, b = _row(group, target, mode, conns), _row(group, ref, mode, conns)
    if not a or not b or not b["rps"]:
        return None
    ratio = a["rps"] / b["rps"]
    verdict = f" (goal ≥ {goal:g}x: {'met' if ratio >= goal else '**not met**'})" if goal else ""
    return (
        f"{mode}, req/s at c={conns}: {target} {a['rps']:.0f} / {ref} {b['rps']:.0f} = "
        f"**{ratio:.2f}x**{verdict}; CPU per request {a['cpu_us_per_req']:.0f} vs "
        f"{b['cpu_us_per_req']:.0f} µs"
    )


def _streaming_summary(group: Group) -> None:
    out = group.summary
    base = _row(group, "direct", "ttfb", 1)
    for target in ("python-proxy", "genroute-open", "genroute"):
        row = _row(group, target, "ttfb", 1)
        if row and base:
            add = row["ttfb_p50_us"] - base["ttfb_p50_us"]
            met = "met" if add <= 500 else "**not met**"
            out.append(
                f"{target}: time to first event at c=1 p50 {ms(row['ttfb_p50_us'])} / p99 "
                f"{ms(row['ttfb_p99_us'])} ms, **+{ms(add)} ms** over direct (goal ≤ 0.5 ms: "
                f"{met}); first response byte p50 {ms(row['first_byte_p50_us'])} ms"
            )
        few, many = _row(group, target, "stream", 32), _row(group, target, "stream-50", 32)
        one_few, one_many = _row(group, target, "stream", 1), _row(group, target, "stream-50", 1)
        if few and many:
            extra = CHUNKS[1] - CHUNKS[0]
            cpu = (many["cpu_us_per_req"] - few["cpu_us_per_req"]) / extra
            text = f"{target}: one more chunk costs **{cpu:.1f} µs of CPU** (c=32"
            if one_few and one_many:
                text += f"; {(one_many['p50_us'] - one_few['p50_us']) / extra:.1f} µs of p50 at c=1"
            out.append(
                text + f"), from {CHUNKS[0]} vs {CHUNKS[1]} events: "
                f"{few['cpu_us_per_req']:.0f} vs {many['cpu_us_per_req']:.0f} µs per stream"
            )


def _production_summary(group: Group) -> None:
    for mode in ("generate", "stream"):
        for name, ref, goal in (
            ("genroute-production", "genroute-open", 0.7),
            ("genroute-production-10pct", "genroute-open", 0.7),
            ("genroute-production-notrace", "genroute-open", None),
            ("genroute-production", "genroute-production-notrace", None),
            ("genroute-production-10pct", "genroute-production-notrace", 0.95),
        ):
            if line := _ratio(group, name, ref, mode, goal):
                group.summary.append(line)
    group.summary.append(_vs(group, "genroute-production", "genroute-open"))


def _workers_summary(group: Group) -> None:
    for name, ref in (("open-w2", "open-w1"), ("production-w2", "production-w1")):
        if line := _ratio(group, name, ref, "generate", 1.8):
            group.summary.append(line)


def _translated_summary(group: Group) -> None:
    out = group.summary
    for mode in ("generate", "stream"):
        for name in ("genroute-openai", "genroute-anthropic"):
            if line := _ratio(group, name, "genroute-gemini", mode, 0.8):
                out.append(line)
    for mode in ("generate", "stream"):
        g, lt = rps(group, "genroute-openai", mode), rps(group, "litellm-openai", mode)
        if g and lt:
            out.append(
                f"{mode}, req/s at c=32: genroute {g:.0f}, LiteLLM {lt:.0f}: "
                f"genroute/LiteLLM = **{g / lt:.1f}x**"
            )
        parts = []
        for name in ("genroute-gemini", "genroute-openai", "genroute-anthropic", "litellm-openai"):
            row, add = _row(group, name, mode, 1), added(group, name, mode)
            if row and add is not None:
                parts.append(
                    f"{name} p50 {ms(row['p50_us'])} / p99 {ms(row['p99_us'])} ms, "
                    f"+p50 over direct-openai {ms(add)} ms"
                )
        if parts:
            out.append(f"{mode}, c=1: " + "; ".join(parts))


def _keys_summary(group: Group) -> None:
    group.summary.append(_vs(group, "keys-master-sqlite", "keys-open"))
    for name in ("keys-vkey-sqlite", "keys-vkey-postgres"):
        if _row(group, name, "generate", 1):
            group.summary.append(_vs(group, name, "keys-master-sqlite", 0.5))


def _observability_summary(group: Group) -> None:
    group.summary.append(_vs(group, "obs-all-on", "obs-all-off", 0.3))
    group.summary.append(_vs(group, "obs-no-tracing", "obs-all-off"))


def _router_summary(group: Group) -> None:
    group.summary.append(_vs(group, "router-3-deployments", "router-1-deployment"))


SUMMARIES: dict[str, Callable[[Group], None]] = {
    "translated": _translated_summary,
    "router": _router_summary,
    "keys": _keys_summary,
    "observability": _observability_summary,
    "production": _production_summary,
    "workers": _workers_summary,
    "streaming": _streaming_summary,
}


def summarise(group: Group) -> None:
    SUMMARIES[group.name](group)


def report(groups: list[Group], args: argparse.Namespace, env: dict[str, str]) -> dict[str, str]:
    """One markdown block per group, named `feature-<group>` (see results_file.py)."""
    blocks: dict[str, str] = {}
    for group in groups:
        out = [
            f"### {group.title}",
            "",
            f"Run {env['date']}, genroute {env['genroute']}, {env['machine']}; "
            f"{args.feature_rounds} rounds of {args.feature_duration:g} s after "
            f"{args.feature_warmup:g} s of warm-up, targets alternating; pinning: "
            f"{args.cpus.describe()}.",
            "",
        ]
        if group.rows:
            out.append(
                "| target | setup | mode | c | req/s | p50 ms | p99 ms | +p50 ms | Δp50 ms "
                "| req/s vs ref | spread ms | errors | CPU µs/req | CPU% target | CPU% other |"
            )
            out.append("|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
        for r in group.rows:
            base = _row(group, group.baseline, r["mode"], r["conns"])
            ref = _row(group, group.reference, r["mode"], r["conns"])
            direct = r["target"] == group.baseline
            add = "-" if direct or not base else ms(r["p50_us"] - base["p50_us"])
            delta = "-" if direct or not ref or ref is r else ms(r["p50_us"] - ref["p50_us"])
            versus = "-" if direct or not ref or ref is r else f"{100 * r['rps'] / ref['rps']:.0f}%"
            name = f"**{r['target']}**" if r["target"] == group.reference else r["target"]
            errors = f"**{r['errors']}** ⚠" if r["errors"] else "0"
            out.append(
                f"| {name} | {DESCRIBE.get(r['target'], '')} | {r['mode']} | {r['conns']} "
                f"| {r['rps']:.0f} | {ms(r['p50_us'])} | {ms(r['p99_us'])} | {add} | {delta} "
                f"| {versus} | {ms(r['p50_spread_us'])} | {errors} | {r['cpu_us_per_req']:.0f} "
                f"| {r['target_cpu_pct']:.0f} | {r['other_cpu_pct']:.0f} |"
            )
        if group.name == "streaming" and group.rows:
            out += [
                "",
                "`ttfb` rows: one stream after another on one connection (a Python client "
                "pinned to the load CPU); p50/p99 are to the end of the stream; the time to "
                "the first event is below. `stream-50`: the same request on a model the fake "
                "streams 50 events for. For `direct` the CPU is the fake upstream's.",
            ]
        if group.targets:
            paths = {
                t["name"]: ", ".join(f"`{p}`" for p in t["upstream_paths"]) for t in group.targets
            }
            rss = ", ".join(
                f"{t['name']} {t['idle_rss_mib']:.0f}/{t['peak_rss_mib']:.0f}"
                for t in group.targets
                if not t["is_upstream"]
            )
            out += ["", f"- idle/peak RSS MiB: {rss}"]
            if group.name == "translated":
                out += [f"- upstream paths of {name}: {p}" for name, p in paths.items() if p]
        out += [f"- {line}" for line in group.summary]
        out += [f"- {note}" for note in group.notes]
        blocks[f"feature-{group.name}"] = "\n".join(out) + "\n"
    return blocks
