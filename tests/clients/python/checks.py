"""What the client scripts beside this file share: their arguments, a record of the HTTP
requests the client library sends, and running named checks into one JSON report.

The scripts run in `.venv-clients` (tests/clients/requirements.txt), not in genroute's
own virtualenv, as `python tests/clients/python/<client>.py '{"url": ..., "key": ...}'`.
Each prints one JSON object: for each check, `{"ok": true, "value": ..., "http": [...]}` or
`{"ok": false, "error": ..., "trace": ..., "http": [...]}`, where `http` lists the requests
the library sent during that check: method, path, query, which header carried the
credential, the credential, and the JSON body.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

__all__ = ["SEEN", "args", "record_http", "run"]

SEEN: list[dict[str, Any]] = []


def args() -> dict[str, Any]:
    """The script's JSON argument: at least the gateway's `url` and a `key`."""
    parsed: dict[str, Any] = json.loads(sys.argv[1])
    return parsed


def _note(method: str, url: object, body: object, headers: Any) -> None:
    parts = urlsplit(str(url))
    if isinstance(body, bytes | bytearray):
        body = body.decode(errors="replace")
    try:
        data = json.loads(body) if isinstance(body, str) and body else body
    except ValueError:
        data = None
    lowered = {str(k).lower(): str(v) for k, v in dict(headers or {}).items()}
    if "x-goog-api-key" in lowered:
        auth, credential = "x-goog-api-key", lowered["x-goog-api-key"]
    elif "authorization" in lowered:
        auth, _, credential = lowered["authorization"].partition(" ")
    else:
        auth = credential = None
    SEEN.append(
        {
            "method": method.upper(),
            "path": parts.path,
            "query": parts.query,
            "auth": auth,
            "credential": credential,
            "body": data if isinstance(data, dict | list) else None,
        }
    )


def _record_httpx(module: Any) -> None:
    sync_send, async_send = module.Client.send, module.AsyncClient.send

    def send(self: Any, request: Any, **kw: Any) -> Any:
        _note(request.method, request.url, request.content, request.headers)
        return sync_send(self, request, **kw)

    async def asend(self: Any, request: Any, **kw: Any) -> Any:
        _note(request.method, request.url, request.content, request.headers)
        return await async_send(self, request, **kw)

    module.Client.send, module.AsyncClient.send = send, asend


def record_http() -> None:
    """Note every request sent through httpx (and its successor httpx2), aiohttp or
    requests; nothing else changes."""
    import httpx

    _record_httpx(httpx)
    try:
        import httpx2
    except ImportError:
        pass
    else:
        _record_httpx(httpx2)
    try:
        import aiohttp
    except ImportError:
        pass
    else:
        original = aiohttp.ClientSession._request

        async def request(self: Any, method: str, url: Any, **kw: Any) -> Any:
            body = kw.get("data") if kw.get("json") is None else json.dumps(kw["json"])
            _note(method, url, body, kw.get("headers"))
            return await original(self, method, url, **kw)

        aiohttp.ClientSession._request = request  # type: ignore[method-assign]
    try:
        import requests
    except ImportError:
        return
    requests_send = requests.Session.send

    def rsend(self: Any, prepared: Any, **kw: Any) -> Any:
        _note(prepared.method, prepared.url, prepared.body, prepared.headers)
        return requests_send(self, prepared, **kw)

    requests.Session.send = rsend  # type: ignore[method-assign]


def run(checks: dict[str, Callable[[], Any]]) -> None:
    """Run each check in order, each failure caught and reported; print the JSON report."""
    report: dict[str, Any] = {}
    for name, check in checks.items():
        start = len(SEEN)
        try:
            report[name] = {"ok": True, "value": check()}
        except Exception as exc:
            report[name] = {
                "ok": False,
                "error": f"{type(exc).__name__}: {exc}"[:2000],
                "trace": traceback.format_exc()[-4000:],
            }
        report[name]["http"] = SEEN[start:]
    sys.stdout.write(json.dumps(report, default=str) + "\n")
