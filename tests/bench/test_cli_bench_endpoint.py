"""``kanoa-desktop bench-endpoint`` against the vLLM test server."""

from __future__ import annotations

import argparse

import pytest

from kanoa_desktop.cli import bench_endpoint
from kanoa_desktop.core.config.profiles import ProfileStore
from tests.servers.vllm_server import VLLMTestServer

pytestmark = pytest.mark.timeout(60)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench_endpoint.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["bench-endpoint", *argv])


def test_profile_run_prints_the_table_and_writes_markdown(tmp_path, capsys):
    with VLLMTestServer(multimodal=False, tokens_per_second=2000, answer_tokens=20) as server:
        store = ProfileStore()
        store.load()
        store.update(store.active.with_user_values(name="lab", api_base=server.api_base,
                                                   model=server.model))  # fmt: skip
        store.save()
        out_md = tmp_path / "bench.md"
        code = bench_endpoint.run(_args("--profile", "lab", "--runs", "2",
                                        "--markdown", str(out_md)))  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "[16/16]" in out
    assert "Skipped: text-only model" in out
    written = out_md.read_text()
    assert written in out
    assert f"**{server.model} Statistics** (2-run benchmark):" in written
    assert "| **Basic Chat** |" in written


def test_unknown_profile_is_a_message_not_a_traceback(capsys):
    assert bench_endpoint.run(_args("--profile", "nope")) == 1
    err = capsys.readouterr().err
    assert "no profile named 'nope'" in err and "--api-base" in err


def test_api_base_override_without_model_uses_the_servers_first_model(capsys):
    with VLLMTestServer(tokens_per_second=2000, answer_tokens=8) as server:
        code = bench_endpoint.run(_args("--api-base", server.api_base, "--runs", "1"))
    out = capsys.readouterr().out
    assert code == 0
    assert f"**{server.model} Statistics** (1-run benchmark):" in out
    assert "| **Vision - Photo** | " in out and "Skipped" not in out


def test_closed_port_exits_1_with_the_reason(capsys):
    with VLLMTestServer() as server:
        base = server.api_base
    code = bench_endpoint.run(_args("--api-base", base, "--model", "m", "--runs", "1"))
    captured = capsys.readouterr()
    assert code == 1
    assert "error:" in captured.err
