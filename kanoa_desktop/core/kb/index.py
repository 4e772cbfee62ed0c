"""The knowledge-base index: one SQLite database per set of folders, FTS5 with BM25.

:class:`KnowledgeBase` is plain Python and thread-aware:

- :meth:`KnowledgeBase.index` is a synchronous function meant for a worker thread. It is
  incremental (unchanged size and mtime -> skipped by ``stat`` alone; changed -> hashed;
  same hash -> only the mtime is updated; different -> re-chunked; gone -> purged), commits
  every few files so a cancelled run keeps its work and the next run resumes, reports
  progress through a callback and stops between files when ``cancel`` is set.
- Searches open their own connection per thread; the database is in WAL mode so they see
  the last committed batch while an index run writes.
- Only one index run at a time per database (a lock); :class:`FolderWatcher` skips a tick
  instead of queueing behind a running one.

The database is a cache of the folders: when its schema version differs from
:data:`SCHEMA_VERSION`, or it is not a readable database, it is rebuilt from scratch.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat as stat_mod
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kanoa_desktop.core.config import paths
from kanoa_desktop.core.kb.chunking import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_OVERLAP_TOKENS,
    chunk_segments,
)
from kanoa_desktop.core.kb.readers import (
    STATUS_INDEXED,
    STATUS_SKIPPED,
    is_supported,
    read_file,
)
from kanoa_desktop.core.safety import escape_name
from kanoa_desktop.core.tokens import estimate_text_tokens

SCHEMA_VERSION = 1
# The reason given for a symlink skipped because it leads outside the attached folders.
LINK_OUTSIDE = "a link to a place outside the attached folder"
# Commit after this many changed files or this many seconds, whichever comes first: small
# enough that a cancel loses little and searches see progress, large enough to be fast.
COMMIT_EVERY_FILES = 200
COMMIT_EVERY_SECONDS = 2.0
# Folders never worth indexing (version control, environments, caches).
SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "__pycache__",
        "node_modules",
        ".venv",
        "venv",
        ".tox",
        ".mypy_cache",
        ".pytest_cache",
        ".ipynb_checkpoints",
        ".ruff_cache",
    }
)

_TOKENIZE = "porter unicode61 remove_diacritics 2"  # must match chunks_fts below
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE files (
    id INTEGER PRIMARY KEY,
    root INTEGER NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    n_chunks INTEGER NOT NULL DEFAULT 0,
    UNIQUE (root, path)
);
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    ord INTEGER NOT NULL,
    page INTEGER,
    cell INTEGER,
    line_start INTEGER NOT NULL,
    line_end INTEGER NOT NULL,
    overlap INTEGER NOT NULL DEFAULT 0,
    n_tokens INTEGER NOT NULL
);
CREATE INDEX chunks_file ON chunks(file_id, ord);
-- The chunk text lives only in the FTS table (rowid = chunks.id); ``name`` holds the file
-- path split into words so a file name in the question finds the file.
CREATE VIRTUAL TABLE chunks_fts USING fts5(
    text, name, tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TABLE vectors (
    chunk_id INTEGER PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vec BLOB NOT NULL
);
"""


@dataclass(frozen=True)
class Progress:
    """One progress report: ``done`` of ``total`` files looked at, ``current`` is the file."""

    done: int
    total: int
    current: str
    phase: str = "indexing"  # "scanning" | "indexing" | "purging" | "done"


@dataclass(frozen=True)
class FileReport:
    """What happened to one file in this run. ``status``: indexed, capped or skipped."""

    path: str
    status: str
    reason: str = ""


