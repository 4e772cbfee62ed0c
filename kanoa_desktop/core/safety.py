"""Text from servers, models and file systems made safe to show, log, export or print.

Every function here runs in time linear in its input (plain ``str`` methods, translation
tables, or regular expressions without nested or overlapping quantifiers), so an
adversarial answer or file name of any length cannot freeze a thread.

- :func:`scrub_secrets` removes API keys: every key the app has handed to a client (see
  :func:`remember_secret`), ``Bearer ...``/``Basic ...`` credentials, ``Authorization:``,
  ``api_key=`` and ``sk-...``-style keys. :class:`~kanoa_desktop.core.endpoint.errors.KanoaError`
  scrubs its message, hint and detail with it, and :class:`ScrubbingFilter` does the same
  for log records.
- :func:`escape_control` shows control characters, bidirectional overrides and lone
  surrogates as visible escapes (``\\x1b``, ``\\n``, ``\\u202e``), for file names and
  server words printed to a terminal or a label.
- :func:`replace_surrogates` turns lone surrogates (invalid Unicode a server can send as
  ``"\\ud83d"`` in JSON) into U+FFFD so text can always be encoded.
- :func:`defang_images` turns every Markdown image form (inline ``![a](u)``, reference
  ``![a][r]``, collapsed ``![a][]``, shortcut ``![a]``) into a plain link or text, so a
  renderer never fetches or reads anything named by model text.
- :func:`code_fence`: a fence no line of a code block's text can close.
- :func:`loads_json_bounded` parses JSON from a file or a server only when the objects it
  would make fit a budget (counted before parsing, in linear time): a 110 MB file of empty
  objects is 2.8 GB once parsed.
"""

from __future__ import annotations

import logging
import re
import threading

MASK = "•••"

# --- secrets -----------------------------------------------------------------------------

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
# Shorter strings would scrub ordinary words; real keys are far longer.
_MIN_SECRET_LEN = 6

# Each pattern has one quantified run after a fixed prefix: linear, no backtracking blow-up.
_CREDENTIAL_RES = (
    # "Bearer abc", "Basic abc=" (an echoed Authorization header or a curl line)
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=\-]+"), r"\1\2" + MASK),
    # Authorization: xyz / "authorization": "xyz" / api_key=xyz / x-api-key: xyz
    (
        re.compile(
            r"(?i)\b(authorization|proxy-authorization|x-api-key|api[_-]?key|access[_-]?token)"
            r"(\"?'?\s{0,8}[:=]\s{0,8}\"?'?)(?!bearer\b|basic\b)[^\s\"',;}&]+"
        ),
        r"\1\2" + MASK,
    ),
    # OpenAI-style keys: sk-..., sk-proj-...
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{12,}"), "sk-" + MASK),
)


def remember_secret(secret: str | None) -> None:
    """Add a secret (an API key) that :func:`scrub_secrets` removes from then on.

    Kept in memory only, for the life of the process; never written anywhere."""
    if secret and len(secret) >= _MIN_SECRET_LEN:
        with _secrets_lock:
            _secrets.add(secret)


