"""The index: incremental updates, bad files reported, cancel and resume, concurrent reads."""

from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import closing

import pytest

from kanoa_desktop.core.kb import index as index_mod
from kanoa_desktop.core.kb.index import FolderWatcher, KnowledgeBase, kb_path_for
from kanoa_desktop.core.kb.retrieval import query_terms, search
from tests.kb.corpus import write_encrypted_pdf, write_every_kind


def _files_found(kb: KnowledgeBase, word: str) -> set[str]:
    return {h.file for h in search(kb, query_terms(word), k=50, per_file=50)}


def test_every_kind_is_indexed_and_findable_with_its_source(tmp_path, make_kb):
    files = write_every_kind(tmp_path / "kb")
    kb = make_kb(tmp_path / "kb")
    report = kb.index()
    assert report.indexed == len(files) and not report.problems
    assert _files_found(kb, "kelpforest") == {"report.pdf"}
    pdf_hit = search(kb, ["abyssopelagic"])[0]
    assert pdf_hit.page == 2 and pdf_hit.path == (tmp_path / "kb" / "report.pdf").resolve()
    nb_hit = search(kb, ["nbcodeword"])[0]
    assert nb_hit.file == "analysis.ipynb" and nb_hit.cell == 2
    md_hit = search(kb, ["storm"])[0]
    assert (md_hit.file, md_hit.line_start, md_hit.line_end) == ("notes.md", 5, 7)
    assert _files_found(kb, "gopherfunc") == {"code/main.go"}


