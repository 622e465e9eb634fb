"""What stalls one request in a hundred at c=1 (run by hand, not a test).

    .venv/bin/python bench/stall_probe.py [--config default|lean|open|production]
        [--seconds 20] [--genroute CHECKOUT] [--switch-interval MS] [--gc-off]
        [--load-first S] [--pauses N [--pause-seconds S]]

Starts the fake upstream (on the load CPU) and one genroute worker (on the target CPU)
under a small wrapper that records, with the monotonic clock the client also reads:

* every garbage collection (`gc.callbacks`: generation, start, end);
* every spend-ledger write (`genroute.store.ledger.write_batch`, when the module has it:
  start and end, rows);
* every write of the request-log thread (`RequestLog._write_lines`) and every OTLP span
  export (`OTLPSpanExporter.export`), both on their own threads.

A Python client on the load CPU then sends generateContent requests one after another (c=1)
on one keep-alive connection, recording when each starts and ends. Afterwards the requests
slower than the slow threshold (default: 3 x the median, at least 2 ms) are matched with the
events that overlap them, against how often an event of that kind overlaps any request:
the kind that covers most slow requests and few others is the cause.

A sampler thread also records the loop thread's Python stack whenever the loop has not
come back for 8 ms, and the report lists the slowest requests with every event that
overlapped them. `--load-first S` runs wrk at c=32 for S seconds before the c=1 run (the
state a bench round's c=32 run leaves behind); `--pauses N` then stops the worker N times
(SIGSTOP for `--pause-seconds`, as bench/run.py pauses the targets it is not measuring),
and after each a 1 s warm-up and 3 s more of requests are recorded.

Experiments: `--switch-interval MS` sets `sys.setswitchinterval` in the worker (how long a
thread that wants the GIL waits for another to give it up; Python's default is 5 ms), and
`--gc-off` turns the collector off after start-up (`gc.disable()`), to confirm a cause by
removing it. Writes bench/.work/stall-<config>.md and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

# ---------------------------------------------------------------- inside the worker


def _instrument(events_path: str, switch_ms: float | None, gc_off: bool) -> None:
    """Record events in the genroute worker; written to `events_path` at exit."""
    import atexit
    import gc

    clock = time.perf_counter_ns
    events: list[tuple[str, int, int, int]] = []
    started: dict[str, int] = {}

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started["gc"] = clock()
        else:
            events.append((f"gc gen{info['generation']}", started.get("gc", 0), clock(), 0))

    gc.callbacks.append(on_gc)
    if switch_ms is not None:
        sys.setswitchinterval(switch_ms / 1000)
    try:
        from genroute.store import ledger

        original_write = getattr(ledger, "write_batch", None)
        if original_write is not None:

            async def write_batch(store: Any, records: Any, *args: Any, **kwargs: Any) -> Any:
                t0 = clock()
                try:
                    return await original_write(store, records, *args, **kwargs)
                finally:
                    events.append(("ledger write", t0, clock(), len(records)))

            ledger.write_batch = write_batch
            from genroute.store import writer  # it calls the name it imported

            if getattr(writer, "write_batch", None) is original_write:
                writer.write_batch = write_batch  # type: ignore[attr-defined]
    except ImportError:
        pass
    from genroute.observability import logs

    original_lines = logs.RequestLog._write_lines

    def _write_lines(self: Any, lines: list[bytes]) -> None:
        t0 = clock()
        try:
            original_lines(self, lines)
        finally:
            events.append(("request-log write (thread)", t0, clock(), len(lines)))

    logs.RequestLog._write_lines = _write_lines  # type: ignore[method-assign]
    _patch_exports(events, clock)
    _watch_loop(events, clock)
    if gc_off:
        from genroute.cli import serve

        settle = serve.settle_heap

        def settle_and_stop() -> None:
            settle()
            gc.disable()

        serve.settle_heap = settle_and_stop

    def dump() -> None:
        Path(events_path).write_text(json.dumps(events))

    def on_term(signum: int, frame: Any) -> None:
        # uvicorn restores this handler after its graceful shutdown and raises SIGTERM
        # again: write the events then, since the default action would skip atexit
        dump()
        os._exit(0)

    atexit.register(dump)
    signal.signal(signal.SIGTERM, on_term)


def _patch_exports(events: list[tuple[str, int, int, int]], clock: Any) -> None:
    """Record every span export (the SDK's OTLP exporter, and genroute's subclass)."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        original_export = OTLPSpanExporter.export

        def export(self: Any, spans: Any) -> Any:
            t0 = clock()
            try:
                return original_export(self, spans)
            finally:
                events.append(("span export (thread)", t0, clock(), len(spans)))

        OTLPSpanExporter.export = export  # type: ignore[method-assign]
        try:  # genroute's own subclass, where there is one, exports without calling it
            from genroute.observability.otlp import FastOTLPSpanExporter

            original_fast = FastOTLPSpanExporter.export

            def export_fast(self: Any, spans: Any) -> Any:
                t0 = clock()
                try:
                    return original_fast(self, spans)
                finally:
                    events.append(("span export (thread)", t0, clock(), len(spans)))

            FastOTLPSpanExporter.export = export_fast  # type: ignore[method-assign]
        except ImportError:
            pass
    except ImportError:
        pass


