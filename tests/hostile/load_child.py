"""Load one hostile file in a fresh process and report the outcome with its peak memory.

``python -m tests.hostile.load_child KIND PATH [OPTION=VALUE...]`` writes one JSON object
to the file named by ``$KANOA_CHILD_RESULT`` (not to stdout: whatever a library prints
there stays visible to the test as stray output): ``{"kind", "outcome": "ok"|"error"|
"crash", "error", "message", "hint", "seconds", "peak_mb", ...}``.

``peak_mb`` is this process's ``VmHWM`` (its own peak resident size, reset by ``execve``).
``ru_maxrss`` is not used: on Linux it survives ``execve``, so a child forked from a large
test runner would report the runner's peak (see tests/hostile/child.py).

KIND is one of: table, notebook, interpret (the command line's loading step, through the
input plan; OPTION pages=SPEC).
"""

from __future__ import annotations

import json
import os
import sys
import time


def peak_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _run(kind: str, path: str, options: dict[str, str]) -> dict:
    out: dict = {"kind": kind, "outcome": "ok"}
    if kind == "table":
        from kanoa_desktop.core.inputs.tables import load_table

        t = load_table(path)
        out.update(rows=t.rows, columns=t.columns, notes=t.notes, warnings=t.warnings)
    elif kind == "notebook":
        from kanoa_desktop.core.inputs.notebook import load_notebook

        nb = load_notebook(path)
        out.update(figures=len(nb.figures), notes=nb.notes)
    elif kind == "interpret":
        import argparse

        from kanoa_desktop.cli import interpret as cli
        from kanoa_desktop.core.config.profiles import Profile

        parser = argparse.ArgumentParser()
        cli.add_parser(parser.add_subparsers())
        args = parser.parse_args(["interpret", path, "--pages", options.get("pages", "1")])
        inputs = cli.load_inputs(args, Profile())
        out.update(figures=len(inputs.figures))
    else:
        raise SystemExit(f"unknown kind {kind}")
    return out


def main() -> None:
    kind, path, *rest = sys.argv[1:]
    options = dict(o.split("=", 1) for o in rest)
    t0 = time.monotonic()
    try:
        result = _run(kind, path, options)
    except Exception as exc:  # noqa: BLE001 - reported to the test, which judges it
        message = getattr(exc, "message", None)
        result = {
            "kind": kind,
            "outcome": "error" if message is not None else "crash",
            "error": type(exc).__name__,
            "message": message if message is not None else repr(exc)[:500],
            "hint": getattr(exc, "hint", ""),
        }
    result["seconds"] = round(time.monotonic() - t0, 2)
    result["peak_mb"] = round(peak_mb(), 1)
    with open(os.environ["KANOA_CHILD_RESULT"], "w", encoding="utf-8") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
