"""Run the real vLLM router (PyPI ``vllm-router`` 0.1.17, a Rust binary in a wheel) for tests.

A plain process on free loopback ports: the main port and its own Prometheus metrics port
(a taken metrics port makes it panic, so every router gets a fresh one). The test extras
install the wheel; when the executable is missing the fixtures fail (never skip).

Use::

    router = VllmRouter([a.base_url, b.base_url]).start(tmp_path)   # default mode
    igw = VllmRouter([], igw=True).start(tmp_path); igw.add_worker(a.base_url)
    ...
    router.stop()
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from tests.servers.llama import free_port


def router_binary() -> str | None:
    beside = Path(sys.executable).parent / "vllm-router"
    if beside.is_file():
        return str(beside)
    return shutil.which("vllm-router")


def missing_reason() -> str | None:
    if router_binary() is None:
        return (
            "vllm-router is not installed: run `make test` (the test extras install "
            "vllm-router 0.1.17) or `pip install vllm-router==0.1.17`."
        )
    return None


class VllmRouter:
    """A ``vllm-router`` process. ``igw=True`` starts it with ``--enable-igw`` (no workers:
    add them with :meth:`add_worker`; routing then follows the model name)."""

    def __init__(
        self,
        worker_urls: Sequence[str] = (),
        *,
        igw: bool = False,
        policy: str = "round_robin",
        health_check_interval_s: int = 1,
        startup_timeout_s: int = 30,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.worker_urls = list(worker_urls)
        self.igw = igw
        self.policy = policy
        self.health_check_interval_s = health_check_interval_s
        self.startup_timeout_s = startup_timeout_s
        self.extra_args = list(extra_args)
        self.port = free_port()
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return self.base_url + "/v1"

    @property
    def metrics_address(self) -> str:
        """``host:port`` of the router's own metrics (a Prometheus target)."""
        return f"127.0.0.1:{self.metrics_port}"

    def start(self, log_dir: Path, timeout: float = 40.0) -> VllmRouter:
        reason = missing_reason()
        if reason:
            raise RuntimeError(reason)
        args = [
            str(router_binary()),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--policy", self.policy,
            "--prometheus-host", "127.0.0.1",
            "--prometheus-port", str(self.metrics_port),
            "--health-check-interval-secs", str(self.health_check_interval_s),
            "--worker-startup-timeout-secs", str(self.startup_timeout_s),
            "--log-level", "warning",
        ]  # fmt: skip
        if self.igw:
            args.append("--enable-igw")
        else:
            args += ["--worker-urls", *self.worker_urls]
        args += self.extra_args
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"vllm-router-{self.port}.log"
        log = open(self.log_path, "wb")  # noqa: SIM115 - lives as the process
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        ready = "/liveness" if self.igw else "/readiness"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"vllm-router exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                if httpx.get(self.base_url + ready, timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"vllm-router did not become ready in {timeout}s:\n{self.log_tail()}")

    def add_worker(self, url: str) -> dict:
        """``POST /workers`` (``--enable-igw`` mode): the router discovers the model."""
        r = httpx.post(self.base_url + "/workers", json={"url": url}, timeout=10.0)
        r.raise_for_status()
        return r.json()

    def workers(self) -> list[dict]:
        return httpx.get(self.base_url + "/workers", timeout=5.0).json()["workers"]

    def wait_healthy(self, n: int, timeout: float = 20.0) -> None:
        """Wait until exactly ``n`` workers are healthy in the router's eyes."""
        deadline = time.monotonic() + timeout
        healthy = -1
        while time.monotonic() < deadline:
            healthy = sum(1 for w in self.workers() if w.get("is_healthy"))
            if healthy == n:
                return
            time.sleep(0.3)
        raise RuntimeError(f"router shows {healthy} healthy workers, not {n}, after {timeout}s")

    def log_tail(self, n: int = 30) -> str:
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