LAG_PERIOD_MS = 1.0
LAG_REPORTED_MS = 1.0


def _watch_loop(events: list[tuple[str, int, int, int]], clock: Any) -> None:
    """Once the pipeline has started, a task wakes every millisecond; each wake-up later
    than 1 ms past its time is a loop stall, recorded with the main thread's CPU time
    during it: near the stall's length, the loop was busy running something; near zero,
    the thread was not running (the OS ran another process, or it waited for the GIL)."""
    import asyncio

    from genroute.pipeline import build

    beat = [clock()]

    async def watch() -> None:
        period = LAG_PERIOD_MS / 1000
        _start_sampler(events, clock, beat)
        while True:
            t0, cpu0 = clock(), time.thread_time_ns()
            beat[0] = t0
            await asyncio.sleep(period)
            t1, cpu1 = clock(), time.thread_time_ns()
            late_ms = (t1 - t0) / 1e6 - LAG_PERIOD_MS
            if late_ms > LAG_REPORTED_MS:
                busy = (cpu1 - cpu0) / (t1 - t0)
                kind = "loop stall, thread running" if busy >= 0.5 else "loop stall, not running"
                events.append((kind, t0, t1, int(busy * 100)))

    original_start = build.Pipeline.start

    async def start(self: Any) -> None:
        await original_start(self)
        if not hasattr(self, "_stall_watch"):
            self._stall_watch = asyncio.get_running_loop().create_task(watch())

    build.Pipeline.start = start  # type: ignore[method-assign]


STACK_AFTER_MS = 8.0


def _start_sampler(events: list[Any], clock: Any, beat: list[int]) -> None:
    """A thread that looks at the loop every 2 ms: when its watcher has not run for
    `STACK_AFTER_MS`, the loop thread's Python stack is recorded (once per stall), as a
    "loop stack" event whose last field is the stack's innermost frames."""
    import threading
    import traceback

    loop_thread = threading.get_ident()

    def sample() -> None:
        seen = 0
        while True:
            time.sleep(0.002)
            since = beat[0]
            if since == seen or clock() - since < STACK_AFTER_MS * 1e6:
                continue
            seen = since
            frame = sys._current_frames().get(loop_thread)
            stack = traceback.format_stack(frame)[-14:] if frame is not None else []
            events.append(("loop stack", since, clock(), "".join(stack)))

    threading.Thread(target=sample, name="stall-sampler", daemon=True).start()


def serve_main(argv: list[str]) -> None:
    """`stall_probe.py --serve EVENTS SWITCH_MS GC_OFF -- genroute serve args`."""
    events, switch, gc_off = argv[0], argv[1], argv[2] == "1"
    _instrument(events, float(switch) if switch != "-" else None, gc_off)
    from genroute.cli import main

    sys.argv = ["genroute", *argv[4:]]
    sys.exit(main())


