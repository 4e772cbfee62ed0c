"""What the history holds, as plain records, and the one mapping of each table to them.

A :class:`RowMapping` says how a table's columns become a record's fields and back (same
names unless renamed; JSON text and 0/1 flags converted), so no query writes the fields
out by hand: reads build records with ``from_row``, writes pass field values through
``insert``/``update``. The functions at the end turn a profile and knowledge-base
passages into the values a row keeps (never an API key, never a URL's user info).
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from kanoa_desktop.core.endpoint.chat import data_url

RETRIED = "retried"  # finish_reason of a failed turn that was asked again
STATES = ("streaming", "done", "stopped", "error", "interrupted")


# --------------------------------------------------------------------------- mapping


@dataclass(frozen=True)
class RowMapping:
    """One table (or one query's result) and the record fields it holds.

    A field is stored in the column of its name unless ``renamed`` (field -> column) says
    otherwise; ``json`` fields are JSON text (the value maps a field to what an empty
    column reads as), ``flags`` are 0/1, ``null_as`` gives the value of a NULL column.
    """

    table: str
    renamed: Mapping[str, str] = field(default_factory=dict)
    json: Mapping[str, str] = field(default_factory=dict)
    flags: frozenset[str] = frozenset()
    null_as: Mapping[str, Any] = field(default_factory=dict)

    def column(self, name: str) -> str:
        return self.renamed.get(name, name)

    def to_row(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Field values -> column values (column names as keys)."""
        row: dict[str, Any] = {}
        for name, value in values.items():
            if name in self.json:
                value = json.dumps(value, ensure_ascii=False)
            elif name in self.flags:
                value = int(bool(value))
            row[self.column(name)] = value
        return row

    def values(self, row: sqlite3.Row, names: Iterable[str]) -> dict[str, Any]:
        """The fields ``names`` read from ``row`` (those whose column the row has)."""
        keys = set(row.keys())
        out: dict[str, Any] = {}
        for name in names:
            col = self.column(name)
            if col not in keys:
                continue
            value = row[col]
            if name in self.json:
                value = json.loads(value or self.json[name])
            elif name in self.flags:
                value = bool(value)
            elif value is None and name in self.null_as:
                value = self.null_as[name]
            out[name] = value
        return out

    def record(self, cls: type, row: sqlite3.Row, **given: Any) -> Any:
        """An instance of the dataclass ``cls``: ``given`` fields as passed, the others
        from ``row``."""
        names = [f.name for f in dataclasses.fields(cls) if f.name not in given]
        return cls(**self.values(row, names), **given)

    def insert(self, db: sqlite3.Connection, values: Mapping[str, Any], *, or_: str = "") -> int:
        """INSERT one row of field values; returns its rowid. ``or_`` is e.g. "IGNORE"."""
        row = self.to_row(values)
        verb = f"INSERT OR {or_}" if or_ else "INSERT"
        cur = db.execute(
            f"{verb} INTO {self.table}({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            tuple(row.values()),
        )
        return int(cur.lastrowid)

    def update(self, db: sqlite3.Connection, row_id: int, values: Mapping[str, Any]) -> int:
        """UPDATE the row with this id; returns how many rows changed."""
        row = self.to_row(values)
        sets = ", ".join(f"{c} = ?" for c in row)
        return db.execute(
            f"UPDATE {self.table} SET {sets} WHERE id = ?", (*row.values(), row_id)
        ).rowcount


CONVERSATIONS = RowMapping("conversations", json={"params": "{}"})
TURNS = RowMapping(
    "turns",
    renamed={"index": "idx"},
    json={"user_message": "{}", "passages": "[]"},
    flags=frozenset({"estimated"}),
)
FIGURES = RowMapping("figures")
CONVERSATION_FIGURES = RowMapping("conversation_figures")
COMPARISONS = RowMapping("comparisons")
COMPARISON_PANES = RowMapping("comparison_panes")
# Query results, not tables: their SELECTs name each column after its field.
SUMMARIES = RowMapping(
    "conversations", flags=frozenset({"interrupted"}), null_as={"last_state": ""}
)
USAGE = RowMapping("turns", flags=frozenset({"estimated"}))


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class HistoryProblem:
    """Something the user should know about the history file; ``message`` says what
    happened and what to do. ``kind`` names it (see ``connection``): "full", "read-only",
    "locked", "unreachable" (writes wait in memory), "damaged" (moved to ``moved_to``),
    "newer" (a newer app's file)."""

    message: str
    moved_to: Path | None = None
    kind: str = ""
    # The message's parts, for a face that says them its own way: what happened, what the
    # store does meanwhile, what to do.
    cause: str = ""
    meanwhile: str = ""
    remedy: str = ""

    @property
    def brief(self) -> str:
        """What happened and what to do, without what the store does meanwhile (for a
        command that ends before the disk comes back)."""
        return f"{self.cause} {self.remedy}" if self.cause else self.message

    @property
    def situation(self) -> str:
        """What happened and what the store does meanwhile (a banner's text; its hint is
        ``remedy``)."""
        return f"{self.cause} {self.meanwhile}" if self.cause else self.message


@dataclass(frozen=True)
class StoredFigure:
    """A figure as sent, stored once by the sha256 of ``data``."""

    hash: str
    mime: str
    name: str
    data: bytes = field(repr=False)
    width: int | None = None
    height: int | None = None
    original_width: int | None = None
    original_height: int | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> StoredFigure:
        """From a ``figures`` row, named by its link to the conversation (``link_name``)
        when the row has one."""
        link = row["link_name"] if "link_name" in row.keys() else ""
        return FIGURES.record(cls, row, name=link or row["name"] or f"figure-{row['hash'][:8]}")

    def insert(self, db: sqlite3.Connection, created: float) -> None:
        """Store this figure unless one with its hash is stored already."""
        values = {**dataclasses.asdict(self), "size_bytes": self.size_bytes, "created": created}
        FIGURES.insert(db, values, or_="IGNORE")

    @property
    def size_bytes(self) -> int:
        return len(self.data)

    @property
    def extension(self) -> str:
        return {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif"}.get(self.mime, "bin")

    def data_url(self) -> str:
        return data_url(self.data, self.mime)

    def prepared(self):  # -> PreparedFigure; imported lazily (figures pulls in numpy)
        """The figure as a :class:`~kanoa_desktop.core.inputs.figures.PreparedFigure` for the
        inputs panel. ``sha256`` is that of the sent bytes (the original file is not kept)."""
        from kanoa_desktop.core.inputs.figures import PreparedFigure

        sent = (self.width or 0, self.height or 0)
        orig = (self.original_width or sent[0], self.original_height or sent[1])
        return PreparedFigure(
            name=self.name,
            original_size=orig,
            sent_size=sent,
            mime=self.mime,
            data=self.data,
            sha256=self.hash,
            source_format="JPEG" if self.mime == "image/jpeg" else "PNG",
            notes=("restored from history",),
        )


@dataclass(frozen=True)
class StoredTurn:
    """One question and its answer as recorded. ``user_message`` has data URLs rebuilt."""

    id: int
    index: int
    model: str
    question: str
    user_message: dict[str, Any]
    answer: str
    reasoning: str
    state: str
    finish_reason: str | None
    error_title: str | None
    error_message: str | None
    prompt_tokens: int | None
    output_tokens: int | None
    estimated: bool
    ttft_s: float | None
    tokens_per_s: float | None
    duration_s: float | None
    cost: float | None
    energy_wh: float | None
    passages: list[dict[str, Any]]
    started: float
    finished: float | None

    @classmethod
    def from_row(
        cls, row: sqlite3.Row, restore: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    ) -> StoredTurn:
        """From a ``turns`` row; ``restore`` puts the images back into the stored message."""
        turn = TURNS.record(cls, row)
        return (
            dataclasses.replace(turn, user_message=restore(turn.user_message)) if restore else turn
        )


@dataclass(frozen=True)
class StoredConversation:
    """Everything needed to restore a conversation into the window or to export it."""

    id: int
    title: str
    created: float
    updated: float
    profile_name: str
    endpoint: str
    server_kind: str
    model: str
    params: dict[str, Any]
    system_prompt: str
    context: str
    focus: str
    table_name: str
    table_summary: str
    figures: list[StoredFigure]
    turns: list[StoredTurn]

    @classmethod
    def from_row(
        cls, row: sqlite3.Row, figures: list[StoredFigure], turns: list[StoredTurn]
    ) -> StoredConversation:
        return CONVERSATIONS.record(cls, row, figures=figures, turns=turns)

    def conversation(self):  # -> chat.Conversation
        """A :class:`~kanoa_desktop.core.endpoint.chat.Conversation` to continue with follow-ups.

        Turns keep their partial answers and say how they ended (``note``, in
        :mod:`~kanoa_desktop.core.history.endings`' words); ``finish_reason`` is the server's
        for finished turns, else the state ("stopped", "error", "interrupted"). Failed turns
        marked with :meth:`HistoryStore.mark_retried` are left out, as the window left them.
        """
        from kanoa_desktop.core.endpoint.chat import Conversation, Turn
        from kanoa_desktop.core.history.endings import note

        conv = Conversation(system_prompt=self.system_prompt)
        for t in self.turns:
            if t.finish_reason == RETRIED:
                continue  # the window dropped this failed turn and asked again
            reason = (t.finish_reason or "stop") if t.state == "done" else t.state
            ending = note(t.state, t.finish_reason, t.error_title or "")
            conv.turns.append(Turn(t.user_message, t.answer, reason, note=ending))
        return conv

    def prepared_figures(self) -> list:
        """The figures as PreparedFigure objects, in the order they were first sent."""
        return [f.prepared() for f in self.figures]

    @property
    def sources(self) -> list[str]:
        """Knowledge-base source labels used by any turn, first use first, no repeats."""
        seen: dict[str, None] = {}
        for t in self.turns:
            for p in t.passages:
                seen.setdefault(str(p.get("label") or p.get("file") or ""), None)
        return [s for s in seen if s]


@dataclass(frozen=True)
class ConversationSummary:
    """One row of the history list."""

    id: int
    title: str
    created: float
    updated: float
    model: str
    profile_name: str
    n_turns: int
    last_state: str
    interrupted: bool  # any turn interrupted (shown with an icon)
    comparison_id: int | None = None  # the row stands for a whole comparison
    last_finish_reason: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ConversationSummary:
        return SUMMARIES.record(cls, row)

    @property
    def last_ending(self) -> str:
        """How the last answer ended, in :mod:`~kanoa_desktop.core.history.endings`' words."""
        from kanoa_desktop.core.history.endings import label

        return label(self.last_state, self.last_finish_reason)


@dataclass(frozen=True)
class StoredComparison:
    """A comparison (several models asked the same) as recorded: one conversation per pane,
    in pane order (panes whose question never reached a server are absent)."""

    id: int
    title: str
    created: float
    panes: list[StoredConversation]
    pane_numbers: list[int]  # 0-based pane of each conversation in ``panes``

    @classmethod
    def from_row(
        cls, row: sqlite3.Row, panes: list[StoredConversation], pane_numbers: list[int]
    ) -> StoredComparison:
        return COMPARISONS.record(cls, row, panes=panes, pane_numbers=pane_numbers)


@dataclass(frozen=True)
class UsageRow:
    model: str
    day: str  # YYYY-MM-DD, local time
    turns: int
    prompt_tokens: int
    output_tokens: int
    cost: float
    estimated: bool  # some figures are estimates, not the server's count

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> UsageRow:
        return USAGE.record(cls, row)


@dataclass(frozen=True)
class UsageTotals:
    """Per model and per day: ``session`` since this store was opened, ``all_time``."""

    session: list[UsageRow]
    all_time: list[UsageRow]

    @staticmethod
    def total(rows: Iterable[UsageRow]) -> tuple[int, int, float]:
        rows = list(rows)
        return (
            sum(r.prompt_tokens for r in rows),
            sum(r.output_tokens for r in rows),
            sum(r.cost for r in rows),
        )


# --------------------------------------------------------------------------- stored values


def safe_endpoint(api_base: str) -> str:
    """The API base without user info (``user:pass@``), query or fragment: a URL may carry
    a credential, and the history must never hold one."""
    try:
        parts = urlsplit(api_base.strip())
    except ValueError:
        return ""
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host + (f":{port}" if port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def profile_params(profile: Any) -> dict[str, Any]:
    """The generation parameters of a profile worth keeping for reproducibility."""
    keys = ("temperature", "max_tokens", "top_p", "image_long_side", "vision", "max_images")
    return {k: getattr(profile, k) for k in keys if hasattr(profile, k)}


def passages_json(passages: Any) -> list[dict[str, Any]]:
    """Knowledge-base passages (a Grounding, or Passage objects, or dicts) as JSON rows."""
    if passages is None:
        return []
    if hasattr(passages, "passages"):
        passages = passages.passages
    rows: list[dict[str, Any]] = []
    for p in passages:
        if isinstance(p, Mapping):
            rows.append(dict(p))
            continue
        src = getattr(p, "source", None)
        row: dict[str, Any] = {"number": getattr(p, "number", None), "text": getattr(p, "text", "")}
        if getattr(p, "score", None) is not None:
            row["score"] = float(p.score)
        if src is not None:
            row.update(
                file=src.file,
                path=str(src.path),
                page=src.page,
                cell=src.cell,
                line_start=src.line_start,
                line_end=src.line_end,
                label=src.label(),
            )
        rows.append(row)
    return rows
