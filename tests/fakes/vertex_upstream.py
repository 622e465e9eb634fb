"""A fake Google Vertex AI upstream ({location}-aiplatform.googleapis.com) with its own
OAuth2 token endpoint, for the genroute tests.

``FakeVertex`` runs a real aiohttp server on 127.0.0.1 (free port) in a background thread
with its own loop, like the other fakes. It is three services at once:

- ``POST /token``, the service accounts' ``token_uri``: the JWT-bearer grant
  (``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``). The assertion's RS256
  signature is verified with the public key of the account it names (``kid`` = its
  ``private_key_id``), and its claims: ``iss`` the account, ``aud`` Google's token
  endpoint (what Google checks; this ``token_uri`` is also taken),
  ``scope`` holding cloud-platform, ``iat``/``exp`` now and at most an hour apart. It
  answers ``{access_token, expires_in, token_type}``; ``token_lifetime`` sets expires_in.
- Gemini models, ``POST /{v1,v1beta1}/projects/{p}/locations/{l}/publishers/google/models/
  {m}:{generateContent, streamGenerateContent, countTokens, embedContent,
  batchEmbedContents, predict}``, in Vertex's dialect: a body field Vertex does not take
  (the Gemini API's ``store``, ``generateContentRequest``, part ``toolCall``/
  ``partMetadata``, ``enableEnhancedCivicAnswers``...) is Google's 400 "Unknown name";
  replies are the fake Gemini's, with Vertex's ``createTime`` and ``trafficType`` (and to
  a turn of function responses, "Echo: Results: <their outputs>").
- Claude models, ``publishers/anthropic/models/{m}:rawPredict`` / ``:streamRawPredict``:
  the Messages body with ``anthropic_version: vertex-2023-10-16`` and no ``model`` (the URL
  names it), checked as the fake Anthropic checks (SDK types, multi-turn rules, thinking
  signatures); ``models/count-tokens:rawPredict`` takes a body that names its ``model``.

Every model request needs ``authorization: Bearer <a token this fake issued, unexpired,
not revoked>`` (else 401 UNAUTHENTICATED), for this fake's project and location (else 403
PERMISSION_DENIED); an ``x-goog-api-key`` or ``x-api-key`` is refused.

    with FakeVertex() as fake:
        account = fake.service_account()          # JSON for vertex_credentials
        fake.script("error", code=429)             # Google-shaped, next model request
        fake.script("error", type="overloaded_error")   # Anthropic-shaped
        fake.script("reply", content=[...])        # a Claude reply; body=/chunks= for Gemini
        fake.script("stream_error", after=2)
        fake.script("token_error")                 # the next token request: invalid_grant
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import re
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.fakes import anthropic_upstream as claude
from tests.fakes import gemini_upstream as gemini
from tests.fakes.prompt_caches import AnthropicPromptCache, cache_control_problems
from tests.fakes.sockets import tcp_listener

DEFAULT_PROJECT = "genroute-test"
DEFAULT_LOCATION = "us-central1"
ANTHROPIC_VERSION = "vertex-2023-10-16"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# The audience Google's token endpoint takes in an assertion, whatever URL it is posted to
# (google-auth always sends this one).
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
_PATH = re.compile(
    r"^/(?P<version>v1|v1beta1)/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/publishers/(?P<publisher>google|anthropic)/models/(?P<model>[^/:]+):(?P<method>\w+)$"
)
_RPC = "type.googleapis.com/google.rpc."
_UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)


def _names(words: str) -> frozenset[str]:
    return frozenset(words.split())


# What Vertex's REST API takes (google-genai's _to_vertex converters); anything else is an
# "Unknown name" 400, as Google's JSON parser answers.
GENERATE_FIELDS = _names(
    "contents systemInstruction cachedContent tools toolConfig labels safetySettings "
    "modelArmorConfig generationConfig serviceTier"
)
COUNT_FIELDS = _names("contents instances model systemInstruction tools generationConfig")
EMBED_FIELDS = _names("content embedContentConfig model")
PART_FIELDS = _names(
    "text inlineData fileData functionCall functionResponse executableCode "
    "codeExecutionResult thought thoughtSignature videoMetadata mediaResolution"
)
GEMINI_API_ONLY = {  # where → names Vertex refuses
    "generationConfig": _names("enableEnhancedCivicAnswers"),
    "toolConfig": _names("includeServerSideToolInvocations"),
    "tools[]": _names("fileSearch"),
    "functionResponse": _names("willContinue"),
}


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(w[:1].upper() + w[1:] for w in rest)


def _unknown(name: str, where: str = "") -> gemini.GoogleError:
    at = f" at '{where}'" if where else ""
    return gemini.GoogleError(
        400, f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.'
    )


# ---------------------------------------------------------------------- service accounts


@functools.cache
def _private_key(email: str) -> rsa.RSAPrivateKey:
    """One RSA key per account name, made once per test process (0.1 s each)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Issued:
    """A token this fake gave out."""

    email: str
    expires: float


