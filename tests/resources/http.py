"""A plain HTTP call to a gateway for the resource tests (raw routes, management routes)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from tests.conftest import InProcessGateway


def http(
    gw: InProcessGateway, method: str, path: str, key: str, body: Any = None
) -> tuple[int, Any]:
    """`(status, body)`: the body parsed as JSON when it is JSON, else its bytes."""
    request = urllib.request.Request(
        gw.base_url + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json", "x-goog-api-key": key},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw
