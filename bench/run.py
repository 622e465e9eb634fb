"""Benchmark genroute against a direct call, nginx and LiteLLM, side by side on 127.0.0.1.

Run by hand from the repository root (it is not a test)::

    .venv/bin/python bench/run.py [--suite core|features|all] [--only genroute,nginx]
                                  [--duration 8] [--skip-litellm]

It installs what is missing (nginx and wrk through apt-get, LiteLLM's proxy into
bench/.work/litellm-venv), starts a fake Gemini + OpenAI upstream (bench/fake_upstream.py)
and one server per target, each on its own port.

The core suite (the main table):

* ``direct``: wrk straight to the fake upstream, the baseline;
* ``nginx``: ``proxy_pass`` with a keep-alive upstream pool, one worker;
* ``genroute``: ``genroute serve``, one worker, default observability (logs and metrics on);
* ``genroute-lean``: the same with logs, metrics and tracing off;
* ``genroute-open``: no master key (no governance, no ledger) and logs, metrics, tracing off;
* ``python-proxy``: bench/python_proxy.py, aiohttp server + client on uvloop, bytes in and out:
  the featureless pass-through in Python, the floor for a Python gateway;
* ``<row>-baseline`` (``--baseline PATH``): a genroute row on another checkout, same config;
* ``litellm``: ``litellm --num_workers 1``, through its Google route ``/v1beta/models/...``.

Each target is checked first (one generateContent and one streamGenerateContent?alt=sse
request must return 200 and the expected text); then wrk loads it with and without streaming
at concurrency 1 and 32, each run after a warm-up. Targets take turns, scenario by scenario,
and the gateways not being measured are paused (SIGSTOP) so their idle work cannot steal CPU.
By default the targets run on CPU 0 and the fake upstream and wrk on CPU 1.

The features suite (bench/features.py) then compares, group by group: the translated path
(Gemini in, OpenAI out) against LiteLLM, one deployment against three, keys and the spend
ledger (none, master key, virtual key on SQLite and on PostgreSQL), and observability on/off.

Prints markdown tables and writes them to bench/results.md (each between markers, the rest
of the file kept as written: see bench/results_file.py), and the raw numbers to
bench/.work/results.json. ``--soak MINUTES`` runs only bench/soak.py. Everything started is stopped at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

# bench/ is on sys.path when this runs as a script
import core_report
import feature_report
import features
import results_file
import soak
from harness import (
    BENCH,
    LEAN_OBSERVABILITY,
    LOGS,
    REPO,
    REQUEST_BODY,
    UPSTREAM_KEY,
    WORK,
    BenchError,
    Cpus,
    Target,
    clean_env,
    find_binary,
    free_port,
    genroute_exe,
    measure_run,
    pause,
    post,
    render,
    start_genroute,
    start_litellm,
    start_python_proxy,
    use_genroute,
    verify,
    wait_ready,
)
from proctools import Procs, tree_mib

LITELLM_VENV = WORK / "litellm-venv"
TARGETS = (
    "direct",
    "nginx",
    "python-proxy",
    "genroute",
    "genroute-lean",
    "genroute-open",
    "litellm",
)
BASELINE_DIR = WORK / "baseline"
CURRENT_DIR = WORK / "current"
SCENARIOS = (("generate", 1, 1), ("generate", 32, 2), ("stream", 1, 1), ("stream", 32, 2))


# ---------------------------------------------------------------- installation


def run_logged(
    cmd: list[str], log_name: str, timeout: float, env: dict[str, str] | None = None
) -> int:
    LOGS.mkdir(parents=True, exist_ok=True)
    with open(LOGS / log_name, "ab") as log:
        return subprocess.run(
            cmd, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, env=env
        ).returncode


def ensure_system_tools() -> None:
    """apt-get install nginx and wrk when they are not on the machine."""
    missing = [name for name in ("nginx", "wrk", "taskset") if find_binary(name) is None]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise BenchError(f"missing {', '.join(missing)}: install them (as root: apt-get install)")
    print(f"installing {', '.join(missing)} with apt-get (log: {LOGS / 'apt.log'}) ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run_logged(["apt-get", "update", "-q"], "apt.log", 600, env)
    packages = {"nginx": ["nginx-light", "nginx"], "wrk": ["wrk"], "taskset": ["util-linux"]}
    for name in missing:
        for package in packages[name]:
            if run_logged(["apt-get", "install", "-y", "-q", package], "apt.log", 600, env) == 0:
                break
        if find_binary(name) is None:
            raise BenchError(f"could not install {name}; see {LOGS / 'apt.log'}")


def ensure_litellm() -> Path:
    """LiteLLM's proxy in its own venv under bench/.work, reused when already there."""
    exe = LITELLM_VENV / "bin" / "litellm"
    if exe.exists():
        return exe
    print(f"installing litellm[proxy] into {LITELLM_VENV} (log: {LOGS / 'litellm-install.log'})")
    base = shutil.which("python3") or sys.executable
    if run_logged([base, "-m", "venv", str(LITELLM_VENV)], "litellm-install.log", 300) != 0:
        raise BenchError("could not create the LiteLLM venv")
    pip = [str(LITELLM_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    if run_logged([*pip, "litellm[proxy]"], "litellm-install.log", 1200) != 0 or not exe.exists():
        raise BenchError(f"pip install 'litellm[proxy]' failed; see {LOGS / 'litellm-install.log'}")
    return exe


def ensure_checkout(spec: str, folder: Path) -> Path:
    """The genroute executable of another checkout: `spec` is a checkout with its own
    `.venv` (made with `pip install -e` when missing), or a commit, checked out first as a
    git worktree into `folder`. Used by --baseline (the old code) and --genroute (a commit
    of the code under test, away from a working tree others are editing)."""
    path = Path(spec).resolve()
    log = f"{folder.name}-install.log"
    if not path.exists():
        if folder.exists():
            raise BenchError(f"{folder} exists: pass that path instead of {spec}, or delete it")
        print(f"checking out {spec} into {folder} (git worktree) ...")
        cmd = ["git", "-C", str(REPO), "worktree", "add", "--detach", str(folder), spec]
        if run_logged(cmd, log, 120) != 0:
            raise BenchError(f"git worktree add {spec} failed; see {LOGS / log}")
        path = folder
    exe = path / ".venv" / "bin" / "genroute"
    if not exe.exists():
        print(f"installing {path} into {path / '.venv'} ...")
        # The Python this bench runs on (the working tree's .venv's), so that every checkout
        # compared runs on the same interpreter.
        base = getattr(sys, "_base_executable", None) or sys.executable
        python = str(path / ".venv" / "bin" / "python")
        for cmd in (
            [base, "-m", "venv", str(path / ".venv")],
            [python, "-m", "pip", "install", "-q", "-e", str(path)],
        ):
            if run_logged(cmd, log, 1200) != 0:
                raise BenchError(f"installing {path} failed; see {LOGS / log}")
    return exe


# ---------------------------------------------------------------- servers


def genroute_conf(name: str, values: dict[str, object]) -> Path:
    """The config of a core genroute row (`-baseline` rows use their twin's)."""
    kind = name.removesuffix("-baseline")
    folder = WORK / name  # its spend ledger (genroute.db) goes next to the config
    shutil.rmtree(folder, ignore_errors=True)
    conf = render("genroute_config.yaml.template", folder / "genroute.yaml", values)
    if kind in ("genroute-lean", "genroute-open"):  # JSON is YAML
        text = conf.read_text()
        if kind == "genroute-open":  # no master key: no governance, no ledger
            text = re.sub(r"(?s)\ngeneral_settings:.*", "\n", text)
        conf.write_text(f"{text}\nobservability: {json.dumps(LEAN_OBSERVABILITY)}\n")
    return conf


def start_target(
    name: str, procs: Procs, upstream_port: int, cpu: str | None, key: str, args: Any
) -> Target:
    port, prefix = free_port(), WORK / "nginx"
    values: dict[str, object] = {"PORT": port, "UPSTREAM_PORT": upstream_port, "PREFIX": prefix}
    values |= {"UPSTREAM_KEY": UPSTREAM_KEY, "MASTER_KEY": key}
    if name.startswith("genroute"):
        conf = genroute_conf(name, values)
        exe = args.baseline_exe if name.endswith("-baseline") else genroute_exe()
        port, pid, start_s = start_genroute(procs, name, conf, cpu, exe=exe)
        client_key = "" if name.startswith("genroute-open") else key
        return Target(name, port, "bench-model", pid, client_key, start_s=start_s)
    if name == "python-proxy":
        return start_python_proxy(procs, name, upstream_port, cpu)
    litellm: Path | None = args.litellm
    if name == "litellm":
        assert litellm is not None
        conf = render("litellm_config.yaml.template", WORK / "litellm.yaml", values)
        target = start_litellm(procs, name, litellm, conf, cpu)
        target.model, target.key = "gemini-2.5-flash", key
        return target
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    conf = render("nginx.conf.template", prefix / "nginx.conf", values)
    nginx = find_binary("nginx") or "nginx"
    argv = [nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
    proc = procs.start(name, argv, cpu, clean_env())
    start_s = wait_ready(name, proc, port, 60)
    return Target(name, port, "gemini-2.5-flash", proc.pid, key, start_s=start_s)


def measure(targets: list[Target], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every scenario on every target in turn, `--rounds` times; one row per (scenario,
    target): with one round the run itself, with several their aggregate (req/s over all
    rounds, the median of the rounds' p50 and p99, as in the features suite)."""
    runs: list[dict[str, Any]] = []
    upstream_pid = targets[0].pgid
    for rnd in range(args.rounds):
        for mode, conns, threads in SCENARIOS:
            for target in targets:
                pause(targets, target)
                print(f"  r{rnd + 1} {target.name:22} {mode:8} c={conns:<3}", end="", flush=True)
                durations = (args.warmup, args.duration)
                row = measure_run(target, mode, conns, threads, durations, args.cpus, upstream_pid)
                runs.append(row)
                features.print_row(row)
    pause(targets, None)
    args.core_runs = runs
    if args.rounds == 1:
        return runs
    keys = dict.fromkeys((r["target"], r["mode"], r["conns"]) for r in runs)
    return [
        features.aggregate([r for r in runs if (r["target"], r["mode"], r["conns"]) == k])
        for k in keys
    ]


# ---------------------------------------------------------------- report


def command_output(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (out.stdout + out.stderr).strip().splitlines()[0] if (out.stdout + out.stderr) else "?"


def environment(litellm: Path | None, baseline_exe: Path | None = None) -> dict[str, str]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    checkout = genroute_exe().parent.parent.parent
    git = command_output(["git", "-C", str(checkout), "describe", "--always", "--dirty"])
    if checkout != REPO:
        git += f", {checkout.relative_to(REPO) if checkout.is_relative_to(REPO) else checkout}"
    genroute = command_output([str(genroute_exe()), "--version"])
    litellm_version = "not run"
    if litellm is not None:
        py = str(litellm.with_name("python"))
        code = "import importlib.metadata as m; print(m.version('litellm'))"
        litellm_version = command_output([py, "-c", code])
    wrk_version = re.search(r"\d+\.\d+(\.\d+)?", command_output(["wrk", "-v"]))
    baseline = ""
    if baseline_exe is not None:
        checkout = baseline_exe.parent.parent.parent
        commit = command_output(["git", "-C", str(checkout), "describe", "--always", "--dirty"])
        baseline = f"{commit} ({checkout.relative_to(REPO) if checkout.is_relative_to(REPO) else checkout})"
    return {
        "baseline": baseline,
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "machine": f"{os.cpu_count()} CPUs, {cpu}, Linux {platform.release()}",
        "genroute": f"{genroute.removeprefix('genroute ')} ({git})",
        "nginx": command_output([find_binary("nginx") or "nginx", "-v"]).split("/")[-1],
        "litellm": litellm_version,
        "wrk": wrk_version.group(0) if wrk_version else "?",
        "python": platform.python_version(),
    }


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        default=",".join(TARGETS),
        help="comma-separated targets of the core suite among "
        f"{','.join(TARGETS)} (direct, the baseline, always runs)",
    )
    parser.add_argument(
        "--suite",
        choices=("core", "features", "all"),
        default="all",
        help="core: the main table; features: the feature comparisons; all: both",
    )
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per run")
    parser.add_argument(
        "--rounds", type=int, default=1, help="rounds of the core runs (targets alternate)"
    )
    parser.add_argument("--skip-litellm", action="store_true", help="leave LiteLLM out")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="fake upstream latency")
    parser.add_argument(
        "--baseline",
        metavar="PATH",
        help="also run each chosen genroute row on the old code, as `<row>-baseline`: a "
        "checkout with its own .venv (made if missing), or a commit to check out into "
        "bench/.work/baseline",
    )
    parser.add_argument(
        "--genroute",
        metavar="PATH",
        help="the genroute under test: a checkout with its own .venv (made if missing), or a "
        "commit to check out into bench/.work/current; default: this working tree's .venv",
    )
    parser.add_argument(
        "--soak",
        type=float,
        metavar="MINUTES",
        help="instead of the suites: every feature on at c=32 for MINUTES, RSS every 10 s",
    )
    features.add_arguments(parser)
    args = parser.parse_args(argv)
    chosen = {t.strip() for t in args.only.split(",") if t.strip()}
    if unknown := chosen - set(TARGETS):
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    if args.skip_litellm:
        chosen.discard("litellm")
    args.targets = [t for t in TARGETS if t in chosen or t == "direct"]
    if args.baseline:
        at = args.targets.index("litellm") if "litellm" in args.targets else len(args.targets)
        twins = [f"{t}-baseline" for t in args.targets if t in core_report.GENROUTE_ROWS]
        args.targets[at:at] = twins
    if args.soak is not None:
        if not 0 < args.soak <= 240:
            parser.error("--soak must be in (0, 240] minutes")
        args.suite = "soak"
    if not 0 < args.duration <= 120 or not 0 <= args.warmup <= 60:
        parser.error("--duration must be in (0, 120] and --warmup in [0, 60]")
    ncpu = len(os.sched_getaffinity(0))
    cpus = sorted(os.sched_getaffinity(0))
    pin = not args.no_pin and ncpu >= 2 and shutil.which("taskset") is not None
    args.cpus = Cpus(str(cpus[0]), str(cpus[1])) if pin else Cpus(None, None)
    args.notes = []
    features.add_arguments_check(parser, args)
    return args


def on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so that `finally` stops every server, as on Ctrl-C


def leave_out_litellm(args: argparse.Namespace, why: object) -> None:
    print(f"LiteLLM left out: {why}")
    lines = [line.strip() for line in str(why).splitlines() if line.strip()] or ["?"]
    args.notes.append(f"LiteLLM left out: {' … '.join(dict.fromkeys([lines[0], lines[-1]]))}")
    if "litellm" in args.targets:
        args.targets.remove("litellm")


def start_upstream(args: argparse.Namespace, procs: Procs) -> Target:
    """The fake upstream on three ports (the router scenario uses all three); `direct`."""
    ports = [free_port() for _ in range(3)]
    argv = [sys.executable, str(BENCH / "fake_upstream.py"), "--delay-ms", str(args.delay_ms)]
    for port in ports:
        argv += ["--port", str(port)]
    upstream = procs.start("fake_upstream", argv, args.cpus.load, clean_env())
    for port in ports:
        wait_ready("fake_upstream", upstream, port, 20)
    status, body = post(ports[0], "/v1beta/models/x:generateContent", None)
    if status != 403 or b"PERMISSION_DENIED" not in body:
        raise BenchError(f"fake upstream accepted a request without a key: {status}")
    direct = Target("direct", ports[0], "gemini-2.5-flash", upstream.pid, "x", is_upstream=True)
    args.upstream_ports = ports
    return direct


def start_all(args: argparse.Namespace, procs: Procs, key: str, direct: Target) -> list[Target]:
    """Every core target, each verified; `direct` comes first."""
    up_port = direct.port
    targets = [direct]
    for name in args.targets[1:]:
        print(f"starting {name} ...", flush=True)
        try:
            targets.append(start_target(name, procs, up_port, args.cpus.target, key, args))
        except BenchError as exc:
            if name != "litellm":
                raise
            leave_out_litellm(args, exc)
    for target in list(targets):
        try:
            verify(target, up_port)
        except (BenchError, OSError, ValueError, KeyError, IndexError) as exc:
            if target.name != "litellm":
                raise BenchError(f"verification failed: {exc}") from exc
            leave_out_litellm(args, f"verification failed: {exc}")
            procs.stop([target.pgid])
            targets.remove(target)
            continue
        target.idle_rss_mib = tree_mib(target.pgid, "VmRSS")
        print(
            f"verified {target.name:13} (port {target.port}; upstream {target.upstream_paths};"
            f" {target.stream_events} SSE events; idle RSS {target.idle_rss_mib:.0f} MiB)"
        )
    return targets


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
    procs, key = Procs(LOGS, WORK), "sk-" + secrets.token_hex(32)
    try:
        ensure_system_tools()
        args.litellm = None
        args.baseline_exe = ensure_checkout(args.baseline, BASELINE_DIR) if args.baseline else None
        if args.genroute:
            use_genroute(ensure_checkout(args.genroute, CURRENT_DIR))
        if args.suite == "soak":
            direct = start_upstream(args, procs)
            env = environment(None)
            block = soak.run(args, procs, key, direct, env)
            results_file.update_file(BENCH / "results.md", {"soak": block})
            print("\n" + block + f"\nwrote {BENCH / 'results.md'}")
            return 0
        if "litellm" in args.targets or (args.suite not in ("core",) and not args.skip_litellm):
            try:
                args.litellm = ensure_litellm()
            except (BenchError, subprocess.TimeoutExpired) as exc:
                leave_out_litellm(args, exc)
        print(f"pinning: {args.cpus.describe()}")
        direct = start_upstream(args, procs)
        targets: list[Target] = []
        rows: list[dict[str, Any]] = []
        if args.suite != "features":
            targets = start_all(args, procs, key, direct)
            print("measuring ...")
            rows = measure(targets, args)
            for target in targets:
                target.peak_rss_mib = tree_mib(target.pgid, "VmHWM")
            procs.stop([t.pgid for t in targets if not t.is_upstream])
        groups = features.run_all(args, procs, key, direct) if args.suite != "core" else []
        env = environment(args.litellm, args.baseline_exe)
        blocks = {"core": core_report.report(env, targets, rows, args)} if rows else {}
        blocks |= feature_report.report(groups, args, env)
        print("\n" + "\n".join(blocks.values()))
        results_file.update_file(BENCH / "results.md", blocks)
        raw: dict[str, Any] = {"env": env, "pinning": asdict(args.cpus), "suite": args.suite}
        raw["request_body"] = REQUEST_BODY
        raw["targets"] = [{k: v for k, v in asdict(t).items() if k != "key"} for t in targets]
        raw["runs"] = getattr(args, "core_runs", rows)
        raw["features"] = [asdict(g) for g in groups]
        (WORK / "results.json").write_text(json.dumps(raw, indent=2))
        print(f"wrote {BENCH / 'results.md'} and {WORK / 'results.json'}")
        return 0
    except BenchError as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; stopping everything", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()


if __name__ == "__main__":
    sys.exit(main())