# ---------------------------------------------------------------- the driver


def client(port: int, path: str, key: str, body: bytes, seconds: float) -> list[tuple[int, int]]:
    """(start, end) in perf_counter ns of each request, c=1 on one connection."""
    import socket

    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    if key:
        head += f"x-goog-api-key: {key}\r\n"
    request = head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    clock = time.perf_counter_ns
    out: list[tuple[int, int]] = []
    deadline = clock() + int(seconds * 1e9)
    while clock() < deadline:
        t0 = clock()
        sock.sendall(request)
        buf = b""
        need = -1
        while True:
            buf += sock.recv(65536)
            if need < 0 and (end := buf.find(b"\r\n\r\n")) >= 0:
                if not buf.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(buf[:300])
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in buf[:end].split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                need = end + 4 + length
            if need >= 0 and len(buf) >= need:
                break
        out.append((t0, clock()))
    sock.close()
    return out


def analyse(
    requests: list[tuple[int, int]], events: list[list[Any]], threshold_us: float | None
) -> str:
    latencies = sorted((e - s) / 1000 for s, e in requests)
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[int(0.99 * len(latencies))]
    slow_at = threshold_us or max(2000.0, 3 * p50)
    slow = [(s, e) for s, e in requests if (e - s) / 1000 >= slow_at]
    kinds = sorted({e[0] for e in events})
    lines = [
        f"{len(requests)} requests at c=1: p50 {p50 / 1000:.2f} ms, p99 {p99 / 1000:.2f} ms, "
        f"max {latencies[-1] / 1000:.2f} ms; {len(slow)} slow (≥ {slow_at / 1000:.2f} ms, "
        f"{100 * len(slow) / len(requests):.2f} %)",
        "",
        "| event | count | median ms | max ms | overlaps slow requests | overlaps any request "
        "| slow requests it explains |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    explained: set[int] = set()
    for kind in kinds:
        spans = sorted((e[1], e[2]) for e in events if e[0] == kind)
        durations = sorted((b - a) / 1e6 for a, b in spans)

        def overlapping(
            reqs: list[tuple[int, int]], spans: list[tuple[int, int]] = spans
        ) -> set[int]:
            import bisect

            starts = [a for a, _ in spans]
            hit = set()
            for i, (s, e) in enumerate(reqs):
                j = bisect.bisect_right(starts, e)
                # events that start before the request ends and end after it starts
                for a, b in spans[max(0, j - 50) : j]:
                    if b >= s and a <= e:
                        hit.add(i)
                        break
            return hit

        on_slow, on_any = overlapping(slow), overlapping(requests)
        explained |= on_slow
        lines.append(
            f"| {kind} | {len(spans)} | {durations[len(durations) // 2]:.2f} "
            f"| {durations[-1]:.2f} | {len(on_slow)} of {len(slow)} "
            f"({100 * len(on_slow) / max(1, len(slow)):.0f} %) "
            f"| {100 * len(on_any) / len(requests):.1f} % "
            f"| {100 * len(on_slow) / max(1, len(slow)):.0f} % |"
        )
    lines += [
        "",
        f"- slow requests overlapped by no recorded event: "
        f"{len(slow) - len(explained)} of {len(slow)}",
    ]
    lines += _slowest(requests, events)
    lines += _stalls_by_cause(events)
    lines += _longest_stacks(events)
    return "\n".join(lines) + "\n"


def _slowest(requests: list[tuple[int, int]], events: list[list[Any]], count: int = 5) -> list[str]:
    """The slowest requests and every event that overlapped each (ms from its start)."""
    lines = ["", "Slowest requests and what overlapped them (ms from the request's start):", ""]
    for s, e in sorted(requests, key=lambda r: r[0] - r[1])[:count]:
        hits = sorted(
            (x for x in events if x[1] <= e and x[2] >= s and x[0] != "loop stack"),
            key=lambda x: x[1],
        )
        what = "; ".join(
            f"{x[0]} {(x[1] - s) / 1e6:+.1f}..{(x[2] - s) / 1e6:+.1f}" for x in hits[:8]
        )
        lines.append(f"- {(e - s) / 1e6:.1f} ms: {what or 'no recorded event'}")
    return lines


def _longest_stacks(events: list[list[Any]], count: int = 5) -> list[str]:
    """Where the loop was for the longest stalls the sampler caught (innermost last)."""
    stacks = sorted((e for e in events if e[0] == "loop stack"), key=lambda e: e[1])
    stalls = [e for e in events if e[0].startswith("loop stall")]
    if not stacks:
        return []

    def length(stack: list[Any]) -> float:  # the stall the stack was taken in
        during = [b - a for _, a, b, _ in stalls if a <= stack[2] <= b]
        return max(during, default=stack[2] - stack[1]) / 1e6

    lines = ["", f"Loop stacks taken {STACK_AFTER_MS:g} ms into a stall ({len(stacks)}), longest:"]
    for stack in sorted(stacks, key=length, reverse=True)[:count]:
        lines += ["", f"stall of {length(stack):.1f} ms:", "```", stack[3].rstrip(), "```"]
    return lines


def _stalls_by_cause(events: list[list[Any]]) -> list[str]:
    """Loop stalls (the wake-ups of the 1 ms watcher that came late) against the events
    running at the same time: what the loop was stuck behind."""
    stalls = [e for e in events if e[0].startswith("loop stall")]
    others = [e for e in events if not e[0].startswith("loop st")]
    if not stalls:
        return []
    lines = [
        "",
        "Loop stalls (the 1 ms watcher woke more than 1 ms late), by what overlapped them:",
        "",
        "| stall | count | total ms | median ms | max ms | with a ledger write | with a log "
        "write | with a span export | with a GC | with none |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for kind in ("loop stall, thread running", "loop stall, not running"):
        these = [e for e in stalls if e[0] == kind]
        if not these:
            continue
        lengths = sorted((e[2] - e[1]) / 1e6 for e in these)
        counts = dict.fromkeys(("ledger", "request-log", "span", "gc", "none"), 0)
        for _, a, b, _ in these:
            hit = {o[0].split(" ")[0] for o in others if o[1] <= b and o[2] >= a}
            for name in ("ledger", "request-log", "span", "gc"):
                counts[name] += name in hit
            counts["none"] += not hit
        lines.append(
            f"| {kind} | {len(these)} | {sum(lengths):.0f} | {lengths[len(lengths) // 2]:.2f} "
            f"| {lengths[-1]:.2f} | {counts['ledger']} | {counts['request-log']} "
            f"| {counts['span']} | {counts['gc']} | {counts['none']} |"
        )
    return lines


def run(args: argparse.Namespace) -> str:
    import secrets

    import features
    from harness import (
        REQUEST_BODY,
        WORK,
        Cpus,
        Target,
        clean_env,
        free_port,
        genroute_exe,
        use_genroute,
        verify,
        wait_ready,
    )
    from proctools import Procs

    if args.genroute:
        use_genroute(Path(args.genroute).resolve() / ".venv" / "bin" / "genroute")
    python = genroute_exe().with_name("python")
    cpus = sorted(os.sched_getaffinity(0))
    pins = Cpus(str(cpus[0]), str(cpus[1]))
    procs = Procs(WORK / "logs", WORK)
    port = free_port()
    bench = Path(__file__).resolve().parent
    upstream = procs.start(
        "fake_upstream",
        [sys.executable, str(bench / "fake_upstream.py"), "--port", str(port)],
        pins.load,
        clean_env(),
    )
    ns = argparse.Namespace(cpus=pins, upstream_ports=[port])
    direct = Target("direct", port, "gemini-2.5-flash", upstream.pid, "x", is_upstream=True)
    key = "sk-" + secrets.token_hex(16)
    ctx = features.Ctx(ns, procs, key, direct)
    name = f"stall-{args.config}"
    name += f"-switch{args.switch_interval:g}ms" if args.switch_interval is not None else ""
    name += "-gcoff" if args.gc_off else ""
    events_file = WORK / f"{name}.events.json"
    events_file.unlink(missing_ok=True)
    try:
        wait_ready("fake_upstream", upstream, port, 20)
        client_key = key
        if args.config == "open":
            config, client_key, env = features.open_config(port), "", {}
        elif args.config in ("default", "lean"):
            config = {"model_list": [features.gemini_entry(port)]}
            config["general_settings"] = {"master_key": key}
            log_file = WORK / "features" / "stall.requests.log"
            obs: dict[str, Any] = {"logs": {"enabled": True, "format": "json"}}
            obs["logs"]["destination"] = str(log_file)
            obs |= {"metrics": {"enabled": True}, "tracing": {"enabled": False}}
            config["observability"] = (
                obs if args.config == "default" else features.LEAN_OBSERVABILITY
            )
            env = {}
        else:
            db = features.fresh_db(ctx, "genroute_bench_stall")
            if db is None:
                raise SystemExit("no PostgreSQL")
            config = features.production_config(ctx, "stall-production", db)
            env = features.otlp_env(ctx)
        conf = features.write_config(f"stall-{args.config}", config)
        target_port = free_port()
        wrapper = [str(python), str(Path(__file__).resolve()), "--serve", str(events_file)]
        wrapper += ["-" if args.switch_interval is None else str(args.switch_interval)]
        wrapper += ["1" if args.gc_off else "0", "--", "serve", "--config", str(conf)]
        wrapper += ["--host", "127.0.0.1", "--port", str(target_port), "--workers", "1"]
        proc = procs.start(
            f"stall-{args.config}", wrapper, pins.target, {**clean_env(), **env}, cwd=conf.parent
        )
        wait_ready("genroute", proc, target_port, 60)
        target = Target("genroute", target_port, "bench-model", proc.pid, client_key)
        if args.config == "production":
            target.key = client_key = features.virtual_key(target, key)
        verify(target, port)
        os.sched_setaffinity(0, {cpus[1]})
        body = REQUEST_BODY.encode()
        path = "/v1beta/models/bench-model:generateContent"
        if args.load_first:  # wrk at c=32 first, as a bench round's c=32 run leaves it
            from harness import run_wrk

            run_wrk(target, "generate", 32, 2, args.load_first, str(cpus[1]))
        client(target_port, path, client_key, body, 3)  # warm-up
        requests = client(target_port, path, client_key, body, args.seconds)
        for _ in range(args.pauses):  # as bench/run.py pauses the targets it is not measuring
            os.killpg(proc.pid, signal.SIGSTOP)
            time.sleep(args.pause_seconds)
            os.killpg(proc.pid, signal.SIGCONT)
            client(target_port, path, client_key, body, 1)  # a bench run's warm-up
            requests += client(target_port, path, client_key, body, 3)
        (WORK / f"{name}.requests.json").write_text(json.dumps(requests))
        procs.stop([proc.pid])
        events = json.loads(events_file.read_text()) if events_file.exists() else []
        title = (
            f"#### Stalls at c=1, `{args.config}`"
            + (f", switch interval {args.switch_interval} ms" if args.switch_interval else "")
            + (", gc disabled" if args.gc_off else "")
        )
        text = title + "\n\n" + analyse(requests, events, args.threshold_us)
        (WORK / f"{name}.md").write_text(text)
        return text
    finally:
        procs.stop_all()
        features.drop_dbs(ns)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", choices=("default", "lean", "open", "production"), default="default"
    )
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--genroute", help="a checkout with its own .venv (default: this one)")
    parser.add_argument("--switch-interval", type=float, help="sys.setswitchinterval, in ms")
    parser.add_argument("--gc-off", action="store_true", help="gc.disable() after start-up")
    parser.add_argument("--pauses", type=int, default=0, help="SIGSTOP/SIGCONT cycles after")
    parser.add_argument("--pause-seconds", type=float, default=8.0)
    parser.add_argument(
        "--load-first", type=int, default=0, help="seconds of wrk at c=32 before the c=1 run"
    )
    parser.add_argument("--threshold-us", type=float, help="what counts as slow (µs)")
    print(run(parser.parse_args()))


if __name__ == "__main__":
    main()
