"""Find model servers already running on this machine: the first-run card's probe.

:func:`discover` asks the usual local ports (vLLM 8000, llama.cpp 8080, Ollama 11434,
LM Studio 1234) plus any the user names, all at once, each bounded by a short timeout, and
returns what answers like an OpenAI-compatible server, with its kind and models. A port
that is closed, silent, or serves something else (a web page, a 404) is left out: we never
offer an address that would fail on the first question.

How a kind is told apart (each server's own answers, not its port):
- vLLM: ``/v1/models`` entries ``owned_by: "vllm"``; ``/version`` gives the version.
- llama.cpp ``llama-server``: entries ``owned_by: "llamacpp"``, context in ``meta.n_ctx``.
- Ollama: ``/api/version`` answers ``{"version": ...}``.
- LM Studio: its own REST API ``/api/v0/models`` answers beside ``/v1``.
Anything else that lists models is "other" (an OpenAI-compatible server).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import httpx

from kanoa_desktop.core.endpoint.bodies import CappedTransport, MiB
from kanoa_desktop.core.endpoint.client import ModelInfo, parse_model_entry

ServerKind = Literal["vllm", "llama.cpp", "ollama", "lm-studio", "other"]
ServerState = Literal["ok", "loading", "needs-key"]

# The ports each server listens on by default, in the order the card lists them.
DEFAULT_PORTS: tuple[tuple[int, ServerKind], ...] = (
    (8000, "vllm"),
    (8080, "llama.cpp"),
    (11434, "ollama"),
    (1234, "lm-studio"),
)

KIND_LABELS: dict[str, str] = {
    "vllm": "vLLM",
    "llama.cpp": "llama.cpp",
    "ollama": "Ollama",
    "lm-studio": "LM Studio",
    "other": "OpenAI-compatible server",
}

# The profile preset for each kind (kanoa_desktop.core.config.profiles.PRESETS).
KIND_PRESETS: dict[str, str] = {
    "llama.cpp": "llama.cpp",
    "ollama": "ollama",
    "lm-studio": "lm-studio",
}

# One line for the card when nothing answers: the quickest way to a server on a laptop.
START_A_SERVER_HINT = (
    "No model server answers here. Start one — “llama-server -m model.gguf” (llama.cpp), "
    "“ollama serve” or “vllm serve MODEL” — then probe again."
)

# At most this many ports per probe: each is a connection attempt.
MAX_PORTS = 16
DEFAULT_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class FoundServer:
    """A server that answered on ``port``. ``models`` is empty when it needs a key or is
    still loading (``state``), or serves none yet (Ollama before ``ollama pull``)."""

    port: int
    api_base: str
    kind: ServerKind
    state: ServerState
    models: tuple[ModelInfo, ...] = ()
    version: str | None = None

    @property
    def label(self) -> str:
        """``llama.cpp on port 8080``."""
        return f"{KIND_LABELS[self.kind]} on port {self.port}"

    @property
    def model(self) -> str:
        """The first model it serves, or "" (the profile then asks the server)."""
        return self.models[0].id if self.models else ""

    @property
    def preset_key(self) -> str | None:
        return KIND_PRESETS.get(self.kind)

    @property
    def summary(self) -> str:
        """One line for the card: what answered and with which model."""
        if self.state == "loading":
            return f"{self.label}: loading its model"
        if self.state == "needs-key":
            return f"{self.label}: answers, needs an API key"
        if not self.models:
            return f"{self.label}: no model loaded yet"
        more = f" (+{len(self.models) - 1} more)" if len(self.models) > 1 else ""
        return f"{self.label}: {self.model}{more}"


def parse_ports(text: str) -> list[int]:
    """Ports typed by the user ("8081, 9000 5000"); raises ValueError with a sentence the
    user can read when one is not a port number."""
    ports: list[int] = []
    for token in text.replace(",", " ").split():
        if ":" in token:  # "localhost:8081" or "http://127.0.0.1:8081/v1"
            token = token.rstrip("/").removesuffix("/v1").rsplit(":", 1)[-1]
        if not token.isdigit() or not 0 < int(token) < 65536:
            raise ValueError(f"“{token}” is not a port number (1 to 65535).")
        ports.append(int(token))
    return ports


def ports_to_probe(extra: Iterable[int] = ()) -> list[int]:
    """The default ports then ``extra``, each once, at most :data:`MAX_PORTS`."""
    ordered = dict.fromkeys([p for p, _ in DEFAULT_PORTS] + list(extra))
    return list(ordered)[:MAX_PORTS]


async def discover(
    extra_ports: Iterable[int] = (),
    *,
    host: str = "127.0.0.1",
    ports: Sequence[int] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[FoundServer]:
    """Probe the ports concurrently; the servers that answered, in port-list order.

    Each port gets at most ``timeout_s`` in all (a port that accepts and never answers
    costs that much, no more); the whole probe takes about the slowest port. Never raises
    for network trouble: a port that fails is simply not in the result.
    """
    chosen = list(ports) if ports is not None else ports_to_probe(extra_ports)
    chosen = list(dict.fromkeys(chosen))[:MAX_PORTS]
    timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 1.0))

    def make_client() -> httpx.AsyncClient:
        # A port that answers with a body without end must not grow memory while probed.
        capped = CappedTransport(transport, max_body_bytes=4 * MiB, deadline_s=2 * timeout_s + 1)
        return httpx.AsyncClient(
            timeout=timeout, transport=capped, headers={"User-Agent": "kanoa-desktop"}
        )

    # The transport's TLS context reads the CA bundle (tens of ms; hundreds on a busy
    # machine): made on a worker thread, so the window probing at start never stalls.
    async with await asyncio.to_thread(make_client) as http:

        async def bounded(port: int) -> FoundServer | None:
            try:
                return await asyncio.wait_for(_probe(http, host, port), timeout_s)
            except (TimeoutError, httpx.HTTPError, OSError, ValueError):
                return None

        found = await asyncio.gather(*(bounded(p) for p in chosen))
    return [f for f in found if f is not None]


async def _probe(http: httpx.AsyncClient, host: str, port: int) -> FoundServer | None:
    root = f"http://{host}:{port}"
    api_base = root + "/v1"
    resp = await http.get(api_base + "/models")
    if resp.status_code in (401, 403):
        return FoundServer(port, api_base, await _kind(http, root, ()), "needs-key")
    if resp.status_code == 503:
        # llama.cpp answers 503 "Loading model" on every path while it loads.
        return FoundServer(port, api_base, "llama.cpp" if _loading(resp) else "other", "loading")
    if resp.status_code != 200:
        return None
    data = resp.json()
    entries = data.get("data") if isinstance(data, dict) else None
    if entries is None and isinstance(data, dict) and data.get("object") == "list":
        entries = []  # Ollama with no model pulled
    if not isinstance(entries, list):
        return None  # not an OpenAI-compatible model list
    models = tuple(parse_model_entry(e) for e in entries if isinstance(e, dict) and "id" in e)
    kind = await _kind(http, root, models)
    version = await _version(http, root, kind)
    return FoundServer(port, api_base, kind, "ok", models, version)


def _loading(resp: httpx.Response) -> bool:
    try:
        error = resp.json().get("error", {})
    except (ValueError, AttributeError):
        return False
    return isinstance(error, dict) and "loading" in str(error.get("message", "")).lower()


async def _kind(http: httpx.AsyncClient, root: str, models: Sequence[ModelInfo]) -> ServerKind:
    owners = {m.owned_by for m in models}
    if "vllm" in owners:
        return "vllm"
    if "llamacpp" in owners:
        return "llama.cpp"
    if await _json_ok(http, root + "/api/version", "version"):
        return "ollama"
    if await _json_ok(http, root + "/api/v0/models", "data"):
        return "lm-studio"
    if await _json_ok(http, root + "/version", "version"):
        return "vllm"  # a vLLM that serves no model list entries we recognise
    if await _json_ok(http, root + "/props", "build_info"):
        return "llama.cpp"
    return "other"


async def _json_ok(http: httpx.AsyncClient, url: str, key: str) -> bool:
    try:
        resp = await http.get(url)
        return resp.status_code == 200 and key in resp.json()
    except (httpx.HTTPError, ValueError, TypeError):
        return False


async def _version(http: httpx.AsyncClient, root: str, kind: ServerKind) -> str | None:
    path = {"vllm": "/version", "ollama": "/api/version"}.get(kind)
    if path is None:
        return None
    try:
        resp = await http.get(root + path)
        version = resp.json().get("version") if resp.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return str(version) if version else None
