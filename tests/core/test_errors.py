"""Every error shape servers.md lists becomes the right typed error with plain words."""

from __future__ import annotations

import json
import logging
import socket
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest

from kanoa_desktop.core.endpoint import errors as E
from kanoa_desktop.core.endpoint.chat import ChatRequest, user_message
from kanoa_desktop.core.endpoint.client import ChatClient, collect


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (401, {"error": "Unauthorized"}, E.AuthFailed),  # vLLM --api-key
        (
            401,
            {"error": {"message": "Invalid API Key", "type": "authentication_error", "code": 401}},
            E.AuthFailed,
        ),
        (401, {"detail": "Invalid API key"}, E.AuthFailed),  # llama-cpp-python
        (403, "<html><body>Forbidden</body></html>", E.AuthFailed),  # a proxy
        (
            503,
            {"error": {"message": "Loading model", "type": "unavailable_error", "code": 503}},
            E.ServerLoading,
        ),
        (503, "", E.ServerBusy),  # vLLM queue full
        (
            404,
            {
                "error": {
                    "message": "The model `x` does not exist. Valid aliases: a, b.",
                    "type": "NotFoundError",
                    "param": "model",
                    "code": 404,
                }
            },
            E.ModelNotFound,
        ),
        (
            404,
            {
                "object": "error",
                "message": "The model `x` does not exist.",
                "type": "NotFoundError",
                "param": None,
                "code": 404,
            },
            E.ModelNotFound,
        ),
        (
            400,
            {
                "error": {
                    "code": 400,
                    "message": "request (5031 tokens) exceeds the available context size (4096 tokens), try increasing it",
                    "type": "exceed_context_size_error",
                    "n_prompt_tokens": 5031,
                    "n_ctx": 4096,
                }
            },
            E.ContextOverflow,
        ),
        (
            400,
            {
                "error": {
                    "message": "max_tokens=40000 cannot be greater than max_model_len=32768. Please request fewer output tokens.",
                    "type": "BadRequestError",
                    "param": None,
                    "code": 400,
                }
            },
            E.ContextOverflow,
        ),
        (
            400,
            {
                "error": {
                    "message": "qwen2.5-7b is not a multimodal model",
                    "type": "BadRequestError",
                    "code": 400,
                }
            },
            E.VisionUnsupported,
        ),
        (
            500,
            {
                "error": {
                    "code": 500,
                    "message": "image input is not supported - hint: if this is unexpected, you may need to provide the mmproj",
                    "type": "server_error",
                }
            },
            E.VisionUnsupported,
        ),
        (
            400,
            {
                "error": {
                    "message": "At most 1 image(s) may be provided in one prompt.",
                    "type": "BadRequestError",
                    "param": "image",
                    "code": 400,
                }
            },
            E.TooManyImages,
        ),
        (
            400,
            {
                "error": {
                    "message": "1 validation error: messages field required",
                    "type": "BadRequestError",
                    "code": 400,
                }
            },
            E.BadRequest,
        ),
        (
            500,
            {"error": {"message": "boom", "type": "InternalServerError", "code": 500}},
            E.ServerError,
        ),
        (502, "<html>Bad gateway</html>", E.ServerError),
        (404, "Not Found", E.BadRequest),  # wrong base URL
    ],
)
def test_error_bodies_map_to_typed_errors(status, body, cls):
    raw = body if isinstance(body, str) else json.dumps(body)
    err = E.error_from_status(status, raw, model="x", api_base="http://h:8000/v1")
    assert type(err) is cls
    assert err.message.endswith(".") and err.hint
    assert "<html" not in err.message


def test_valid_models_are_listed_for_an_unknown_model():
    body = json.dumps(
        {
            "error": {
                "message": "The model `x` does not exist. Valid aliases: qwen, gemma.",
                "param": "model",
                "code": 404,
            }
        }
    )
    err = E.error_from_status(404, body, model="x")
    assert err.valid_models == ["qwen", "gemma"]
    assert "qwen, gemma" in err.hint


