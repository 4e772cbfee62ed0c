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
import sys
import threading
import time
from pathlib import Path

from kanoa_desktop.core.kb.index import IndexReport, KnowledgeBase, Progress
from kanoa_desktop.core.kb.retrieval import query_terms, search
from kanoa_desktop.core.safety import escape_control, escape_name


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
            return f"Not a folder: {escape_name(folder)}. Give the path of a folder to index."
    return None


class _ProgressLine:
    """A single updating progress line on stderr, at most ~10 updates per second."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._last = 0.0
        self._tty = sys.stderr.isatty()

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
            line = f"{p.done}/{p.total} files  {escape_control(p.current)[-60:]}"
        if self._tty:
            sys.stderr.write("\r\x1b[K" + line)
            if p.phase == "done":
                sys.stderr.write("\n")
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _print_report(report: IndexReport) -> None:
    for item in report.problems:
        print(
            f"{item.status:8} {escape_control(item.path)}: {escape_control(item.reason)}",
            file=sys.stderr,
        )
    print(report.summary(), file=sys.stderr)


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
        print(problem, file=sys.stderr)
        return 2
    with KnowledgeBase(folders, follow_links_outside=args.follow_links_outside) as kb:
        if args.kb_command == "index":
            report = _run_index(kb, not args.quiet)
            _print_report(report)
            print(f"Index: {escape_name(str(kb.db_path))}", file=sys.stderr)
            return 0
        if not args.no_update:
            report = _run_index(kb, show_progress=False)
            if report.problems and report.indexed:
                print(
                    f"Indexed with {len(report.problems)} problem(s); run 'kb index' to see them.",
                    file=sys.stderr,
                )
        terms = query_terms(args.query)
        if not terms:
            print("The query has no searchable words.", file=sys.stderr)
            return 2
        hits = search(kb, terms, k=max(args.k, 1), per_file=max(args.per_file, 1))
        if not hits:
            print("No passage matched.", file=sys.stderr)
            return 1
        for n, hit in enumerate(hits, start=1):
            where = (
                f"p. {hit.page}"
                if hit.page is not None
                else f"cell {hit.cell}"
                if hit.cell is not None
                else f"lines {hit.line_start}-{hit.line_end}"
            )
            print(f"[{n}] {escape_control(hit.file)} ({where})  score {hit.score:.2f}")
            for line in hit.text.strip().splitlines()[:12]:
                print(f"    {escape_control(line, keep=chr(9))}")
            print()
        return 0
