"""``kanoa-desktop interpret FIGURE`` against the real llama.cpp server, as a user runs it."""

from __future__ import annotations

import pytest
from PIL import Image

from tests.servers import make_mmproj
from tests.test_cli import _run

pytestmark = [pytest.mark.llama, pytest.mark.timeout(240)]


def _figure(tmp_path):
    png = tmp_path / "plot.png"
    img = Image.new("RGB", (300, 200), "white")
    for x in range(300):
        img.putpixel((x, 199 - (x * x) // 450), (20, 20, 200))
    img.save(png)
    return png


def test_interpret_a_figure_streams_an_answer_with_the_servers_usage(tmp_path, llama_vision_server):
    out = _run(["interpret", str(_figure(tmp_path)), "--api-base", llama_vision_server.api_base,
                "--max-tokens", "24", "--focus", "the curve"])  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[-1].startswith("[usage] prompt ") and "(estimated)" not in lines[-1]
    prompt = int(lines[-1].split("prompt ")[1].split(" tokens")[0])
    assert prompt > make_mmproj.TOKENS_PER_IMAGE  # the figure's tokens, counted by the server


def test_interpret_a_figure_against_the_text_only_server_says_why_and_fails(tmp_path, llama_server):
    out = _run(["interpret", str(_figure(tmp_path)), "--api-base", llama_server.api_base,
                "--max-tokens", "8"])  # fmt: skip
    assert out.returncode == 1
    assert "cannot read images" in out.stderr and "hint:" in out.stderr
    assert "Traceback" not in out.stderr
