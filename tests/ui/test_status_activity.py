"""The status bar says what the server is doing while the answer is awaited, and follows
the connection: a server that stops listening ends "Streaming" at once."""

from __future__ import annotations

from tests.servers.vllm_server import VLLMTestServer
from tests.ui.conftest import wait_until

QUESTION = "Summarise: " + "growth curve of strain B in LB at 37 degrees. " * 400


def test_the_status_shows_the_wait_then_the_answer(make_window, run):
    with VLLMTestServer(prefill_tokens_per_second=1500, answer_tokens=6) as server:
        w = make_window(server.api_base, server.model, max_tokens=8)
        w.inputs.question.setPlainText(QUESTION)
        w.interpret()
        run(wait_until(lambda: w.status.state.text().startswith("Waiting for the first token · "),
                       120, "the wait shown"))  # fmt: skip
        run(wait_until(lambda: not w.streaming, 120, "answered"))
    assert w.status.state.text() == "Finished"  # the endings' word


def test_a_server_that_stops_listening_ends_streaming_at_once(make_window, run):
    with VLLMTestServer(tokens_per_second=0.2, answer_tokens=50) as server:
        w = make_window(server.api_base, server.model, progress_timeout_s=600)
        w.inputs.question.setPlainText("What is plotted?")
        w.interpret()
        run(wait_until(lambda: w.status.state.text().startswith("Streaming"), 120, "streams"))
        server._httpd.socket.close()  # the port closes; the answer's connection lingers
        run(wait_until(lambda: not w.streaming, 120, "the turn ended"))
        assert w.status.state.text().startswith("Error")
        assert w.banner.isVisible() and "stopped" in w.banner.message.text()
