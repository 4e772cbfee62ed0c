"""Benchmark the report writer on one conversation whose answer is one long line.

Run: ``python bench/bench_reports.py [--chars N] [--formats pdf md html]``. Prints CPU
seconds, wall seconds, the file's size and the process's peak RSS per format; asserts
nothing about time. The case of issue 23: a 5 MB one-line answer exported as PDF took
about 40 CPU seconds (88 s on the shared 2-core machine) before the PDF's text budget.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("KANOA_DESKTOP_HOME", tempfile.mkdtemp(prefix="kanoa-bench-"))

from kanoa_desktop.core.endpoint.chat import user_message  # noqa: E402
from kanoa_desktop.core.history.export import export  # noqa: E402
from kanoa_desktop.core.history.store import HistoryStore  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=5_000_000)
    parser.add_argument("--formats", nargs="*", default=["pdf", "md", "html"])
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="kanoa-bench-reports-"))
    answer = ("growth of the signal over time " * (args.chars // 31 + 1))[: args.chars]
    store = HistoryStore(folder / "history.sqlite3")
    rec = store.begin_turn(None, user_message=user_message("q"), model="m", question="q")
    rec.append(answer)
    rec.finish("done", "stop")
    conv = store.load_conversation(rec.conversation_id)
    store.close()
    print(f"one answer of {args.chars:,} characters on one line")
    print(f"{'format':8}{'CPU s':>8}{'wall s':>9}{'bytes':>14}{'peak RSS MB':>14}")
    for fmt in args.formats:
        t0, c0 = time.monotonic(), time.process_time()
        path = export(conv, folder / f"out.{fmt}")
        cpu, wall = time.process_time() - c0, time.monotonic() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{fmt:8}{cpu:8.1f}{wall:9.1f}{path.stat().st_size:14,}{rss:14.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
