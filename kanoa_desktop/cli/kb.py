"""``kanoa-desktop kb``: build and query a knowledge-base index from the command line.

``kb index FOLDER...`` updates the index (progress on stderr, per-file report at the end);
``kb search FOLDER... -q "query" [-k N]`` (or the query as the last positional argument)
updates the index quietly if needed, then prints ranked passages with their sources.
Both use the same database the app uses for that set of folders. Links that lead outside
the folders are skipped (and listed) unless ``--follow-links-outside``. Every file name and
passage is printed with control characters escaped, so a name cannot drive the terminal.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

from kanoa_desktop.cli.output import echo, name, progress
from kanoa_desktop.core.kb.index import IndexReport, KnowledgeBase, Progress
from kanoa_desktop.core.kb.retrieval import query_terms, search


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("kb", help="index and search a knowledge-base folder")
    kb_sub = parser.add_subparsers(dest="kb_command", metavar="ACTION", required=True)
    p_index = kb_sub.add_parser("index", help="index (or update the index of) folders")
    p_index.add_argument("folders", nargs="+", metavar="FOLDER")
    p_index.add_argument("--quiet", action="store_true", help="no progress line")
    p_search = kb_sub.add_parser("search", help="search an indexed folder")
    p_search.add_argument("folder", metavar="FOLDER")
    p_search.add_argument("query", metavar="QUERY")
    p_search.add_argument("-k", type=int, default=5, help="number of passages (default 5)")
    p_search.add_argument(
        "--per-file", type=int, default=2, help="at most this many passages per file first"
    )
    p_search.add_argument(
        "--no-update", action="store_true", help="search the index as it is, do not rescan"
    )
    for p in (p_index, p_search):
        p.add_argument(
            "--follow-links-outside",
            action="store_true",
            help="also index what symlinks outside the folders point to (off by default)",
        )


def _check_folders(folders: list[str]) -> str | None:
    for folder in folders:
        if not Path(folder).is_dir():
            return f"Not a folder: {name(folder)}. Give the path of a folder to index."
    return None


class _ProgressLine:
    """A single updating progress line on stderr, at most ~10 updates per second."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._last = 0.0

    def __call__(self, p: Progress) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if p.phase == "indexing" and now - self._last < 0.1:
            return
        self._last = now
        if p.phase == "scanning":
            line = "Scanning folders..."
        elif p.phase == "done":
            line = f"{p.total}/{p.total} files"
        else:
            line = f"{p.done}/{p.total} files  {name(p.current)[-60:]}"
        progress(line, done=p.phase == "done")


def _print_report(report: IndexReport) -> None:
    for item in report.problems:
        echo(f"{item.status:8} {name(item.path)}: {name(item.reason)}", err=True)
    echo(report.summary(), err=True)


def _run_index(kb: KnowledgeBase, show_progress: bool) -> IndexReport:
    cancel = threading.Event()
    try:
        return kb.index(progress=_ProgressLine(show_progress), cancel=cancel)
    except KeyboardInterrupt:
        cancel.set()
        raise


def run(args: argparse.Namespace) -> int:
    folders = args.folders if args.kb_command == "index" else [args.folder]
    problem = _check_folders(folders)
    if problem:
        echo(problem, err=True)
        return 2
    with KnowledgeBase(folders, follow_links_outside=args.follow_links_outside) as kb:
        if args.kb_command == "index":
            report = _run_index(kb, not args.quiet)
            _print_report(report)
            echo(f"Index: {name(str(kb.db_path))}", err=True)
            return 0
        if not args.no_update:
            report = _run_index(kb, show_progress=False)
            if report.problems and report.indexed:
                echo(
                    f"Indexed with {len(report.problems)} problem(s); run 'kb index' to see them.",
                    err=True,
                )
        terms = query_terms(args.query)
        if not terms:
            echo("The query has no searchable words.", err=True)
            return 2
        hits = search(kb, terms, k=max(args.k, 1), per_file=max(args.per_file, 1))
        if not hits:
            echo("No passage matched.", err=True)
            return 1
        for n, hit in enumerate(hits, start=1):
            where = (
                f"p. {hit.page}"
                if hit.page is not None
                else f"cell {hit.cell}"
                if hit.cell is not None
                else f"lines {hit.line_start}-{hit.line_end}"
            )
            echo(f"[{n}] {name(hit.file)} ({where})  score {hit.score:.2f}")
            for line in hit.text.strip().splitlines()[:12]:
                echo(f"    {line}")
            echo()
        return 0
