"""Run the real Prometheus server (Debian's ``prometheus`` 2.42) for tests and benchmarks.

A plain process on a free loopback port with a generated config (JSON is valid YAML) and
its time-series database in a temporary folder. ``make test``'s system step installs the
package; when the binary is missing the fixtures fail (never skip) with a sentence saying
how to install it.

Use::

    prom = PrometheusServer({"vllm": ["127.0.0.1:8001"], "router": ["127.0.0.1:9001"]})
    prom.start(tmp_path)
    prom.wait_for_targets()          # every target scraped at least once
    ...
    prom.stop()
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from tests.servers.llama import free_port

PROMETHEUS_BINARY_ENV = "KANOA_TEST_PROMETHEUS"


def prometheus_binary() -> str | None:
    return os.environ.get(PROMETHEUS_BINARY_ENV) or shutil.which("prometheus")


def missing_reason() -> str | None:
    if prometheus_binary() is None:
        return (
            "The prometheus binary is not installed: run `make test` (its system step "
            "installs Debian's prometheus package) or `apt-get install prometheus`."
        )
    return None


class PrometheusServer:
    """A Prometheus process scraping ``targets`` (job name -> ``host:port`` list).

    ``metrics_paths`` maps a job to its metrics path (default ``/metrics``).
    ``scrape_interval_s`` is kept small (1 s) so tests see results after a few seconds.
    """

    def __init__(
        self,
        targets: Mapping[str, Sequence[str]],
        *,
        scrape_interval_s: float = 1.0,
        metrics_paths: Mapping[str, str] | None = None,
    ) -> None:
        self.targets = {job: list(addrs) for job, addrs in targets.items()}
        self.scrape_interval_s = scrape_interval_s
        self.metrics_paths = dict(metrics_paths or {})
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self.started_at: float | None = None  # time.time() when it became ready

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict:
        interval = f"{int(self.scrape_interval_s * 1000)}ms"
        return {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "scrape_configs": [
                {
                    "job_name": job,
                    "metrics_path": self.metrics_paths.get(job, "/metrics"),
                    "scrape_timeout": interval,
                    "static_configs": [{"targets": addrs}],
                }
                for job, addrs in self.targets.items()
            ],
        }

    def start(self, workdir: Path, timeout: float = 30.0) -> PrometheusServer:
        reason = missing_reason()
        if reason:
            raise RuntimeError(reason)
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "prometheus.yml"
        config.write_text(json.dumps(self.config(), indent=1))
        data = workdir / "tsdb"
        args = [
            str(prometheus_binary()),
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=1d",
            "--log.level=warn",
        ]
        self.log_path = workdir / f"prometheus-{self.port}.log"
        log = open(self.log_path, "wb")  # noqa: SIM115 - lives as the process
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                if httpx.get(self.url + "/-/ready", timeout=1.0).status_code == 200:
                    self.started_at = time.time()
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"prometheus did not become ready in {timeout}s:\n{self.log_tail()}")

    def query(self, promql: str, at: float | None = None) -> list[dict]:
        """The raw ``result`` list of an instant query (for test assertions)."""
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        r = httpx.get(self.url + "/api/v1/query", params=params, timeout=5.0)
        r.raise_for_status()
        return r.json()["data"]["result"]

    def wait_for_targets(self, timeout: float = 30.0, *, up: bool = True) -> None:
        """Wait until every configured target has been scraped (``up`` present, and 1
        when ``up`` is true)."""
        wanted = {addr for addrs in self.targets.values() for addr in addrs}
        deadline = time.monotonic() + timeout
        seen: dict[str, str] = {}
        while time.monotonic() < deadline:
            try:
                seen = {r["metric"]["instance"]: r["value"][1] for r in self.query("up")}
            except (httpx.HTTPError, KeyError, ValueError):
                seen = {}
            if wanted <= set(seen) and (not up or all(seen[a] == "1" for a in wanted)):
                return
            time.sleep(0.5)
        raise RuntimeError(f"prometheus did not scrape every target in {timeout}s: {seen}")

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
