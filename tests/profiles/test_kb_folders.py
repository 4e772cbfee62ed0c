"""Knowledge-base folders belong to the profile: stored with it, migrated once from the
window's window.ini (written here by a real QSettings, as the old window wrote it)."""

from __future__ import annotations

import dataclasses
import json

from PySide6.QtCore import QByteArray, QSettings

from kanoa_desktop.core.config.profiles import (
    SCHEMA_VERSION,
    Profile,
    ProfileStore,
    window_kb_folders,
)

ODD = ["/data/a,b", '/q"uote', "/ünï cödé", "/back\\slash", "/semi;colon", "/@at", " lead"]


def _write_window_ini(path, lists: dict[str, object]) -> None:
    settings = QSettings(str(path), QSettings.Format.IniFormat)
    settings.setValue("geometry", QByteArray(b'\x01\x02,;="%\n'))
    settings.setValue("lastFolder", "/home/u")
    for key, value in lists.items():
        settings.setValue(f"kb/{key}", value)
    settings.sync()
    assert settings.status() == QSettings.Status.NoError


def _v2_doc(*profiles: Profile) -> dict:
    items = []
    for p in profiles:
        d = dataclasses.asdict(p)
        d.pop("kb_folders")
        d["user_set"] = sorted(p.user_set)
        items.append(d)
    return {"schema_version": 2, "active_profile": profiles[0].name, "profiles": items}


def test_kb_folders_round_trip_with_the_profile():
    store = ProfileStore()
    store.load()
    store.update(store.active.with_user_values(kb_folders=("/papers", "/notes/ü")))
    assert store.save() is None
    doc = json.loads(store.path.read_text())
    assert doc["schema_version"] == SCHEMA_VERSION
    assert doc["profiles"][0]["kb_folders"] == ["/papers", "/notes/ü"]
    again = ProfileStore()
    assert again.load() == []
    assert again.active.kb_folders == ("/papers", "/notes/ü")
    assert "kb_folders" in again.active.user_set


def test_a_mistyped_folder_list_falls_back_to_none_and_is_reported():
    store = ProfileStore()
    d = dataclasses.asdict(Profile(name="A"))
    d["user_set"] = []
    d["kb_folders"] = ["/ok", 3]
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_text(json.dumps({"schema_version": SCHEMA_VERSION, "profiles": [d]}))
    problems = store.load()
    assert store.active.kb_folders == ()
    assert any("kb_folders" in p.message for p in problems)


def test_qsettings_lists_read_back_exactly_without_qt(tmp_path):
    ini = tmp_path / "window.ini"
    _write_window_ini(
        ini,
        {
            "two": ["/data/papers", "/home/u/My Notes"],
            "one": ["/only/one"],  # QSettings writes a one-item list as a plain string
            "none": [],  # @Invalid()
            "odd": ODD,
        },
    )
    assert window_kb_folders(ini) == {
        "two": ("/data/papers", "/home/u/My Notes"),
        "one": ("/only/one",),
        "odd": tuple(ODD),
    }
    # And Qt itself agrees with what we read.
    assert QSettings(str(ini), QSettings.Format.IniFormat).value("kb/odd") == ODD


def test_loading_a_v2_file_takes_each_profiles_folders_from_window_ini_once():
    a, b, c = Profile(name="A"), Profile(name="B"), Profile(name="C")
    store = ProfileStore()
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_text(json.dumps(_v2_doc(a, b, c)))
    _write_window_ini(
        store.path.with_name("window.ini"),
        {a.id: ["/papers", "/notes, old"], b.id: ["/only"], "gone-profile": ["/x"]},
    )
    assert store.load() == []
    by_name = {p.name: p for p in store.profiles}
    assert by_name["A"].kb_folders == ("/papers", "/notes, old")
    assert by_name["B"].kb_folders == ("/only",)
    assert by_name["C"].kb_folders == ()
    saved = json.loads(store.path.read_text())
    assert saved["schema_version"] == SCHEMA_VERSION
    assert {p["name"]: p["kb_folders"] for p in saved["profiles"]}["A"] == [
        "/papers",
        "/notes, old",
    ]

    # Done once: a folder the user then removes does not come back from window.ini.
    store.update(by_name["A"].with_user_values(kb_folders=("/papers",)))
    assert store.save() is None
    again = ProfileStore()
    assert again.load() == []
    assert again.get("A").kb_folders == ("/papers",)


def test_a_missing_or_unreadable_window_ini_migrates_to_no_folders():
    store = ProfileStore()
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_text(json.dumps(_v2_doc(Profile(name="A"))))
    assert store.load() == []
    assert store.active.kb_folders == ()
    store.path.with_name("window.ini").write_bytes(b"\xff\xfe[kb\nnot ini at all = = =\n")
    store.path.write_text(json.dumps(_v2_doc(Profile(name="A"))))
    assert store.load() == []
    assert store.active.kb_folders == ()