def test_database_lives_in_the_data_dir_named_by_the_folder_set(tmp_path, make_kb):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    kb = make_kb(tmp_path / "a", tmp_path / "b")
    assert kb.db_path == kb_path_for([tmp_path / "b", tmp_path / "a"])
    assert kb.db_path.parent == tmp_path / "home" / "data" / "kb"
    assert kb_path_for([tmp_path / "a"]) != kb.db_path
    with closing(sqlite3.connect(kb.db_path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == index_mod.SCHEMA_VERSION


def test_unchanged_rescan_reads_no_file(tmp_path, make_kb, monkeypatch):
    write_every_kind(tmp_path / "kb")
    kb = make_kb(tmp_path / "kb")
    first = kb.index()
    calls = []
    monkeypatch.setattr(index_mod, "read_file", lambda p: calls.append(p))
    monkeypatch.setattr(index_mod, "_hash_file", lambda p: calls.append(p))
    again = kb.index()
    assert again.unchanged == first.total and again.indexed == 0 and calls == []


def test_edit_add_delete_and_touch_are_each_handled(tmp_path, make_kb):
    root = tmp_path / "kb"
    write_every_kind(root)
    kb = make_kb(root)
    kb.index()
    (root / "notes.md").write_text("# Methods\n\nNow about the vorticity budget.\n")
    (root / "new.txt").write_text("A brand new file about the sargassum bloom.\n")
    (root / "readme.txt").unlink()
    st = os.stat(root / "guide.rst")
    os.utime(root / "guide.rst", ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000_000))
    report = kb.index()
    assert (report.indexed, report.purged, report.touched) == (2, 1, 1)
    assert _files_found(kb, "vorticity") == {"notes.md"}
    assert _files_found(kb, "zephyrite") == set()  # old text of the edited file is gone
    assert _files_found(kb, "sargassum") == {"new.txt"}
    assert _files_found(kb, "quillwort") == set()  # deleted file purged
    assert _files_found(kb, "marlinspike") == {"guide.rst"}  # touched, still there
    assert kb.index().unchanged == report.total  # the touch's new mtime was stored


def test_bad_files_are_skipped_and_listed_while_good_ones_index(tmp_path, make_kb):
    root = tmp_path / "kb"
    root.mkdir()
    (root / "good.md").write_text("The good file mentions the tidewater glacier.\n")
    (root / "binary.txt").write_bytes(b"\x00\xff" * 1000)
    (root / "undecodable.md").write_bytes(bytes(range(0x80, 0xA0)) * 50 + bytes(range(1, 9)) * 50)
    (root / "broken.pdf").write_bytes(b"%PDF-1.7 not really")
    write_encrypted_pdf(root / "locked.pdf")
    (root / "dangling.md").symlink_to(root / "nowhere.md")
    (root / "selfloop.md").symlink_to(root / "selfloop.md")
    (root / "sub").mkdir()
    (root / "sub" / "inner.txt").write_text("inner file about the katabatic wind\n")
    (root / "sub" / "loop").symlink_to(root)  # a folder loop
    os.mkfifo(root / "pipe.txt")
    kb = make_kb(root)
    report = kb.index()
    reasons = {p.path: p.reason for p in report.problems}
    assert "binary" in reasons["binary.txt"]
    assert "undecodable" in reasons["undecodable.md"]
    assert "broken" in reasons["broken.pdf"]
    assert "encrypted" in reasons["locked.pdf"]
    assert "broken symlink" in reasons["dangling.md"]
    assert "loop" in reasons["selfloop.md"]
    assert "loop" in reasons["sub/loop"]
    assert "regular file" in reasons["pipe.txt"]
    assert _files_found(kb, "tidewater") == {"good.md"}
    assert _files_found(kb, "katabatic") == {"sub/inner.txt"}
    # Content problems are also kept in the database for the report view.
    stored = {r.path for r in kb.file_report()}
    assert {"binary.txt", "undecodable.md", "broken.pdf", "locked.pdf"} <= stored


def test_huge_file_is_indexed_up_to_the_cap_and_reported(tmp_path, make_kb):
    root = tmp_path / "kb"
    root.mkdir()
    with open(root / "huge.md", "w") as fh:
        fh.write("openingterm\n\n")
        fh.write(("filler text line\n" * 1000 + "\n") * 400)  # ~6.8 MB
        fh.write("closingterm\n")
    kb = make_kb(root)
    report = kb.index()
    assert [p.status for p in report.problems] == ["capped"]
    assert _files_found(kb, "openingterm") == {"huge.md"}
    assert _files_found(kb, "closingterm") == set()


def _many_files(root, n):
    root.mkdir()
    for i in range(n):
        (root / f"f{i:03d}.md").write_text(f"# File {i}\n\nuniqueword{i} and shared text\n")


def test_cancel_keeps_committed_work_and_the_next_run_resumes(tmp_path, make_kb, monkeypatch):
    monkeypatch.setattr(index_mod, "COMMIT_EVERY_FILES", 4)
    _many_files(tmp_path / "kb", 30)
    kb = make_kb(tmp_path / "kb")
    cancel = threading.Event()

    def progress(p):
        if p.done >= 10:
            cancel.set()

    first = kb.index(progress=progress, cancel=cancel)
    assert first.cancelled and 0 < first.indexed < 30
    kept = kb.stats()["files"]
    assert kept == first.indexed  # nothing indexed was lost by cancelling
    second = kb.index()
    assert not second.cancelled
    assert second.unchanged == kept and second.indexed == 30 - kept
    assert kb.stats()["files"] == 30 and _files_found(kb, "uniqueword29") == {"f029.md"}


def test_search_from_another_thread_sees_committed_batches_during_indexing(
    tmp_path, make_kb, monkeypatch
):
    monkeypatch.setattr(index_mod, "COMMIT_EVERY_FILES", 5)
    _many_files(tmp_path / "kb", 30)
    kb = make_kb(tmp_path / "kb")
    reached = threading.Event()
    resume = threading.Event()

    def progress(p):
        if p.current == "f020.md":
            reached.set()
            assert resume.wait(20)

    worker = threading.Thread(target=kb.index, kwargs={"progress": progress})
    worker.start()
    try:
        assert reached.wait(20)
        # The writer is mid-transaction; this thread's reads neither block nor see it.
        assert _files_found(kb, "uniqueword3") == {"f003.md"}
        assert _files_found(kb, "uniqueword25") == set()
    finally:
        resume.set()
        worker.join(20)
    assert _files_found(kb, "uniqueword25") == {"f025.md"}


def test_old_schema_or_corrupt_database_is_rebuilt(tmp_path, make_kb):
    _many_files(tmp_path / "kb", 3)
    kb = make_kb(tmp_path / "kb")
    kb.index()
    kb.close()
    with closing(sqlite3.connect(kb.db_path)) as conn:
        conn.execute("PRAGMA user_version = 0")
    rebuilt = make_kb(tmp_path / "kb")
    assert rebuilt.stats()["files"] == 0 and rebuilt.index().indexed == 3
    rebuilt.close()
    for suffix in ("-wal", "-shm"):
        if os.path.exists(str(kb.db_path) + suffix):
            os.remove(str(kb.db_path) + suffix)
    kb.db_path.write_bytes(b"this is not a database" * 100)
    again = make_kb(tmp_path / "kb")
    assert again.index().indexed == 3


def test_watcher_reindexes_a_changed_file(tmp_path, make_kb):
    _many_files(tmp_path / "kb", 3)
    kb = make_kb(tmp_path / "kb")
    kb.index()
    changes = []
    watcher = FolderWatcher(kb, interval=0.05, on_change=changes.append)
    watcher.start()
    try:
        (tmp_path / "kb" / "later.md").write_text("added while watching: polynya\n")
        deadline = threading.Event()
        for _ in range(200):
            if changes:
                break
            deadline.wait(0.05)
    finally:
        watcher.stop()
    assert changes and changes[0].indexed == 1
    assert _files_found(kb, "polynya") == {"later.md"}


def test_watcher_skips_a_tick_while_an_index_run_is_busy(tmp_path, make_kb):
    _many_files(tmp_path / "kb", 3)
    kb = make_kb(tmp_path / "kb")
    watcher = FolderWatcher(kb)
    with kb._index_lock:  # an index run holds the lock
        assert watcher.poll_once() is None
    assert watcher.poll_once() is not None


def test_a_missing_folder_keeps_its_index_instead_of_purging_it(tmp_path, make_kb):
    _many_files(tmp_path / "kb", 3)
    kb = make_kb(tmp_path / "kb")
    kb.index()
    (tmp_path / "kb").rename(tmp_path / "elsewhere")  # like an unmounted drive
    report = kb.index()
    assert report.purged == 0 and "folder not found" in report.problems[0].reason
    assert _files_found(kb, "uniqueword1") == {"f001.md"}
    (tmp_path / "elsewhere").rename(tmp_path / "kb")
    assert kb.index().unchanged == 3


def test_a_knowledge_base_needs_a_folder():
    with pytest.raises(ValueError):
        KnowledgeBase([])
