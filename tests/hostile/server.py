"""A small misbehaving HTTP server on loopback, for the hostile-input tests.

Raw asyncio sockets (no web framework, so it can send what no framework would: an endless
line, a body dripped byte by byte, a redirect to https). It runs its own event loop in a
thread, so a test's loop drives the client against it. The first path segment picks the
behaviour, so one server serves every scenario: ``server.api_base("runaway")`` is
``http://127.0.0.1:PORT/runaway/v1``.

Endless behaviours stop by themselves after ``ENDLESS_BYTES`` or ``ENDLESS_SECONDS``
(whichever first), so a client that never stops reading still ends, with a process that
has grown by that much: the memory assertions catch it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

ENDLESS_BYTES = 600 * 1024 * 1024
ENDLESS_SECONDS = 90.0


@dataclass
class Request:
    method: str
    path: str  # after the scenario segment, e.g. "/v1/chat/completions"
    headers: dict[str, str]
    body: bytes
    scenario: str


@dataclass
class Seen:
    requests: list[Request] = field(default_factory=list)


def _chunk(content: str | None = None, *, reasoning: str | None = None, finish=None, **extra):
    delta = {}
    if content is not None:
        delta["content"] = content
    if reasoning is not None:
        delta["reasoning_content"] = reasoning
    body = {
        "id": "x",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _raw_chunk(json_text: str) -> bytes:
    return b"data: " + json_text.encode() + b"\n\n"


SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Connection: close\r\n\r\n"
)


def _head(status: str, ctype: str = "application/json", extra: str = "", length=None) -> bytes:
    text = f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nConnection: close\r\n{extra}"
    if length is not None:
        text += f"Content-Length: {length}\r\n"
    return (text + "\r\n").encode()


async def _endless(writer: asyncio.StreamWriter, piece: bytes, pause: float = 0.0) -> None:
    sent, started = 0, time.monotonic()
    while sent < ENDLESS_BYTES and time.monotonic() - started < ENDLESS_SECONDS:
        writer.write(piece)
        sent += len(piece)
        await writer.drain()
        if pause:
            await asyncio.sleep(pause)


Handler = Callable[[Request, asyncio.StreamWriter], Awaitable[None]]
SCENARIOS: dict[str, Handler] = {}


def scenario(name: str):
    def register(fn: Handler) -> Handler:
        SCENARIOS[name] = fn
        return fn

    return register


# --- bodies without end -------------------------------------------------------------------


@scenario("endless-json")
async def endless_json(req: Request, w: asyncio.StreamWriter) -> None:
    # /v1/models, /v1/embeddings, a non-streamed chat reply: a JSON list that never closes.
    w.write(_head("200 OK") + b'{"object":"list","data":[')
    await _endless(w, b'{"id":"m","object":"model","owned_by":"x"},' * 1000)


@scenario("endless-error")
async def endless_error(req: Request, w: asyncio.StreamWriter) -> None:
    w.write(_head("500 Internal Server Error") + b'{"error":{"message":"')
    await _endless(w, b"x" * 65536)


@scenario("endless-metrics")
async def endless_metrics(req: Request, w: asyncio.StreamWriter) -> None:
    w.write(_head("200 OK", "text/plain; version=0.0.4"))
    await _endless(w, b'vllm:num_requests_running{model_name="m"} 1.0\n' * 2000)


@scenario("endless-line")
async def endless_line(req: Request, w: asyncio.StreamWriter) -> None:
    w.write(SSE_HEAD + _chunk("Hello") + b'data: {"choices":[{"delta":{"content":"')
    await _endless(w, b"a" * 65536)


@scenario("runaway")
async def runaway(req: Request, w: asyncio.StreamWriter) -> None:
    # A server that ignores max_tokens: a token per chunk, never a finish_reason.
    w.write(SSE_HEAD)
    await _endless(w, b"".join(_chunk("tok ") for _ in range(200)))


@scenario("huge-chunks")
async def huge_chunks(req: Request, w: asyncio.StreamWriter) -> None:
    # Few chunks, each a large piece of text: counted by characters, not chunks.
    w.write(SSE_HEAD)
    await _endless(w, _chunk("word " * 40_000))


# --- timeouts that must not be reset by bytes -----------------------------------------------


@scenario("keepalive")
async def keepalive(req: Request, w: asyncio.StreamWriter) -> None:
    w.write(SSE_HEAD)
    await _endless(w, b": keep-alive\n\n", pause=0.05)


@scenario("keepalive-after-token")
async def keepalive_after_token(req: Request, w: asyncio.StreamWriter) -> None:
    w.write(SSE_HEAD + _chunk("The first words"))
    await _endless(w, b": keep-alive\n\n", pause=0.05)


@scenario("drip")
async def drip(req: Request, w: asyncio.StreamWriter) -> None:
    # One byte every 50 ms, never completing anything: each read succeeds, so a per-read
    # timeout never fires.
    if req.path.endswith("/chat/completions"):
        w.write(SSE_HEAD + _chunk("The first words") + b'data: {"choices":[')
    else:
        w.write(_head("200 OK") + b'{"object":"list","data":[')
    await _endless(w, b" ", pause=0.05)


@scenario("silent-headers")
async def silent_headers(req: Request, w: asyncio.StreamWriter) -> None:
    # Status line dripped one byte at a time: headers that never end.
    for i in range(int(ENDLESS_SECONDS / 0.05)):
        w.write(b"HTTP/1.1 200 OK\r\nX-Drip: "[i : i + 1] if i < 25 else b"a")
        await w.drain()
        await asyncio.sleep(0.05)


# --- clear messages -----------------------------------------------------------------------


@scenario("ratelimit")
async def ratelimit(req: Request, w: asyncio.StreamWriter) -> None:
    body = b'{"error":{"message":"Too many requests","type":"rate_limit"}}'
    w.write(_head("429 Too Many Requests", extra="Retry-After: 7\r\n", length=len(body)) + body)


@scenario("busy-date")
async def busy_date(req: Request, w: asyncio.StreamWriter) -> None:
    import email.utils

    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    w.write(_head("503 Service Unavailable", extra=f"Retry-After: {when}\r\n", length=0))


@scenario("to-https")
async def to_https(req: Request, w: asyncio.StreamWriter) -> None:
    host = req.headers.get("host", "127.0.0.1")
    loc = f"https://{host}/to-https{req.path}"
    w.write(_head("301 Moved Permanently", extra=f"Location: {loc}\r\n", length=0))


@scenario("to-v1")
async def to_v1(req: Request, w: asyncio.StreamWriter) -> None:
    # The user typed the base without /v1; the server redirects /chat/completions there.
    host = req.headers.get("host", "127.0.0.1")
    loc = f"http://{host}/to-v1/v1{req.path}"
    w.write(_head("307 Temporary Redirect", extra=f"Location: {loc}\r\n", length=0))


@scenario("echo-key")
async def echo_key(req: Request, w: asyncio.StreamWriter) -> None:
    auth = req.headers.get("authorization", "")
    body = json.dumps(
        {"error": {"message": f"Invalid credentials. Received header Authorization: {auth}"}}
    ).encode()
    w.write(_head("400 Bad Request", length=len(body)) + body)


@scenario("echo-key-500")
async def echo_key_500(req: Request, w: asyncio.StreamWriter) -> None:
    auth = req.headers.get("authorization", "")
    key = auth.split(" ", 1)[-1]
    body = f"<html><body>upstream failed for api_key={key} ({auth})</body></html>".encode()
    w.write(_head("502 Bad Gateway", "text/html", length=len(body)) + body)


@scenario("surrogate")
async def surrogate(req: Request, w: asyncio.StreamWriter) -> None:
    w.write(
        SSE_HEAD
        + _chunk("Plot ")
        + _raw_chunk('{"choices":[{"index":0,"delta":{"content":"\\ud83d"},"finish_reason":null}]}')
        + _chunk(" of growth", finish="stop")
        + b"data: [DONE]\n\n"
    )


@scenario("nan-usage")
async def nan_usage(req: Request, w: asyncio.StreamWriter) -> None:
    w.write(
        SSE_HEAD
        + _chunk("One two three", finish="stop")
        + _raw_chunk('{"choices":[],"usage":{"prompt_tokens":NaN,"completion_tokens":Infinity}}')
        + b"data: [DONE]\n\n"
    )


@scenario("absurd-usage")
async def absurd_usage(req: Request, w: asyncio.StreamWriter) -> None:
    w.write(
        SSE_HEAD
        + _chunk("One two three", finish="stop")
        + _raw_chunk('{"choices":[],"usage":{"prompt_tokens":-5,"completion_tokens":1e35}}')
        + b"data: [DONE]\n\n"
    )


@scenario("huge-usage-int")
async def huge_usage_int(req: Request, w: asyncio.StreamWriter) -> None:
    w.write(
        SSE_HEAD
        + _chunk("One two three", finish="stop")
        + _raw_chunk(
            '{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":' + "9" * 36 + "}}"
        )
        + b"data: [DONE]\n\n"
    )


@scenario("reasoning-only")
async def reasoning_only(req: Request, w: asyncio.StreamWriter) -> None:
    w.write(
        SSE_HEAD
        + _chunk(reasoning="Let me think about the axes. ")
        + _chunk(reasoning="The x axis is time, and", finish="length")
        + b"data: [DONE]\n\n"
    )


@scenario("odd-shapes")
async def odd_shapes(req: Request, w: asyncio.StreamWriter) -> None:
    # Chunks that are valid JSON but not the expected shapes: none may crash the client.
    w.write(
        SSE_HEAD
        + _raw_chunk('{"choices": 5}')
        + _raw_chunk('{"choices": ["x", null, {"delta": "text"}]}')
        + _raw_chunk('{"choices": [{"delta": {"content": 42}}]}')
        + _raw_chunk('{"choices": [{"delta": {"content": ["a"]}}]}')
        + _raw_chunk("[1, 2]")
        + _chunk("Fine.", finish="stop")
        + b"data: [DONE]\n\n"
    )


@scenario("hostile-markdown")
async def hostile_markdown(req: Request, w: asyncio.StreamWriter) -> None:
    # Every image form pointing at the file named in the question ("PATH=/x.png"), a data:
    # image cut by max tokens, terminal escapes: none may load, none may freeze the view.
    path = req.body.decode("utf-8", "replace").split("PATH=", 1)[-1].split("\\", 1)[0]
    path = path.split('"', 1)[0].split(" ", 1)[0]
    uri = "file://" + path
    answer = (
        f"Inline ![a]({uri}) and path ![b]({path}).\n\n"
        f"Reference ![r][pic], collapsed ![pic][] and shortcut ![pic].\n\n[pic]: {uri}\n\n"
        f'<img src="{uri}">\n\n\x1b[2J cleared?\n\n'
        "![plot](data:image/png;base64," + "A" * 20_000
    )
    pieces = [answer[i : i + 40] for i in range(0, len(answer), 40)]
    w.write(
        SSE_HEAD
        + b"".join(_chunk(p) for p in pieces[:-1])
        + _chunk(pieces[-1], finish="length")
        + b"data: [DONE]\n\n"
    )


@scenario("metrics-nan")
async def metrics_nan(req: Request, w: asyncio.StreamWriter) -> None:
    body = (
        b"# TYPE vllm:kv_cache_usage_perc gauge\n"
        b'vllm:kv_cache_usage_perc{model_name="m",engine="0"} NaN\n'
        b"# TYPE vllm:num_requests_running gauge\n"
        b'vllm:num_requests_running{model_name="m",engine="0"} +Inf\n'
        b"# TYPE vllm:num_requests_waiting gauge\n"
        b'vllm:num_requests_waiting{model_name="m",engine="0"} -3\n'
        b"# TYPE vllm:prompt_tokens counter\n"
        b'vllm:prompt_tokens_total{model_name="m",engine="0"} NaN\n'
        b"# TYPE vllm:request_success counter\n"
        b'vllm:request_success_total{finished_reason="stop",model_name="m",engine="0"} NaN\n'
        b'vllm:request_success_total{finished_reason="length",model_name="m",engine="0"} 4\n'
    )
    w.write(_head("200 OK", "text/plain; version=0.0.4", length=len(body)) + body)


# --- Prometheus and router answers a fleet view must survive ---------------------------------

_PROM_SAMPLE = b'{"metric":{"instance":"h:1","kanoa_figure":"up"},"value":[1,"1"]}'


def _prom(body: bytes, status: str = "200 OK", extra: str = "") -> bytes:
    return _head(status, extra=extra, length=len(body)) + body


@scenario("prom-huge")
async def prom_huge(req: Request, w: asyncio.StreamWriter) -> None:
    # A 60 MB vector (about a million samples): 1.3 GB once parsed the naive way. Sent in
    # pieces, never held whole here.
    head = b'{"status":"success","data":{"resultType":"vector","result":['
    piece = (_PROM_SAMPLE + b",") * 1000
    pieces = 60_000_000 // len(piece)
    tail = _PROM_SAMPLE + b"]}}"
    w.write(_head("200 OK", length=len(head) + pieces * len(piece) + len(tail)) + head)
    for _ in range(pieces):
        w.write(piece)
        await w.drain()
    w.write(tail)


@scenario("prom-many")
async def prom_many(req: Request, w: asyncio.StreamWriter) -> None:
    # Under the byte cap, but four million empty objects.
    body = (
        b'{"status":"success","data":{"resultType":"vector","result":['
        + b"{}," * 4_000_000
        + b"{}]}}"
    )
    w.write(_prom(body))


@scenario("prom-scalar")
async def prom_scalar(req: Request, w: asyncio.StreamWriter) -> None:
    w.write(_prom(b'{"status":"success","data":{"resultType":"scalar","result":[1,"1"]}}'))


@scenario("prom-string")
async def prom_string(req: Request, w: asyncio.StreamWriter) -> None:
    w.write(_prom(b'{"status":"success","data":{"resultType":"string","result":[1,"up"]}}'))


@scenario("prom-data-list")
async def prom_data_list(req: Request, w: asyncio.StreamWriter) -> None:
    w.write(_prom(b'{"status":"success","data":[1,2,3]}'))


@scenario("prom-odd-samples")
async def prom_odd_samples(req: Request, w: asyncio.StreamWriter) -> None:
    # Samples that are not objects, metrics that are not objects, labels that are not text;
    # one good sample among them.
    body = json.dumps(
        {
            "status": "success",
            "data": {
                "resultType": "vector",
                "result": [
                    5,
                    "x",
                    None,
                    {"metric": [1, 2], "value": [1, "1"]},
                    {"metric": "up", "value": [1, "1"]},
                    {"metric": {"instance": 7, "kanoa_figure": "up"}, "value": [1, "1"]},
                    {"metric": {"instance": "h:2", "kanoa_figure": ["up"]}, "value": [1, "1"]},
                    {"metric": {"instance": "h:3", "kanoa_figure": "models",
                                "model_name": {"a": 1}}, "value": "x"},
                    {"metric": {"instance": "h:1", "kanoa_figure": "up", "job": "vllm"},
                     "value": [1, "1"]},
                ],
            },
        }
    ).encode()
    if req.path.endswith("/query_range"):
        body = json.dumps(
            {
                "status": "success",
                "data": {
                    "resultType": "matrix",
                    "result": [
                        {"metric": "x", "values": [[1, "2"]]},
                        {"metric": {"instance": "h:1"}, "values": [5, [1], [1, "x"], [2, "3"]]},
                        {"metric": {"instance": "h:2"}, "values": "no"},
                    ],
                },
            }
        ).encode()
    w.write(_prom(body))


@scenario("prom-redirect")
async def prom_redirect(req: Request, w: asyncio.StreamWriter) -> None:
    w.write(_head("302 Found", extra="Location: http://prometheus.lab:9090/\r\n", length=0))


@scenario("prom-rich-error")
async def prom_rich_error(req: Request, w: asyncio.StreamWriter) -> None:
    # An error naming a local image as HTML, and terminal escapes: shown, never rendered.
    body = json.dumps(
        {"status": "error", "errorType": "bad_data",
         "error": '<img src="file:///etc/passwd"> \x1b]0;owned\x07 bad query'}
    ).encode()
    w.write(_prom(body, "400 Bad Request"))


@scenario("router-huge")
async def router_huge(req: Request, w: asyncio.StreamWriter) -> None:
    # A router whose /workers list is cut at the 4 MB cap; its Prometheus side (any other
    # path) answers an empty, valid vector.
    if req.path.endswith("/workers"):
        worker = b'{"url":"http://10.0.0.1:8000","model_id":"m","is_healthy":true,"load":0},'
        head = b'{"total":99999,"workers":['
        w.write(_head("200 OK") + head)
        for _ in range(6 * 1024 * 1024 // len(worker) // 100 + 1):
            w.write(worker * 100)
            await w.drain()
        return
    w.write(_prom(b'{"status":"success","data":{"resultType":"vector","result":[]}}'))


# --- a server whose every word is markup -------------------------------------------------------

# What a hostile server calls its model, its errors and its labels: HTML naming a local
# file. Rendered as rich text it would read that file; shown as text it is harmless.
MARK = "kanoa-hostile-mark"
HOSTILE_TEXT = f'<img src="file:///tmp/{MARK}.png"><b>{MARK}</b>'


@scenario("hostile-names")
async def hostile_names(req: Request, w: asyncio.StreamWriter) -> None:
    quoted = HOSTILE_TEXT.replace('"', '\\"')
    if req.path.endswith("/models"):
        body = json.dumps(
            {"object": "list", "data": [{"id": HOSTILE_TEXT, "object": "model",
                                         "owned_by": HOSTILE_TEXT, "root": HOSTILE_TEXT}]}
        ).encode()
        w.write(_head("200 OK", length=len(body)) + body)
    elif req.path == "/health":
        w.write(_head("200 OK", length=0))
    elif req.path.endswith("/metrics"):
        body = (
            "# TYPE vllm:num_requests_running gauge\n"
            f'vllm:num_requests_running{{model_name="{quoted}"}} 1\n'
            "# TYPE vllm:request_success counter\n"
            f'vllm:request_success_total{{finished_reason="{quoted}",model_name="{quoted}"}} 3\n'
        ).encode()
        w.write(_head("200 OK", "text/plain; version=0.0.4", length=len(body)) + body)
    elif "/api/v1/" in req.path:
        body = json.dumps({"status": "error", "errorType": "bad_data", "error": HOSTILE_TEXT})
        w.write(_prom(body.encode(), "400 Bad Request"))
    else:
        body = json.dumps({"error": {"message": HOSTILE_TEXT, "type": "invalid_request"}})
        w.write(_head("400 Bad Request", length=len(body)) + body.encode())


# Scenarios that misbehave only in the chat stream: their other GETs answer normally.
STREAM_ONLY = frozenset(
    {
        "reasoning-only",
        "runaway",
        "huge-chunks",
        "surrogate",
        "nan-usage",
        "absurd-usage",
        "huge-usage-int",
        "odd-shapes",
        "keepalive",
        "keepalive-after-token",
        "endless-line",
        "hostile-markdown",
    }
)


async def _well_behaved_get(req: Request, w: asyncio.StreamWriter) -> None:
    if req.path.endswith("/models"):
        body = json.dumps(
            {"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "test"}]}
        ).encode()
        w.write(_head("200 OK", length=len(body)) + body)
    elif req.path == "/health":
        w.write(_head("200 OK", length=0))
    else:
        w.write(_head("404 Not Found", length=0))


class HostileServer:
    """Serve every scenario on one loopback port; ``with HostileServer() as s: ...``."""

    def __init__(self, default: str | None = None) -> None:
        self.default = default  # the scenario for paths that name none (e.g. /v1/models)
        self.port = 0
        self.seen = Seen()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    def url(self, scenario: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{scenario}{path}"

    def api_base(self, scenario: str) -> str:
        return self.url(scenario, "/v1")

    def start(self) -> HostileServer:
        self._thread = threading.Thread(target=self._run, name="hostile-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the hostile test server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._shutdown)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._server is not None:
            self._server.close()
        assert self._loop is not None
        self._loop.call_later(0.2, self._loop.stop)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._server = loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            body = b""
            if headers.get("content-length", "0").isdigit():
                body = await reader.readexactly(int(headers.get("content-length", "0")))
            name, _, rest = target.lstrip("/").partition("/")
            req = Request(method, "/" + rest, headers, body, name)
            self.seen.requests.append(req)
            handler = SCENARIOS.get(name)
            if name in STREAM_ONLY and method == "GET":
                handler = _well_behaved_get  # a window asks /health and /v1/models first
            if handler is None and self.default is not None:
                handler = SCENARIOS[self.default]
                req = Request(method, target, headers, body, self.default)
            if handler is None:
                writer.write(_head("404 Not Found", length=0))
            else:
                await handler(req, writer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
