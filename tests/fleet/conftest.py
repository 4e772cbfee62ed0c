"""A small lab on loopback: vLLM test servers, the real llama-server, the real vLLM router
in front, a DCGM exporter body, and the real Prometheus scraping all of them every second.

Module-scoped: one fleet per test module (2 cores: a router, a Prometheus and the session's
llama-server are the only extra processes; the vLLM test servers are threads). Missing
binaries fail the tests, never skip them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from kanoa_desktop.core.monitor.metrics import parse_scrape
from tests.metrics.conftest import MetricsServer
from tests.servers import prometheus as prom_mod
from tests.servers import router as router_mod
from tests.servers.llama import LlamaServer
from tests.servers.prometheus import PrometheusServer
from tests.servers.router import VllmRouter
from tests.servers.vllm_server import VLLMTestServer
from tests.ui.conftest import make_window, qloop, run  # noqa: F401 - the window fixtures

MODEL = "qwen2.5-vl-7b"
DCGM_BODY = Path(__file__).resolve().parents[1] / "metrics" / "data" / "dcgm.prom"


def address(url: str) -> str:
    """``http://127.0.0.1:8000`` -> ``127.0.0.1:8000`` (a Prometheus instance label)."""
    return url.split("://", 1)[1].split("/", 1)[0]


def require(reason: str | None) -> None:
    if reason:
        pytest.fail(reason, pytrace=False)


def counters(url: str, *names: str) -> dict[str, float]:
    """Sum of each sample name in a server's own ``/metrics`` right now."""
    scrape = parse_scrape(httpx.get(url, timeout=5.0).text, 0.0, keep_all=True)
    return {n: sum(v for _, v in scrape.values(n)) for n in names}


def buckets(url: str, family: str) -> list[tuple[float, float]]:
    """A histogram's cumulative buckets (summed over label sets), sorted by bound."""
    scrape = parse_scrape(httpx.get(url, timeout=5.0).text, 0.0, keep_all=True)
    by_bound: dict[float, float] = {}
    for labels, value in scrape.values(family + "_bucket"):
        bound = float(labels["le"])
        by_bound[bound] = by_bound.get(bound, 0.0) + value
    return sorted(by_bound.items())


@dataclass
class Fleet:
    a: VLLMTestServer  # new metric names
    b: VLLMTestServer  # old metric names (gpu_cache_usage_perc, time_per_output_token)
    victim: VLLMTestServer  # killed by a test
    busy: VLLMTestServer  # one request at a time, a tiny KV cache: queues and fills
    llama: LlamaServer
    dcgm: MetricsServer
    router: VllmRouter
    prometheus: PrometheusServer

    @property
    def vllm_servers(self) -> tuple[VLLMTestServer, ...]:
        return (self.a, self.b, self.victim)


@pytest.fixture(scope="module")
def fleet(llama_server, tmp_path_factory):
    require(router_mod.missing_reason())
    require(prom_mod.missing_reason())
    logs = tmp_path_factory.mktemp("fleet")
    a = VLLMTestServer(model=MODEL, tokens_per_second=60.0)
    b = VLLMTestServer(model=MODEL, tokens_per_second=60.0, legacy_names=True)
    victim = VLLMTestServer(model=MODEL, tokens_per_second=60.0)
    busy = VLLMTestServer(model=MODEL, tokens_per_second=4.0, max_num_seqs=1, num_gpu_blocks=8)
    started: list = []
    try:
        for s in (a, b, victim, busy):
            s.start()
            started.append(s)
        dcgm = MetricsServer()
        dcgm.respond(200, DCGM_BODY.read_text())
        started.append(dcgm)
        # One failure opens a worker's circuit, so a killed server shows an open circuit.
        router = VllmRouter(
            [a.base_url, b.base_url, victim.base_url], extra_args=["--cb-failure-threshold", "1"]
        ).start(logs)
        started.append(router)
        # One request before Prometheus starts: the router's request counters exist from
        # the first scrape (a counter's first sample is never part of a rate()).
        httpx.post(
            router.api_base + "/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
            timeout=30.0,
        ).raise_for_status()
        prometheus = PrometheusServer(
            {
                "vllm": [address(s.base_url) for s in (a, b, victim, busy)],
                "llamacpp": [address(llama_server.base_url)],
                "router": [router.metrics_address],
                "dcgm": [address(dcgm.url)],
            }
        ).start(logs / "prometheus")
        started.append(prometheus)
        prometheus.wait_for_targets()
        yield Fleet(a, b, victim, busy, llama_server, dcgm, router, prometheus)
    finally:
        for s in reversed(started):
            (s.close if isinstance(s, MetricsServer) else s.stop)()


def wait_until(predicate, timeout: float, interval: float = 0.5):
    """Poll ``predicate()`` until it returns something truthy; that value, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None
