"""Fuzzing every route of the ASGI app in process (no socket), with hypothesis on a fixed
seed (`derandomize=True`): malformed JSON, wrong types, huge numbers, deep nesting, unicode,
NUL, very long strings, path traversal in model names, bad query strings, wrong methods,
missing and garbage keys; against the demo model without a key, and a governed gateway
(master key, SQLite). Whatever comes in:

- no 5xx, and no hang (each request has a time limit);
- every 4xx is Google's error JSON, and a 400 for a body names the field (or says the JSON
  could not be read);
- a stream that started never carries an internal error.

The budget is a fixed number of examples per test (EXAMPLES): about 1,600 requests, plus
a sweep that puts a value of every wrong JSON type in every field of every body template
(`test_every_field_with_every_wrong_type`, about 780 requests): about 7 s of CPU without
coverage (100 examples a test and no sweep took 18-23 s).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genroute.config import config_from_data
from genroute.server import create_app
from genroute.server.app import GatewayApp
from tests.server.asgi_client import Reply, asgi_request, google_error

MASTER = "sk-master-fuzz"
LIMIT = 5.0  # seconds one request may take
# 40 random examples per test, not 100: the field-by-field cases random sampling would need
# many examples to reach (one wrong value in each of the 25 fields of generateContent's
# template: one example in four changes one field) are sent deterministically by
# test_every_field_with_every_wrong_type; what stays random are the combinations (raw bytes,
# mutated templates with keys dropped and added, nested JSON, queries, headers, paths), of which
# 40 per test keeps every branch of each `one_of` drawn several times over. 100 took 2.5 times
# the CPU, and never sent the one case the sweep found (test_a_null_team_id_is_not_a_500).
EXAMPLES = 40
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# A 400 about a body names the field (`contents[0].parts: ...`; an unknown field by the name
# the client gave it, whatever that is), or says the JSON could not be read.
NAMES_A_FIELD = re.compile(
    r"^(Invalid JSON payload received|Invalid request: .*: |(\(request body\)|[A-Za-z_][\w.\[\]]*): )",
    re.DOTALL,
)


# -- the gateways ------------------------------------------------------------------------------


class Running:
    """A started app on an event loop of its own (hypothesis calls tests synchronously)."""

    def __init__(self, data: dict[str, Any], key: str | None) -> None:
        self.loop = asyncio.new_event_loop()
        self.app: GatewayApp = create_app(config_from_data(data))
        self.key = key
        self.loop.run_until_complete(self.app.pipeline.start())

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: list[tuple[bytes, bytes]] | None = None,
        query: bytes = b"",
        key: bool = True,
    ) -> Reply:
        sent = list(headers or [])
        if key and self.key is not None:
            sent.append((b"x-goog-api-key", self.key.encode()))
        return self.loop.run_until_complete(
            asgi_request(self.app, method, path, body, sent, query, limit=LIMIT)
        )

    def close(self) -> None:
        self.loop.run_until_complete(self.app.pipeline.aclose())
        self.loop.close()


def models(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "model_list": [
            {"model_name": "demo", "params": {"model": "demo/echo"}},
            {"model_name": "gemini-*", "params": {"model": "demo/echo"}},
            {"model_name": "text-embedding-004", "params": {"model": "demo/echo"}},
        ],
        "observability": {"logs": {"enabled": False}},
        **(extra or {}),
    }


@pytest.fixture(scope="module")
def demo() -> Iterator[Running]:
    running = Running(models(), None)
    yield running
    running.close()


@pytest.fixture(scope="module")
def governed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    db = Path(tmp_path_factory.mktemp("fuzz")) / "keys.db"
    general = {"master_key": MASTER, "database_url": f"sqlite:///{db}"}
    running = Running(models({"general_settings": general}), MASTER)
    yield running
    running.close()


# -- what every reply must be --------------------------------------------------------------------


def check(reply: Reply, *, body_route: bool = False) -> None:
    assert reply.status < 500, reply
    if reply.status >= 400:
        error = google_error(reply)
        if body_route and reply.status == 400 and error["status"] == "INVALID_ARGUMENT":
            assert NAMES_A_FIELD.match(error["message"]), reply
    elif reply.headers.get("content-type", "").startswith("text/event-stream"):
        assert b'"code":500' not in reply.body, reply
    for name, value in reply.raw_headers:
        assert not re.search(rb"[\x00-\x08\x0a-\x1f\x7f]", value), (name, value)


# -- strategies ----------------------------------------------------------------------------------

ODD_TEXT = st.sampled_from(
    ["", "\x00", "a\x00b", "\r\n", "\u202e", "\ud7ff", "\U0001f600" * 50, "é" * 300, "x" * 70_000]
)
TEXT = st.one_of(st.text(max_size=40), ODD_TEXT)
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**31, 2**63, 2**64 - 1, 10**20]),
    st.floats(allow_nan=False, allow_infinity=False),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def deep(depth: int) -> bytes:
    return b'{"contents":' + b"[" * depth + b"]" * depth + b"}"


RAW_BODIES = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(
        [
            b"",
            b"{",
            b"null",
            b"[]",
            b'"text"',
            b"{}",
            b'{"contents": NaN}',
            b'{"contents": 1e999}',
            b'{"contents": 123456789012345678901234567890}',
            b'{"a":1,"a":2}',
            b"\xff\xfe{}",
            b'{"contents":[{"parts":[{"text":"\\u0000\\ud800"}]}]}',
            deep(500),
            deep(5000),
            b'{"contents":[{"parts":[{"text":"' + b"x" * 200_000 + b'"}]}]}',
        ]
    ),
)


def mutated(template: Any) -> st.SearchStrategy[Any]:
    """`template` with any value swapped for random JSON, keys dropped or added."""
    if isinstance(template, dict):
        fields = {k: st.one_of(mutated(v), JSON) for k, v in template.items()}
        return st.fixed_dictionaries(
            {}, optional={**fields, **{"extra": JSON, "generationConfig": JSON}}
        )
    if isinstance(template, list):
        return st.one_of(st.lists(mutated(template[0]), max_size=3), JSON)
    return st.one_of(st.just(template), JSON)


CONTENTS = [{"role": "user", "parts": [{"text": "hello"}]}]
GENERATE = {
    "contents": CONTENTS,
    "systemInstruction": {"parts": [{"text": "be brief"}]},
    "generationConfig": {"temperature": 0.5, "maxOutputTokens": 16, "candidateCount": 1},
    "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "OBJECT"}}]}],
    "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}],
}
EMBED = {"content": {"parts": [{"text": "hello"}]}, "taskType": "RETRIEVAL_QUERY"}
BODY_ROUTES: dict[str, tuple[str, Any]] = {
    "generateContent": ("/v1beta/models/demo:generateContent", GENERATE),
    "streamGenerateContent": ("/v1beta/models/demo:streamGenerateContent", GENERATE),
    "countTokens": ("/v1/models/demo:countTokens", {"contents": CONTENTS}),
    "embedContent": ("/v1beta/models/text-embedding-004:embedContent", EMBED),
    "batchEmbedContents": (
        "/v1beta/models/text-embedding-004:batchEmbedContents",
        {"requests": [{"model": "models/text-embedding-004", **EMBED}]},
    ),
    "vertex embedContent": (
        "/v1beta1/projects/p/locations/l/publishers/google/models/demo:embedContent",
        {"content": {"parts": [{"text": "x"}]}, "embedContentConfig": {"taskType": "X"}},
    ),
    "predict": (
        "/v1/projects/p/locations/us-central1/publishers/google/models/demo:predict",
        {"instances": [{"content": "hello", "task_type": "RETRIEVAL_DOCUMENT", "title": "t"}],
         "parameters": {"outputDimensionality": 8}},
    ),
}  # fmt: skip


def paths_in(value: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON value: dict keys and list indices, outermost first."""
    found = [here] if here else []
    if isinstance(value, dict):
        for key, inner in value.items():
            found += paths_in(inner, (*here, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += paths_in(inner, (*here, index))
    return found


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy: Any = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = replaced(value[path[0]], path[1:], new)
    return copy


def one_wrong(template: Any) -> st.SearchStrategy[Any]:
    """The valid `template` with exactly one value swapped for a random JSON value: what
    finds a field whose wrong type is not caught."""
    return st.tuples(st.sampled_from(paths_in(template)), JSON).map(
        lambda pair: replaced(template, pair[0], pair[1])
    )


def bodies(template: Any) -> st.SearchStrategy[bytes]:
    return st.one_of(
        RAW_BODIES,
        one_wrong(template).map(lambda value: json.dumps(value).encode()),
        mutated(template).map(lambda value: json.dumps(value).encode()),
        JSON.map(lambda value: json.dumps(value).encode()),
    )


# -- model routes -----------------------------------------------------------------------------


@pytest.mark.parametrize("route", list(BODY_ROUTES))
@FUZZ
@given(data=st.data())
def test_bodies(demo: Running, governed: Running, route: str, data: st.DataObject) -> None:
    path, template = BODY_ROUTES[route]
    body = data.draw(bodies(template), label="body")
    gateway = data.draw(st.sampled_from([demo, governed]), label="gateway")
    query = data.draw(st.sampled_from([b"", b"alt=sse", b"alt=%00", b"alt=sse&alt=json"]))
    check(gateway.request("POST", path, body, query=query), body_route=True)


# A value of each JSON type (null, boolean, number, string, array, object) with an awkward
# member of its kind: the sweep sends each one that is not of the template value's own type.
WRONG_TYPES: list[Any] = [None, True, 2**64, "x\x00", [{}], {"": None}]


def json_type(value: Any) -> type:
    if isinstance(value, bool):
        return bool
    return float if isinstance(value, int | float) else type(value)


def wrong_values(template: Any) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """(path, body) for every field of `template` with every value of another JSON type."""
    for path in paths_in(template):
        here: Any = template
        for step in path:
            here = here[step]
        for value in WRONG_TYPES:
            if json_type(value) is not json_type(here):
                yield path, replaced(template, path, value)


def test_valid_bodies_are_answered(demo: Running, governed: Running) -> None:
    for path, template in BODY_ROUTES.values():
        for gateway in (demo, governed):
            reply = gateway.request("POST", path, json.dumps(template).encode())
            assert reply.status == 200, (path, reply)


SEGMENTS = st.one_of(
    st.sampled_from(
        [
            "demo",
            "gemini-2.5-flash",
            "..",
            ".",
            "%2F..%2F..%2Fetc%2Fpasswd",
            "..%2F..%2Fhealth",
            "models/demo",
            "tunedModels/x",
            "a%00b",
            "a%0D%0Ab",
            "%E2%80%AE",
            "%C3%A9",
            "%FF",
            "x" * 300,
            "",
            "gemini-../../x",
            "demo:generateContent:generateContent",
        ]
    ),
    st.text(max_size=30).map(lambda s: quote(s, safe="")),
)
PREFIXES = st.sampled_from(
    [
        "/v1beta/models/",
        "/v1/models/",
        "/v1alpha/models/",
        "/models/",
        "/api/v1beta/models/",
        "/v1beta/tunedModels/",
        "/v1/projects/p/locations/l/publishers/google/models/",
        "/v1beta1/publishers/anthropic/models/",
        "/v2/models/",
        "/v1beta/models",
    ]
)
ACTIONS = st.sampled_from(
    ["", ":generateContent", ":streamGenerateContent", ":countTokens", ":embedContent",
     ":batchEmbedContents", ":predict", ":nope", ":", "/"]
)  # fmt: skip
METHODS = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])


