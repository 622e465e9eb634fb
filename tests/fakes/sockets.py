"""The listening sockets the tests' servers (the fakes, in-process gateways) are handed.

A socket made with `socket.socket()` has protocol number 0, and asyncio sets TCP_NODELAY on
the connections it accepts only when the listening socket says IPPROTO_TCP
(`asyncio.base_events._set_nodelay`). Without it, a response written in two pieces (its
head, then its body) on a kept-alive connection waits for the client's delayed ACK: 40 ms
for every request after a connection's first. uvicorn's own sockets and aiohttp's
connections set it; a socket bound here for them must too."""

from __future__ import annotations

import socket

__all__ = ["tcp_listener"]


def tcp_listener(port: int = 0, *, reuse_address: bool = False) -> socket.socket:
    """A non-blocking TCP socket listening on 127.0.0.1:`port` (0: a free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        if reuse_address:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
