"""Finding local servers: real servers on loopback, a closed port, a web page, a silent port."""

from __future__ import annotations

import http.server
import socket
import threading

import pytest

from kanoa_desktop.core.endpoint.discovery import (
    DEFAULT_PORTS,
    MAX_PORTS,
    discover,
    parse_ports,
    ports_to_probe,
)
from tests.servers.llama import free_port
from tests.servers.vllm_server import VLLMTestServer


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        body = b"<html>not a model server</html>"
        self.send_response(200 if self.path == "/" else 404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def web_page():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_port():
    """A port that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


@pytest.mark.llama
async def test_finds_llama_server_on_a_non_default_port_with_its_model(llama_server):
    found = await discover(ports=[llama_server.port])
    assert len(found) == 1
    server = found[0]
    assert server.kind == "llama.cpp" and server.state == "ok"
    assert server.api_base == llama_server.api_base
    assert server.model == llama_server.model
    # meta.n_ctx is the context of one slot: the total split over the parallel slots
    assert server.models[0].context_length == llama_server.ctx_size // llama_server.parallel
    assert server.preset_key == "llama.cpp"
    assert server.label == f"llama.cpp on port {llama_server.port}"


async def test_tells_vllm_apart_and_reads_its_version():
    with VLLMTestServer() as vllm:
        found = await discover(ports=[vllm.port])
    assert [(f.kind, f.model, f.version) for f in found] == [("vllm", "qwen2.5-vl-7b", "0.33.0")]


async def test_a_server_that_needs_a_key_is_offered_as_such():
    with VLLMTestServer(api_key="sk-discovery-test") as vllm:
        found = await discover(ports=[vllm.port])
    assert [(f.kind, f.state, f.models) for f in found] == [("vllm", "needs-key", ())]
    assert "needs an API key" in found[0].summary


async def test_closed_silent_and_non_model_ports_are_left_out(web_page, silent_port):
    closed = free_port()
    with VLLMTestServer() as vllm:
        found = await discover(ports=[closed, web_page, silent_port, vllm.port], timeout_s=0.5)
    # Only the real server; the silent port cost its timeout, not a hang.
    assert [f.port for f in found] == [vllm.port]


def test_typed_ports_are_parsed_with_a_clear_message_for_nonsense():
    assert parse_ports("8081, 9000 localhost:5000 http://127.0.0.1:7000/v1") == [
        8081,
        9000,
        5000,
        7000,
    ]
    with pytest.raises(ValueError, match="“abc” is not a port number"):
        parse_ports("8081 abc")
    with pytest.raises(ValueError, match="not a port number"):
        parse_ports("70000")


def test_the_usual_ports_come_first_and_the_probe_is_bounded():
    ports = ports_to_probe([8080, 9999])
    assert ports[: len(DEFAULT_PORTS)] == [8000, 8080, 11434, 1234]
    assert ports.count(8080) == 1 and 9999 in ports
    assert len(ports_to_probe(range(20000, 20100))) == MAX_PORTS
