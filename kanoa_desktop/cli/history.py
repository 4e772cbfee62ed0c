"""``kanoa-desktop history``: the window's history from the command line.

``history list [--json] [--search TEXT] [--model M] [--limit N]`` lists conversations newest
first, under a header line (ID, UPDATED, TURNS, MODEL, STATE, TITLE); ``history show ID`` prints one as Markdown (the export's text); ``history export ID
--format md|html|pdf -o PATH`` writes it as the window's History > Export does and prints
the path written. The store is opened without crash recovery, so a window running beside
it keeps its streaming turn and its undo.
"""

from __future__ import annotations

import argparse
from datetime import datetime

from kanoa_desktop.cli.output import echo, echo_json, error, name, table
from kanoa_desktop.core.endpoint.errors import KanoaError
from kanoa_desktop.core.history.export import conversation_markdown, export
from kanoa_desktop.core.history.store import ConversationSummary, HistoryStore

FORMATS = {"md": "markdown", "markdown": "markdown", "html": "html", "pdf": "pdf"}


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "history",
        help="list, show and export saved conversations",
        description="The conversations the window and `interpret` saved.",
    )
    sub = parser.add_subparsers(dest="history_command", metavar="ACTION", required=True)
    p_list = sub.add_parser("list", help="conversations, newest first")
    p_list.add_argument("--search", metavar="TEXT", help="words in a question, answer or title")
    p_list.add_argument("--model", help="only conversations with this model")
    p_list.add_argument("--limit", type=int, default=50, help="at most N rows (default 50)")
    p_list.add_argument("--json", action="store_true", help="one JSON array on stdout")
    p_show = sub.add_parser("show", help="print one conversation as Markdown")
    p_show.add_argument("id", type=int, metavar="ID")
    p_export = sub.add_parser("export", help="write one conversation as Markdown, HTML or PDF")
    p_export.add_argument("id", type=int, metavar="ID")
    p_export.add_argument("--format", "-f", choices=sorted(FORMATS), default=None)
    p_export.add_argument("-o", "--output", required=True, metavar="PATH")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


def summary_json(s: ConversationSummary) -> dict:
    return {
        "id": s.id,
        "title": s.title,
        "created": _iso(s.created),
        "updated": _iso(s.updated),
        "model": s.model,
        "profile": s.profile_name,
        "turns": s.n_turns,
        "last_state": s.last_state,
        "last_ending": s.last_ending,
        "interrupted": s.interrupted,
    }


LIST_HEADERS = ("ID", "UPDATED", "TURNS", "MODEL", "STATE", "TITLE")


def list_table(rows: list[ConversationSummary]) -> str:
    """``history list``'s text: a header, then one aligned row per conversation (the one
    terminal table: model names and titles come from servers and users, escaped)."""
    cells = []
    for r in rows:
        state = r.last_ending + (
            " (one interrupted)" if r.interrupted and r.last_state != "interrupted" else ""
        )
        when = datetime.fromtimestamp(r.updated).strftime("%Y-%m-%d %H:%M")
        cells.append((r.id, when, r.n_turns, r.model or "-", state, r.title))
    lines = table(LIST_HEADERS, cells, align="r.r").splitlines()
    return "\n".join(line.rstrip() for line in lines)


def _print_table(rows: list[ConversationSummary]) -> None:
    if not rows:
        echo("No conversations.", err=True)
        return
    echo(list_table(rows))


def _no_such(conv_id: int) -> int:
    return error(
        f"no conversation with id {conv_id}.", "list them with `kanoa-desktop history list`."
    )


def run(args: argparse.Namespace) -> int:
    store = HistoryStore(recover=False)
    try:
        if store.problem is not None:
            echo(f"warning: {name(store.problem.brief)}", err=True)
        if args.history_command == "list":
            rows = store.list_conversations(
                search=args.search, model=args.model, limit=max(1, args.limit)
            )
            if args.json:
                echo_json([summary_json(r) for r in rows], indent=2)
            else:
                _print_table(rows)
            return 0
        conv = store.load_conversation(args.id)
        if conv is None:
            return _no_such(args.id)
        if args.history_command == "show":
            echo(conversation_markdown(conv), end="")
            return 0
        fmt = FORMATS[args.format] if args.format else None
        try:
            written = export(conv, args.output, fmt)
        except KanoaError as err:
            return error(err.message, err.hint)
        echo(name(written))
        return 0
    finally:
        store.close()
