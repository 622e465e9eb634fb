"""Process helpers for bench/run.py: start servers in their own sessions, signal their
process groups, and read CPU time and memory of a process tree from /proc (Linux only)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path


class Procs:
    """The servers this run started, each in its own session so that its tree can be signalled."""

    def __init__(self, logs: Path, cwd: Path) -> None:
        self.logs, self.cwd = logs, cwd
        self.started: list[subprocess.Popen[bytes]] = []

    def start(
        self,
        name: str,
        argv: list[str],
        cpu: str | None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        self.logs.mkdir(parents=True, exist_ok=True)
        cmd = (["taskset", "-c", cpu] if cpu is not None else []) + argv
        with open(self.logs / f"{name}.log", "wb") as log:  # the child keeps its own copy
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, apart from our Ctrl-C
                env=env,
                cwd=cwd or self.cwd,
            )
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        self.stop([p.pid for p in self.started])

    def stop(self, pids: list[int]) -> None:
        """SIGTERM these servers' process groups, wait up to 15 s, then SIGKILL what is left."""
        live = [p for p in self.started if p.pid in pids and p.poll() is None]
        for proc in live:
            for sig in (signal.SIGCONT, signal.SIGTERM):
                signal_group(proc.pid, sig)
        deadline = time.monotonic() + 15
        for proc in live:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            signal_group(proc.pid, signal.SIGKILL)  # leftovers of the group, if any
            proc.poll()


def signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants, from the ppid fields in /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_mib(root: int, key: str) -> float:
    """Sum of a /proc status field (VmRSS, VmHWM) over the tree, in MiB."""
    return sum(status_kib(pid, key) for pid in process_tree(root)) / 1024


def cpu_seconds(root: int) -> float:
    """User + system CPU time used so far by the live processes of the tree."""
    ticks = 0
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time spent by everything on the machine so far, all CPUs added (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
