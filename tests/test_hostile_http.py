"""Hostile input over the HTTP surface: whatever a client sends, the proxy answers, and never with a 5xx.

The real application (demo upstream with no pacing, in-memory ledger) runs on a loopback port in a thread of its own;
requests go out as raw bytes over a socket, so bodies, encodings and header bytes are exactly what the strategy made
(no client library tidies them). Two servers: auth by team keys (with a real key and the admin key, so authenticated
paths run deep into the pipeline) and auth off. The number of examples comes from the hypothesis profile.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hermes_proxy.app import create_app
from hermes_proxy.json_body import MAX_JSON_DEPTH
from hermes_proxy.tokens import TokenCounter
from tests.conftest import build_config

ADMIN = "admin-key-for-hostile-tests"
TIMEOUT_S = 10.0


# --- the servers ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    port: int
    team_key: str | None


class ServerThread:
    """``create_app(config)`` served by an AppRunner on 127.0.0.1 in a thread with its own event loop."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._started.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        self._runner = web.AppRunner(self._app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def __enter__(self) -> ServerThread:
        self._thread.start()
        assert self._started.wait(30), "the proxy did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()


def _config(auth: str) -> Any:
    return build_config(env={"HERMES_ADMIN_KEY": ADMIN}, server={"auth": auth},
                        teams={"research": {"budgets": [{"window": "daily", "limit_usd": 1_000_000}]},
                               "ops": {"models": ["hermes-4-405b"]}},
                        chat={"team": "research"})


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def send(port: int, raw: bytes) -> Answer:
    """Send ``raw`` and read the whole answer (every request says ``Connection: close``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as sock:
        try:
            sock.sendall(raw)  # no half-close: aiohttp takes a client's EOF as a disconnect
        except OSError:
            pass  # the server may answer and close before reading everything (e.g. a header too large)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    data = b"".join(chunks)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0].startswith(b"HTTP/1."), f"connection closed without an answer (got {data[:200]!r})"
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
    return Answer(status, headers, body)


def request_bytes(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    if not any(name.lower() in (b"content-length", b"transfer-encoding") for name, _ in headers):
        lines.append(b"Content-Length: " + str(len(body)).encode())
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def post_json(port: int, path: str, body: Any, token: str | None) -> Answer:
    headers = [(b"Content-Type", b"application/json")]
    if token:
        headers.append((b"Authorization", b"Bearer " + token.encode()))
    return send(port, request_bytes(b"POST", path.encode(), headers, json.dumps(body).encode()))


@pytest.fixture(scope="module")
def targets(counter: TokenCounter) -> Iterator[dict[str, Target]]:
    with ServerThread(create_app(_config("keys"), counter=counter)) as keyed, \
            ServerThread(create_app(_config("none"), counter=counter)) as open_:
        created = post_json(keyed.port, "/admin/keys", {"team": "research", "name": "fuzz"}, ADMIN)
        assert created.status == 201, created.body
        key = json.loads(created.body)["key"]
        # the key works end to end before any fuzzing: otherwise the fuzz would only ever meet 401s
        ok = post_json(keyed.port, "/v1/chat/completions",
                       {"model": "hermes-4-405b", "messages": [{"role": "user", "content": "hi"}]}, key)
        assert ok.status == 200, ok.body
        yield {"keys": Target(keyed.port, key), "none": Target(open_.port, None)}


# --- strategies -----------------------------------------------------------------------------------------------------

#: any code point, lone surrogates included (hypothesis leaves them out of text() by default)
characters = st.one_of(st.characters(), st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"]))
texts = st.one_of(st.text(characters, max_size=12),
                  st.sampled_from(["", " ", "hermes-4-405b", "hermes-4-405b:thinking", "research", "on", "off",
                                   "today", "7d", "100000000d", "\x00", "é", "\U0001f600", "\ud800", "\udfff"]))
numbers = st.one_of(
    st.integers(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
    st.sampled_from([0, -1, 1, 2 ** 31, 2 ** 63, 2 ** 64, 10 ** 30, 10 ** 400]),
    st.floats(allow_nan=True, allow_infinity=True),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, texts),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(texts, children, max_size=4)),
    max_leaves=12,
)

CHAT_FIELDS = ["model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "n", "stop",
               "temperature", "top_p", "top_k", "seed", "presence_penalty", "frequency_penalty", "tools",
               "tool_choice", "user", "reasoning", "reasoning_effort", "include_reasoning", "response_format",
               "logit_bias", "logprobs", "top_logprobs", "parallel_tool_calls", "metadata", "chat_template_kwargs",
               "extra_body", "think", "thinking"]
MESSAGE_FIELDS = ["role", "content", "name", "tool_calls", "tool_call_id", "reasoning_content", "reasoning", "prefix"]
ROLES = ["system", "developer", "user", "assistant", "tool", "function"]


@st.composite
def messages(draw: st.DrawFn) -> list[Any]:
    out: list[Any] = []
    for _ in range(draw(st.integers(1, 4))):
        message: dict[str, Any] = {"role": draw(st.sampled_from(ROLES)),
                                   "content": draw(st.one_of(texts, st.just("hello"), st.none()))}
        if draw(st.booleans()):
            message["content"] = [{"type": "text", "text": draw(texts)}]
        for field in draw(st.lists(st.sampled_from(MESSAGE_FIELDS), max_size=2)):
            message[field] = draw(json_values)
        if draw(st.booleans()):
            message["tool_calls"] = [{"id": draw(texts), "type": "function",
                                      "function": {"name": draw(texts), "arguments": draw(st.one_of(texts, json_values))}}]
        out.append(message if draw(st.integers(0, 9)) else draw(json_values))
    return out


@st.composite
def chat_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly valid chat requests with wrong types mixed into known fields, so requests get deep into the pipeline."""
    body: dict[str, Any] = {
        "model": draw(st.sampled_from(["hermes-4-405b", "hermes-4-405b:thinking", "hermes-4-405b:fast"])),
        "messages": draw(messages()),
    }
    if draw(st.booleans()):
        body["stream"] = True
        if draw(st.booleans()):
            body["stream_options"] = {"include_usage": draw(st.booleans())}
    if draw(st.booleans()):
        body["max_tokens"] = draw(st.integers(1, 64))
    if draw(st.booleans()):
        body["reasoning"] = draw(st.one_of(st.booleans(), st.fixed_dictionaries(
            {}, optional={"enabled": st.booleans(), "max_tokens": st.integers(1, 10 ** 6),
                          "effort": st.sampled_from(["low", "medium", "high", "none"]),
                          "exclude": st.booleans()})))
    if draw(st.booleans()):
        body["tools"] = [{"type": "function", "function": {"name": "get_weather", "parameters": draw(json_values)}}]
    for field in draw(st.lists(st.sampled_from(CHAT_FIELDS), max_size=3)):
        body[field] = draw(json_values)
    return body


@st.composite
def deep_json(draw: st.DrawFn) -> bytes:
    depth = draw(st.sampled_from([MAX_JSON_DEPTH - 2, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 999, 1000, 5000, 100_000]))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}"), (b'{"messages":[', b"]}")]))
    inner = draw(st.sampled_from([b"1", b'"\\ud800"', b"NaN", b"[]"]))
    return opener * depth + inner + closer * depth


RAW_TOKENS = [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"1" * 5000, b"1" * 4000, b"1e-400",
              b"-0", b"0.0000000000000000000000001", b"99999999999999999999999999999999"]


@st.composite
def raw_number_bodies(draw: st.DrawFn) -> bytes:
    """A valid chat request with a raw non-JSON number token in a numeric field."""
    field = draw(st.sampled_from(["max_tokens", "temperature", "top_p", "n", "seed", "top_k", "limit_usd",
                                  "max_completion_tokens", "frequency_penalty"]))
    token = draw(st.sampled_from(RAW_TOKENS))
    return (b'{"model":"hermes-4-405b","messages":[{"role":"user","content":"hi"}],"' + field.encode() + b'":'
            + token + b"}")


def dump(value: Any, ascii_only: bool) -> bytes:
    # ensure_ascii=False + surrogatepass writes lone surrogates as (invalid) UTF-8 bytes; True writes \ud800 escapes
    return json.dumps(value, ensure_ascii=ascii_only, allow_nan=True).encode("utf-8", "surrogatepass")


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["chat", "chat", "chat", "value", "admin", "deep", "number", "binary", "text"]))
    if kind == "chat":
        return dump(draw(chat_bodies()), draw(st.booleans()))
    if kind == "value":
        return dump(draw(json_values), draw(st.booleans()))
    if kind == "admin":
        body = {"team": draw(st.one_of(st.just("research"), texts)), "name": draw(st.one_of(st.none(), texts)),
                "limit_usd": draw(st.one_of(numbers, texts, json_values))}
        return dump(body, draw(st.booleans()))
    if kind == "deep":
        return draw(deep_json())
    if kind == "number":
        return draw(raw_number_bodies())
    if kind == "text":
        # a chat request in another encoding (json.loads reads UTF-16 and UTF-32 too), or plain text
        text = draw(st.one_of(chat_bodies().map(lambda b: json.dumps(b, ensure_ascii=False)),
                              st.text(characters, max_size=40)))
        encoding = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-32", "latin-1"]))
        return text.encode(encoding, "replace" if encoding == "latin-1" else "surrogatepass")
    return draw(st.binary(max_size=64))


PATHS = ["/v1/chat/completions", "/chat/completions", "/v1/models", "/v1/models/hermes-4-405b",
         "/v1/models/hermes-4-405b:thinking", "/healthz", "/readyz", "/metrics", "/admin/keys", "/admin/keys/fuzz",
         "/admin/keys/key_0123456789abcdef", "/admin/spend", "/v1/spend", "/v1/completions", "/", "/v1//chat"]
QUERY_NAMES = ["team", "since", "until", "by", "timezone"]
METHODS = [b"GET", b"POST", b"POST", b"POST", b"DELETE", b"PUT", b"PATCH", b"OPTIONS", b"HEAD"]


def _percent(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


@st.composite
def targets_(draw: st.DrawFn) -> bytes:
    path = draw(st.one_of(st.sampled_from(PATHS), st.sampled_from(PATHS).map(lambda p: p + "/x"),
                          st.builds(lambda p, t: p + _percent(t), st.sampled_from(["/v1/models/", "/admin/keys/"]),
                                    texts)))
    params = draw(st.lists(st.tuples(st.sampled_from(QUERY_NAMES), texts), max_size=3))
    if params:
        path += "?" + "&".join(f"{name}={_percent(value)}" for name, value in params)
    return path.encode()


header_values = st.one_of(
    st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    texts.map(lambda t: t.encode("utf-8", "surrogatepass").replace(b"\r", b"").replace(b"\n", b"")),
    st.sampled_from([b"on", b"off", b"true", b"0", b"maybe", b"", b" ", b"\xff\xfe", b"\xc3\x28", b"a" * 9000]),
)
HEADER_NAMES = [b"x-hermes-reasoning", b"x-hermes-reasoning-format", b"x-hermes-max-tokens", b"x-hermes-budget",
                b"x-request-id", b"Content-Type", b"Accept", b"Accept-Encoding", b"Origin",
                b"Access-Control-Request-Method", b"Access-Control-Request-Headers",
                b"Access-Control-Request-Private-Network", b"User-Agent", b"Cookie", b"X-Forwarded-For"]
#: Expect only as ASCII: on a path with no route (404/405) aiohttp's own expect handler runs and answers a non-UTF-8
#: value with a 500 that no application hook can reach (routed paths are tested with any bytes below)
EXPECTS = [b"100-continue", b"100-Continue", b"junk", b"", b"200-ok"]


@st.composite
def auth_headers(draw: st.DrawFn, target: Target) -> list[tuple[bytes, bytes]]:
    good = [t.encode() for t in (target.team_key, ADMIN) if t]
    token = draw(st.one_of(st.sampled_from(good or [b"hp-nothing"]), st.sampled_from(good or [b"x"]).map(
        lambda t: t + b"\xff"), header_values))
    how = draw(st.sampled_from(["bearer", "bearer", "api-key", "x-api-key", "basic", "none", "double"]))
    if how == "bearer":
        return [(b"Authorization", b"Bearer " + token)]
    if how == "basic":
        return [(b"Authorization", b"Basic " + token)]
    if how == "double":
        return [(b"Authorization", b"Bearer " + token), (b"Authorization", b"Bearer " + draw(header_values))]
    if how == "none":
        return []
    return [(how.encode(), token)]


ENCODINGS = [b"gzip", b"deflate", b"br", b"zstd", b"identity", b"compress", b"gzip, deflate", b"\xff", b"x-junk"]


@st.composite
def requests(draw: st.DrawFn, target: Target) -> bytes:
    body = draw(bodies())
    headers = draw(auth_headers(target))
    headers += draw(st.lists(st.tuples(st.sampled_from(HEADER_NAMES), header_values), max_size=3))
    if draw(st.integers(0, 7)) == 0:
        headers.append((b"Expect", draw(st.sampled_from(EXPECTS))))
    if draw(st.integers(0, 3)) == 0:
        encoding = draw(st.sampled_from(ENCODINGS))
        if encoding == b"gzip" and draw(st.booleans()):
            body = gzip.compress(body)  # honest
        elif encoding == b"deflate" and draw(st.booleans()):
            body = zlib.compress(body)
        headers.append((b"Content-Encoding", encoding))
    method = draw(st.one_of(st.sampled_from(METHODS), st.sampled_from([b"GARBAGE", b"get", b"PO ST", b"\xff"])))
    if draw(st.integers(0, 15)) == 0:
        headers.append((draw(st.sampled_from([b"X-Big", b"x-hermes-reasoning"])), b"a" * 20_000))  # past the limit
    if draw(st.integers(0, 15)) == 0:
        headers += [(b"X-Many-%d" % i, b"1") for i in range(200)]
    if draw(st.integers(0, 15)) == 0:
        headers.append((b"Content-Length", draw(st.sampled_from([b"abc", b"-1", b"99999999999999999999"]))))
    return request_bytes(method, draw(targets_()), headers, body)


# --- the fuzz -------------------------------------------------------------------------------------------------------


def check_answer(answer: Answer, raw: bytes) -> None:
    assert answer.status < 500, f"{answer.status} for {raw[:600]!r}: {answer.body[:600]!r}"
    if 400 <= answer.status and "application/json" in answer.headers.get("content-type", "") and answer.body:
        error = json.loads(answer.body)["error"]
        assert set(error) >= {"message", "type", "param", "code"} and error["message"]


@pytest.mark.parametrize("auth", ["keys", "none"])
@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_no_request_gets_a_5xx_or_no_answer(targets: dict[str, Target], auth: str, data: st.DataObject) -> None:
    target = targets[auth]
    raw = data.draw(requests(target), label="request")
    check_answer(send(target.port, raw), raw)


@pytest.mark.parametrize("auth", ["keys", "none"])
@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=chat_bodies(), ascii_only=st.booleans(), stream=st.booleans())
def test_chat_requests_with_a_good_key_never_get_a_5xx(targets: dict[str, Target], auth: str, body: dict[str, Any],
                                                        ascii_only: bool, stream: bool) -> None:
    """The same, authenticated and well framed every time, so every example reaches the pipeline."""
    target = targets[auth]
    if stream and "stream" not in body:
        body["stream"] = True
    headers = [(b"Content-Type", b"application/json")]
    if target.team_key:
        headers.append((b"Authorization", b"Bearer " + target.team_key.encode()))
    raw = request_bytes(b"POST", b"/v1/chat/completions", headers, dump(body, ascii_only))
    answer = send(target.port, raw)
    check_answer(answer, raw)
    if answer.status == 200 and body.get("stream") is True:
        assert b"data: [DONE]" in answer.body  # the stream ended properly, whatever came through it


# --- the cases testers found, one by one ----------------------------------------------------------------------------

CHAT = b"/v1/chat/completions"


def chat_raw(target: Target, body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> Answer:
    headers = [(b"Content-Type", b"application/json"), *(extra or [])]
    if target.team_key:
        headers.append((b"Authorization", b"Bearer " + target.team_key.encode()))
    return send(target.port, request_bytes(b"POST", CHAT, headers, body))


def error_of(answer: Answer) -> dict[str, Any]:
    assert answer.headers["content-type"].startswith("application/json"), answer
    error: dict[str, Any] = json.loads(answer.body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def hello(content: str = "hi", **fields: Any) -> dict[str, Any]:
    return {"model": "hermes-4-405b", "messages": [{"role": "user", "content": content}], **fields}


@pytest.mark.parametrize(("body", "param"), [
    (b'{"model":"hermes-4-405b","messages":[{"role":"user","content":"a\\ud800b"}]}', "messages[0].content"),
    (b'{"model":"hermes-4-405b","messages":[{"role":"user","content":"\\udfff"}]}', "messages[0].content"),
    (b'{"model":"hermes-4-405b","messages":[{"role":"user","content":[{"type":"text","text":"\xed\xa0\x80"}]}]}',
     "messages[0].content[0].text"),
    (b'{"model":"hermes-4-405b","messages":[{"role":"user","content":"hi"}],"user":"\\uDBFF"}', "user"),
    (b'{"model":"hermes-4-405b","messages":[{"role":"user","content":"hi"}],"metadata":{"\\ud800":1}}', "metadata"),
    (json.dumps(hello("\ud800")).encode("utf-16"), "messages[0].content"),
])
def test_a_lone_surrogate_anywhere_is_a_400_naming_the_field(targets: dict[str, Target], body: bytes,
                                                              param: str) -> None:
    answer = chat_raw(targets["keys"], body)
    assert answer.status == 400
    error = error_of(answer)
    assert error["param"] == param and "surrogate" in error["message"]


def test_a_surrogate_pair_is_a_character_not_an_error(targets: dict[str, Target]) -> None:
    answer = chat_raw(targets["keys"], b'{"model":"hermes-4-405b","messages":[{"role":"user","content":"\\ud83d\\ude00"}]}')
    assert answer.status == 200


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 999, 1000, 100_000])
def test_json_nested_too_deeply_is_a_400(targets: dict[str, Target], depth: int) -> None:
    answer = chat_raw(targets["keys"], b"[" * depth + b"]" * depth)
    assert answer.status == 400
    assert "nested too deeply" in error_of(answer)["message"]


def test_deep_but_allowed_json_goes_through(targets: dict[str, Target]) -> None:
    schema: Any = {"type": "string"}
    for _ in range(MAX_JSON_DEPTH - 10):
        schema = {"type": "array", "items": schema}
    tools = [{"type": "function", "function": {"name": "deep",
                                               "parameters": {"type": "object", "properties": {"x": schema}}}}]
    answer = chat_raw(targets["keys"], json.dumps(hello(tools=tools)).encode())
    assert answer.status == 200, answer.body


@pytest.mark.parametrize(("token", "field"), [(b"NaN", "temperature"), (b"Infinity", "top_p"),
                                              (b"-1e400", "presence_penalty"), (b"1e400", "max_tokens"),
                                              (b"NaN", "seed")])
def test_non_finite_numbers_are_a_400_naming_the_field(targets: dict[str, Target], token: bytes, field: str) -> None:
    body = json.dumps(hello()).encode()[:-1] + b',"' + field.encode() + b'":' + token + b"}"
    answer = chat_raw(targets["keys"], body)
    assert answer.status == 400 and error_of(answer)["param"] == field


@pytest.mark.parametrize("encoding", [b"gzip", b"deflate"])
def test_a_body_that_is_not_what_its_content_encoding_says_is_a_400(targets: dict[str, Target],
                                                                    encoding: bytes) -> None:
    answer = chat_raw(targets["keys"], json.dumps(hello()).encode(), [(b"Content-Encoding", encoding)])
    assert answer.status == 400
    assert error_of(answer)["param"] == "Content-Encoding"
    assert answer.headers["connection"] == "close"  # aiohttp drops the connection after it: the client must know


def test_an_honest_gzip_body_works(targets: dict[str, Target]) -> None:
    answer = chat_raw(targets["keys"], gzip.compress(json.dumps(hello()).encode()), [(b"Content-Encoding", b"gzip")])
    assert answer.status == 200


BAD_BYTES = b"hp-" + b"\xff\xfe\xc3\x28" * 10


@pytest.mark.parametrize("path", [b"/v1/models", b"/v1/spend", b"/admin/keys", b"/v1/chat/completions"])
@pytest.mark.parametrize("header", [b"Authorization", b"api-key", b"x-api-key"])
def test_a_key_that_is_not_utf8_is_a_401(targets: dict[str, Target], path: bytes, header: bytes) -> None:
    value = b"Bearer " + BAD_BYTES if header == b"Authorization" else BAD_BYTES
    method = b"POST" if path.endswith(b"completions") else b"GET"
    answer = send(targets["keys"].port, request_bytes(method, path, [(header, value)], json.dumps(hello()).encode()))
    assert answer.status == 401 and error_of(answer)["code"] == "invalid_api_key"


def test_the_admin_key_with_a_bad_byte_appended_is_refused(targets: dict[str, Target]) -> None:
    answer = send(targets["keys"].port, request_bytes(b"GET", b"/admin/keys",
                                                      [(b"Authorization", b"Bearer " + ADMIN.encode() + b"\xff")], b""))
    assert answer.status == 401


