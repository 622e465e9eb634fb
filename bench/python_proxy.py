"""A featureless pass-through proxy in Python: the `python-proxy` row of bench/run.py.

The floor for any Python gateway on this machine: an `aiohttp.web` server and one pooled
`aiohttp.ClientSession`, on uvloop, with nothing in between. Bytes in, bytes out: the
request body is read whole and forwarded with the upstream's key (the client's key is
neither checked nor forwarded), the path and query are kept as they are, and the reply is
sent back as it came, whole (`Content-Length`) or, for `text/event-stream`, relayed chunk by
chunk as the upstream's chunks arrive. No JSON is parsed (so orjson has nothing to do),
nothing is logged, validated, routed, metered or traced.

    .venv/bin/python bench/python_proxy.py --port 8080 --upstream http://127.0.0.1:18000 \
        --upstream-key fake-upstream-key

After start-up the heap is frozen (`gc.freeze()`), as `genroute serve` does; the
collector's thresholds are Python's defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import gc

import aiohttp
from aiohttp import web

# Request headers passed on to the upstream besides the key (which the proxy sets itself).
FORWARD = ("content-type", "accept", "x-request-id", "traceparent")
STREAM_TYPE = "text/event-stream"


def build_app(upstream: str, key: str, key_header: str) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    base = upstream.rstrip("/")

    async def start(app: web.Application) -> None:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=300)
        app["session"] = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            skip_auto_headers=("Accept-Encoding", "User-Agent"),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=600),
        )

    async def stop(app: web.Application) -> None:
        await app["session"].close()

    async def proxy(request: web.Request) -> web.StreamResponse:
        session: aiohttp.ClientSession = request.app["session"]
        headers = {name: request.headers[name] for name in FORWARD if name in request.headers}
        headers[key_header] = key
        body = await request.read()
        async with session.request(
            request.method, base + request.path_qs, data=body or None, headers=headers
        ) as upstream_reply:
            content_type = upstream_reply.headers.get("content-type", "application/json")
            if not content_type.startswith(STREAM_TYPE):
                data = await upstream_reply.read()
                return web.Response(
                    body=data, status=upstream_reply.status, headers={"content-type": content_type}
                )
            relay = web.StreamResponse(
                status=upstream_reply.status,
                headers={"content-type": content_type, "cache-control": "no-cache"},
            )
            await relay.prepare(request)
            async for chunk in upstream_reply.content.iter_any():
                await relay.write(chunk)
            await relay.write_eof()
            return relay

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_route("*", "/{tail:.*}", proxy)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="scheme://host:port of the upstream")
    parser.add_argument("--upstream-key", default="", help="sent to the upstream")
    parser.add_argument("--key-header", default="x-goog-api-key")
    args = parser.parse_args()
    import uvloop

    app = build_app(args.upstream, args.upstream_key, args.key_header)
    gc.collect()
    gc.freeze()
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        backlog=4096,
        loop=loop,
        handle_signals=True,
    )


if __name__ == "__main__":
    main()
