"""The Files API at the HTTP edge, as google-genai and @google/genai call it.

    POST   {prefix}/upload/{v}/files           X-Goog-Upload-Protocol: resumable,
                                               X-Goog-Upload-Command: start
                                               → X-Goog-Upload-URL (this same path with
                                               ?upload_id=…; the Python SDK puts its own
                                               scheme and host in front of it)
    POST   {upload url}                        X-Goog-Upload-Command: upload | upload,
                                               finalize | finalize | query | cancel,
                                               X-Goog-Upload-Offset; the body streamed to
                                               storage; finalize → {"file": File}
    GET    {prefix}/{v}/files                  ?pageSize (≤ 100, default 10) &pageToken
    GET    {prefix}/{v}/files/{id}             File
    DELETE {prefix}/{v}/files/{id}             {}
    GET    {prefix}/{v}/files/{id}:download    the bytes (?alt=media), streamed

`{v}` is v1beta, v1 or v1alpha (the upload path may leave it out). The caller was
authenticated by the app (except on an upload URL, where the unguessable `upload_id`
that only the upload's starter was given is the credential, as on Google, whose SDKs
send no key with the bytes); the file service checks ownership. An error on the upload URL
carries `X-Goog-Upload-Status: final`, which tells the SDKs not to retry the chunk.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from genroute.call import Caller
from genroute.errors import GenrouteError, InvalidRequest, NotFound, PayloadTooLarge
from genroute.resources import NewFile, Resources, file_json
from genroute.server import asgi
from genroute.server.asgi import JSON_TYPE, Receive, Scope, Send
from genroute.server.auth import query_params

__all__ = ["FileRoute", "FilesAPI", "match_files_path"]

_PATH = re.compile(
    r"^(?P<prefix>.*?)/(?:(?P<upload>upload)/(?:(?P<uv>v1|v1beta|v1alpha)/)?"
    r"|(?P<v>v1|v1beta|v1alpha)/)files(?:/(?P<id>[^/:]+)(?::(?P<action>[A-Za-z]+))?)?/?$"
)
_COMMANDS = frozenset({"start", "upload", "finalize", "query", "cancel"})
_FINAL = (b"x-goog-upload-status", b"final")


@dataclass(frozen=True, slots=True)
class FileRoute:
    """What a Files API path names."""

    prefix: str
    version: str
    upload: bool
    file_id: str | None
    action: str | None

    def needs_key(self, scope: Scope) -> bool:
        """Whether the caller must show a key: everywhere but on an upload URL, whose
        `upload_id` is the credential (the SDKs send no key with the bytes)."""
        return not (self.upload and "upload_id" in query_params(scope))


def match_files_path(path: str) -> FileRoute | None:
    """The Files API route a path names, or None."""
    if "files" not in path:  # the cheap check every model call makes
        return None
    found = _PATH.match(path)
    if found is None:
        return None
    version = found["v"] or found["uv"] or "v1beta"
    return FileRoute(found["prefix"], version, bool(found["upload"]), found["id"], found["action"])


def _header(scope: Scope, name: bytes) -> str | None:
    value = asgi.header(scope, name)
    return value.decode("latin-1").strip() if value is not None else None


def _origin(scope: Scope) -> str:
    host = _header(scope, b"host") or "{}:{}".format(*(scope.get("server") or ("localhost", 80)))
    scheme = (_header(scope, b"x-forwarded-proto") or scope.get("scheme") or "http").split(",")[0]
    return f"{scheme.strip()}://{host}"


def _int_header(scope: Scope, name: bytes, label: str) -> int | None:
    raw = _header(scope, name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise InvalidRequest(f"{label}: {raw[:40]!r} is not a whole number of bytes")
    return int(raw)


async def body_chunks(receive: Receive, idle: float) -> AsyncIterator[bytes]:
    """A request body as it arrives; 408 when the client sends nothing for `idle` seconds."""
    while True:
        try:
            async with asyncio.timeout(idle):
                message = await receive()
        except TimeoutError:
            raise GenrouteError(
                f"the upload sent nothing for {idle:g} s (general_settings.request_body_timeout)",
                code=408,
            ) from None
        if message["type"] == "http.disconnect":
            raise ConnectionAbortedError("client went away during the upload")
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


class FilesAPI:
    """Serves the Files API routes (see the module docstring)."""

    def __init__(self, resources: Resources, body_timeout: float, json_limit: int) -> None:
        self.resources = resources
        self.files = resources.files
        self.body_timeout = body_timeout
        self.json_limit = json_limit

    async def handle(
        self,
        route: FileRoute,
        scope: Scope,
        receive: Receive,
        send: Send,
        caller: Caller | None,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        """Answer one Files API request (`caller`: None on an upload URL)."""
        await self.resources.ready()
        method: str = scope["method"]
        if route.upload:
            if method != "POST" or route.file_id is not None:
                raise NotFound(f"no route for {method} {scope['path']}")
            await self._upload(route, scope, receive, send, caller, headers)
            return
        assert caller is not None  # needs_key
        access = self.resources.access(caller)
        base = f"{_origin(scope)}{route.prefix}/{route.version}"
        if route.file_id is None:
            if method == "POST":
                raise InvalidRequest(
                    "files are created by uploading them: POST /upload/{v}/files with "
                    "X-Goog-Upload-Protocol: resumable (client.files.upload does)"
                )
            if method != "GET":
                raise _not_allowed(method, scope["path"])
            await self._list(scope, send, access, base, headers)
            return
        name = f"files/{route.file_id}"
        if route.action == "download" and method == "GET":
            await self._download(send, await self.files.get(access, name), headers)
        elif route.action is not None:
            raise GenrouteError(
                f"{method} {name}:{route.action} is not served: a file is read (GET), its "
                "bytes downloaded (GET :download?alt=media) and deleted (DELETE)",
                code=400,
                status="FAILED_PRECONDITION",
            )
        elif method == "GET":
            row = await self.files.get(access, name)
            await asgi.send_json(send, 200, file_json(row, base), headers)
        elif method == "DELETE":
            await self.files.delete(access, name)
            await asgi.send_json(send, 200, {}, headers)
        else:
            raise _not_allowed(method, scope["path"])

    async def _list(
        self,
        scope: Scope,
        send: Send,
        access: Any,
        base: str,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        query = query_params(scope)
        size_text = query.get("pageSize") or query.get("page_size")
        if size_text is not None and not size_text.isdigit():
            raise InvalidRequest(f"pageSize: {size_text[:20]!r} is not a whole number")
        token = query.get("pageToken") or query.get("page_token") or None
        rows, more = await self.files.list(access, int(size_text) if size_text else None, token)
        reply: dict[str, Any] = {"files": [file_json(row, base) for row in rows]}
        if more:
            reply["nextPageToken"] = more
        await asgi.send_json(send, 200, reply, headers)

    async def _download(self, send: Send, row: Any, headers: list[tuple[bytes, bytes]]) -> None:
        chunks = self.files.read(row)
        first = await anext(aiter(chunks), b"")  # storage errors before the status line
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    *asgi.safe_headers(headers),
                    (b"content-type", row.mime_type.encode("latin-1", "replace")),
                    (b"content-length", str(row.size_bytes).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": first, "more_body": True})
        async for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    # -- uploads ----------------------------------------------------------------------------

    async def _upload(
        self,
        route: FileRoute,
        scope: Scope,
        receive: Receive,
        send: Send,
        caller: Caller | None,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        raw = (_header(scope, b"x-goog-upload-command") or "").lower()
        commands = {c.strip() for c in raw.split(",") if c.strip()}
        upload_id = query_params(scope).get("upload_id")
        if upload_id is None:
            assert caller is not None  # needs_key
            await self._start(route, scope, receive, send, caller, commands, headers)
            return
        headers.append(_FINAL)  # on any error from here: the SDKs must not retry the chunk
        if not commands or not commands <= _COMMANDS or "start" in commands:
            raise InvalidRequest(
                f"X-Goog-Upload-Command: {raw!r}; on an upload URL send upload, "
                "'upload, finalize', finalize, query or cancel"
            )
        row = await self.files.session(upload_id)
        if "query" in commands:
            headers.pop()
            reply = [(b"x-goog-upload-status", b"active")]
            size = (b"x-goog-upload-size-received", str(row.size_bytes).encode())
            await asgi.send_bytes(send, 200, b"", [*headers, *reply, size])
            return
        if "cancel" in commands:
            await self.files.cancel(row)
            headers.pop()
            await asgi.send_bytes(
                send, 200, b"", [*headers, (b"x-goog-upload-status", b"cancelled")]
            )
            return
        offset = _int_header(scope, b"x-goog-upload-offset", "X-Goog-Upload-Offset")
        length = _int_header(scope, b"content-length", "Content-Length")
        if length and row.declared_size is not None and row.size_bytes + length > row.declared_size:
            raise PayloadTooLarge(
                f"Content-Length: {length} more bytes would take the upload past the "
                f"{row.declared_size} bytes declared when it started"
            )
        finalize = "finalize" in commands
        chunks = body_chunks(receive, self.body_timeout)
        row = await self.files.receive(row, offset, chunks, finalize)
        headers.pop()
        if not finalize:
            await asgi.send_bytes(send, 200, b"", [*headers, (b"x-goog-upload-status", b"active")])
            return
        base = f"{_origin(scope)}{route.prefix}/{route.version}"
        body = orjson.dumps({"file": file_json(row, base)})
        await asgi.send_bytes(send, 200, body, [JSON_TYPE, *headers, _FINAL])

    async def _start(
        self,
        route: FileRoute,
        scope: Scope,
        receive: Receive,
        send: Send,
        caller: Caller,
        commands: set[str],
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        protocol = (_header(scope, b"x-goog-upload-protocol") or "").lower()
        if protocol != "resumable" or commands != {"start"}:
            raise InvalidRequest(
                "X-Goog-Upload-Protocol: genroute takes resumable uploads (what google-genai "
                "and @google/genai send): start one with X-Goog-Upload-Protocol: resumable "
                "and X-Goog-Upload-Command: start, then send the bytes to X-Goog-Upload-URL"
            )
        raw = await asgi.read_body(scope, receive, self.json_limit, self.body_timeout)
        file = _file_field(raw)
        size = _int_header(
            scope, b"x-goog-upload-header-content-length", "X-Goog-Upload-Header-Content-Length"
        )
        if size is None and file.get("sizeBytes") is not None:
            size = _whole(file["sizeBytes"], "file.sizeBytes")
        new = NewFile(
            mime_type=_header(scope, b"x-goog-upload-header-content-type") or file.get("mimeType"),
            size=size,
            display_name=_text(file.get("displayName"), "file.displayName"),
            name=_text(file.get("name"), "file.name"),
        )
        access = self.resources.access(caller)
        row = await self.files.start(access, caller.key_hash, new)
        url = (
            f"{_origin(scope)}{route.prefix}/upload/{route.version}/files"
            f"?upload_id={row.upload_id}&upload_protocol=resumable"
        )
        reply = [
            (b"x-goog-upload-url", url.encode("latin-1")),
            (b"x-goog-upload-status", b"active"),
            (b"x-goog-upload-control-url", url.encode("latin-1")),
        ]
        await asgi.send_bytes(send, 200, b"", [*headers, *reply])


def _file_field(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"Invalid JSON payload received: {exc}") from None
    file = body.get("file", {}) if isinstance(body, dict) else None
    if not isinstance(file, dict):
        raise InvalidRequest("file: must be an object (the File to create)")
    keys = {"mime_type": "mimeType", "size_bytes": "sizeBytes", "display_name": "displayName"}
    return {(keys[k] if k in keys else str(k)): v for k, v in file.items()}


def _text(value: Any, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InvalidRequest(f"{field}: must be a string")


def _whole(value: Any, field: str) -> int:
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return int(value)
    raise InvalidRequest(f"{field}: must be a whole number")


def _not_allowed(method: str, path: str) -> GenrouteError:
    return GenrouteError(f"{method} is not allowed on {path}", code=405, status="UNIMPLEMENTED")