@pytest.mark.parametrize(("query", "param"), [
    (b"since=100000000d", "since"), (b"since=99999999999999999999w", "since"), (b"until=9999-12-31T23:59:59-23:59", "until"),
    (b"since=0001-01-01T00:00:00%2B14:00", "since"), (b"since=" + b"9" * 5000 + b"d", "since"),
    (b"timezone=Nowhere/Nothing", "timezone"), (b"timezone=..%2F..%2Fetc%2Fpasswd", "timezone"), (b"by=%ff", "by"),
])
def test_absurd_spend_queries_are_a_400(targets: dict[str, Target], query: bytes, param: str) -> None:
    for path, token in ((b"/v1/spend", targets["keys"].team_key or ""), (b"/admin/spend", ADMIN)):
        answer = send(targets["keys"].port, request_bytes(b"GET", path + b"?" + query,
                                                          [(b"Authorization", b"Bearer " + token.encode())], b""))
        assert answer.status == 400, answer.body
        assert error_of(answer)["param"] == param


@pytest.mark.parametrize("limit", [b"1e10", b"9999999999", b"1e12", b'"1e300"', b"-1", b"-0.5", b"NaN", b"Infinity",
                                   b'"NaN"', b'"abc"', b"true", b"[1]", b"1e400", b"0.0000000001"])
def test_absurd_key_limits_are_a_400_naming_the_field(targets: dict[str, Target], limit: bytes) -> None:
    body = b'{"team":"research","limit_usd":' + limit + b"}"
    answer = send(targets["keys"].port, request_bytes(b"POST", b"/admin/keys", [
        (b"Authorization", b"Bearer " + ADMIN.encode()), (b"Content-Type", b"application/json")], body))
    assert answer.status == 400, answer.body
    assert error_of(answer)["param"] == "limit_usd"


def test_the_largest_key_limit_is_stored_and_read_back(targets: dict[str, Target]) -> None:
    created = post_json(targets["keys"].port, "/admin/keys", {"team": "ops", "limit_usd": "999999999.999999999"}, ADMIN)
    assert created.status == 201, created.body
    assert json.loads(created.body)["limit_usd"] == "999999999.999999999"


@pytest.mark.parametrize("path", [b"/v1/spend", b"/admin/keys", b"/v1/models", b"/healthz"])
@pytest.mark.parametrize("expect", [b"\x80\xff", b"something-else"])
def test_an_unknown_expectation_is_a_417_in_json(targets: dict[str, Target], path: bytes, expect: bytes) -> None:
    answer = send(targets["keys"].port, request_bytes(b"GET", path, [(b"Expect", expect)], b""))
    assert answer.status == 417 and error_of(answer)["param"] == "Expect"


@pytest.mark.parametrize(("field", "value"), [
    ("model", ["hermes-4-405b"]), ("messages", "hi"), ("max_tokens", -1), ("max_tokens", True),
    ("n", 10 ** 30), ("stop", 5), ("tools", "x"), ("temperature", "0.5"),
    ("stream_options", {"include_usage": "yes"}), ("reasoning", {"effort": []}),
])
def test_wrong_types_in_chat_fields_are_a_400_naming_the_field(targets: dict[str, Target], field: str,
                                                                value: Any) -> None:
    body = hello(**{field: value})
    if field == "stream_options":
        body["stream"] = True
    answer = chat_raw(targets["keys"], json.dumps(body).encode())
    assert answer.status == 400
    assert (error_of(answer)["param"] or "").startswith(field)


def test_hostile_requests_lose_nothing_already_recorded(targets: dict[str, Target]) -> None:
    target = targets["keys"]
    assert target.team_key is not None

    def requests_so_far() -> int:
        answer = send(target.port, request_bytes(b"GET", b"/v1/spend", [
            (b"Authorization", b"Bearer " + target.team_key.encode())], b""))  # type: ignore[union-attr]
        assert answer.status == 200
        return int(json.loads(answer.body)["total"]["requests"])

    before = requests_so_far()
    assert chat_raw(target, json.dumps(hello()).encode()).status == 200
    for body in (b"[" * 5000, b'{"model":"hermes-4-405b","messages":[{"role":"user","content":"\\ud800"}]}',
                 b'{"model":"hermes-4-405b","messages":[{"role":"user","content":"hi"}],"temperature":NaN}'):
        assert chat_raw(target, body).status == 400
    assert chat_raw(target, json.dumps(hello()).encode(), [(b"Content-Encoding", b"gzip")]).status == 400
    assert requests_so_far() == before + 1
