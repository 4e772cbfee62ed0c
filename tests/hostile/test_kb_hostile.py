"""The knowledge base stays inside its folder, survives undecodable names and never prints
a name raw."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kanoa_desktop.core.kb.index import KnowledgeBase
from kanoa_desktop.core.kb.retrieval import query_terms, search

ROOT = Path(__file__).resolve().parents[2]


def _hits(kb: KnowledgeBase, words: str) -> list[str]:
    return [h.file for h in search(kb, query_terms(words), k=10, per_file=3)]


@pytest.fixture
def folders(tmp_path):
    inside = tmp_path / "papers"
    outside = tmp_path / "private"
    inside.mkdir()
    outside.mkdir()
    (inside / "notes.md").write_text("# Notes\n\nThe doubling time is two hours.\n")
    (outside / "diary.md").write_text("# Diary\n\nThe zanzibarite password is hunter2.\n")
    (outside / "deep").mkdir()
    (outside / "deep" / "more.md").write_text("Quokkaflux results are secret.\n")
    (inside / "diary-link.md").symlink_to(outside / "diary.md")
    (inside / "dir-link").symlink_to(outside / "deep", target_is_directory=True)
    (inside / "sub").mkdir()
    (inside / "sub" / "inner-link.md").symlink_to(inside / "notes.md")  # stays inside
    return inside, outside


def test_links_out_of_the_folder_are_skipped_and_reported(folders, tmp_path):
    inside, _ = folders
    with KnowledgeBase([inside], db_path=tmp_path / "kb.sqlite3") as kb:
        report = kb.index()
        assert _hits(kb, "zanzibarite") == [] and _hits(kb, "quokkaflux") == []
        assert _hits(kb, "doubling")  # the folder itself is indexed
    skipped = {p.path: p.reason for p in report.problems}
    assert set(skipped) >= {"diary-link.md", "dir-link"}
    assert all("outside the attached folder" in skipped[k] for k in ("diary-link.md", "dir-link"))
    assert "sub/inner-link.md" not in skipped  # a link that stays inside is fine
    assert "2 links outside the folder not followed" in report.summary()


def test_following_links_outside_is_the_users_choice(folders, tmp_path):
    inside, _ = folders
    with KnowledgeBase([inside], db_path=tmp_path / "kb2.sqlite3", follow_links_outside=True) as kb:
        kb.index()
        assert _hits(kb, "zanzibarite") and _hits(kb, "quokkaflux")


def test_a_name_that_is_not_utf8_skips_that_file_only(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.md").write_text("Sedimentation rates rise.\n")
    bad = os.path.join(os.fsencode(folder), b"caf\xe9 notes.md")
    with open(bad, "wb") as fh:
        fh.write(b"Latin-1 named file about sedimentation.\n")
    bad_dir = os.path.join(os.fsencode(folder), b"d\xffir")
    os.mkdir(bad_dir)
    with open(os.path.join(bad_dir, b"x.md"), "wb") as fh:
        fh.write(b"inside an undecodable folder\n")
    with KnowledgeBase([folder], db_path=tmp_path / "kb.sqlite3") as kb:
        report = kb.index()
        assert _hits(kb, "sedimentation") == ["good.md"]
    paths = {p.path: p.reason for p in report.problems}
    assert "caf\\xe9 notes.md" in paths and "not valid UTF-8" in paths["caf\\xe9 notes.md"]
    assert "d\\xffir" in paths


def test_names_with_escape_sequences_are_printed_escaped_by_the_cli(tmp_path):
    folder = tmp_path / "kb"
    folder.mkdir()
    evil = "evil\x1b[31mred\x1b]0;owned\x07\nline\u202etxt.md"
    (folder / evil).write_text("Photosynthesis saturates at high light.\n\x1b[2J cleared?\n")
    (folder / "broken\x1b[5m.md").symlink_to(tmp_path / "nowhere.md")
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONIOENCODING="utf-8")
    for args in (["kb", "index", str(folder)], ["kb", "search", str(folder), "photosynthesis"]):
        proc = subprocess.run(
            [sys.executable, "-m", "kanoa_desktop", *args],
            capture_output=True,
            timeout=120,
            cwd=ROOT,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")[-2000:]
        out = proc.stdout + proc.stderr
        assert b"\x1b" not in out and b"\x07" not in out and "\u202e".encode() not in out
        assert b"Traceback" not in out
    assert b"evil\\x1b[31mred" in proc.stdout  # the search result names the file, escaped
    assert b"\\x1b[2J cleared" in proc.stdout  # passages too
