"""Fleet refresh cost: one aggregated Prometheus query vs scraping every instance directly.

Run: ``python -m bench.bench_fleet [--quick] [--sizes 2 10 50]``. Prints a table; asserts
nothing about time.

For each fleet size N, one process serves N ``/metrics`` endpoints (each the reference
vLLM 0.33 body, 644 lines, ``tests/data/vllm-0.33-metrics.prom``, with its counters moving
a little on every scrape), and the real Prometheus (Debian's 2.42, as in the tests)
scrapes them every 2 s. Then, in the same run:

- **through Prometheus**: ``FleetReader.snapshot()``, what the Fleet view does per refresh
  (one ``POST /api/v1/query`` returning a few numbers per instance, parsed into rows);
- **direct (baseline)**: what the app would do without Prometheus: fetch every instance's
  ``/metrics`` concurrently, parse each and derive its snapshot (``parse_scrape`` +
  ``MetricsDeriver.update``, the single-server panel's work), N times over.

Both are timed as wall time per refresh (best of ``--repeat``) and as this process's CPU
time per refresh (the app's share of a core at a 5 s refresh); bytes received per refresh
are counted too. Ratio = through Prometheus / direct.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from bench.common import ROOT, machine_line, print_table, ratio
from kanoa_desktop.core.monitor.fleet import FleetReader
from kanoa_desktop.core.monitor.metrics import MetricsDeriver, fetch_metrics, parse_scrape

sys.path.insert(0, str(ROOT))
from tests.servers.prometheus import PrometheusServer, missing_reason  # noqa: E402

REFERENCE = ROOT / "tests" / "data" / "vllm-0.33-metrics.prom"
_COUNTER = re.compile(r"^(vllm:(?:generation|prompt)_tokens_total\{[^}]*\}) ([0-9.e+]+)$", re.M)


class Endpoints:
    """N metrics endpoints served from this process, one port each (threads)."""

    def __init__(self, n: int, body: str) -> None:
        self.body = body
        self.scrapes = [0] * n
        self.servers: list[ThreadingHTTPServer] = []
        self.threads: list[threading.Thread] = []
        for i in range(n):
            self.servers.append(self._serve(i))

    def _serve(self, index: int) -> ThreadingHTTPServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                owner.scrapes[index] += 1
                step = owner.scrapes[index] * 7 + index

                def bump(m: re.Match) -> str:
                    return f"{m.group(1)} {float(m.group(2)) + step:.1f}"

                payload = _COUNTER.sub(bump, owner.body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, args=(0.5,), daemon=True)
        thread.start()
        self.threads.append(thread)
        return server

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{s.server_address[1]}" for s in self.servers]

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


async def _direct_refresh(
    client: httpx.AsyncClient, urls: list[str], derivers: list[MetricsDeriver]
) -> int:
    """Scrape every instance and derive its snapshot; returns bytes received."""
    responses = await asyncio.gather(*(fetch_metrics(client, u, timeout_s=10.0) for u in urls))
    now = time.monotonic()
    received = 0
    for response, deriver in zip(responses, derivers, strict=True):
        received += len(response.text)
        deriver.update(parse_scrape(response.text, now))
    return received


async def _measure(prom_url: str, addresses: list[str], repeat: int) -> dict[str, float]:
    urls = [f"http://{a}/metrics" for a in addresses]
    derivers = [MetricsDeriver() for _ in urls]
    received = {"prom": 0, "direct": 0}

    class Counting(httpx.AsyncHTTPTransport):
        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

        async def handle_async_request(self, request):
            response = await super().handle_async_request(request)
            await response.aread()
            received[self.key] += len(response.content)
            return response

    prom_http = httpx.AsyncClient(transport=Counting("prom"), timeout=10.0)
    direct_http = httpx.AsyncClient(timeout=10.0, limits=httpx.Limits(max_connections=64))
    reader = FleetReader(prom_url, rate_window_s=20.0, client=prom_http)
    try:
        # Warm up both paths (connections, a first derive) and check the fleet is there.
        snap = await reader.snapshot()
        servers = [r for r in snap.rows if r.up]
        if len(servers) != len(addresses):
            raise RuntimeError(f"Prometheus shows {len(servers)} of {len(addresses)} targets up")
        await _direct_refresh(direct_http, urls, derivers)

        def timed(coro_factory):
            async def run() -> tuple[float, float]:
                wall, cpu = float("inf"), float("inf")
                for _ in range(repeat):
                    c0, t0 = time.process_time(), time.perf_counter()
                    await coro_factory()
                    wall = min(wall, time.perf_counter() - t0)
                    cpu = min(cpu, time.process_time() - c0)
                return wall, cpu

            return run()

        received["prom"] = 0
        prom_wall, prom_cpu = await timed(reader.snapshot)
        prom_bytes = received["prom"] / repeat
        direct_bytes = float(await _direct_refresh(direct_http, urls, derivers))
        direct_wall, direct_cpu = await timed(lambda: _direct_refresh(direct_http, urls, derivers))
    finally:
        await reader.aclose()
        await prom_http.aclose()
        await direct_http.aclose()
    return {
        "prom_wall": prom_wall,
        "prom_cpu": prom_cpu,
        "prom_bytes": prom_bytes,
        "direct_wall": direct_wall,
        "direct_cpu": direct_cpu,
        "direct_bytes": direct_bytes,
    }


def run_size(n: int, body: str, repeat: int, workdir: Path) -> dict[str, float]:
    endpoints = Endpoints(n, body)
    prometheus = PrometheusServer({"vllm": endpoints.addresses}, scrape_interval_s=2.0)
    try:
        prometheus.start(workdir / f"prometheus-{n}")
        prometheus.wait_for_targets(timeout=60.0)
        time.sleep(4.5)  # two more scrapes, so rate() has points in its window
        return asyncio.run(_measure(prometheus.url, endpoints.addresses, repeat))
    finally:
        prometheus.stop()
        endpoints.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[2, 10, 50])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="3 repeats")
    args = parser.parse_args(argv)
    reason = missing_reason()
    if reason:
        print(reason, file=sys.stderr)
        return 1
    repeat = 3 if args.quick else args.repeat
    body = REFERENCE.read_text()
    print(machine_line())
    print(
        f"body per instance: {REFERENCE.name}, {len(body.splitlines())} lines, {len(body):,} bytes"
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="kanoa-bench-fleet-") as tmp:
        for n in args.sizes:
            r = run_size(n, body, repeat, Path(tmp))
            rows.append(
                (
                    n,
                    r["prom_wall"] * 1000,
                    r["direct_wall"] * 1000,
                    ratio(r["prom_wall"], r["direct_wall"]),
                    r["prom_cpu"] * 1000,
                    r["direct_cpu"] * 1000,
                    ratio(r["prom_cpu"], r["direct_cpu"]),
                    r["prom_bytes"] / 1024,
                    r["direct_bytes"] / 1024,
                )
            )
    print_table(
        "Fleet refresh: through Prometheus vs scraping every /metrics (same run)",
        [
            "instances",
            "Prometheus ms",
            "direct ms",
            "ratio",
            "Prometheus CPU ms",
            "direct CPU ms",
            "CPU ratio",
            "Prometheus KiB",
            "direct KiB",
        ],
        rows,
        notes=[
            f"best of {repeat} refreshes; CPU = this process only (Prometheus runs apart, "
            "as on a lab's server)",
            "ratio = through Prometheus / direct (below 1: the fleet view is cheaper)",
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