@FUZZ
@given(
    prefix=PREFIXES,
    segment=SEGMENTS,
    action=ACTIONS,
    method=METHODS,
    governed_gateway=st.booleans(),
)
def test_paths_and_methods(
    demo: Running,
    governed: Running,
    prefix: str,
    segment: str,
    action: str,
    method: str,
    governed_gateway: bool,
) -> None:
    path = unquote(prefix + segment + action)  # as uvicorn decodes a path
    body = json.dumps({"contents": CONTENTS}).encode()
    gateway = governed if governed_gateway else demo
    check(gateway.request(method, path, body))


QUERY = st.one_of(
    st.binary(max_size=60),
    st.lists(
        st.tuples(
            st.sampled_from(["pageSize", "page_size", "pageToken", "page_token", "key", "alt"]),
            st.one_of(
                st.sampled_from(["-1", "0", "1e20", "99999999999999999999", "%00", "", "x"]),
                st.integers().map(str),
                st.text(max_size=20),
            ),
        ),
        max_size=4,
    ).map(lambda pairs: "&".join(f"{k}={quote(v)}" for k, v in pairs).encode()),
)


@FUZZ
@given(query=QUERY, path=st.sampled_from(["/v1beta/models", "/v1/models", "/v1beta/models/demo"]))
def test_model_lists_and_queries(demo: Running, governed: Running, query: bytes, path: str) -> None:
    for gateway in (demo, governed):
        check(gateway.request("GET", path, query=query))