def test_too_many_images_knows_the_limit():
    body = json.dumps(
        {
            "error": {
                "message": "At most 1 image(s) may be provided in one prompt.",
                "param": "image",
                "code": 400,
            }
        }
    )
    assert E.error_from_status(400, body).max_images == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _req() -> ChatRequest:
    return ChatRequest("m", [user_message("hi")], max_tokens=4)


async def test_nothing_listening_is_connection_refused_and_health_down():
    async with ChatClient(f"http://127.0.0.1:{_free_port()}/v1") as client:
        with pytest.raises(E.ConnectionRefused) as info:
            await collect(client, _req())
        health = await client.health()
    assert info.value.retryable and "Nothing is listening" in info.value.message
    assert health.state == "down" and "loaded" in health.detail


async def test_unknown_host_is_a_dns_failure():
    async with ChatClient("http://kanoa-no-such-host.invalid:8000/v1") as client:
        with pytest.raises(E.DnsFailure):
            await client.models()


async def test_invalid_url_is_a_plain_message():
    async with ChatClient("localhost:8000/v1") as client:
        with pytest.raises(E.KanoaError) as info:
            await client.models()
    assert "not a valid server address" in info.value.message


async def test_connect_timeout_maps_to_connect_timeout():
    # A connect timeout cannot be provoked on loopback; fake it at the transport boundary.
    def handler(request):
        raise httpx.ConnectTimeout("timed out", request=request)

    async with ChatClient(
        "http://10.255.255.1:8000/v1", transport=httpx.MockTransport(handler)
    ) as client:
        with pytest.raises(E.ConnectTimeout) as info:
            await collect(client, _req())
    assert "timed out" in info.value.message


@pytest.fixture
def tls_server(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'{"object":"list","data":[{"id":"m","object":"model"}]}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"https://127.0.0.1:{httpd.server_address[1]}/v1", cert
    httpd.shutdown()
    httpd.server_close()


async def test_untrusted_certificate_is_a_tls_failure_and_a_ca_bundle_fixes_it(tls_server):
    url, cert = tls_server
    async with ChatClient(url) as client:
        with pytest.raises(E.TlsFailure) as info:
            await client.models()
    assert "CA bundle" in info.value.hint
    async with ChatClient(url, verify=str(cert)) as client:
        assert [m.id for m in await client.models()] == ["m"]


async def test_api_key_never_appears_in_logs_or_reprs(vllm_server, caplog):
    key = "sk-secret-never-log-9876"
    caplog.set_level(logging.DEBUG)
    client = ChatClient(vllm_server.api_base, api_key=key)
    async with client:
        await collect(client, ChatRequest("qwen2.5-vl-7b", [user_message("hi")], max_tokens=3))
        await client.models()
    assert vllm_server.received[-1].headers.get("Authorization") == f"Bearer {key}"  # it was sent
    assert caplog.records  # httpx/httpcore did log at DEBUG
    assert key not in caplog.text
    assert key not in repr(client)


async def test_a_keep_alive_connection_the_server_closed_is_retried_once():
    # The stale-connection race (the server closed an idle pooled connection just as we
    # reused it) only shows up under load; reproduce its exact exception at the transport.
    calls = []

    def handler(request):
        calls.append(request.url.path)
        if len(calls) == 1:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        return httpx.Response(
            200, json={"object": "list", "data": [{"id": "m", "max_model_len": 8}]}
        )

    async with ChatClient(
        "http://127.0.0.1:1/v1", transport=httpx.MockTransport(handler)
    ) as client:
        models = await client.models()
    assert [m.id for m in models] == ["m"] and len(calls) == 2


async def test_a_server_that_keeps_disconnecting_is_still_an_error():
    def handler(request):
        raise httpx.RemoteProtocolError(
            "Server disconnected without sending a response.", request=request
        )

    async with ChatClient(
        "http://127.0.0.1:1/v1", transport=httpx.MockTransport(handler)
    ) as client:
        with pytest.raises(E.ConnectionFailed):
            await collect(client, _req())
