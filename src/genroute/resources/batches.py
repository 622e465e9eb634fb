"""The Batch API's logic: create a batch (inline requests, or a JSONL file of requests
uploaded through the Files API), get, list, cancel, delete; the `batches` JSON the SDKs read.

A batch and each of its requests are rows in the database (`genroute.store.batches`); the
`BatchRunner` (`genroute.resources.runner`) runs them in the background through the
pipeline. Its JSON is Gemini's long-running operation: `name` (`batches/{id}`) and
`metadata` (a `GenerateContentBatch`: `model`, `displayName`, `state` BATCH_STATE_*,
`createTime`, `updateTime`, `endTime`, `batchStats`, and once it has ended `output`:
`inlinedResponses` for inline requests, `responsesFile` for a file of requests), with
`done` when it has ended.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from genroute.call import Caller
from genroute.config import BatchesSettings
from genroute.errors import GenrouteError, InvalidRequest
from genroute.resources.files import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    FileService,
    page_token,
    parse_page_token,
)
from genroute.resources.owners import Access
from genroute.store.batches import BatchItem, BatchRepo, BatchRow
from genroute.store.repo import aware, utcnow
from genroute.wire import GenerateContentRequest, format_validation_error

__all__ = ["ENDED", "BatchService", "caller_of", "parse_batch_name"]

_ID_CHARS = string.ascii_lowercase + string.digits
ENDED = ("BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED")
_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"


def parse_batch_name(name: str) -> str:
    """The id of `batches/{id}`; InvalidRequest otherwise."""
    batch_id = name.removeprefix("batches/")
    if not batch_id or not all(c in _ID_CHARS or c == "-" for c in batch_id):
        raise InvalidRequest(f"name: {name[:80]!r} is not a batch name")
    return batch_id


def caller_of(row: BatchRow) -> Caller:
    """Who a batch's requests are made as: the key, team, user and end user that made it."""
    data = row.caller
    return Caller(
        key_hash=data.get("key_hash"),
        key_alias=data.get("key_alias"),
        team_id=data.get("team_id"),
        user_id=data.get("user_id"),
        end_user=data.get("end_user"),
        metadata=data.get("metadata") or {},
    )


def _time(value: datetime | None) -> str | None:
    if value is None:
        return None
    stamp = aware(value).astimezone(UTC).isoformat(timespec="microseconds")  # type: ignore[union-attr]
    return stamp.replace("+00:00", "Z")


def _request(data: Any, where: str) -> dict[str, Any]:
    """One request of a batch, validated; its JSON as it will be sent."""
    if not isinstance(data, dict):
        raise InvalidRequest(f"{where}: must be an object (a GenerateContentRequest)")
    try:
        request = GenerateContentRequest.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(f"{where}.{format_validation_error(exc)}") from None
    return request.model_dump(by_alias=True, exclude_none=True, exclude={"model"})


_ELSEWHERE = ("gcsSource", "gcs_source", "bigquerySource", "bigquery_source")


def _refuse_elsewhere(batch: dict[str, Any], config: dict[str, Any]) -> None:
    """Refuse what only Vertex AI's batch jobs take (requests in Cloud Storage or BigQuery,
    answers written there), saying what to send instead."""
    for field in _ELSEWHERE:
        if field in config:
            raise InvalidRequest(
                f"batch.inputConfig.{field}: genroute does not read Cloud Storage or "
                "BigQuery: send the requests inline (inputConfig.requests) or upload them "
                "as a JSONL file with client.files.upload and name it (inputConfig.fileName)"
            )
    for field in ("outputConfig", "output_config", "dest"):
        if field in batch:
            raise InvalidRequest(
                f"batch.{field}: genroute keeps a batch's answers itself (inlinedResponses, "
                "or a responses file in the Files API for a file of requests): leave it out"
            )


