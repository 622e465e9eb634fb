"""Structured request logs: one line per request, JSON or readable text.

JSON lines go to stdout (the default), stderr or a file; `format: auto` writes readable
text when the destination is a terminal and JSON otherwise. Lines are handed to a writer
thread, which wakes every 50 ms and writes whatever has queued up in one go, so a slow stdout (a full pipe, a
busy log collector) never blocks the event loop and a busy gateway makes few syscalls.
Each write holds whole lines (at most 4 KiB when several lines are joined, the size a
pipe writes atomically), so lines from several workers never interleave mid-record.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import sys
import threading
from typing import IO

import orjson

from genroute.config.observability import LogSettings
from genroute.observability.records import CallRecord

__all__ = [
    "ATOMIC_WRITE",
    "MAX_QUEUED",
    "WRITE_INTERVAL",
    "JsonLogFormatter",
    "RequestLog",
    "format_text",
    "json_python_logs",
]

log = logging.getLogger("genroute.observability")


def _cache_text(record: CallRecord) -> list[str]:
    """`cache hit` (with what it saved), `cache miss`, or nothing."""
    if record.cache is None:
        return []
    if record.cache_saved_cost:
        return [f"cache {record.cache} (saved ${record.cache_saved_cost:.6f})"]
    return [f"cache {record.cache}"]


def _who_and_what(record: CallRecord) -> list[str]:
    """`name=value` of the caller and of the Gemini resources the call used."""
    found = [
        f"{name}={value}"
        for name in ("key_alias", "team_id", "end_user", "batch", "cached_content")
        if (value := getattr(record, name))
    ]
    if record.files:
        found.append(f"files={','.join(record.files)}")
    return found


def format_text(record: CallRecord) -> str:
    """A readable one-line summary of a record."""
    route = record.model_group or "?"
    if record.provider_model:
        route += f" -> {record.provider or '?'}/{record.provider_model}"
    status = str(record.status_code)
    if record.error_status:
        status += f" {record.error_status}"
    parts = [record.timestamp, status, route]
    if record.latency_ms is not None:
        timing = f"{record.latency_ms:.1f}ms"
        extra = []
        if record.time_to_first_token_ms is not None:
            extra.append(f"ttft {record.time_to_first_token_ms:.1f}ms")
        if record.overhead_ms is not None:
            extra.append(f"overhead {record.overhead_ms:.2f}ms")
        parts.append(timing + (f" ({', '.join(extra)})" if extra else ""))
    if record.input_tokens is not None or record.output_tokens is not None:
        parts.append(f"tokens {record.input_tokens or 0}->{record.output_tokens or 0}")
    if record.cost is not None:
        parts.append(f"${record.cost:.6f}")
    parts.extend(_cache_text(record))
    if record.attempts > 1 or record.fallbacks:
        parts.append(f"attempts {record.attempts}")
    if record.fallbacks:
        parts.append(f"fallbacks {','.join(record.fallbacks)}")
    parts.extend(_who_and_what(record))
    parts.append(f"rid={record.request_id}")
    if record.error_message:
        parts.append(f"error={record.error_message!r}")
    line = " ".join(parts)
    if record.request_contents is not None:
        line += f"\n  request: {record.request_contents!r}"
    if record.response_text is not None:
        line += f"\n  response: {record.response_text!r}"
    return line


ATOMIC_WRITE = 4096
WRITE_INTERVAL = 0.05
MAX_QUEUED = 100_000  # lines waiting for a stalled destination before new ones are dropped
_STOP = b""


class RequestLog:
    """Writes each record as one line to the configured destination, off the event loop."""

    def __init__(self, settings: LogSettings, *, json_logs: bool | None = None) -> None:
        self._owned: IO[bytes] | None = None
        self._queue: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stopping = threading.Event()  # set by flush: write now, then stop
        self.dropped = 0
        destination = settings.destination
        if destination == "stdout":
            self._stream: IO[bytes] = sys.stdout.buffer
        elif destination == "stderr":
            self._stream = sys.stderr.buffer
        else:
            path = os.path.abspath(os.path.expanduser(destination))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            self._owned = self._stream = open(path, "ab", buffering=0)  # noqa: SIM115
        fmt = settings.format
        if json_logs:
            fmt = "json"
        if fmt == "auto":
            fmt = "text" if self._isatty() else "json"
        self.json = fmt == "json"

    def _isatty(self) -> bool:
        try:
            return self._stream.isatty()
        except (AttributeError, ValueError):
            return False

    def write(self, record: CallRecord) -> None:
        """Queue one record for the writer thread (started on first use)."""
        line = record.to_json() + b"\n" if self.json else (format_text(record) + "\n").encode()
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="genroute-request-log", daemon=True
                    )
                    self._thread.start()
                    atexit.register(self.flush)
        if self._queue.qsize() >= MAX_QUEUED:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                log.warning("request log destination is stalled: %d records dropped", self.dropped)
            return
        self._queue.put(line)

    def _run(self) -> None:
        # Wake on a timer rather than per line: a blocked getter would be woken by every
        # put, and each wake-up costs the event loop's thread a GIL hand-off. Only a flush
        # wakes it early, so that shutting down does not wait out the interval.
        stopping = False
        while not stopping:
            self._stopping.wait(WRITE_INTERVAL)
            lines: list[bytes] = []
            while True:
                try:
                    lines.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if _STOP in lines:
                stopping = True
                lines = [line for line in lines if line != _STOP]
            if lines:
                self._write_lines(lines)

    def _write_lines(self, lines: list[bytes]) -> None:
        batch: list[bytes] = []
        size = 0
        try:
            for line in lines:
                if batch and size + len(line) > ATOMIC_WRITE:
                    self._stream.write(b"".join(batch))
                    batch, size = [], 0
                batch.append(line)
                size += len(line)
            if batch:
                self._stream.write(b"".join(batch))
            self._stream.flush()
        except (OSError, ValueError) as exc:
            log.warning("request log write failed: %s", exc)

    def flush(self) -> None:
        """Write everything queued so far and wait for it (the writer thread stops)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            self._stopping.set()
            thread.join(timeout=10)
            self._stopping.clear()

    def close(self) -> None:
        """Write what is queued, then close the log file if this log opened one."""
        self.flush()
        if self._owned is not None:
            self._owned.close()
            self._owned = None


class JsonLogFormatter(logging.Formatter):
    """Python log records as JSON lines (`litellm_settings.json_logs`)."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "timestamp": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


def json_python_logs() -> None:
    """Make every handler of the root logger write JSON (adding a stderr one if none)."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    for handler in root.handlers:
        handler.setFormatter(JsonLogFormatter())
