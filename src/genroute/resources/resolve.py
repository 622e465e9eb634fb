"""Uploaded files and cached contents in requests: the `Resolved` layer, and what each
deployment is sent.

A request names an uploaded file by its uri in `fileData.fileUri` (what the SDKs put
there for `Part.from_uri(file.uri, ...)` or a `File` in `contents`), and a cached content
by `cachedContent`. `Resolved`, the pipeline layer just outside the Router, finds them
(in `contents`, `systemInstruction` and the cached content's own parts), checks each is
the caller's (404 naming the part otherwise, as for a missing file) and usable, and hands the
Router a `CallPreparer`, which the Router calls for each deployment it tries
(`Call.prepare`):

    a deployment with its own Files API and      files up to files.gemini_inline_max_mb
    caches (Gemini)                              inline, larger ones uploaded there once
                                                 (remembered in the database) and named
                                                 by the upstream's uri; the cached content
                                                 created there once (its storage priced,
                                                 genroute.resources.storage) and named
    any other (OpenAI, Azure, Anthropic, Bedrock,  the cached content's parts put in front
    Vertex AI, ...)                              of the request's; text files as text, the
                                                 others inline (images, PDFs, audio...) for
                                                 the provider's translator to send in the
                                                 form it takes, or refuse naming the part;
                                                 at most files.max_inline_mb in all

A uri is genroute's when it ends in `/{v}/files/{id}` (or is `files/{id}`) and is not on a
googleapis.com host: a Gemini API file uri passes to a Gemini upstream as it came.
"""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

from genroute.call import Call, Caller, ModelAPI
from genroute.errors import GenrouteError, InvalidRequest
from genroute.providers.base import UpstreamCaches, UpstreamFiles
from genroute.resources.caches import CacheService, cache_request, expand
from genroute.resources.files import FileService
from genroute.resources.owners import Access
from genroute.resources.runner import Traffic
from genroute.resources.storage import Charge, storage_charge
from genroute.resources.upstream import upstream_uri
from genroute.store.caches import CacheCopy, CacheRow
from genroute.store.files import FileRow
from genroute.store.repo import aware
from genroute.wire import (
    BatchEmbedContentsRequest,
    BatchEmbedContentsResponse,
    Blob,
    Content,
    CountTokensRequest,
    CountTokensResponse,
    EmbedContentRequest,
    EmbedContentResponse,
    FileData,
    GenerateContentRequest,
    GenerateContentResponse,
    Part,
)

__all__ = ["CallPreparer", "FilePreparer", "Resolved", "genroute_file_id"]

_PATH = re.compile(
    r"(?:^|/)(?:v1|v1beta|v1alpha)/files/([a-z0-9-]{1,40})$|^files/([a-z0-9-]{1,40})$"
)
_TEXTUAL = ("text/", "application/json", "application/xml", "application/x-yaml")


def genroute_file_id(uri: str) -> str | None:
    """The file id a genroute file uri names, or None for any other uri."""
    parts = urlsplit(uri.strip())
    if parts.scheme not in ("", "http", "https") or parts.query or parts.fragment:
        return None
    if (parts.hostname or "").endswith("googleapis.com"):
        return None
    path = parts.path if parts.scheme else uri.strip()
    match = _PATH.search(path)
    return (match.group(1) or match.group(2)) if match else None


def _places(request: GenerateContentRequest) -> list[tuple[str, Content]]:
    places = [(f"contents[{i}]", c) for i, c in enumerate(request.contents)]
    if request.system_instruction is not None:
        places.append(("systemInstruction", request.system_instruction))
    return places


def _names_files(request: GenerateContentRequest) -> bool:
    """Whether any part of the request's contents or system instruction has `fileData`
    (the one check a request without files or a cached content costs)."""
    for content in request.contents:
        for part in content.parts or ():
            if part.file_data is not None:
                return True
    system = request.system_instruction
    if system is not None:
        for part in system.parts or ():
            if part.file_data is not None:
                return True
    return False


def _textual(mime: str) -> bool:
    return mime.split(";")[0].strip().lower().startswith(_TEXTUAL)


