"""Fixtures shared by the whole suite.

- Every test gets its own KANOA_DESKTOP_HOME, so nothing touches a developer's real config.
- The keychain is the ``fail`` backend unless a test installs its own: no test can write
  to a developer's real keychain.
- ``llama_server``: the real llama.cpp server (session-scoped, with --metrics). Missing
  binaries fail the test; they are never skipped.
- ``llama_vision_server``: the same server with a tiny vision projector (``--mmproj``,
  tests/servers/make_mmproj.py): it really accepts, decodes and counts images.
- ``vllm_server``: the vLLM 0.33 test server under tests/servers.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"

import pytest  # noqa: E402

from tests.servers.llama import LlamaServer, missing_reason  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    home = tmp_path / "kanoa-home"
    monkeypatch.setenv("KANOA_DESKTOP_HOME", str(home))
    yield home


@pytest.fixture(autouse=True)
def _no_swallowed_qt_error():
    """A Qt override that raised is logged and answered with a default (ui/qt_guard.py),
    so the window survives; in a test it is a failure. (qt_guard itself imports no Qt.)"""
    from kanoa_desktop.ui import qt_guard

    qt_guard.clear()
    yield
    errors = qt_guard.caught()
    qt_guard.clear()
    if errors:
        where, exc = errors[0]
        pytest.fail(
            f"{len(errors)} error(s) in Qt overrides, the first in {where}: "
            f"{type(exc).__name__}: {exc}",
            pytrace=False,
        )


def _start_llama(tmp_path_factory, **kw) -> LlamaServer:
    reason = missing_reason(vision=kw.get("vision", False))
    if reason:
        pytest.fail(reason, pytrace=False)
    return LlamaServer(**kw).start(tmp_path_factory.mktemp("llama-logs"))


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    server = _start_llama(tmp_path_factory)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def llama_vision_server(tmp_path_factory):
    """llama-server with ``--mmproj``: /props says vision, images cost real tokens."""
    server = _start_llama(tmp_path_factory, vision=True)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def llama_server_with_key(tmp_path_factory):
    server = _start_llama(tmp_path_factory, api_key="sk-test-llama-secret-4242", parallel=1)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def llama_embedding_server(tmp_path_factory):
    """llama-server that also serves /v1/embeddings (mean pooling) beside chat."""
    server = _start_llama(
        tmp_path_factory, parallel=1, extra_args=("--embeddings", "--pooling", "mean")
    )
    yield server
    server.stop()


@pytest.fixture
def vllm_server():
    from tests.servers.vllm_server import VLLMTestServer

    server = VLLMTestServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def vllm_text_server():
    """A vLLM test server serving a text-only model."""
    from tests.servers.vllm_server import VLLMTestServer

    server = VLLMTestServer(
        model="gemma-3-12b-text", root="google/gemma-3-12b-it", multimodal=False
    )
    server.start()
    yield server
    server.stop()