@dataclass
class IndexReport:
    """Outcome of one :meth:`KnowledgeBase.index` run.

    ``problems`` lists every file skipped or capped (including broken links and loops found
    while scanning); ``cancelled`` is True when the run stopped early (what it did is kept).
    """

    total: int = 0
    unchanged: int = 0
    touched: int = 0  # mtime changed, content (hash) did not
    indexed: int = 0  # read and chunked in this run (new or changed)
    purged: int = 0
    chunks_added: int = 0
    cancelled: bool = False
    seconds: float = 0.0
    problems: list[FileReport] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.indexed or self.purged)

    def summary(self) -> str:
        """One plain sentence, e.g. '120 files: 3 indexed, 117 unchanged, 1 removed (0.4 s)'."""
        parts = [f"{self.indexed} indexed", f"{self.unchanged} unchanged"]
        if self.touched:
            parts.append(f"{self.touched} re-dated (content unchanged)")
        if self.purged:
            parts.append(f"{self.purged} removed")
        if self.problems:
            parts.append(f"{len(self.problems)} skipped or capped")
        outside = sum(1 for p in self.problems if p.reason.startswith(LINK_OUTSIDE))
        if outside:
            parts.append(
                f"{outside} link{'s' if outside != 1 else ''} outside the folder not followed"
            )
        text = f"{self.total} files: " + ", ".join(parts) + f" ({self.seconds:.1f} s)"
        return text + (" — cancelled; index again to resume" if self.cancelled else "")


@dataclass(frozen=True)
class Hit:
    """A chunk found by a search, with its source span. ``score``: higher is better."""

    chunk_id: int
    text: str
    file: str  # display path, relative to its folder (prefixed when several folders)
    path: Path  # absolute path, to open the file
    page: int | None
    cell: int | None
    line_start: int
    line_end: int
    score: float
    n_tokens: int


@dataclass(frozen=True)
class _Entry:
    root: int
    rel: str
    abs: str
    size: int
    mtime_ns: int


class Cancelled(Exception):
    """Internal: raised to unwind an index run when the cancel flag is set."""


ProgressCallback = Callable[[Progress], None]


def kb_path_for(folders: Sequence[str | os.PathLike[str]]) -> Path:
    """Database file for this set of folders (order and spelling of paths do not matter)."""
    key = json.dumps(sorted(os.path.realpath(f) for f in folders))
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return paths.data_dir() / "kb" / f"{digest}.sqlite3"


def _is_set(cancel: object) -> bool:
    if cancel is None:
        return False
    is_set = getattr(cancel, "is_set", None)
    return bool(is_set()) if callable(is_set) else bool(cancel() if callable(cancel) else cancel)


def _hash_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _undecodable(name: str) -> bool:
    """Whether ``os.fsdecode`` had to escape bytes of this name (not valid UTF-8)."""
    return any("\udc80" <= ch <= "\udcff" for ch in name)


def _name_words(rel: str) -> str:
    """File path as words: 'data/sea_surface-temp.csv' -> 'data sea surface temp csv'."""
    out = []
    for ch in rel:
        out.append(ch if ch.isalnum() else " ")
    return " ".join("".join(out).split())


