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

_SECTIONS = ("preferences", "vision_cache")  # merged key by key


def merge_documents(
    base: Mapping[str, Any], ours: Mapping[str, Any], theirs: Mapping[str, Any]
) -> dict[str, Any]:
    """``theirs`` with the changes from ``base`` to ``ours`` applied on top.

    Where both changed the same key, ours wins (the later save). A profile the other
    process removed stays removed unless this one changed it; one this process removed
    goes even if the other changed it (the user removed it here, last).
    """
    doc = dict(theirs)
    if ours.get("active_profile") != base.get("active_profile"):
        doc["active_profile"] = ours.get("active_profile")
    for section in _SECTIONS:
        doc[section] = merge_keys(
            _dict(base.get(section)), _dict(ours.get(section)), _dict(theirs.get(section))
        )
    doc["profiles"] = _merge_profiles(
        _by_id(base.get("profiles")), _by_id(ours.get("profiles")), _by_id(theirs.get("profiles"))
    )
    doc["schema_version"] = ours.get("schema_version", theirs.get("schema_version"))
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
