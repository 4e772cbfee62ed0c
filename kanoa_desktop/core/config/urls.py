"""URL rules for a server's API base, with no imports: the profiles use them while the
window is being built, before the HTTP client code is loaded (issue 18)."""

from __future__ import annotations


def root_url(api_base: str) -> str:
    """The server root for an API base: ``http://h:8000/v1`` -> ``http://h:8000`` (and
    ``http://h:8000/v1/`` too; a base without ``/v1`` is its own root)."""
    base = api_base.strip().rstrip("/")
    if base.endswith("/v1"):
        base = base[: -len("/v1")]
    return base


__all__ = ["root_url"]