class FilePreparer:
    """The files of one call, sent as each deployment takes them (see the module)."""

    def __init__(self, call: Call, files: FileService, rows: dict[str, FileRow]) -> None:
        self.call = call
        self.files = files
        self.rows = rows  # by file id, each checked to be the caller's
        self._bytes: dict[str, bytes] = {}

    async def generate(
        self, deployment: Any, request: GenerateContentRequest
    ) -> GenerateContentRequest:
        contents = [
            await self._content(deployment, f"contents[{i}]", c)
            for i, c in enumerate(request.contents)
        ]
        update: dict[str, Any] = {"contents": contents}
        if request.system_instruction is not None:
            update["system_instruction"] = await self._content(
                deployment, "systemInstruction", request.system_instruction
            )
        self._check_inline_total(deployment)
        return request.model_copy(update=update)

    async def count_tokens(
        self, deployment: Any, request: CountTokensRequest
    ) -> CountTokensRequest:
        if request.generate_content_request is not None:
            inner = await self.generate(deployment, request.generate_content_request)
            return request.model_copy(update={"generate_content_request": inner})
        contents = [
            await self._content(deployment, f"contents[{i}]", c)
            for i, c in enumerate(request.contents or [])
        ]
        self._check_inline_total(deployment)
        return request.model_copy(update={"contents": contents})

    def _check_inline_total(self, deployment: Any) -> None:
        limit = self.files.settings.max_inline_bytes
        total = sum(len(data) for data in self._bytes.values())
        if total > limit:
            raise InvalidRequest(
                f"the files of this request add up to {total} bytes, over the {limit} bytes "
                f"genroute sends inline to {deployment.spec.provider} (files.max_inline_mb)"
            )

    async def _content(self, deployment: Any, where: str, content: Content) -> Content:
        parts = list(content.parts or [])
        changed = False
        for j, part in enumerate(parts):
            file_id = genroute_file_id(part.file_data.file_uri) if part.file_data else None
            row = self.rows.get(file_id) if file_id is not None else None
            if row is not None:
                parts[j] = await self._part(deployment, f"{where}.parts[{j}]", part, row)
                changed = True
        return content.model_copy(update={"parts": parts}) if changed else content

    async def _part(self, deployment: Any, where: str, part: Part, row: FileRow) -> Part:
        provider = deployment.provider
        settings = self.files.settings
        if isinstance(provider, UpstreamFiles):
            if row.size_bytes > settings.gemini_inline_bytes:
                uri = await upstream_uri(
                    self.call,
                    provider,
                    self.files.repo,
                    row,
                    self.files.read(row),
                    where=where,
                    wait=settings.upstream_processing_wait_seconds,
                )
                data = FileData(mime_type=row.mime_type, file_uri=uri)
                return part.model_copy(update={"file_data": data})
            return await self._inline(part, row, where, deployment, textual=False)
        return await self._inline(part, row, where, deployment, textual=_textual(row.mime_type))

    async def _read(self, row: FileRow, where: str, deployment: Any) -> bytes:
        limit = self.files.settings.max_inline_bytes
        if row.size_bytes > limit:
            raise InvalidRequest(
                f"{where}.fileData.fileUri: files/{row.file_id} is {row.size_bytes} bytes, over "
                f"the {limit} bytes genroute sends inline to {deployment.spec.provider} "
                "(files.max_inline_mb); a Gemini deployment takes it through its Files API"
            )
        if row.file_id not in self._bytes:
            chunks = [chunk async for chunk in self.files.read(row)]
            self._bytes[row.file_id] = b"".join(chunks)
        return self._bytes[row.file_id]

    async def _inline(
        self, part: Part, row: FileRow, where: str, deployment: Any, *, textual: bool
    ) -> Part:
        data = await self._read(row, where, deployment)
        fields = part.model_dump(by_alias=False, exclude_none=True, exclude={"file_data"})
        if textual:
            try:
                return Part.model_validate({**fields, "text": data.decode("utf-8")})
            except UnicodeDecodeError:
                pass  # sent as bytes, for the translator to take or refuse
        blob = Blob(mime_type=row.mime_type, data=base64.b64encode(data).decode("ascii"))
        return Part.model_validate({**fields, "inline_data": blob})


class CallPreparer:
    """What one call's deployments are given: its cached content (expanded, or created on
    a Gemini deployment's own API) and its files (`FilePreparer`)."""

    def __init__(
        self,
        files: FilePreparer,
        caches: CacheService,
        cache: CacheRow | None,
        charge: Charge | None = None,
    ) -> None:
        self.files = files
        self.caches = caches
        self.cache = cache
        self.charge = charge

    async def generate(
        self, deployment: Any, request: GenerateContentRequest
    ) -> GenerateContentRequest:
        if self.cache is not None:
            name = await self._upstream_cache(deployment, self.cache)
            if name is not None:
                request = request.model_copy(update={"cached_content": name})
            else:
                request = expand(request, self.cache)
        return await self.files.generate(deployment, request)

    async def count_tokens(
        self, deployment: Any, request: CountTokensRequest
    ) -> CountTokensRequest:
        return await self.files.count_tokens(deployment, request)

    async def _upstream_cache(self, deployment: Any, row: CacheRow) -> str | None:
        """The cache's name on a deployment with caches of its own (made there once, with
        its files resolved for it), or None: then its parts go in the request."""
        provider = deployment.provider
        if not isinstance(provider, UpstreamCaches) or not row.payload.get("contents"):
            return None
        repo = self.caches.repo
        now = self.caches.now()
        found = await repo.copy(row.cache_id, provider.files_target, now)
        if found is not None:
            return found.upstream_name
        left = (aware(row.expires_at) - now).total_seconds()  # type: ignore[operator]
        cached = await self.files.generate(deployment, cache_request(row))
        try:
            created = await provider.create_cache(self.files.call, cached, left)
        except GenrouteError as exc:
            if exc.code != 400:
                raise
            return None  # the upstream will not cache it (too small for it, say): send it all
        await repo.save_copy(
            CacheCopy(
                cache_id=row.cache_id,
                target=provider.files_target,
                upstream_name=created.name,
                expires_at=row.expires_at,
            )
        )
        record = storage_charge(row, deployment, created, left)
        if record is not None and self.charge is not None:
            await self.charge(record)
        return created.name