HEADER_VALUES = st.one_of(
    st.binary(max_size=80).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    st.sampled_from([b"", b" ", MASTER.encode(), b"Bearer", b"Bearer ", b"sk-" + b"x" * 5000]),
)
AUTH_HEADERS = st.sampled_from(
    [b"x-goog-api-key", b"authorization", b"x-litellm-api-key", b"x-genroute-end-user",
     b"x-request-id", b"x-server-timeout", b"traceparent", b"content-length"]
)  # fmt: skip


@FUZZ
@given(
    headers=st.lists(st.tuples(AUTH_HEADERS, HEADER_VALUES), max_size=4),
    route=st.sampled_from(["generateContent", "countTokens", "streamGenerateContent"]),
    query_key=st.sampled_from([b"", b"key=", b"key=%00", b"key=" + MASTER.encode()]),
)
def test_missing_and_garbage_keys_and_headers(
    demo: Running,
    governed: Running,
    headers: list[tuple[bytes, bytes]],
    route: str,
    query_key: bytes,
) -> None:
    path, template = BODY_ROUTES[route]
    body = json.dumps(template).encode()
    for gateway in (demo, governed):
        reply = gateway.request("POST", path, body, headers, query_key, key=False)
        check(reply)
        if gateway is governed and reply.status == 200:
            sent = [v for k, v in headers if k in (b"x-goog-api-key", b"authorization")]
            assert any(MASTER.encode() in v for v in sent) or MASTER.encode() in query_key