class BatchService:
    """Batches in the database; see the module docstring."""

    def __init__(
        self,
        repo: BatchRepo,
        files: FileService,
        settings: BatchesSettings,
        *,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.repo = repo
        self.files = files
        self.settings = settings
        self.now = now
        self.wake: Callable[[], None] = lambda: None  # the runner's, once it runs
        self.on_cancel: Callable[[str], None] = lambda _: None  # the runner's too

    async def _file_items(self, access: Access, name: str) -> tuple[str, list[BatchItem]]:
        try:
            row = await self.files.get(access, name)
        except GenrouteError as exc:
            exc.message = f"batch.inputConfig.fileName: {exc.message}"
            raise
        items: list[BatchItem] = []
        pending = b""
        chunks: AsyncIterator[bytes] = self.files.read(row)
        line_no = 0

        def take(line: bytes) -> None:
            nonlocal line_no
            line_no += 1
            if not line.strip():
                return
            where = f"{name} line {line_no}"
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise InvalidRequest(f"{where}: not JSON ({exc})") from None
            if not isinstance(entry, dict) or "request" not in entry:
                raise InvalidRequest(f'{where}: expected {{"key": ..., "request": {{...}}}}')
            key = entry.get("key")
            items.append(
                self._item(len(items), _request(entry["request"], f"{where}.request"), key, None)
            )

        async for chunk in chunks:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                take(line)
        take(pending)
        return row.file_id, items

    def _item(self, idx: int, request: dict[str, Any], key: Any, meta: Any) -> BatchItem:
        if idx >= self.settings.max_requests:
            raise InvalidRequest(
                f"the batch has more than {self.settings.max_requests} requests "
                "(batches.max_requests)"
            )
        return BatchItem(
            idx=idx,
            key=None if key is None else str(key)[:512],
            metadata_=meta if isinstance(meta, dict) else None,
            request=request,
            state="PENDING",
        )

    async def create(self, access: Access, caller: Caller, model: str, body: Any) -> BatchRow:
        """A new batch for `model` from `{"batch": {displayName?, inputConfig}}`."""
        batch = body.get("batch") if isinstance(body, dict) else None
        if not isinstance(batch, dict):
            raise InvalidRequest("batch: required (an object with inputConfig)")
        config = batch.get("inputConfig") or batch.get("input_config")
        if not isinstance(config, dict):
            raise InvalidRequest("batch.inputConfig: required (requests, or fileName)")
        _refuse_elsewhere(batch, config)
        input_file: str | None = None
        if config.get("fileName") or config.get("file_name"):
            input_file, items = await self._file_items(
                access, str(config.get("fileName") or config.get("file_name"))
            )
        else:
            outer = config.get("requests")
            listed = outer.get("requests") if isinstance(outer, dict) else None
            if not isinstance(listed, list):
                raise InvalidRequest(
                    "batch.inputConfig.requests.requests: required (a list of "
                    '{"request": GenerateContentRequest, "metadata"?})'
                )
            items = []
            for i, entry in enumerate(listed):
                where = f"batch.inputConfig.requests.requests[{i}]"
                if not isinstance(entry, dict):
                    raise InvalidRequest(f"{where}: must be an object")
                request = _request(entry.get("request"), f"{where}.request")
                items.append(self._item(i, request, None, entry.get("metadata")))
        if not items:
            raise InvalidRequest("batch.inputConfig: the batch has no requests")
        now = self.now()
        batch_id = "".join(secrets.choice(_ID_CHARS) for _ in range(20))
        for item in items:
            item.batch_id = batch_id
        display = batch.get("displayName") or batch.get("display_name")
        row = BatchRow(
            batch_id=batch_id,
            owner=access.owner,
            key_hash=caller.key_hash,
            caller={
                "key_hash": caller.key_hash,
                "key_alias": caller.key_alias,
                "team_id": caller.team_id,
                "user_id": caller.user_id,
                "end_user": caller.end_user,
                "metadata": dict(caller.metadata),
            },
            model=model,
            display_name=str(display)[:512] if display else None,
            state="BATCH_STATE_PENDING",
            input_file=input_file,
            total=len(items),
            cancel_requested=False,
            created_at=now,
            updated_at=now,
        )
        await self.repo.insert(row, items)
        self.wake()
        return row

    async def get(self, access: Access, name: str) -> BatchRow:
        """A batch the caller may see."""
        batch_id = parse_batch_name(name)
        row = await self.repo.get(batch_id)
        if row is None or not access.may_see(row.owner):
            raise Access.hidden("Batch", batch_id)
        return row

    async def list(
        self,
        access: Access,
        page_size: int | None,
        token: str | None,
        key_hash: str | None = None,
    ) -> tuple[list[BatchRow], str | None]:
        """One page of the caller's batches, newest first, and the next token (those made by
        `key_hash` only, when given)."""
        size = max(1, min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE))
        after = parse_page_token(token) if token else None
        rows = await self.repo.page(access.owner, access.sees_all, after, size + 1, key_hash)
        more = len(rows) > size
        rows = rows[:size]
        last = rows[-1] if more and rows else None
        return rows, page_token(last.created_at, last.batch_id) if last is not None else None

    async def cancel(self, access: Access, name: str) -> None:
        """Ask a batch to stop: its requests not yet started are not run."""
        row = await self.get(access, name)
        if row.state in ENDED:
            return
        if row.state == "BATCH_STATE_PENDING" and row.lease_owner is None:
            now = self.now()
            await self.repo.set(
                row.batch_id,
                state="BATCH_STATE_CANCELLED",
                cancel_requested=True,
                updated_at=now,
                ended_at=now,
            )
            return
        await self.repo.set(row.batch_id, cancel_requested=True, updated_at=self.now())
        self.on_cancel(row.batch_id)

    async def delete(self, access: Access, name: str) -> None:
        """Delete a batch that has ended (a running one must be cancelled first)."""
        row = await self.get(access, name)
        if row.state not in ENDED:
            raise GenrouteError(
                f"batches/{row.batch_id} is {row.state}: cancel it before deleting it",
                code=400,
                status="FAILED_PRECONDITION",
            )
        await self.repo.remove(row.batch_id)

    async def to_json(self, row: BatchRow) -> dict[str, Any]:
        """The batch as Gemini's operation JSON (with its output once it has ended)."""
        counts = await self.repo.counts(row.batch_id)
        done, failed = counts.get("DONE", 0), counts.get("FAILED", 0)
        meta: dict[str, Any] = {
            "@type": _TYPE,
            "name": f"batches/{row.batch_id}",
            "model": f"models/{row.model}",
            "state": row.state,
            "createTime": _time(row.created_at),
            "updateTime": _time(row.updated_at),
            "batchStats": {
                "requestCount": str(row.total),
                "successfulRequestCount": str(done),
                "failedRequestCount": str(failed),
                "pendingRequestCount": str(row.total - done - failed),
            },
        }
        if row.display_name:
            meta["displayName"] = row.display_name
        if row.ended_at is not None:
            meta["endTime"] = _time(row.ended_at)
        if row.state in ENDED:
            meta["output"] = await self._output(row)
        return {"name": f"batches/{row.batch_id}", "metadata": meta, "done": row.state in ENDED}

    async def _output(self, row: BatchRow) -> dict[str, Any]:
        if row.input_file is not None:
            return {"responsesFile": f"files/{row.output_file}"} if row.output_file else {}
        answers = []
        for item in await self.repo.items(row.batch_id, ("DONE", "FAILED")):
            answer: dict[str, Any] = (
                {"response": item.response} if item.state == "DONE" else {"error": item.error}
            )
            if item.metadata_:
                answer["metadata"] = item.metadata_
            answers.append(answer)
        return {"inlinedResponses": {"inlinedResponses": answers}}