class KnowledgeBase:
    """An index over one or more folders, stored in one SQLite database.

    ``KnowledgeBase(folders)`` uses :func:`kb_path_for` under ``paths.data_dir()``; pass
    ``db_path`` to put it elsewhere (benchmarks, tests). Creating the object opens (and if
    needed creates or rebuilds) the database but does not index: call :meth:`index`.

    The index stays inside the attached folders: a symlink whose target lies outside all
    of them is skipped and reported, unless ``follow_links_outside`` is True (the user's
    explicit choice). Names are shown escaped (control characters, bidi overrides); a file
    or folder whose name is not valid UTF-8 is skipped and reported, never fatal.
    """

    def __init__(
        self,
        folders: Sequence[str | os.PathLike[str]],
        db_path: str | os.PathLike[str] | None = None,
        *,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
        follow_links_outside: bool = False,
    ) -> None:
        if not folders:
            raise ValueError("a knowledge base needs at least one folder")
        self.folders: list[Path] = [Path(os.path.realpath(f)) for f in folders]
        self.follow_links_outside = follow_links_outside
        self.db_path = Path(db_path) if db_path is not None else kb_path_for(self.folders)
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens
        self._local = threading.local()
        self._index_lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._open_or_rebuild()

    # --- database -----------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        # Autocommit mode: transactions are explicit (BEGIN/COMMIT) so batches are ours.
        conn = sqlite3.connect(
            self.db_path, timeout=30.0, check_same_thread=False, isolation_level=None
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _open_or_rebuild(self) -> None:
        try:
            conn = self._connect()
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError:
            # Not a database (truncated, overwritten): it is only a cache, start again.
            self._remove_files()
            conn = self._connect()
            version = 0
        if version != SCHEMA_VERSION:
            conn.close()
            self._remove_files()
            conn = self._connect()
            conn.executescript(f"BEGIN; {_SCHEMA}; PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        roots = json.dumps([str(f) for f in self.folders])
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('folders', ?)", (roots,))
        conn.close()

    def _remove_files(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            try:
                os.remove(str(self.db_path) + suffix)
            except FileNotFoundError:
                pass

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection (searches and index runs never share one)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        """Close every connection this object opened (call once all threads are done)."""
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- scanning -----------------------------------------------------------------

    def _display(self, root: int, rel: str) -> str:
        # Escaped: a name with escape sequences or newlines must not reach a terminal, a
        # label or a prompt raw.
        if len(self.folders) == 1:
            return escape_name(rel)
        return escape_name(f"{self.folders[root].name}/{rel}")

    def _inside(self, real: str) -> bool:
        """Whether a resolved path lies in one of the attached folders."""
        for folder in self.folders:
            base = str(folder)
            if real == base or real.startswith(base.rstrip(os.sep) + os.sep):
                return True
        return False

    def scan(self) -> tuple[list[_Entry], list[FileReport]]:
        """Supported files under the folders (by ``stat`` only) and problems found.

        Symlinks are followed once: a directory whose real path was already visited (a
        loop, or two links to one place) is not entered again; a link to nowhere is
        reported. A link that leads outside the attached folders is skipped and reported
        unless ``follow_links_outside``. Names that are not valid UTF-8 are skipped and
        reported. Hidden folders and :data:`SKIP_DIRS` are not entered.
        """
        entries: list[_Entry] = []
        problems: list[FileReport] = []
        seen_files: set[str] = set()
        for root_index, root in enumerate(self.folders):
            if not root.is_dir():
                problems.append(
                    FileReport(
                        escape_name(str(root)),
                        STATUS_SKIPPED,
                        "folder not found (moved, or a drive not mounted): its files stay "
                        "in the index until it is back or detached",
                    )
                )
                continue
            visited: set[str] = set()
            stack = [(str(root), "")]
            while stack:
                dir_abs, dir_rel = stack.pop()
                real = os.path.realpath(dir_abs)
                if real in visited:
                    problems.append(
                        FileReport(
                            self._display(root_index, dir_rel or "."),
                            STATUS_SKIPPED,
                            "symlink loop or folder reached twice: not entered again",
                        )
                    )
                    continue
                visited.add(real)
                try:
                    it = os.scandir(dir_abs)
                except OSError as exc:
                    problems.append(
                        FileReport(
                            self._display(root_index, dir_rel or "."),
                            STATUS_SKIPPED,
                            f"folder cannot be read: {exc.strerror or exc}",
                        )
                    )
                    continue
                with it:
                    children = sorted(it, key=lambda e: e.name)
                for entry in children:
                    rel = f"{dir_rel}/{entry.name}" if dir_rel else entry.name
                    try:
                        is_dir = entry.is_dir()  # follows symlinks
                    except OSError:
                        is_dir = False
                    if is_dir and (entry.name.startswith(".") or entry.name in SKIP_DIRS):
                        continue
                    if not is_dir and not is_supported(entry.name):
                        continue
                    if _undecodable(entry.name):
                        # os.scandir hands undecodable bytes back as lone surrogates,
                        # which SQLite cannot store: skip this one name, not the folder.
                        problems.append(
                            FileReport(
                                self._display(root_index, rel),
                                STATUS_SKIPPED,
                                "its name is not valid UTF-8: rename it to index it",
                            )
                        )
                        continue
                    if (
                        not self.follow_links_outside
                        and entry.is_symlink()
                        and not self._inside(os.path.realpath(entry.path))
                    ):
                        problems.append(
                            FileReport(
                                self._display(root_index, rel),
                                STATUS_SKIPPED,
                                LINK_OUTSIDE + ": not followed",
                            )
                        )
                        continue
                    if is_dir:
                        stack.append((entry.path, rel))
                        continue
                    try:
                        st = entry.stat()  # follows symlinks
                    except OSError as exc:
                        reason = (
                            "broken symlink (its target does not exist)"
                            if entry.is_symlink() and isinstance(exc, FileNotFoundError)
                            else "symlink loop"
                            if getattr(exc, "errno", None) == 40
                            else f"cannot be read: {exc.strerror or exc}"
                        )
                        problems.append(
                            FileReport(self._display(root_index, rel), STATUS_SKIPPED, reason)
                        )
                        continue
                    if not stat_mod.S_ISREG(st.st_mode):
                        problems.append(
                            FileReport(
                                self._display(root_index, rel),
                                STATUS_SKIPPED,
                                "not a regular file (a pipe, socket or device)",
                            )
                        )
                        continue
                    if entry.is_symlink():
                        real_file = os.path.realpath(entry.path)
                        if real_file in seen_files:
                            continue
                        seen_files.add(real_file)
                    entries.append(_Entry(root_index, rel, entry.path, st.st_size, st.st_mtime_ns))
        return entries, problems

    # --- indexing -----------------------------------------------------------------

    def index(
        self,
        progress: ProgressCallback | None = None,
        cancel: object = None,
    ) -> IndexReport:
        """Bring the index up to date with the folders; returns what happened.

        ``cancel`` may be a ``threading.Event`` (or anything with ``is_set()``, or a
        callable returning bool); it is checked between files. A cancelled run keeps every
        committed batch and the next run resumes where it stopped. ``progress`` is called
        from this thread for each file; keep it cheap (post to the GUI thread).
        Blocks while another index run on this object is in progress.
        """
        with self._index_lock:
            return self._index(progress, cancel)

    def try_index(
        self, progress: ProgressCallback | None = None, cancel: object = None
    ) -> IndexReport | None:
        """Like :meth:`index` but returns None at once when a run is already going."""
        if not self._index_lock.acquire(blocking=False):
            return None
        try:
            return self._index(progress, cancel)
        finally:
            self._index_lock.release()

    def _index(self, progress: ProgressCallback | None, cancel: object) -> IndexReport:
        started = time.perf_counter()
        report = IndexReport()
        notify = progress or (lambda p: None)
        notify(Progress(0, 0, "", "scanning"))
        entries, report.problems = self.scan()
        report.total = len(entries)
        conn = self._conn()
        known = {
            (root, path): (fid, size, mtime, sha)
            for fid, root, path, size, mtime, sha in conn.execute(
                "SELECT id, root, path, size, mtime_ns, sha256 FROM files"
            )
        }
        last_commit = time.monotonic()
        pending = 0
        conn.execute("BEGIN")
        try:
            for done, entry in enumerate(entries):
                if _is_set(cancel):
                    raise Cancelled
                row = known.pop((entry.root, entry.rel), None)
                if row is not None and row[1] == entry.size and row[2] == entry.mtime_ns:
                    report.unchanged += 1
                    continue
                display = self._display(entry.root, entry.rel)
                notify(Progress(done, report.total, display))
                try:
                    sha = _hash_file(entry.abs)
                except OSError:
                    sha = None  # the reader will say why
                if row is not None and sha is not None and row[3] == sha:
                    conn.execute(
                        "UPDATE files SET size = ?, mtime_ns = ? WHERE id = ?",
                        (entry.size, entry.mtime_ns, row[0]),
                    )
                    report.touched += 1
                    continue
                if row is not None:
                    self._delete_file(conn, row[0])
                self._add_file(conn, entry, sha, display, report)
                report.indexed += 1
                pending += 1
                if pending >= COMMIT_EVERY_FILES or (
                    time.monotonic() - last_commit > COMMIT_EVERY_SECONDS
                ):
                    conn.execute("COMMIT")
                    conn.execute("BEGIN")
                    pending, last_commit = 0, time.monotonic()
            # Whatever is left in ``known`` is gone from disk (the scan was complete),
            # except under a folder that is missing as a whole: an unmounted drive must
            # not wipe its index.
            missing = {i for i, root in enumerate(self.folders) if not root.is_dir()}
            gone = [row for (root, _path), row in known.items() if root not in missing]
            for i, (fid, *_rest) in enumerate(gone):
                if i % 100 == 0:
                    notify(Progress(report.total, report.total, "", "purging"))
                self._delete_file(conn, fid)
                report.purged += 1
            conn.execute("COMMIT")
        except Cancelled:
            conn.execute("COMMIT")
            report.cancelled = True
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        report.seconds = time.perf_counter() - started
        notify(Progress(report.total, report.total, "", "done"))
        return report

    def _delete_file(self, conn: sqlite3.Connection, file_id: int) -> None:
        conn.execute(
            "DELETE FROM chunks_fts WHERE rowid IN (SELECT id FROM chunks WHERE file_id = ?)",
            (file_id,),
        )
        conn.execute("DELETE FROM files WHERE id = ?", (file_id,))  # cascades to chunks

    def _add_file(
        self,
        conn: sqlite3.Connection,
        entry: _Entry,
        sha: str | None,
        display: str,
        report: IndexReport,
    ) -> None:
        result = read_file(entry.abs)
        chunks = (
            chunk_segments(result.segments, self.max_tokens, self.overlap_tokens)
            if result.status != STATUS_SKIPPED
            else []
        )
        cur = conn.execute(
            "INSERT INTO files (root, path, size, mtime_ns, sha256, status, reason, n_chunks)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.root,
                entry.rel,
                entry.size,
                entry.mtime_ns,
                sha,
                result.status,
                result.reason,
                len(chunks),
            ),
        )
        file_id = cur.lastrowid
        if result.status != STATUS_INDEXED:
            report.problems.append(FileReport(display, result.status, result.reason))
        if not chunks:
            return
        name = _name_words(display)
        first = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM chunks").fetchone()[0]
        conn.executemany(
            "INSERT INTO chunks (id, file_id, ord, page, cell, line_start, line_end, overlap,"
            " n_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    first + i,
                    file_id,
                    i,
                    c.page,
                    c.cell,
                    c.line_start,
                    c.line_end,
                    c.overlap,
                    estimate_text_tokens(c.text),
                )
                for i, c in enumerate(chunks)
            ],
        )
        conn.executemany(
            "INSERT INTO chunks_fts (rowid, text, name) VALUES (?, ?, ?)",
            [(first + i, c.text, name) for i, c in enumerate(chunks)],
        )
        report.chunks_added += len(chunks)

    # --- reading the index ----------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Counts: files, chunks, tokens (estimated, all chunks) and skipped files."""
        conn = self._conn()
        files, skipped = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(status = ?), 0) FROM files", (STATUS_SKIPPED,)
        ).fetchone()
        chunks, tokens = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(n_tokens), 0) FROM chunks"
        ).fetchone()
        return {"files": files, "chunks": chunks, "tokens": tokens, "skipped": skipped}

    def file_report(self) -> list[FileReport]:
        """Every file in the index whose status is not plain ``indexed`` (from the DB)."""
        rows = self._conn().execute(
            "SELECT root, path, status, reason FROM files WHERE status != ? OR reason != ''"
            " ORDER BY root, path",
            (STATUS_INDEXED,),
        )
        return [FileReport(self._display(r, p), s, why) for r, p, s, why in rows]

    def chunk_count(self) -> int:
        """Number of chunks in the index (cheap: the largest chunk id, an upper bound)."""
        return self._conn().execute("SELECT COALESCE(MAX(id), 0) FROM chunks").fetchone()[0]

    def doc_frequencies(self, terms: Sequence[str]) -> dict[str, int]:
        """How many chunks contain each term, after the index's own stemming.

        A term that the tokenizer splits into several tokens gets the smallest count.
        Counting costs about 1 ms per 10,000 matching chunks, so results are cached per
        thread until the database changes (``PRAGMA data_version``).
        """
        if not terms:
            return {}
        conn = self._conn()
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        cache = getattr(self._local, "df_cache", None)
        if cache is None or cache[0] != version:
            cache = (version, {})
            self._local.df_cache = cache
        known: dict[str, int] = cache[1]
        todo = [t for t in dict.fromkeys(terms) if t not in known]
        if todo:
            # The same tokenizer in a private temp table gives each term's stemmed tokens.
            conn.execute(
                "CREATE VIRTUAL TABLE IF NOT EXISTS temp.kb_qterms USING fts5(t, tokenize = "
                f"{_TOKENIZE!r})"
            )
            conn.execute(
                "CREATE VIRTUAL TABLE IF NOT EXISTS temp.kb_qterms_v "
                "USING fts5vocab(temp, kb_qterms, 'instance')"
            )
            conn.execute(
                "CREATE VIRTUAL TABLE IF NOT EXISTS temp.kb_vocab "
                "USING fts5vocab(main, chunks_fts, 'row')"
            )
            conn.execute("DELETE FROM temp.kb_qterms")
            conn.executemany(
                "INSERT INTO temp.kb_qterms (rowid, t) VALUES (?, ?)", list(enumerate(todo))
            )
            tokens: dict[int, set[str]] = {}
            for row, token in conn.execute("SELECT doc, term FROM temp.kb_qterms_v"):
                tokens.setdefault(row, set()).add(token)
            conn.execute("DELETE FROM temp.kb_qterms")
            wanted = sorted(set().union(*tokens.values())) if tokens else []
            dfs: dict[str, int] = {}
            for token in wanted:
                row = conn.execute(
                    "SELECT doc FROM temp.kb_vocab WHERE term = ?", (token,)
                ).fetchone()
                dfs[token] = row[0] if row else 0
            for i, term in enumerate(todo):
                toks = tokens.get(i)
                known[term] = min(dfs[t] for t in toks) if toks else 0
        return {t: known[t] for t in terms}

    def search_fts(
        self, match: str, limit: int = 50, *, max_ranked: int | None = None
    ) -> list[Hit]:
        """Chunks matching an FTS5 ``MATCH`` expression, best BM25 first.

        ``match`` must already be valid FTS5 syntax (see ``retrieval.build_match``);
        an invalid expression gives an empty list rather than an error. With
        ``max_ranked``, only the first that many matches (in index order) are ranked: a
        bound on time for queries that match most of a large index.
        """
        # Only ids and scores go through the sort: texts are fetched for the winners
        # afterwards (sorting every matched chunk's text was most of the query time).
        if max_ranked is None:
            sql = (
                "SELECT rowid, bm25(chunks_fts, 1.0, 0.3) AS score "
                "FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY score LIMIT ?"
            )
            params: tuple = (match, limit)
        else:
            sql = (
                "SELECT rowid, score FROM (SELECT rowid, bm25(chunks_fts, 1.0, 0.3) AS score "
                "FROM chunks_fts WHERE chunks_fts MATCH ? LIMIT ?) ORDER BY score LIMIT ?"
            )
            params = (match, max_ranked, limit)
        try:
            rows = self._conn().execute(sql, params).fetchall()
        except sqlite3.OperationalError:
            return []
        # bm25() is lower-is-better and negative; flip it so higher is better.
        return self._hits([(rid, None, -score) for rid, score in rows])

    def _hits(self, rows: list[tuple[int, str | None, float]]) -> list[Hit]:
        if not rows:
            return []
        conn = self._conn()
        ids = [r[0] for r in rows]
        marks = ",".join("?" * len(ids))
        meta = {
            cid: rest
            for cid, *rest in conn.execute(
                "SELECT c.id, f.root, f.path, c.page, c.cell, c.line_start, c.line_end, "
                f"c.n_tokens FROM chunks c JOIN files f ON f.id = c.file_id WHERE c.id IN ({marks})",
                ids,
            )
        }
        texts = {rid: text for rid, text, _ in rows if text is not None}
        missing = [rid for rid in ids if rid not in texts]
        if missing:
            marks = ",".join("?" * len(missing))
            texts.update(
                conn.execute(
                    f"SELECT rowid, text FROM chunks_fts WHERE rowid IN ({marks})", missing
                )
            )
        hits = []
        for rid, _text, score in rows:
            if rid not in meta:
                continue  # deleted between the two queries by a concurrent index run
            root, rel, page, cell, l0, l1, n_tokens = meta[rid]
            hits.append(
                Hit(
                    rid,
                    texts.get(rid, ""),
                    self._display(root, rel),
                    self.folders[root] / rel,
                    page,
                    cell,
                    l0,
                    l1,
                    score,
                    n_tokens,
                )
            )
        return hits

    def chunks_by_id(self, ids: Sequence[int], scores: Sequence[float] | None = None) -> list[Hit]:
        """Hits for these chunk ids, in the given order (unknown ids are dropped)."""
        scores = scores or [0.0] * len(ids)
        return self._hits([(i, None, s) for i, s in zip(ids, scores, strict=True)])

    def whole_files(self) -> Iterator[tuple[str, Path, str, int]]:
        """Each indexed file's text rebuilt from its chunks, overlap removed, in path order.

        Yields ``(display path, absolute path, text, line count estimate)``; used to send a
        small knowledge base whole.
        """
        conn = self._conn()
        files = conn.execute(
            "SELECT id, root, path FROM files WHERE n_chunks > 0 ORDER BY root, path"
        ).fetchall()
        for fid, root, rel in files:
            parts = []
            last_line = 1
            for text, overlap, page, line_end in conn.execute(
                "SELECT t.text, c.overlap, c.page, c.line_end FROM chunks c JOIN chunks_fts t"
                " ON t.rowid = c.id WHERE c.file_id = ? ORDER BY c.ord",
                (fid,),
            ):
                parts.append(text[overlap:])
                last_line = line_end if page is None else last_line
            yield self._display(root, rel), self.folders[root] / rel, "\n\n".join(parts), last_line

    # --- vectors (hybrid mode) ----------------------------------------------------------

    def chunks_without_vectors(self, model: str, limit: int = 256) -> list[tuple[int, str]]:
        """Up to ``limit`` (chunk id, text) pairs that have no vector for ``model``."""
        return (
            self._conn()
            .execute(
                "SELECT c.id, t.text FROM chunks c JOIN chunks_fts t ON t.rowid = c.id "
                "LEFT JOIN vectors v ON v.chunk_id = c.id AND v.model = ? "
                "WHERE v.chunk_id IS NULL ORDER BY c.id LIMIT ?",
                (model, limit),
            )
            .fetchall()
        )

    def store_vectors(self, model: str, items: Sequence[tuple[int, Sequence[float]]]) -> None:
        """Store one vector per chunk id (float32), replacing any previous one."""
        import numpy as np

        rows = []
        for cid, vec in items:
            arr = np.asarray(vec, dtype=np.float32)
            rows.append((cid, model, int(arr.shape[0]), arr.tobytes()))
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            # A chunk deleted meanwhile would violate the foreign key: keep only live ids.
            conn.executemany(
                "INSERT OR REPLACE INTO vectors SELECT ?, ?, ?, ? "
                "WHERE EXISTS (SELECT 1 FROM chunks WHERE id = ?)",
                [(*r, r[0]) for r in rows],
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def vectors(self, model: str):
        """(ids, matrix) of all stored vectors for ``model``; matrix rows are float32."""
        import numpy as np

        rows = (
            self._conn()
            .execute(
                "SELECT chunk_id, dim, vec FROM vectors WHERE model = ? ORDER BY chunk_id", (model,)
            )
            .fetchall()
        )
        if not rows:
            return [], np.zeros((0, 0), dtype=np.float32)
        dim = rows[0][1]
        rows = [r for r in rows if r[1] == dim]
        matrix = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32).reshape(-1, dim)
        return [r[0] for r in rows], matrix


class FolderWatcher:
    """Polls a knowledge base's folders and re-indexes what changed, on its own thread.

    Every ``interval`` seconds it runs :meth:`KnowledgeBase.try_index` (a ``stat`` scan
    when nothing changed, so cheap); when a run changes something, ``on_change(report)``
    is called from the watcher thread. Polling needs no extra dependency and works on
    network drives where file-system events do not. ``stop()`` ends the thread and
    cancels a running index pass.
    """

    def __init__(
        self,
        kb: KnowledgeBase,
        interval: float = 3.0,
        on_change: Callable[[IndexReport], None] | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.kb = kb
        self.interval = interval
        self.on_change = on_change
        self.progress = progress
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="kb-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def poll_once(self) -> IndexReport | None:
        """One check now (on the caller's thread); None when an index run was busy."""
        report = self.kb.try_index(self.progress, self._stop)
        if report is not None and report.changed and self.on_change is not None:
            self.on_change(report)
        return report

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll_once()
            except sqlite3.Error:
                continue  # a locked or vanished database: try again next tick