# -- health, metrics and the management API ------------------------------------------------------

OPEN_PATHS = ["/health", "/health/liveness", "/health/liveliness", "/health/readiness", "/metrics"]


@FUZZ
@given(
    path=st.sampled_from(OPEN_PATHS),
    method=METHODS,
    headers=st.lists(st.tuples(AUTH_HEADERS, HEADER_VALUES), max_size=3),
    query=QUERY,
)
def test_health_and_metrics(
    demo: Running,
    governed: Running,
    path: str,
    method: str,
    headers: list[tuple[bytes, bytes]],
    query: bytes,
) -> None:
    for gateway in (demo, governed):
        check(gateway.request(method, path, b"", headers, query, key=False))


LIMITS = {
    "max_budget": 1.5,
    "budget_duration": "1d",
    "rpm_limit": 10,
    "tpm_limit": 1000,
    "max_parallel_requests": 2,
    "blocked": False,
    "metadata": {"a": 1},
}
MANAGEMENT_BODIES: dict[str, Any] = {
    "/key/generate": {**LIMITS, "models": ["demo"], "key_alias": "k", "user_id": "u",
                      "duration": "1h", "team_id": "t"},
    "/key/update": {**LIMITS, "key": "sk-x", "models": ["demo"], "duration": "1h"},
    "/key/delete": {"keys": ["sk-x"]},
    "/team/new": {**LIMITS, "team_id": "t", "team_alias": "a", "models": ["demo"]},
    "/team/update": {**LIMITS, "team_id": "t", "team_alias": "a"},
    "/team/delete": {"team_ids": ["t"]},
    "/customer/new": {**LIMITS, "user_id": "c", "alias": "a"},
    "/customer/update": {**LIMITS, "end_user_id": "c", "alias": "a"},
    "/customer/delete": {"user_ids": ["c"]},
}  # fmt: skip
MANAGEMENT_QUERIES = {
    "/key/info": ["key"],
    "/key/list": ["team_id"],
    "/team/info": ["team_id"],
    "/team/list": [],
    "/customer/info": ["end_user_id", "user_id"],
    "/customer/list": [],
    "/spend/logs": ["api_key", "end_user", "team_id", "model", "start_date", "end_date",
                    "limit", "offset"],
    "/global/spend/report": ["group_by", "model", "start_date", "end_date", "team_id"],
}  # fmt: skip
QUERY_VALUES = st.one_of(
    st.sampled_from(
        ["", "t", "c", "1e20", "-1", "100000000000000000000", "2026-01-01", "9999-12-31T23:59:59-23:59",
         "0001-01-01T00:00:00+14:00", "team", "key", "end_user", "model", "nope", "x" * 300]
    ),
    TEXT,
)  # fmt: skip


@pytest.mark.parametrize("route", list(MANAGEMENT_BODIES))
@FUZZ
@given(data=st.data())
def test_management_bodies(governed: Running, route: str, data: st.DataObject) -> None:
    body = data.draw(bodies(MANAGEMENT_BODIES[route]), label="body")
    check(governed.request("POST", route, body), body_route=True)


