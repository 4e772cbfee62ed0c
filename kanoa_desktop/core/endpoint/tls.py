"""One verifying TLS context for every HTTP client the app makes.

Building an ``ssl.SSLContext`` reads and parses the whole CA bundle: 50-100 ms here, more
on a busy machine. httpx builds one per client (even for ``http://`` URLs), so each new
client stalled the thread that made it: the window's GPU poller, the first question's
client, a probe (issue 18). :func:`shared_verify` gives every client the same context,
built once; the window builds it on a worker thread after its first paint
(``ui/preload``), where the CA load runs without the GIL.

The context is httpx's own default (:func:`httpx.create_ssl_context`: certifi's bundle,
or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set), so verification is unchanged; it is
rebuilt if those variables change. An ``SSLContext`` is safe to share between
connections and threads.
"""

from __future__ import annotations

import os
import ssl
import threading

_lock = threading.Lock()
_cache: dict[tuple[str | None, str | None], ssl.SSLContext] = {}


def default_context() -> ssl.SSLContext:
    """The shared verifying context (built on the first call, by whichever thread)."""
    key = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    with _lock:
        ctx = _cache.get(key)
        if ctx is None:
            import httpx

            ctx = _cache[key] = httpx.create_ssl_context()
        return ctx


def shared_verify(verify: bool | str | ssl.SSLContext = True) -> bool | ssl.SSLContext:
    """What to pass as httpx's ``verify``: the shared context for ``True``, a context for
    a CA-bundle path, and ``False`` or a given context as they are."""
    if verify is True:
        return default_context()
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return verify


__all__ = ["default_context", "shared_verify"]