@dataclass(frozen=True)
class Recorded:
    """One model request as received (headers lower-cased, body parsed)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    publisher: str | None = None
    model: str | None = None
    action: str | None = None


class VertexError(Exception):
    """An Anthropic-shaped error from rawPredict."""

    def __init__(self, kind: str, message: str, status: int | None = None, headers: Any = None):
        super().__init__(message)
        self.error = claude.AnthropicError(kind, message, status, headers)


class FakeVertex:
    """Fake Vertex AI upstream and token endpoint on 127.0.0.1; see the module docstring."""

    def __init__(
        self,
        project: str = DEFAULT_PROJECT,
        location: str = DEFAULT_LOCATION,
        *,
        token_lifetime: int = 3600,
        pause: float = 0.002,
    ) -> None:
        self.project, self.location = project, location
        self.token_lifetime, self.pause = token_lifetime, pause
        self.port = 0
        self._lock = threading.Lock()
        self._accounts: dict[str, tuple[str, rsa.RSAPublicKey]] = {}  # email → (kid, key)
        self._tokens: dict[str, Issued] = {}
        self._requests: list[Recorded] = []
        self._token_requests: list[dict[str, Any]] = []  # the verified JWT claims
        self._scripts: list[tuple[str, dict[str, Any]]] = []
        self.prompt_cache = AnthropicPromptCache()  # Claude's, as on Anthropic's own API
        self._token_errors = 0
        self.token_refusals = 0  # assertions this fake refused
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # -- lifecycle

    def __enter__(self) -> FakeVertex:
        sock = tcp_listener()
        self.port = sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._serve(sock), self._loop).result(10)
        except BaseException:
            sock.close()
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        self._loop = self._thread = self._runner = None

    async def _serve(self, sock: socket.socket) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    # -- test-facing API

    def service_account(self, email: str | None = None) -> dict[str, Any]:
        """A service-account JSON whose token_uri is this fake; its key is trusted here."""
        email = email or f"genroute-test@{self.project}.iam.gserviceaccount.com"
        key = _private_key(email)
        kid = secrets.token_hex(20)
        with self._lock:
            self._accounts[email] = (kid, key.public_key())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return {
            "type": "service_account",
            "project_id": self.project,
            "private_key_id": kid,
            "private_key": pem,
            "client_email": email,
            "client_id": "1" * 21,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "universe_domain": "googleapis.com",
        }

    def model_path(self, model: str, method: str, publisher: str = "google") -> str:
        return (
            f"/v1/projects/{self.project}/locations/{self.location}/publishers/{publisher}"
            f"/models/{model}:{method}"
        )

    @property
    def requests(self) -> list[Recorded]:
        """Model requests (token requests are in `token_requests`)."""
        with self._lock:
            return list(self._requests)

    @property
    def last_request(self) -> Recorded:
        with self._lock:
            return self._requests[-1]

    @property
    def token_requests(self) -> list[dict[str, Any]]:
        """The claims of every JWT assertion this fake accepted, oldest first."""
        with self._lock:
            return list(self._token_requests)

    def issued(self) -> list[str]:
        with self._lock:
            return list(self._tokens)

    def revoke_all(self) -> None:
        """Every token issued so far stops working (as if revoked)."""
        with self._lock:
            self._tokens.clear()

    def reset(self) -> None:
        """Forget model requests and scripts (tokens and token requests stay)."""
        with self._lock:
            self._requests.clear()
            self._scripts.clear()
            self._token_errors = 0

    def script(self, kind: str, **opts: Any) -> None:
        """Queue `reply`, `error` or `stream_error` for the next model request, or
        `token_error` for the next token request."""
        if kind not in ("reply", "error", "stream_error", "token_error"):
            raise ValueError(f"unknown script kind {kind!r}")
        with self._lock:
            if kind == "token_error":
                self._token_errors += 1
            else:
                self._scripts.append((kind, opts))

    def _take(self) -> tuple[str, dict[str, Any]]:
        with self._lock:
            return self._scripts.pop(0) if self._scripts else ("", {})

    # -- the token endpoint

    def _verify(self, assertion: str) -> dict[str, Any]:
        """The claims of a valid assertion; ValueError naming what is wrong."""
        try:
            head, payload, signature = assertion.split(".")
            header = json.loads(_b64url_decode(head))
            claims = json.loads(_b64url_decode(payload))
        except ValueError:
            raise ValueError("Invalid JWT: not a signed JWT") from None
        if header.get("alg") != "RS256":
            raise ValueError("Invalid JWT: alg must be RS256")
        with self._lock:
            account = self._accounts.get(str(claims.get("iss")))
        if account is None:
            raise ValueError("Invalid JWT: unknown issuer")
        kid, public_key = account
        if header.get("kid") != kid:
            raise ValueError("Invalid JWT Signature.")
        try:
            public_key.verify(
                _b64url_decode(signature),
                f"{head}.{payload}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            raise ValueError("Invalid JWT Signature.") from None
        now = time.time()
        if claims.get("aud") not in (GOOGLE_TOKEN_URI, self.token_uri):
            raise ValueError("Invalid JWT: Failed audience check.")
        if SCOPE not in str(claims.get("scope", "")).split():
            raise ValueError("Invalid JWT: scope must include cloud-platform")
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or not isinstance(exp, int):
            raise ValueError("Invalid JWT: iat and exp are required")
        if iat > now + 60 or exp <= now or exp - iat > 3600:
            raise ValueError("Invalid JWT: Token must be a short-lived token and in a reasonable timeframe.")  # fmt: skip
        return dict(claims)

    def _token(self, form: dict[str, list[str]]) -> web.Response:
        def refuse(description: str) -> web.Response:
            with self._lock:
                self.token_refusals += 1
            body = {"error": "invalid_grant", "error_description": description}
            return web.json_response(body, status=400)

        if form.get("grant_type") != [JWT_BEARER]:
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        with self._lock:
            failing = self._token_errors > 0
            self._token_errors -= failing
        if failing:
            return refuse("Invalid grant: account not found")
        try:
            claims = self._verify((form.get("assertion") or [""])[0])
        except ValueError as exc:
            return refuse(str(exc))
        token = f"ya29.fake-{secrets.token_urlsafe(24)}"
        with self._lock:
            self._tokens[token] = Issued(claims["iss"], time.time() + self.token_lifetime)
            self._token_requests.append(claims)
        reply = {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"}
        return web.json_response(reply)

    # -- serving

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        if request.path == "/token" and request.method == "POST":
            return self._token(parse_qs(raw.decode()))
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        found = _PATH.match(request.path)
        where = found.groupdict() if found else {}
        record = Recorded(
            request.method,
            request.path,
            dict(request.query),
            headers,
            body,
            where.get("publisher"),
            where.get("model"),
            where.get("method"),
        )
        with self._lock:
            self._requests.append(record)
        try:
            self._check(request, record, found)
            if record.publisher == "anthropic":
                return await self._claude(request, record)
            return await self._gemini(request, record)
        except gemini.GoogleError as err:
            return web.json_response(err.body(), status=err.code, headers=err.headers)
        except VertexError as err:
            hdrs = {"request-id": "req_vrtx0001", **err.error.headers}
            return web.json_response(err.error.body(), status=err.error.status, headers=hdrs)

    def _check(self, request: web.Request, record: Recorded, found: re.Match[str] | None) -> None:
        """Authentication, then the resource: what Vertex checks before the model sees it."""
        if found is None or request.method != "POST":
            raise gemini.GoogleError(404, f"The requested URL {request.path} was not found.")
        headers = record.headers
        if "x-goog-api-key" in headers or "x-api-key" in headers:
            raise gemini.GoogleError(
                401,
                "API keys are not supported by this API. Expected OAuth2 access token or "
                "other authentication credentials that assert a principal.",
            )
        bearer = headers.get("authorization", "")
        with self._lock:
            issued = self._tokens.get(bearer.removeprefix("Bearer "))
        if not bearer.startswith("Bearer ") or issued is None or issued.expires <= time.time():
            err = gemini.GoogleError(401, _UNAUTHENTICATED)
            err.details = [{"@type": _RPC + "ErrorInfo", "reason": "ACCESS_TOKEN_EXPIRED"
                            if issued else "CREDENTIALS_MISSING", "domain": "googleapis.com"}]  # fmt: skip
            raise err
        if (found["project"], found["location"]) != (self.project, self.location):
            resource = request.path.split(":")[0].removeprefix(f"/{found['version']}/")
            raise gemini.GoogleError(
                403,
                f"Permission 'aiplatform.endpoints.predict' denied on resource "
                f"'//aiplatform.googleapis.com/{resource}' (or it may not exist).",
            )

    def _scripted_google(self, opts: dict[str, Any]) -> gemini.GoogleError:
        err = gemini._scripted_error(opts)
        if err.code == 429 and "details" not in opts:  # Vertex's quota error, not AI Studio's
            err.message = opts.get("message") or (
                "Resource exhausted. Please try again later. Please refer to "
                "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for "
                "more details."
            )
        return err

    # -- Gemini models

    def _check_gemini(self, action: str, model: str, body: Any) -> None:
        if not isinstance(body, dict):
            raise gemini.GoogleError(400, "Invalid JSON payload received. Expected an object.")
        allowed = {
            "generateContent": GENERATE_FIELDS,
            "streamGenerateContent": GENERATE_FIELDS,
            "countTokens": COUNT_FIELDS,
            "embedContent": EMBED_FIELDS,
            "batchEmbedContents": _names("requests"),
            "predict": _names("instances parameters"),
        }.get(action)
        if allowed is None:
            raise gemini.GoogleError(404, f"Method not found: {action}")
        for key in body:
            if _camel(key) not in allowed:
                raise _unknown(key)
        if action in ("generateContent", "streamGenerateContent", "countTokens"):
            gemini.check_request("generateContent", model, body, strict=False)
            self._check_generate(body)
        elif action == "embedContent":
            self._check_embed(body, "")
        elif action == "batchEmbedContents":
            for i, item in enumerate(body.get("requests") or []):
                self._check_embed(item, f"requests[{i}]")
        else:
            for i, instance in enumerate(body.get("instances") or []):
                if not isinstance(instance.get("content"), str):
                    raise gemini.GoogleError(400, f"instances[{i}].content must be a string")
                for key in instance:
                    if key not in ("content", "task_type", "title", "mimeType"):
                        raise _unknown(key, f"instances[{i}]")

    def _check_embed(self, body: Any, where: str) -> None:
        if not isinstance(body, dict) or not isinstance(body.get("content"), dict):
            raise gemini.GoogleError(400, f"{where or 'request'}.content is required")
        for key in body:
            if key not in ("content", "embedContentConfig"):
                raise _unknown(key, where)

    def _check_generate(self, body: dict[str, Any]) -> None:
        for section, names in GEMINI_API_ONLY.items():
            objects = body.get(section.removesuffix("[]"))
            for obj in (objects or []) if section.endswith("[]") else [objects]:
                for key in obj if isinstance(obj, dict) else ():
                    if _camel(key) in names:
                        raise _unknown(key, section)
        cached = body.get("cachedContent")
        prefix = f"projects/{self.project}/locations/{self.location}/cachedContents/"
        if cached is not None and not str(cached).startswith(prefix):
            raise gemini.GoogleError(400, f"Invalid CachedContent resource name: {cached}")
        contents = list(body.get("contents") or [])
        if isinstance(body.get("systemInstruction"), dict):
            contents.append(body["systemInstruction"])
        for i, content in enumerate(contents):
            for j, part in enumerate(content.get("parts") or []):
                for key in part:
                    if _camel(key) not in PART_FIELDS:
                        raise _unknown(key, f"contents[{i}].parts[{j}]")
                uri = (part.get("fileData") or {}).get("fileUri", "")
                if str(uri).startswith("https://generativelanguage.googleapis.com/"):
                    raise gemini.GoogleError(400, f"Unsupported file uri: {uri}")
                for key in part.get("functionResponse") or {}:
                    if _camel(key) in GEMINI_API_ONLY["functionResponse"]:
                        raise _unknown(key, f"contents[{i}].parts[{j}].function_response")

    @staticmethod
    def _vertexify(reply: dict[str, Any]) -> dict[str, Any]:
        reply = {**reply, "createTime": "2025-06-01T12:00:00.000000Z"}
        if isinstance(reply.get("usageMetadata"), dict):
            reply["usageMetadata"] = {**reply["usageMetadata"], "trafficType": "ON_DEMAND"}
        return reply

    async def _gemini(self, request: web.Request, record: Recorded) -> web.StreamResponse:
        model, action, body = str(record.model), str(record.action), record.body
        if not model.startswith(("gemini", "text-embedding", "text-multilingual-embedding")):
            raise gemini.GoogleError(
                404,
                f"Publisher Model `projects/{self.project}/locations/{self.location}/publishers"
                f"/google/models/{model}` was not found or your project does not have access "
                "to it.",
            )
        self._check_gemini(action, model, body)
        if action == "countTokens":
            counted = gemini.build_count_tokens_response(body)
            return web.json_response({**counted, "totalBillableCharacters": 4 * counted["totalTokens"]})  # fmt: skip
        kind, opts = self._take()  # scripts are for generation and embeddings
        streaming = action == "streamGenerateContent"
        if kind == "error" or (kind == "stream_error" and not streaming):
            raise self._scripted_google(opts)
        if action in ("embedContent", "batchEmbedContents", "predict"):
            return web.json_response(_embeddings(action, body))
        answered = _answering(body)
        if not streaming:
            reply = opts.get("body") or gemini.build_generate_response(answered, model)
            return web.json_response(self._vertexify(reply))
        chunks = list(opts.get("chunks") or gemini.build_stream_chunks(answered, model))
        if kind == "stream_error":
            chunks = [*chunks[: int(opts.get("after", 1))], self._scripted_google(opts).body()]
        events = [self._vertexify(c) if "error" not in c else c for c in chunks]
        if record.query.get("alt") != "sse":
            return web.json_response(events)
        frames = [f"data: {json.dumps(e)}\r\n\r\n".encode() for e in events]
        return await self._stream(request, frames)

    # -- Claude models

    @staticmethod
    def _check_claude(body: Any, model: str, action: str) -> tuple[dict[str, Any], str]:
        """The body as the Messages API would take it (`model` from the URL, without
        `anthropic_version`) and its kind (create, stream, count), or VertexError."""
        if not isinstance(body, dict):
            raise VertexError("invalid_request_error", "the request body is not a JSON object")
        counting = model == "count-tokens"
        if action != "rawPredict" and (counting or action != "streamRawPredict"):
            raise gemini.GoogleError(404, f"Method not found: {action}")
        if not counting and not model.startswith("claude"):
            raise gemini.GoogleError(404, f"Publisher Model `{model}` was not found.")
        version = body.get("anthropic_version")
        if version != ANTHROPIC_VERSION:
            problem = (
                "Field required" if version is None else f"Input should be '{ANTHROPIC_VERSION}'"
            )
            raise VertexError("invalid_request_error", f"anthropic_version: {problem}")
        checked = {k: v for k, v in body.items() if k != "anthropic_version"}
        if counting and "model" not in checked:
            raise VertexError("invalid_request_error", "model: Field required")
        if not counting and "model" in checked:
            raise VertexError("invalid_request_error", "model: Extra inputs are not permitted")
        checked.setdefault("model", model)
        streaming = bool(checked.get("stream"))
        if not counting and streaming != (action == "streamRawPredict"):
            raise VertexError(
                "invalid_request_error", f"stream: {action} takes stream={not streaming}"
            )
        kind = "count" if counting else ("stream" if streaming else "create")
        # count_tokens takes thinking without max_tokens: only the turn rules apply to it
        rules = claude._turn_problems(checked.get("messages") or []) if counting else None
        rules = claude.rule_problems(checked) if rules is None else rules
        problems = claude.sdk_problems(checked, kind) or rules
        if problems := problems or cache_control_problems(checked):
            raise VertexError("invalid_request_error", "; ".join(problems))
        return checked, kind

    async def _claude(self, request: web.Request, record: Recorded) -> web.StreamResponse:
        checked, kind = self._check_claude(record.body, str(record.model), str(record.action))
        counting, streaming = kind == "count", kind == "stream"
        if counting:
            return web.json_response({"input_tokens": claude.words(checked)})
        script, opts = self._take()
        if script == "error":
            if "type" not in opts:
                raise self._scripted_google(opts)
            message = opts.get("message", f"fake {opts['type']}")
            raise VertexError(opts["type"], message, opts.get("status"), opts.get("headers"))
        content = opts["content"] if script == "reply" else claude.default_content(checked)
        reply = claude.message(checked, content)
        reply["usage"].update(self.prompt_cache.usage(str(record.model), checked))
        reply["stop_reason"] = opts.get("stop_reason", reply["stop_reason"])
        if not streaming:
            return web.json_response(reply)
        events = claude.stream_events(reply)
        if script == "stream_error":
            error = {"type": opts.get("type", "overloaded_error"), "message": "Overloaded"}
            events = [*events[: opts.get("after", 3)], {"type": "error", "error": error}]
        frames = [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]
        return await self._stream(request, frames)

    async def _stream(self, request: web.Request, frames: list[bytes]) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for frame in frames:
            await resp.write(frame)
            await asyncio.sleep(self.pause)
        await resp.write_eof()
        return resp


def _answering(body: dict[str, Any]) -> dict[str, Any]:
    """What the default Gemini reply echoes: the body, or when its last turn answers
    function calls, a turn saying "Results: <each response's output>" (so a tool loop's
    final answer shows what the tools returned)."""
    last = (body.get("contents") or [{}])[-1]
    responses = [p["functionResponse"] for p in last.get("parts") or [] if "functionResponse" in p]
    if not responses:
        return body
    said = [str((r.get("response") or {}).get("output", r.get("response"))) for r in responses]
    return {"contents": [{"role": "user", "parts": [{"text": "Results: " + " | ".join(said)}]}]}


def _embeddings(action: str, body: dict[str, Any]) -> dict[str, Any]:
    """Vertex's embedding replies: embedContent, batchEmbedContents and predict."""

    def vector(text: str, config: dict[str, Any] | None) -> list[float]:
        dim = int((config or {}).get("outputDimensionality") or gemini.EMBED_DIM)
        return gemini.embedding_values(text, dim)

    def text_of(content: dict[str, Any]) -> str:
        return " ".join(p.get("text", "") for p in content.get("parts") or [])

    if action == "embedContent":
        text = text_of(body["content"])
        usage = {"promptTokenCount": len(text.split()), "totalTokenCount": len(text.split())}
        values = vector(text, body.get("embedContentConfig"))
        return {"embedding": {"values": values}, "usageMetadata": usage, "truncated": False}
    if action == "batchEmbedContents":
        texts = [text_of(r["content"]) for r in body["requests"]]
        embeddings = [
            {"values": vector(t, r.get("embedContentConfig"))}
            for t, r in zip(texts, body["requests"], strict=True)
        ]
        tokens = sum(len(t.split()) for t in texts)
        return {"embeddings": embeddings, "usageMetadata": {"promptTokenCount": tokens}}
    predictions = []
    for instance in body["instances"]:
        stats = {"truncated": False, "token_count": len(instance["content"].split())}
        values = vector(instance["content"], body.get("parameters"))
        predictions.append({"embeddings": {"values": values, "statistics": stats}})
    chars = sum(len(i["content"]) for i in body["instances"])
    return {"predictions": predictions, "metadata": {"billableCharacterCount": chars}}