@pytest.mark.parametrize("route", list(MANAGEMENT_QUERIES))
@FUZZ
@given(data=st.data())
def test_management_queries(governed: Running, route: str, data: st.DataObject) -> None:
    names = MANAGEMENT_QUERIES[route] + ["key", "junk"]
    pairs = data.draw(st.lists(st.tuples(st.sampled_from(names), QUERY_VALUES), max_size=4))
    query = "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in pairs).encode()
    raw = data.draw(st.one_of(st.just(query), st.binary(max_size=40)), label="query")
    check(governed.request("GET", route, query=raw), body_route=True)


@FUZZ
@given(
    route=st.sampled_from([*MANAGEMENT_BODIES, *MANAGEMENT_QUERIES]),
    method=METHODS,
    headers=st.lists(st.tuples(AUTH_HEADERS, HEADER_VALUES), max_size=3),
    slash=st.booleans(),
)
def test_management_methods_and_keys(
    demo: Running,
    governed: Running,
    route: str,
    method: str,
    headers: list[tuple[bytes, bytes]],
    slash: bool,
) -> None:
    path = route + ("/" if slash else "")
    for gateway in (demo, governed):
        reply = gateway.request(method, path, b"{}", headers, key=False)
        check(reply)
        if reply.status == 200:
            assert gateway is governed
            assert any(MASTER.encode() in v for _, v in headers)


def test_every_field_with_every_wrong_type(demo: Running, governed: Running) -> None:
    """Each field of each body template (model routes on both gateways in turn, the
    management routes on the governed one) with a value of every other JSON type: a 400
    that names the field, or an answer, never a 5xx."""
    sent = 0
    for path, template in BODY_ROUTES.values():
        for n, (_, body) in enumerate(wrong_values(template)):
            gateway = (demo, governed)[n % 2]
            check(gateway.request("POST", path, json.dumps(body).encode()), body_route=True)
            sent += 1
    for route, template in MANAGEMENT_BODIES.items():
        for _, body in wrong_values(template):
            check(governed.request("POST", route, json.dumps(body).encode()), body_route=True)
            sent += 1
    assert sent > 700  # every path of every template, about five wrong values each


# Found by the sweep above (2026-12-02): `"team_id": null` on /team/new reached the insert as
# a NULL primary key (a 500); null now means "name it for me", as an absent team_id does.
def test_a_null_team_id_names_the_team(governed: Running) -> None:
    body = replaced(MANAGEMENT_BODIES["/team/new"], ("team_id",), None)
    reply = governed.request("POST", "/team/new", json.dumps(body).encode())
    assert reply.status == 200, reply.body
    assert json.loads(reply.body)["team_id"]


# -- what the fuzzing found, kept as plain cases -------------------------------------------------

PREDICT = "/v1/projects/p/locations/us-central1/publishers/google/models/demo:predict"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"instances": [{"content": "x", "task_type": []}]}, "instances[0].taskType: "),
        ({"instances": [{"content": "x"}, {"content": {"parts": 5}}]}, "instances[1].content"),
        ({"instances": [{"content": "x", "title": [1]}]}, "instances[0].title: "),
        (
            {"instances": [{"content": "x"}], "parameters": {"outputDimensionality": "abc"}},
            "instances[0].outputDimensionality: ",
        ),
    ],
)
def test_predict_instances_of_the_wrong_type(demo: Running, body: Any, named: str) -> None:
    reply = demo.request("POST", PREDICT, json.dumps(body).encode())
    assert reply.status == 400, reply
    assert google_error(reply)["message"].startswith(f"Invalid request: {named}")


def test_taken_ids_and_aliases_name_the_field(governed: Running) -> None:
    for path, body, field in [
        ("/team/new", {"team_id": "taken-team"}, "team_id"),
        ("/customer/new", {"user_id": "taken-user"}, "user_id"),
        ("/key/generate", {"key_alias": "taken-alias"}, "key_alias"),
    ]:
        first = governed.request("POST", path, json.dumps(body).encode())
        assert first.status == 200, first
        again = governed.request("POST", path, json.dumps(body).encode())
        assert again.status == 400 and google_error(again)["message"].startswith(f"{field}: ")
    other = governed.request("POST", "/key/generate", b'{"key_alias": "other-alias"}').json()
    reply = governed.request(
        "POST",
        "/key/update",
        json.dumps({"key": other["key"], "key_alias": "taken-alias"}).encode(),
    )
    assert reply.status == 400
    assert google_error(reply)["message"].startswith("key_alias: ")
