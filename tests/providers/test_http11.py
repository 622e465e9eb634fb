"""Http11Transport against local servers that answer byte by byte as each test scripts:
pooling, bodies of every framing, timeouts, broken and stale connections, TLS."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from genroute.providers.http11 import Http11Transport
from genroute.providers.transport import USER_AGENT, HttpRequest, Timeout
from tests.conftest import free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Server"], Awaitable[None]]


@dataclass
class Server:
    port: int = 0
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)  # set when the test ends

    def url(self, path: str = "/x") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


async def read_request(reader: asyncio.StreamReader, server: Server) -> bytes:
    """One request's head and body (by its Content-Length), recorded."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await reader.readexactly(length) if length else b""
    server.requests.append(head + body)
    return head + body


def reply(body: bytes = b"ok", *extra: str) -> bytes:
    head = ["HTTP/1.1 200 OK", f"content-length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@asynccontextmanager
async def serving(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    server = Server()

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.connections += 1
        try:
            await handler(reader, writer, server)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    listener = await asyncio.start_server(on_connection, "127.0.0.1", 0, ssl=tls)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        server.done.set()
        listener.close()
        await asyncio.sleep(0)


async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, s: Server) -> None:
    """Answers every request on the connection with its own body."""
    while True:
        request = await read_request(reader, s)
        writer.write(reply(request.split(b"\r\n\r\n", 1)[1] or b"empty"))
        await writer.drain()


@pytest.fixture
async def transport() -> AsyncIterator[Http11Transport]:
    t = Http11Transport()
    yield t
    await t.aclose()


async def post(t: Http11Transport, url: str, body: bytes = b"hi", **kw: object) -> bytes:
    async with await t.send(HttpRequest("POST", url, {"x-a": "1"}, body, **kw)) as response:  # type: ignore[arg-type]
        assert response.status == 200
        return await response.read()


async def test_requests_carry_host_agent_and_length_and_share_one_connection(
    transport: Http11Transport,
) -> None:
    async with serving(keep_alive) as server:
        assert await post(transport, server.url("/a?b=c"), b"one") == b"one"
        assert await post(transport, server.url("/a"), b"two") == b"two"
        async with await transport.send(HttpRequest("GET", server.url("/g"))) as response:
            assert await response.read() == b"empty"
    assert server.connections == 1
    first = server.requests[0].decode()
    assert first.startswith("POST /a?b=c HTTP/1.1\r\n")
    assert f"host: 127.0.0.1:{server.port}\r\n" in first
    assert f"user-agent: {USER_AGENT}\r\n" in first
    assert "content-length: 3\r\n" in first and "x-a: 1\r\n" in first
    assert "content-length" not in server.requests[2].decode()  # a GET without a body


async def test_given_host_and_agent_are_not_doubled(transport: Http11Transport) -> None:
    async with serving(keep_alive) as server:
        headers = {"Host": "example.test", "User-Agent": "theirs"}
        async with await transport.send(HttpRequest("POST", server.url(), headers, b"x")) as r:
            await r.read()
    head = server.requests[0].decode().lower()
    assert head.count("host:") == 1 and "host: example.test" in head
    assert head.count("user-agent:") == 1 and "user-agent: theirs" in head


@pytest.mark.parametrize("bad", ["a\r\nx-injected: 1", "a\nb", "a\rb"])
async def test_a_header_with_a_line_break_is_refused(transport: Http11Transport, bad: str) -> None:
    with pytest.raises(ValueError, match="newline"):
        await transport.send(HttpRequest("POST", "http://127.0.0.1:1/x", {"x-k": bad}))
    with pytest.raises(ValueError, match="newline"):
        await transport.send(HttpRequest("POST", "http://127.0.0.1:1/x", {bad: "v"}))


async def test_a_chunked_body_arrives_chunk_by_chunk(transport: Http11Transport) -> None:
    next_one = asyncio.Event()

    async def chunked(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await read_request(r, s)
        w.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for piece in (b"data: 1\n\n", b"data: 2\n\n"):
            w.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await w.drain()
            await next_one.wait()
            next_one.clear()
        w.write(b"0\r\n\r\n")
        await keep_alive(r, w, s)

    async with serving(chunked) as server:
        async with await transport.send(HttpRequest("POST", server.url())) as response:
            got = []
            async for chunk in response.iter_chunks():
                got.append(chunk)
                next_one.set()  # the next is sent only once this one was read
        assert got == [b"data: 1\n\n", b"data: 2\n\n"]
        assert await post(transport, server.url()) == b"hi"  # the connection was kept
    assert server.connections == 1


async def test_a_body_without_length_ends_with_the_connection(transport: Http11Transport) -> None:
    async def until_close(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await read_request(r, s)
        w.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of ")
        await w.drain()
        w.write(b"it")

    async with serving(until_close) as server:
        assert await post(transport, server.url()) == b"all of it"
        assert await post(transport, server.url()) == b"all of it"
    assert server.connections == 2  # `connection: close` is not pooled


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_compressed_body_is_decoded(transport: Http11Transport, encoding: str) -> None:
    import zlib

    text = b'{"text": "' + b"compressible " * 500 + b'"}'
    packed = gzip.compress(text) if encoding == "gzip" else zlib.compress(text)

    async def compressed(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await read_request(r, s)
        w.write(reply(packed, f"content-encoding: {encoding}"))

    async with serving(compressed) as server:
        assert await post(transport, server.url()) == text


async def test_a_body_larger_than_the_buffer_pauses_and_resumes_reading(
    transport: Http11Transport,
) -> None:
    big = bytes(range(256)) * (12 * 1024)  # 3 MiB

    async def large(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await read_request(r, s)
        w.write(reply(big))
        await w.drain()
        await keep_alive(r, w, s)

    async with serving(large) as server:
        async with await transport.send(HttpRequest("POST", server.url())) as response:
            await asyncio.sleep(0.03)  # the body piles up unread; reading pauses at 1 MiB
            assert await response.read() == big
        assert await post(transport, server.url()) == b"hi"
    assert server.connections == 1


async def test_a_response_left_unread_drops_its_connection(transport: Http11Transport) -> None:
    async def slow_tail(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await read_request(r, s)
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
        await w.drain()
        await keep_alive(r, w, s)

    async with serving(slow_tail) as server:
        async with await transport.send(HttpRequest("POST", server.url())) as response:
            assert response.status == 200  # closed before its body is in
        async with await transport.send(HttpRequest("POST", server.url())) as response:
            pass
    assert server.connections == 2


async def test_the_total_timeout_ends_a_reply_that_does_not_come(
    transport: Http11Transport,
) -> None:
    async def silent(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await read_request(r, s)
        await s.done.wait()

    async with serving(silent) as server:
        with pytest.raises(TimeoutError):
            await transport.send(HttpRequest("POST", server.url(), timeout=Timeout(total=0.02)))


async def test_the_read_timeout_counts_the_upstreams_silence_not_the_callers(
    transport: Http11Transport,
) -> None:
    stall = asyncio.Event()

    async def stalls(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        while True:  # each request: a first chunk, then the end once `stall` is set
            await read_request(r, s)
            w.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
            await w.drain()
            await stall.wait()
            w.write(b"0\r\n\r\n")
            await w.drain()

    async with serving(stalls) as server:
        timeout = Timeout(read=0.02)
        async with await transport.send(HttpRequest("POST", server.url(), timeout=timeout)) as r:
            await asyncio.sleep(0.05)  # a slow caller: the chunk waited, the upstream did not
            chunks = r.iter_chunks()
            assert await anext(chunks) == b"first"
            stall.set()
            assert [c async for c in chunks] == []
        stall.clear()
        async with await transport.send(HttpRequest("POST", server.url(), timeout=timeout)) as r:
            chunks = r.iter_chunks()
            assert await anext(chunks) == b"first"
            with pytest.raises(TimeoutError):
                await anext(chunks)  # the upstream says nothing more for 0.02 s


async def test_a_pooled_connection_the_server_dropped_is_replaced(
    transport: Http11Transport,
) -> None:
    async def one_then_drop(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await read_request(r, s)
        w.write(reply(b"once"))
        await w.drain()
        if s.connections == 1:
            await read_request(r, s)  # reads the next request, then closes without a word

    async with serving(one_then_drop) as server:
        assert await post(transport, server.url()) == b"once"
        await asyncio.sleep(0)  # the connection looks alive: the server closes it later
        assert await post(transport, server.url()) == b"once"  # sent again, once
    assert server.connections == 2
    assert len(server.requests) == 3


async def test_a_fresh_connection_that_breaks_is_not_retried(
    transport: Http11Transport,
) -> None:
    async def drop(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await read_request(r, s)

    async with serving(drop) as server:
        with pytest.raises(ConnectionError, match="closed the connection"):
            await post(transport, server.url())
    assert server.connections == 1


async def test_a_reply_that_broke_midway_is_not_retried(transport: Http11Transport) -> None:
    async def half(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await read_request(r, s)
        if s.connections == 1:
            w.write(reply(b"first"))
            await w.drain()
            await read_request(r, s)
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")

    async with serving(half) as server:
        assert await post(transport, server.url()) == b"first"
        with pytest.raises(ConnectionError, match="closed the connection"):
            await post(transport, server.url())
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    "answer", [b"garbage\r\n\r\n", b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n"]
)
async def test_a_reply_that_is_not_http_is_a_connection_error(
    transport: Http11Transport, answer: bytes
) -> None:
    async def bad(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
        await read_request(r, s)
        w.write(answer)
        await w.drain()
        await s.done.wait()

    async with serving(bad) as server:
        with pytest.raises(ConnectionError, match="malformed reply"):
            await post(transport, server.url())


async def test_refused_and_bad_urls_are_connection_errors(transport: Http11Transport) -> None:
    with pytest.raises(ConnectionError, match="cannot connect"):
        await transport.send(HttpRequest("POST", f"http://127.0.0.1:{free_port()}/x"))
    for url in ("ftp://127.0.0.1/x", "http:///x", "http://127.0.0.1:99999/x"):
        with pytest.raises(ConnectionError):
            await transport.send(HttpRequest("POST", url))


async def test_idle_connections_expire_and_close_with_the_transport() -> None:
    transport = Http11Transport(keepalive_timeout=0)
    async with serving(keep_alive) as server:
        await post(transport, server.url())
        await asyncio.sleep(0.002)
        await post(transport, server.url())
        assert server.connections == 2  # the idle one had outlived keepalive_timeout
        await transport.aclose()
        await transport.aclose()
        with pytest.raises(ConnectionError, match="closed"):
            await post(transport, server.url())


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


async def test_https_verifies_the_servers_certificate(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    async with serving(keep_alive, tls=server_tls) as server:
        url = f"https://localhost:{server.port}/x"
        untrusting = Http11Transport()
        with pytest.raises(ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            await post(untrusting, url)
        await untrusting.aclose()
        trusting = Http11Transport(tls=ssl.create_default_context(cafile=str(cert)))
        assert await post(trusting, url, b"secret") == b"secret"
        assert await post(trusting, url, b"again") == b"again"
        await trusting.aclose()
    assert server.connections == 1  # the refused handshake never became one; both calls share it
