"""curl, the command-line client, as the REST samples in Google's docs use it.

`curl(base_url, path, body, key)` runs `curl -sS` with the Gemini docs' headers
(`x-goog-api-key`, `Content-Type: application/json`, the JSON body from `-d`) and returns
the status and the body it printed; `-N` (no buffering) for streams, as the docs write it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

__all__ = ["curl", "sse_events"]


def curl(
    base_url: str, path: str, body: Any, key: str, stream: bool = False, bearer: bool = False
) -> tuple[int, str]:
    binary = shutil.which("curl")
    assert binary, "curl is needed for these tests (Debian's curl package)"
    args = [binary, "-sS", "--max-time", "20", "-w", "\n%{http_code}", *(["-N"] if stream else [])]
    credential = f"Authorization: Bearer {key}" if bearer else f"x-goog-api-key: {key}"
    args += ["-H", credential, "-H", "Content-Type: application/json", "-X", "POST"]
    args += ["-d", json.dumps(body), base_url + path]
    done = subprocess.run(args, capture_output=True, text=True, timeout=30, check=True)
    text, _, status = done.stdout.rpartition("\n")
    return int(status), text


def sse_events(text: str) -> list[dict[str, Any]]:
    """The JSON of each `data:` line of a server-sent event stream."""
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]
