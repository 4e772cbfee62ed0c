"""One TLS context for every client (issue 18): building one reads the whole CA bundle, so
each new client used to stall the thread that made it."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx

from kanoa_desktop.core.endpoint import tls
from kanoa_desktop.core.endpoint.bodies import CappedTransport
from kanoa_desktop.core.endpoint.client import ChatClient


def _context_of(transport: CappedTransport) -> ssl.SSLContext:
    inner = transport._inner
    assert isinstance(inner, httpx.AsyncHTTPTransport)
    return inner._pool._ssl_context


def test_clients_and_transports_share_one_verifying_context():
    shared = tls.default_context()
    assert shared.verify_mode == ssl.CERT_REQUIRED and shared.check_hostname
    assert tls.shared_verify() is shared and tls.shared_verify(True) is shared
    assert _context_of(CappedTransport(max_body_bytes=1024)) is shared
    a, b = ChatClient("https://a.example/v1"), ChatClient("http://127.0.0.1:9/v1")
    assert _context_of(a._http._transport) is shared
    assert _context_of(b._http._transport) is shared


def test_no_verification_and_a_ca_bundle_are_kept_as_asked(tmp_path):
    assert tls.shared_verify(False) is False
    own = ssl.create_default_context()
    assert tls.shared_verify(own) is own
    assert _context_of(CappedTransport(max_body_bytes=1, verify=False)) is not tls.default_context()
    # A CA-bundle path gets its own context (test_errors shows it trusts that bundle).
    bundle = tmp_path / "ca.pem"
    import certifi

    bundle.write_bytes(Path(certifi.where()).read_bytes())
    ctx = tls.shared_verify(str(bundle))
    assert isinstance(ctx, ssl.SSLContext) and ctx is not tls.default_context()


def test_the_shared_context_follows_ssl_cert_file(monkeypatch, tmp_path):
    import certifi

    before = tls.default_context()
    bundle = tmp_path / "lab-ca.pem"
    bundle.write_bytes(Path(certifi.where()).read_bytes())
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    after = tls.default_context()
    assert after is not before and tls.default_context() is after
    monkeypatch.undo()  # the environment as it was: its context again, not a third one
    assert tls.default_context() is before
