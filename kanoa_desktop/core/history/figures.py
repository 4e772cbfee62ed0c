"""Figures in the history: stored once by the sha256 of the bytes that were sent.

A stored user message holds ``kanoa-figure:sha256:<hex>`` references instead of image data
URLs (:func:`strip_images`); :func:`restore_images` puts the data URLs back on reading.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import Any

from kanoa_desktop.core.history.records import CONVERSATION_FIGURES, StoredFigure

FIGURE_REF_PREFIX = "kanoa-figure:sha256:"

_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?(;[^,]*)?,", re.DOTALL)


def decode_data_url(url: str) -> tuple[str, bytes] | None:
    """(mime, bytes) of a base64 data URL, or None for anything else."""
    m = _DATA_URL.match(url)
    if not m or ";base64" not in (m.group(2) or ""):
        return None
    try:
        data = base64.b64decode(url[m.end() :], validate=False)
    except (binascii.Error, ValueError):
        return None
    return (m.group(1) or "application/octet-stream"), data


def store_figure(db: sqlite3.Connection, mime: str, data: bytes, meta: Any | None) -> str:
    """Store the figure unless it is stored already; returns its hash. ``meta`` (a
    PreparedFigure, or None) adds its name and sizes."""
    digest = hashlib.sha256(data).hexdigest()
    sent = getattr(meta, "sent_size", None) or (None, None)
    orig = getattr(meta, "original_size", None) or (None, None)
    if sent == (None, None):
        sent = image_size(data)
    fig = StoredFigure(
        hash=digest,
        mime=mime,
        name=getattr(meta, "name", "") or "",
        data=data,
        width=sent[0],
        height=sent[1],
        original_width=orig[0],
        original_height=orig[1],
    )
    fig.insert(db, created=time.time())
    return digest


def strip_images(
    db: sqlite3.Connection,
    conversation_id: int,
    message: Mapping[str, Any],
    figures: Sequence[Any],
) -> dict[str, Any]:
    """The message with every image data URL replaced by a figure-hash reference; the
    images are stored and linked to the conversation."""
    by_bytes = {bytes(f.data): f for f in figures if getattr(f, "data", None)}
    content = message.get("content")
    if not isinstance(content, list):
        return dict(message)
    parts: list[Any] = []
    for part in content:
        url = (
            part.get("image_url", {}).get("url")
            if isinstance(part, Mapping) and part.get("type") == "image_url"
            else None
        )
        decoded = decode_data_url(url) if isinstance(url, str) else None
        if decoded is None:
            parts.append(part)
            continue
        mime, data = decoded
        meta = by_bytes.get(data)
        digest = store_figure(db, mime, data, meta)
        pos = db.execute(
            "SELECT COUNT(*) FROM conversation_figures WHERE conversation_id = ?",
            (conversation_id,),
        ).fetchone()[0]
        link = {
            "conversation_id": conversation_id,
            "hash": digest,
            "position": pos,
            "name": getattr(meta, "name", "") or "",
        }
        CONVERSATION_FIGURES.insert(db, link, or_="IGNORE")
        new = dict(part)
        new["image_url"] = {**part["image_url"], "url": FIGURE_REF_PREFIX + digest}
        parts.append(new)
    return {**message, "content": parts}


def restore_images(message: dict[str, Any], urls: Mapping[str, str]) -> dict[str, Any]:
    """The stored message with each figure reference replaced by its data URL (``urls``
    maps a hash to it); a reference to a figure no longer stored is left as is."""
    content = message.get("content")
    if not isinstance(content, list):
        return message
    parts = []
    for part in content:
        url = part.get("image_url", {}).get("url") if isinstance(part, dict) else None
        if isinstance(url, str) and url.startswith(FIGURE_REF_PREFIX):
            digest = url[len(FIGURE_REF_PREFIX) :]
            part = {**part, "image_url": {**part["image_url"], "url": urls.get(digest, url)}}
        parts.append(part)
    return {**message, "content": parts}


def conversation_figures(db: sqlite3.Connection, conversation_id: int) -> list[StoredFigure]:
    """The figures of a conversation, in the order they were first sent."""
    rows = db.execute(
        "SELECT f.*, cf.name AS link_name FROM conversation_figures cf JOIN figures f "
        "ON f.hash = cf.hash WHERE cf.conversation_id = ? ORDER BY cf.position",
        (conversation_id,),
    ).fetchall()
    return [StoredFigure.from_row(r) for r in rows]


def purge_unused(db: sqlite3.Connection) -> None:
    """Remove figures no conversation links to any more."""
    db.execute("DELETE FROM figures WHERE hash NOT IN (SELECT hash FROM conversation_figures)")


def image_size(data: bytes) -> tuple[int | None, int | None]:
    try:
        import io

        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except Exception:  # noqa: BLE001 - any failure just means "size unknown"
        return (None, None)