class Resolved:
    """The pipeline layer that resolves uploaded files and cached contents (see the
    module docstring)."""

    def __init__(
        self,
        inner: ModelAPI,
        files: FileService,
        caches: CacheService,
        access: Callable[[Caller], Access],
        traffic: Traffic | None = None,
        charge: Charge | None = None,
    ) -> None:
        self.inner = inner
        self.files = files
        self.caches = caches
        self.access = access
        self.traffic = traffic or Traffic()
        self.charge = charge  # records a cache's storage on a provider (the ledger)

    async def _rows(
        self, access: Access, places: list[tuple[str, Content]], rows: dict[str, FileRow]
    ) -> None:
        for where, content in places:
            for j, part in enumerate(content.parts or []):
                file = part.file_data
                file_id = genroute_file_id(file.file_uri) if file is not None else None
                if file_id is None or file_id in rows:
                    continue
                at = f"{where}.parts[{j}]"
                try:
                    row = await self.files.get(access, f"files/{file_id}")
                except GenrouteError as exc:
                    exc.message = f"{at}.fileData.fileUri: {exc.message}"
                    raise
                if row.state != "ACTIVE":
                    raise InvalidRequest(
                        f"{at}.fileData.fileUri: files/{file_id} is {row.state}, not ACTIVE"
                    )
                rows[file_id] = row

    async def _prepared(
        self,
        call: Call,
        places: list[tuple[str, Content]],
        request: GenerateContentRequest | None = None,
    ) -> Call:
        access = self.access(call.caller)
        cache: CacheRow | None = None
        if request is not None and request.cached_content:
            cache = await self.caches.for_call(access, request.cached_content, call.model, request)
            cached = cache_request(cache)
            places = [*places, *(("cachedContent." + w, c) for w, c in _places(cached))]
        rows: dict[str, FileRow] = {}
        await self._rows(access, places, rows)
        if not rows and cache is None:
            return call
        if cache is not None:  # for the log line and the ledger row
            call.resources.cached_content = f"cachedContents/{cache.cache_id}"
        if rows:
            call.resources.files = tuple(f"files/{file_id}" for file_id in rows)
        files = FilePreparer(call, self.files, rows)
        return call.with_prepare(CallPreparer(files, self.caches, cache, self.charge))

    async def generate(
        self, call: Call, request: GenerateContentRequest
    ) -> GenerateContentResponse:
        if request.cached_content or _names_files(request):
            inner_call = await self._prepared(call, _places(request), request)
        else:
            inner_call = call
        if not call.resources.interactive:  # a batch's request
            return await self.inner.generate(inner_call, request)
        traffic = self.traffic
        traffic.enter()
        try:
            return await self.inner.generate(inner_call, request)
        finally:
            traffic.leave()

    async def stream(
        self, call: Call, request: GenerateContentRequest
    ) -> AsyncIterator[GenerateContentResponse]:
        if request.cached_content or _names_files(request):
            inner_call = await self._prepared(call, _places(request), request)
        else:
            inner_call = call
        chunks = self.inner.stream(inner_call, request)
        traffic = self.traffic
        traffic.enter()
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            traffic.leave()
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()

    async def count_tokens(self, call: Call, request: CountTokensRequest) -> CountTokensResponse:
        inner = request.generate_content_request
        if inner is not None:
            places = _places(inner)
        else:
            places = [(f"contents[{i}]", c) for i, c in enumerate(request.contents or [])]
        return await self.inner.count_tokens(await self._prepared(call, places), request)

    async def embed(self, call: Call, request: EmbedContentRequest) -> EmbedContentResponse:
        return await self.inner.embed(call, request)

    async def batch_embed(
        self, call: Call, request: BatchEmbedContentsRequest
    ) -> BatchEmbedContentsResponse:
        return await self.inner.batch_embed(call, request)
