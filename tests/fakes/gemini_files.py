"""The fake Gemini upstream's Files API and cachedContents: resumable uploads, get,
caches, and the checks of ``fileData.fileUri`` and ``cachedContent`` in model requests,
as Google does them.

    POST /upload/{v}/files     X-Goog-Upload-Protocol: resumable, -Command: start,
                               -Header-Content-Length, -Header-Content-Type
                               → X-Goog-Upload-URL (on the fake's own host)
    POST {upload url}          -Command: upload | "upload, finalize", -Offset (must be the
                               bytes received) → {"file": File} on finalize
    GET  /{v}/files/{id}       File (only for the key that uploaded it)

A video upload stays PROCESSING for the next ``processing_gets`` GETs of it (0 by
default: ACTIVE at once), then becomes ACTIVE (FAILED with ``fail_processing``); a model
request naming a file that is not ACTIVE is refused as Google refuses it (400
FAILED_PRECONDITION).

    POST /{v}/cachedContents   {model, contents, systemInstruction?, tools?, ttl} → the
                               CachedContent (refused under 1024 tokens: whitespace words)

A file's uri is ``https://generativelanguage.googleapis.com/v1beta/files/{id}``, as on
Google; a model request naming a file uri the fake did not issue for that key (a
genroute uri passed on, say) is refused with Google's 403.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

GOOGLE_FILES = "https://generativelanguage.googleapis.com/v1beta/files/"


@dataclass
class FakeFile:
    """One file the fake holds."""

    file_id: str
    key: str
    mime_type: str
    size: int
    display_name: str | None = None
    data: bytearray = field(default_factory=bytearray)
    done: bool = False
    state: str = "ACTIVE"
    pending_gets: int = 0  # GETs left before a PROCESSING file is done

    def json(self) -> dict[str, Any]:
        sha = hashlib.sha256(bytes(self.data)).hexdigest().encode()
        import base64

        found = {
            "name": f"files/{self.file_id}",
            "mimeType": self.mime_type,
            "sizeBytes": str(len(self.data)),
            "createTime": "2026-12-02T00:00:00.000000Z",
            "updateTime": "2026-12-02T00:00:00.000000Z",
            "expirationTime": "2126-12-04T00:00:00.000000Z",
            "sha256Hash": base64.b64encode(sha).decode(),
            "uri": f"{GOOGLE_FILES}{self.file_id}",
            "state": self.state,
            "source": "UPLOADED",
        }
        if self.state == "FAILED":
            found["error"] = {"code": 400, "message": "The video could not be decoded."}
        if self.display_name:
            found["displayName"] = self.display_name
        return found


class FakeFilesAPI:
    """The files of one fake Gemini; thread-safe (tests read it from their thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.files: dict[str, FakeFile] = {}
        self._uploads: dict[str, FakeFile] = {}
        self.uploads_started = 0
        self.caches: dict[str, dict[str, Any]] = {}  # name → key, model, body, tokens
        self.processing_gets = 0  # GETs a video stays PROCESSING after its upload
        self.fail_processing = False  # ... and then FAILED instead of ACTIVE

    def completed(self) -> list[FakeFile]:
        with self._lock:
            return [f for f in self.files.values() if f.done]

    def start(
        self, key: str, headers: dict[str, str], body: Any, base_url: str
    ) -> tuple[int, dict[str, str], Any]:
        if headers.get("x-goog-upload-protocol") != "resumable":
            return 400, {}, _error(400, "Upload protocol must be resumable for this path.")
        if headers.get("x-goog-upload-command") != "start":
            return 400, {}, _error(400, "The upload command must be start.")
        size = headers.get("x-goog-upload-header-content-length")
        mime = headers.get("x-goog-upload-header-content-type")
        if size is None or not size.isdigit() or not mime:
            return 400, {}, _error(400, "Missing upload content length or type.")
        meta = (body or {}).get("file") or {}
        upload_id = secrets.token_hex(8)
        file = FakeFile(secrets.token_hex(6), key, mime, int(size), meta.get("displayName"))
        with self._lock:
            self._uploads[upload_id] = file
            self.uploads_started += 1
        url = f"{base_url}/upload/v1beta/files?upload_id={upload_id}&upload_protocol=resumable"
        return 200, {"x-goog-upload-url": url, "x-goog-upload-status": "active"}, None

    def upload(
        self, key: str, query: dict[str, str], headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], Any]:
        final = {"x-goog-upload-status": "final"}
        with self._lock:
            file = self._uploads.get(query.get("upload_id", ""))
            if file is None or file.key != key:
                return 404, final, _error(404, "Upload session not found.")
            commands = {c.strip() for c in headers.get("x-goog-upload-command", "").split(",")}
            offset = headers.get("x-goog-upload-offset", "")
            if not commands <= {"upload", "finalize"} or offset != str(len(file.data)):
                return 400, final, _error(400, "Bad upload command or offset.")
            file.data += raw
            if len(file.data) > file.size:
                return 400, final, _error(400, "More bytes than declared.")
            if "finalize" not in commands:
                return 200, {"x-goog-upload-status": "active"}, None
            if len(file.data) != file.size:
                return 400, final, _error(400, "Fewer bytes than declared.")
            file.done = True
            if file.mime_type.startswith("video/") and self.processing_gets:
                file.state, file.pending_gets = "PROCESSING", self.processing_gets
            del self._uploads[query["upload_id"]]
            self.files[file.file_id] = file
            return 200, final, {"file": file.json()}

    def get(self, key: str, file_id: str) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            file = self.files.get(file_id)
            if file is not None and file.state == "PROCESSING" and file.key == key:
                file.pending_gets -= 1
                if file.pending_gets <= 0:
                    file.state = "FAILED" if self.fail_processing else "ACTIVE"
        if file is None or file.key != key:
            return 403, {}, _no_access(file_id)
        return 200, {}, file.json()

    def check_refs(self, key: str | None, body: Any) -> tuple[int, Any] | None:
        """Google's refusal of a model request naming a file it cannot use, or None."""
        for content in _contents(body):
            for part in (content.get("parts") or []) if isinstance(content, dict) else []:
                data = (
                    part.get("fileData") or part.get("file_data")
                    if isinstance(part, dict)
                    else None
                )
                if not isinstance(data, dict):
                    continue
                uri = str(data.get("fileUri") or data.get("file_uri") or "")
                if not uri.startswith(GOOGLE_FILES) and "/files/" not in uri:
                    continue  # a web URL: Google fetches those itself
                file_id = uri.rsplit("/", 1)[-1]
                with self._lock:
                    file = self.files.get(file_id)
                if not uri.startswith(GOOGLE_FILES) or file is None or file.key != key:
                    return 403, _no_access(file_id)
                if file.state != "ACTIVE":
                    message = (
                        f"The File {file_id} is not in an ACTIVE state and usage is not allowed."
                    )
                    return 400, _error(400, message, "FAILED_PRECONDITION")
        return None

    def create_cache(self, key: str, body: Any, tokens: int) -> tuple[int, dict[str, Any]]:
        """Google's answer to ``POST cachedContents``."""
        if not isinstance(body, dict) or not str(body.get("model", "")).startswith("models/"):
            return 400, _error(400, "model: required, as models/{model}")
        if refused := self.check_refs(key, body):
            return refused
        if tokens < 1024:
            return 400, _error(
                400,
                f"Cached content is too small. total_token_count={tokens}, "
                "min_total_token_count=1024",
            )
        name = f"cachedContents/{secrets.token_hex(8)}"
        with self._lock:
            self.caches[name] = {"key": key, "model": body["model"], "body": body, "tokens": tokens}
        reply = {"name": name, "model": body["model"], "usageMetadata": {"totalTokenCount": tokens}}
        return 200, reply

    def refusal(self, key: str | None, model: str, body: Any) -> tuple[int, Any] | None:
        """Google's refusal of a model request for its files or cached content, or None."""
        return self.check_refs(key, body) or self.check_cache(key, model, body)

    def check_cache(self, key: str | None, model: str, body: Any) -> tuple[int, Any] | None:
        """Google's refusal of a request naming a cached content it cannot use, or None."""
        name = body.get("cachedContent") if isinstance(body, dict) else None
        if not name:
            return None
        with self._lock:
            cache = self.caches.get(str(name))
        if cache is None or cache["key"] != key:
            return 403, _error(403, "CachedContent not found (or permission denied)")
        if cache["model"] != f"models/{model}":
            return 400, _error(
                400,
                f"Model used by GenerateContent request (models/{model}) and CachedContent "
                f"({cache['model']}) has to be the same.",
            )
        if any(
            k in body for k in ("systemInstruction", "system_instruction", "tools", "toolConfig")
        ):
            return 400, _error(
                400,
                "CachedContent can not be used with GenerateContent request setting "
                "system_instruction, tools or tool_config.",
            )
        return None


def _contents(body: Any) -> list[Any]:
    if not isinstance(body, dict):
        return []
    found = list(body.get("contents") or [])
    system = body.get("systemInstruction") or body.get("system_instruction")
    return [*found, system] if system else found


def _error(code: int, message: str, status: str | None = None) -> dict[str, Any]:
    status = status or {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}[code]
    return {"error": {"code": code, "message": message, "status": status}}


def _no_access(file_id: str) -> dict[str, Any]:
    return _error(
        403, f"You do not have permission to access the File {file_id} or it may not exist."
    )
