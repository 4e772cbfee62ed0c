"""Client overhead: from "interpret" to the request on the wire and to the first token.

Run: ``python -m bench.bench_client [--quick] [--repeat N]``.

Work measured, ours against the ``kanoa`` library (0.6, ``AnalyticsInterpreter(
backend="openai", api_base=...)``) in the same run:

- CSV of 100,000 rows × 10 columns -> the real llama.cpp server (SmolLM2-135M). Ours loads
  and summarises the table (``load_input`` + ``table_summary`` + ``Outbox.message``); kanoa is given
  ``pd.read_csv(...)`` as ``data`` (its users read the file themselves).
- A 12-megapixel PNG plot -> the real llama.cpp server, which sees through the tiny test
  vision projector (tests/servers/make_mmproj.py: it decodes and encodes every image), and
  the vLLM test server beside it. Ours prepares it (``prepare_figure``: downscale to
  1024 px); kanoa takes a Matplotlib figure, so it gets the PNG drawn in a 40×30 in,
  100 dpi figure (what a notebook user hands it) and saves it again as PNG at full size.

"sent": the moment the client hands the request to the network (ours: the ``RequestSent``
event, taken just before httpx writes the body; kanoa: its first yielded chunk, which it
yields before calling the OpenAI client, so its "sent" excludes the figure encoding that
happens after; both are marked). "first token": the first text delta. Overhead = time to
first token minus the server's own time to first token, read from the server's /metrics
(llama.cpp: ``llamacpp:prompt_seconds_total``; vLLM: ``vllm:time_to_first_token_seconds_sum``)
before and after each request. Cold: a fresh process from ``Popen`` to the first token.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import ROOT, machine_line, print_table, ratio

LLAMA_TTFT = "llamacpp:prompt_seconds_total"
VLLM_TTFT = "vllm:time_to_first_token_seconds_sum"
MAX_TOKENS = 8


def _metric_sum(metrics_url: str, name: str) -> float | None:
    try:
        body = httpx.get(metrics_url, timeout=5).text
    except httpx.HTTPError:
        return None
    total = None
    for line in body.splitlines():
        if line.startswith(name) and (len(line) > len(name) and line[len(name)] in " {"):
            total = (total or 0.0) + float(line.rsplit(" ", 1)[1])
    return total


def run_ours(path: str, api_base: str, model: str) -> dict:
    """One interpret through our core; monotonic times relative to the call."""
    from kanoa_desktop.core.ask.interpret import load_input
    from kanoa_desktop.core.ask.outbox import Outbox
    from kanoa_desktop.core.endpoint.chat import ChatRequest
    from kanoa_desktop.core.endpoint.client import ChatClient
    from kanoa_desktop.core.endpoint.events import FirstToken, RequestSent
    from kanoa_desktop.core.inputs.figures import PreparedFigure
    from kanoa_desktop.core.inputs.plan import table_summary

    t0 = time.monotonic()
    out: dict = {}

    async def go() -> None:
        item = await asyncio.to_thread(load_input, path)
        inputs = Outbox()
        if isinstance(item, PreparedFigure):
            inputs.add_figure(item)
        else:
            inputs.set_table(item, await asyncio.to_thread(table_summary, item))
        message = inputs.message("Interpret this.", inputs.pending())
        request = ChatRequest(model, [message], max_tokens=MAX_TOKENS)
        async with ChatClient(api_base) as client:
            async for ev in client.stream_chat(request):
                if isinstance(ev, RequestSent):
                    out["sent"] = ev.t - t0
                    out["body_bytes"] = ev.body_bytes
                elif isinstance(ev, FirstToken):
                    out["first"] = ev.t - t0

    asyncio.run(go())
    return out


def run_kanoa(path: str, api_base: str, model: str) -> dict:
    """The same through kanoa 0.6; ``error`` is set when kanoa fails."""
    t0 = time.monotonic()
    out: dict = {}
    from kanoa import AnalyticsInterpreter

    interp = AnalyticsInterpreter(backend="openai", api_base=api_base, model=model,
                                  api_key="EMPTY", max_tokens=MAX_TOKENS)  # fmt: skip
    kwargs: dict = {"context": "Interpret this.", "display_result": False, "stream": True}
    if path.endswith(".csv"):
        import pandas as pd

        kwargs["data"] = pd.read_csv(path)
    else:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.image as mpimg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(40, 30), dpi=100)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.imshow(mpimg.imread(path))
        ax.axis("off")
        kwargs["fig"] = fig
    try:
        for chunk in interp.interpret(**kwargs):
            now = time.monotonic() - t0
            out.setdefault("sent", now)
            if chunk.type == "text" and chunk.content and "first" not in out:
                out["first"] = now
    except Exception as exc:  # noqa: BLE001 - kanoa re-raises the OpenAI error; report it
        out["error"] = f"{type(exc).__name__}: {str(exc)[:160]}"
        out.pop("first", None)  # kanoa yields its error message as a text chunk first
    return out


def _child(which: str, path: str, api_base: str, model: str) -> None:
    fn = run_ours if which == "ours" else run_kanoa
    t_mono, t_wall = time.monotonic(), time.time()
    out = fn(path, api_base, model)
    # Wall-clock time of the first token: the child's start of work plus its offset.
    out["first_wall"] = t_wall + out["first"] if "first" in out else None
    del t_mono
    print(json.dumps(out), flush=True)


def _measure(fn, path: str, api_base: str, model: str, metrics_url: str, metric: str,
             repeat: int) -> dict:  # fmt: skip
    runs = []
    for _ in range(repeat):
        before = _metric_sum(metrics_url, metric)
        out = fn(path, api_base, model)
        time.sleep(0.2)  # let the server publish the request's metrics
        after = _metric_sum(metrics_url, metric)
        if before is not None and after is not None:
            out["server_ttft"] = after - before
        runs.append(out)
        if "error" in out:
            break
    good = [r for r in runs if "first" in r]
    res: dict = {"error": next((r["error"] for r in runs if "error" in r), "")}
    if good:
        med = statistics.median
        res["sent"] = med(r["sent"] for r in good)
        res["first"] = med(r["first"] for r in good)
        st = [r["server_ttft"] for r in good if "server_ttft" in r]
        res["server_ttft"] = med(st) if st else None
        res["overhead"] = res["first"] - res["server_ttft"] if st else None
    elif runs and "sent" in runs[0]:
        res["sent"] = runs[0]["sent"]
    return res


def _cold(which: str, path: str, api_base: str, model: str) -> float | None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "bench.bench_client", "--child", which, path,
                           api_base, model], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return None
    out = json.loads(lines[-1])
    if not out.get("first_wall"):
        return None
    return out["first_wall"] - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 warm repeat, 20,000 CSV rows")
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--child", nargs=4, metavar=("WHICH", "PATH", "API", "MODEL"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args(argv)
    if args.child:
        _child(*args.child)
        return 0
    repeat = args.repeat or (1 if args.quick else 3)
    csv_rows = 20_000 if args.quick else 100_000

    from bench.bench_tables import _make_csv, _make_plot_png
    from tests.servers.llama import LlamaServer, missing_reason
    from tests.servers.vllm_server import VLLMTestServer

    print(machine_line())
    try:
        import kanoa

        kanoa_note = f"kanoa {kanoa.__version__}"
    except ImportError:
        kanoa_note = ""
    rows = []
    notes = []
    tmp = Path(tempfile.mkdtemp())
    csv_path, png_path = tmp / "rows.csv", tmp / "plot12mp.png"
    _make_csv(csv_path, csv_rows)
    _make_plot_png(png_path)

    reason = missing_reason(vision=True)
    llama = None if reason else LlamaServer(ctx_size=8192, vision=True).start(tmp)
    if reason:
        notes.append(f"llama.cpp rows skipped: {reason}")
    vllm = VLLMTestServer(tokens_per_second=200).start()
    cases = []
    if llama is not None:
        cases.append((f"CSV {csv_rows:,} rows", str(csv_path), llama.api_base, llama.model,
                      llama.metrics_url, LLAMA_TTFT, "llama.cpp (SmolLM2)"))  # fmt: skip
    if llama is not None:
        cases.append(("PNG 12 MP plot", str(png_path), llama.api_base, llama.model,
                      llama.metrics_url, LLAMA_TTFT, "llama.cpp (SmolLM2 + test projector)"))  # fmt: skip
    cases.append(("PNG 12 MP plot", str(png_path), vllm.api_base, vllm.model, vllm.metrics_url,
                  VLLM_TTFT, "vLLM test server"))  # fmt: skip
    try:
        for label, path, api, model, murl, metric, server in cases:
            ours = _measure(run_ours, path, api, model, murl, metric, repeat)
            base = (_measure(run_kanoa, path, api, model, murl, metric, repeat)
                    if kanoa_note else {"error": "kanoa not installed"})  # fmt: skip
            cold_o = _cold("ours", path, api, model)
            cold_k = _cold("kanoa", path, api, model) if kanoa_note else None
            rows.append((f"{label} [{server}]", ours.get("sent"), base.get("sent"),
                         ratio(ours.get("sent"), base.get("sent")),
                         ours.get("overhead"), base.get("overhead"),
                         ratio(ours.get("overhead"), base.get("overhead")),
                         ours.get("server_ttft"), cold_o, cold_k, ratio(cold_o, cold_k)))  # fmt: skip
            if base.get("error"):
                notes.append(f"{label}: kanoa failed: {base['error']}")
    finally:
        vllm.stop()
        if llama is not None:
            llama.stop()
    print_table(
        f"Client overhead: interpret -> request sent / first token (ours vs {kanoa_note or 'kanoa'})",
        ["work [server]", "sent s", "kanoa sent s", "ratio", "overhead s", "kanoa overhead s",
         "ratio", "server TTFT s", "cold s", "kanoa cold s", "ratio"],
        rows,
        [f"median of {repeat} warm runs; overhead = time to first token - server's TTFT "
         "(from its /metrics); cold = Popen to first token in a fresh process.",
         "kanoa 'sent' is its first yielded chunk (before it encodes the figure); ours is the "
         "RequestSent event (after all preparation).", *notes],
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
