"""The tests' listening sockets turn Nagle's algorithm off on the connections they accept
(a response's head and body written apart then reach the client without waiting 40 ms
for its delayed ACK), for asyncio servers and the in-process gateway alike."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from tests.conftest import InProcessGateway
from tests.fakes.sockets import tcp_listener


async def accepted_nodelay(listener: socket.socket) -> int:
    seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted = writer.get_extra_info("socket")
        seen.set_result(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(handle, sock=listener)
    async with server:
        _, writer = await asyncio.open_connection(*listener.getsockname())
        try:
            return await asyncio.wait_for(seen, 5)
        finally:
            writer.close()


async def test_an_asyncio_server_on_the_listener_accepts_without_nagle() -> None:
    assert await accepted_nodelay(tcp_listener()) != 0


def test_the_in_process_gateway_accepts_without_nagle(tmp_path: Path) -> None:
    gateway = InProcessGateway({"model_list": []}, tmp_path)
    try:
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as client:
            client.sendall(b"GET /health/liveliness HTTP/1.1\r\nhost: g\r\n\r\n")
            assert client.recv(65536).startswith(b"HTTP/1.1 200")
            (connection,) = gateway.server.server_state.connections
            accepted = connection.transport.get_extra_info("socket")
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        gateway.stop()
