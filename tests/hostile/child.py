"""Run hostile-server cases in a fresh process and report each outcome with peak memory.

``python -m tests.hostile.child PORT CASE...`` prints one JSON line per case:
``{"case", "outcome": "ok"|"error", "error", "message", "notices", "text_chars",
"seconds", "maxrss_mb"}``. A fresh process's ``VmHWM`` (the peak resident size)
is this client's peak, not the test runner's. Short deadlines keep the cases quick; the
per-read timeout is long so only the deadlines can end the keep-alive and drip cases.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time

import httpx

from kanoa_desktop.core.endpoint import errors as E
from kanoa_desktop.core.endpoint.chat import ChatRequest, user_message
from kanoa_desktop.core.endpoint.client import ChatClient, Timeouts, collect
from kanoa_desktop.core.endpoint.events import Finished
from kanoa_desktop.core.monitor.metrics import MetricsDeriver
from kanoa_desktop.core.monitor.poller import MetricsPoller

TIMEOUTS = Timeouts(read=60.0, first_token=2.0, progress=2.0, reply=3.0)
CASE_LIMIT_S = 60.0


def _maxrss_mb() -> float:
    """This process's peak resident size. On Linux ``ru_maxrss`` survives ``execve``: a
    child forked from a big test runner reports the runner's peak (seen: 473 MB for every
    case late in the full suite). ``VmHWM`` belongs to the process's own memory map."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


async def _case(port: int, case: str) -> dict:
    scenario, _, action = case.partition(":")
    base = f"http://127.0.0.1:{port}/{scenario}/v1"
    out: dict = {"case": case, "outcome": "ok", "notices": [], "text_chars": 0}
    async with ChatClient(base, timeouts=TIMEOUTS) as client:
        try:
            if action == "models":
                await client.models()
            elif action == "embeddings":
                await client.embeddings("m", ["a", "b"])
            elif action == "router":
                out["result"] = repr(await client.router_status())
            elif action == "prometheus":
                from kanoa_desktop.core.monitor.fleet import FleetReader, PrometheusError

                reader = FleetReader(f"http://127.0.0.1:{port}/{scenario}", timeout_s=1.0)
                try:
                    await reader.query("up")
                except PrometheusError as err:
                    out.update(outcome="error", error="PrometheusError", message=str(err))
                finally:
                    await reader.aclose()
            elif action in ("fleet", "fleet-router", "history"):
                from kanoa_desktop.core.monitor.fleet import FleetReader, PrometheusError

                root = f"http://127.0.0.1:{port}/{scenario}"
                router = root if action == "fleet-router" else None
                reader = FleetReader(root, router_url=router, timeout_s=5.0)
                try:
                    if action == "history":
                        out["result"] = repr(await reader.history("kv", 900.0))
                    else:
                        snap = await reader.snapshot()
                        out["result"] = repr([(r.instance, r.job, r.up) for r in snap.rows])
                        out["warnings"] = list(snap.warnings)
                        out["router_error"] = snap.router_error
                except PrometheusError as err:
                    out.update(outcome="error", error="PrometheusError", message=str(err))
                finally:
                    await reader.aclose()
            elif action == "discover":
                from kanoa_desktop.core.endpoint.discovery import discover

                found = await discover(
                    host="127.0.0.1", ports=[int(os.environ["HOSTILE_DEFAULT_PORT"])], timeout_s=3.0
                )
                out["result"] = repr(found)
            elif action == "metrics":
                poller = MetricsPoller(
                    f"http://127.0.0.1:{port}/{scenario}/metrics",
                    timeout_s=1.0,
                    deriver=MetricsDeriver(),
                )
                try:
                    update = await poller.poll_once()
                finally:
                    await poller.aclose()
                out["outcome"] = str(update.state)
                out["message"] = update.message
            else:
                req = ChatRequest("m", [user_message("Describe.")], max_tokens=50)
                events = await collect(client, req)
                fin = [e for e in events if isinstance(e, Finished)][0]
                out["finish_reason"] = fin.finish_reason
                out["notices"] = [n.kind for n in fin.notices]
                out["text_chars"] = len(fin.text)
        except E.KanoaError as err:
            out.update(
                outcome="error",
                error=type(err).__name__,
                message=err.message,
                text_chars=len(err.partial_text),
            )
    return out


async def main(port: int, cases: list[str]) -> None:
    for case in cases:
        t0 = time.monotonic()
        try:
            result = await asyncio.wait_for(_case(port, case), CASE_LIMIT_S)
        except TimeoutError:
            result = {"case": case, "outcome": "hung"}
        except (Exception, httpx.HTTPError) as exc:  # noqa: BLE001 - reported, not raised
            result = {"case": case, "outcome": "crash", "error": repr(exc)[:300]}
        result["seconds"] = round(time.monotonic() - t0, 2)
        result["maxrss_mb"] = round(_maxrss_mb(), 1)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2:]))