def scrub_secrets(text: str, *secrets: str | None) -> str:
    """``text`` without API keys: the given ``secrets``, every remembered one, and anything
    that looks like a credential (``Bearer ...``, ``Authorization: ...``, ``api_key=...``,
    ``sk-...``). Safe for any length (linear)."""
    if not text:
        return text
    with _secrets_lock:
        known = [s for s in _secrets if s]
    known += [s for s in secrets if s and len(s) >= 1]
    # Longest first, so a key that contains another is removed whole.
    for secret in sorted(set(known), key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern, replacement in _CREDENTIAL_RES:
        text = pattern.sub(replacement, text)
    return text


class ScrubbingFilter(logging.Filter):
    """A logging filter that scrubs secrets from each record's message and traceback.

    Attach it to a *handler* (``handler.addFilter(ScrubbingFilter())``) so it sees records
    from every logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: leave the record alone
            return True
        record.msg = scrub_secrets(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            import traceback

            record.exc_text = scrub_secrets("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        return True


# --- control characters ------------------------------------------------------------------


def _escape_for(cp: int) -> str:
    named = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
    if cp in named:
        return named[cp]
    if cp < 0x100:
        return f"\\x{cp:02x}"
    return f"\\u{cp:04x}"


# C0, DEL, C1, bidi embeddings/overrides/isolates, line/paragraph separators, BOM and
# zero-width marks that can hide or reorder what a reader sees, and every surrogate.
_UNSAFE_CODEPOINTS = (
    list(range(0x00, 0x20))
    + list(range(0x7F, 0xA0))
    + [0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x2028, 0x2029, 0xFEFF]
    + list(range(0x202A, 0x202F))
    + list(range(0x2066, 0x206A))
    + list(range(0xD800, 0xE000))
)
_ESCAPE_TABLE = {cp: _escape_for(cp) for cp in _UNSAFE_CODEPOINTS}


def escape_control(text: str, *, keep: str = "") -> str:
    """``text`` with control characters, bidi overrides and lone surrogates shown as
    visible escapes (``\\x1b``, ``\\n``, ``\\u202e``), so a file name or a server's words
    cannot move a terminal cursor, change its colours, reorder a line or add lines.

    Characters in ``keep`` (for example ``"\\n\\t"`` for multi-line text) pass through."""
    if text.isprintable() and "\u200b" not in text and "\ufeff" not in text:
        return text  # the common case, without building a copy
    table = _ESCAPE_TABLE
    if keep:
        table = {cp: v for cp, v in table.items() if chr(cp) not in keep}
    return text.translate(table)


def escape_name(name: str | bytes) -> str:
    """A file name ready to show: bytes that are not UTF-8 (or the surrogate escapes
    ``os.fsdecode`` makes of them) become ``\\xNN``, control characters are escaped."""
    if isinstance(name, bytes):
        name = name.decode("utf-8", "backslashreplace")
    elif any(0xDC80 <= ord(c) <= 0xDCFF for c in name):
        name = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return escape_control(name)


# --- invalid Unicode -----------------------------------------------------------------------

_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def escape_rich(text: str) -> str:
    """``text`` to put inside Qt rich text (a label set to RichText, a tooltip), shown
    as the characters it is: ``<``, ``>``, ``&`` and quotes escaped, line breaks kept as
    ``<br>``. Every piece of outside text (a server's words, a model name, a file name)
    that goes into markup goes through here."""
    return text.translate(_TOOLTIP_ESCAPES)


def plain_tooltip(text: str) -> str:
    """``text`` for a Qt tooltip, shown as the characters it is.

    Qt guesses whether a tooltip is rich text, so a model name or title a server chose
    (``<img src=file:///...>``) would be rendered and could load a local file: escaped
    inside ``<qt>`` it is always literal, line breaks kept.
    """
    return f"<qt>{escape_rich(text)}</qt>"


# html.escape's five, plus line breaks; without importing html (its entity table cost the
# window's start-up 6 ms: the status bar sets tooltips while it is built).
_TOOLTIP_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
                                  "'": "&#x27;", "\n": "<br>"})  # fmt: skip


def replace_surrogates(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD, so it always encodes."""
    return _SURROGATE_RE.sub("\ufffd", text)


# --- images in model text ------------------------------------------------------------------


def defang_images(markdown: str) -> str:
    """Markdown whose images are links or text: nothing is fetched or read to display it.

    Every form that CommonMark turns into an image starts with ``![``, so each ``![``
    becomes ``[image: `` (``![](u)`` -> ``[image: untitled](u)``, ``![a][r]`` ->
    ``[image: a][r]``); the URL survives as a link the user may click. Linear in the
    input. Code spans show the rewritten text too; callers keep the original for copying.
    (Reports go further: :func:`kanoa_desktop.core.reports.markdown.safe_markdown`.)"""
    if "![" in markdown:
        markdown = markdown.replace("![]", "[image: untitled]").replace("![", "[image: ")
    return markdown


# --- code blocks ---------------------------------------------------------------------------


def code_fence(text: str) -> str:
    """A backtick fence longer than any run of backticks in ``text`` (at least three), so
    no line of ``text`` (a notebook cell's source) can close the block it opens."""
    longest = max((len(r) for r in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


# --- JSON by what it becomes ---------------------------------------------------------------

_JSON_CHUNK = 1 << 20


class JsonTooLarge(ValueError):
    """JSON that would make more than the allowed number of values. ``items`` is the count
    found (an upper bound), ``limit`` the budget."""

    def __init__(self, items: int, limit: int) -> None:
        super().__init__(f"about {items:,} JSON values, more than the {limit:,} allowed")
        self.items = items
        self.limit = limit


def _structural(data: bytes) -> int:
    # Each value or key but the first of its container follows a "," or a ":", and each
    # container opens with "{" or "[" (an empty one holds no first value).
    opens = data.count(b"{") + data.count(b"[") - data.count(b"{}") - data.count(b"[]")
    return opens + data.count(b",") + data.count(b":")


def json_items(data: bytes, *, exact_above: int | None = None) -> int:
    """An upper bound on the values and keys ``json.loads(data)`` would make (for compact
    JSON, exact or one over per megabyte).

    First ``{``, ``[``, ``,`` and ``:`` are counted everywhere (a few C passes, no copy):
    characters inside strings inflate that count. When it is over ``exact_above``, the
    count is made again outside strings only, a megabyte at a time (escaped pairs
    removed, then split on quotes), so memory stays bounded whatever the text holds."""
    quick = _structural(data) + 1
    if exact_above is None or quick <= exact_above:
        return quick
    total, inside, pos, n = 0, False, 0, len(data)
    view = memoryview(data)
    while pos < n:
        end = min(n, pos + _JSON_CHUNK)
        while end < n and data[end - 1] == 0x5C:  # never split an escape: past "\\" runs
            end += 1
        chunk = bytes(view[pos:end]).replace(b"\\\\", b"").replace(b'\\"', b"")
        pieces = chunk.split(b'"')
        total += _structural(b'"'.join(pieces[1 if inside else 0 :: 2]))
        inside ^= (len(pieces) - 1) % 2 == 1
        pos = end
    return total + 1


def loads_json_bounded(data: bytes, *, max_items: int) -> object:
    """``json.loads(data)``, refused with :class:`JsonTooLarge` before anything is parsed
    when it would make more than ``max_items`` values and keys (see :func:`json_items`).
    Raises ValueError (JSON errors, UnicodeDecodeError) and RecursionError (nesting too
    deep) as ``json.loads`` does."""
    import json

    items = json_items(data, exact_above=max_items)
    if items > max_items:
        raise JsonTooLarge(items, max_items)
    return json.loads(data)


__all__ = [
    "MASK",
    "JsonTooLarge",
    "ScrubbingFilter",
    "code_fence",
    "defang_images",
    "escape_control",
    "escape_name",
    "escape_rich",
    "json_items",
    "loads_json_bounded",
    "plain_tooltip",
    "remember_secret",
    "replace_surrogates",
    "scrub_secrets",
]
