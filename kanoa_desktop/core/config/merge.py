"""A settings document shared by processes, merged key by key.

The window and the command line each read ``profiles.json`` when they start and write it
when something changes. Writing back the whole document read at start would undo what the
other process saved meanwhile (a Settings change, a remembered vision result), so a save
merges: the document on disk now, plus what this process changed since it last read or
wrote it (``base`` -> ``ours``), key by key, profiles matched by id, field by field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def merge_documents(
    base: Mapping[str, Any], ours: Mapping[str, Any], theirs: Mapping[str, Any]
) -> dict[str, Any]:
    """``theirs`` with the changes from ``base`` to ``ours`` applied on top.

    Sections that are objects (preferences, the vision cache, any cache added later) merge
    key by key; ``profiles`` by id, field by field; any other value is ours when ours
    changed it. Where both changed the same key, ours wins (the later save). A profile
    the other process removed stays removed unless this one changed it; one this process
    removed goes even if the other changed it (the user removed it here, last).
    """
    doc = dict(theirs)
    for key in (base.keys() | ours.keys()) - {"profiles"}:
        mine, was, now = ours.get(key), base.get(key), theirs.get(key)
        if key not in ours:
            doc.pop(key, None)
        elif isinstance(mine, Mapping) and isinstance(now, Mapping):
            doc[key] = merge_keys(_dict(was), mine, now)
        elif key not in base or mine != was:
            doc[key] = mine
    doc["profiles"] = _merge_profiles(
        _by_id(base.get("profiles")), _by_id(ours.get("profiles")), _by_id(theirs.get("profiles"))
    )
    return doc


def merge_keys(
    base: Mapping[str, Any], ours: Mapping[str, Any], theirs: Mapping[str, Any]
) -> dict[str, Any]:
    """``theirs`` with the keys ``ours`` set, changed or removed since ``base``."""
    out = dict(theirs)
    for key in base.keys() | ours.keys():
        if key not in ours:
            out.pop(key, None)
        elif key not in base or ours[key] != base[key]:
            out[key] = ours[key]
    return out


def _merge_profiles(
    base: dict[str, dict], ours: dict[str, dict], theirs: dict[str, dict]
) -> list[dict]:
    merged: list[dict] = []
    for pid, profile in theirs.items():
        if pid in base and pid not in ours:
            continue  # removed here
        merged.append(merge_keys(base.get(pid, {}), ours[pid], profile) if pid in ours else profile)
    for pid, profile in ours.items():
        if pid in theirs:
            continue
        if pid not in base or profile != base[pid]:
            merged.append(profile)  # added here, or changed here after the other removed it
    return merged


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _by_id(profiles: Any) -> dict[str, dict]:
    if not isinstance(profiles, list):
        return {}
    return {p["id"]: p for p in profiles if isinstance(p, Mapping) and isinstance(p.get("id"), str)}
