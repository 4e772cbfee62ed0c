"""Nothing listening: the banner's hint names the command of the profile's own server."""

from __future__ import annotations

import dataclasses

import pytest

from kanoa_desktop.core.config.profiles import Profile, start_server_hint
from tests.servers.llama import free_port
from tests.ui.conftest import wait_until


@pytest.mark.parametrize(
    ("values", "says", "never"),
    [
        ({"preset": "llama.cpp"}, "llama-server -m model.gguf --port", "vllm serve"),
        ({"preset": None, "model": "google/gemma-3-4b-it"}, "vllm serve google/gemma-3-4b-it",
         "llama-server"),
    ],
)  # fmt: skip
def test_a_refused_question_says_how_to_start_the_profiles_server(
    make_window, run, values, says, never
):
    port = free_port()
    w = make_window(f"http://127.0.0.1:{port}/v1", values.get("model", "smollm2"))
    # As the first-run card makes it: a llama.cpp profile carries its preset.
    w.store.update(dataclasses.replace(w.profile, preset=values["preset"]))
    w._on_profile_changed(w.store.active)
    w.inputs.question.setPlainText("What is plotted?")
    w.interpret()
    run(wait_until(lambda: w.banner.isVisible() and w.banner.hint.text(), 60, "the error"))
    hint = w.banner.hint.text()
    assert says in hint and never not in hint and str(port) in hint


def test_hints_follow_the_port_of_a_profile_made_by_hand():
    assert "ollama serve" in start_server_hint(Profile(api_base="http://localhost:11434/v1"))
    assert "llama-server" in start_server_hint(Profile(api_base="http://gpu:8080/v1"))
    assert "vllm serve" in start_server_hint(Profile(api_base="http://gpu:8000/v1"))
