"""Text from outside (a model's answer, a file's table summary, a file name) made safe to
put in a report, for a viewer that follows CommonMark (GitHub, VS Code, markdown-it, with
raw HTML enabled):

- :func:`safe_markdown`: Markdown from outside kept as Markdown (emphasis, lists, tables,
  code, http links), with nothing in it that runs or loads: no raw HTML or autolink (a
  ``<`` that could open one is written ``&lt;``), no image (``![`` becomes ``[image: ``),
  no ``javascript:``/``vbscript:``/``data:``/``file:`` link, no character reference that
  could spell one, no attribute list (``{onclick=...}``), control characters shown
  escaped; code fences and code spans keep their text as it is.
- :func:`md_text`: plain text as Markdown that shows exactly that text.
- :func:`render_markdown`: Markdown from outside as HTML in which nothing runs or loads.

Everything here is linear in its input (one pass per line, patterns without nested
quantifiers), so an adversarial answer of any size cannot freeze a thread.
"""

from __future__ import annotations

import html
import re

from kanoa_desktop.core.safety import escape_control, replace_surrogates

_SAFE_SCHEMES = ("http:", "https:", "mailto:", "#")

# A "<" that could open raw HTML, a comment, a declaration or an autolink.
_TAG_OPEN = re.compile(r"<(?=[A-Za-z/!?])")
# A character reference a viewer would decode (``&#106;`` spells "j" in "javascript:").
_CHAR_REF = re.compile(r"&(?=#[0-9]{1,7};|#[xX][0-9A-Fa-f]{1,6};|[A-Za-z][A-Za-z0-9]{1,31};)")
# An attribute list (kramdown, Python-Markdown's attr_list) that would set an event
# handler, a style or a URL on the element before it.
_ATTR_LIST = re.compile(
    r"\{(?=[^{}\n]{0,200}?\b(?:on[a-z]{2,20}|style|href|src|srcdoc|action|formaction)\s*=)",
    re.IGNORECASE,
)
# Schemes that run code, read local files or launch a handler, wherever they appear ...
_BAD_SCHEME = re.compile(
    r"(?<![A-Za-z0-9+.\-])(javascript|vbscript|livescript|data|file|blob|filesystem|jar|"
    r"view-source|intent|search-ms|ms-[A-Za-z0-9\-]{1,40})(\\?):(?=\S)",
    re.IGNORECASE,
)
# ... and any scheme but http(s)/mailto/ftp where a link destination starts: after "](",
# after "]:" (a reference definition) and at the start of a line (its destination may
# stand on the next line).
_DEST_SCHEME = re.compile(
    r"(\]\(\s{0,40}|\]:\s{0,40}|^[ \t>]{0,40})([A-Za-z][A-Za-z0-9+.\-]{0,40})(\\?):(?=\S)",
    re.MULTILINE,
)
_ALLOWED_SCHEMES = frozenset({"http", "https", "mailto", "ftp"})
# A backslash escape or a run of backticks (the tokens that decide code spans).
_TICKS = re.compile(r"\\[!-/:-@\[-`{-~]|`+")
_FENCE_OPEN = re.compile(r"(`{3,}|~{3,})(.*)")
_FENCE_CLOSE = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*")
# A backtick fence after blanks, list markers or quote markers (one at the first column is
# handled as code).
_INNER_FENCE = re.compile(r"([ \t>]*+(?:(?:[-*+]|\d{1,9}[.)])[ \t]++)?)(`{3,})([^`]*)")
_ATX = re.compile(r"( {0,3})(#{1,6})(?=[ \t]|$)")


def _dest(match: re.Match) -> str:
    lead, scheme, _slash = match.group(1), match.group(2), match.group(3)
    if scheme.lower() in _ALLOWED_SCHEMES:
        return match.group(0)
    # A fragment of this page: clicked, it goes nowhere.
    return f"{lead}#{scheme}%3A"


def _defuse_text(text: str) -> str:
    """Text outside code: nothing in it opens HTML, an image, a character reference, an
    attribute list or a link to a scheme that runs or reads something."""
    if "&" in text:
        text = _CHAR_REF.sub("&amp;", text)
    if "<" in text:
        text = _TAG_OPEN.sub("&lt;", text)
    if "![" in text:
        text = text.replace("![]", "[image: untitled]").replace("![", "[image: ")
    if "{" in text:
        text = _ATTR_LIST.sub(r"\\{", text)
    if ":" in text:
        text = _DEST_SCHEME.sub(_dest, text)
        text = _BAD_SCHEME.sub(r"\1%3A", text)
    return text


def _code_spans(line: str) -> list[tuple[int, int, bool]]:
    """The runs of backticks of one line as (start, stop, is_code_span): a code span found
    the way CommonMark finds them (a run is closed by the next run of the same length),
    unless a pipe inside could end a table cell first; every other run on its own (it is
    escaped, so that no viewer can pair it with a run on another line)."""
    runs = [(m.start(), len(m.group(0))) for m in _TICKS.finditer(line) if m.group(0)[0] == "`"]
    following, last = [-1] * len(runs), {}
    for i in range(len(runs) - 1, -1, -1):
        following[i] = last.get(runs[i][1], -1)
        last[runs[i][1]] = i
    out, i = [], 0
    while i < len(runs):
        (start, n), j = runs[i], following[i]
        if j >= 0 and "|" not in line[start + n : runs[j][0]]:
            out.append((start, runs[j][0] + n, True))
            i = j + 1
        else:
            out.append((start, start + n, False))
            i += 1
    return out


def _defuse_line(line: str) -> str:
    """One line outside fenced code: code spans kept, the rest defused, backticks that
    open no span on this line escaped."""
    m = _INNER_FENCE.fullmatch(line)
    if m:
        # A fence inside a list item or a quote: written with tildes, which no viewer can
        # pair with a backtick elsewhere; its lines are defused like text.
        return m.group(1) + "~" * len(m.group(2)) + _defuse_text(m.group(3))
    if "`" not in line:
        return _defuse_text(line)
    out, pos = [], 0
    for start, stop, code in _code_spans(line):
        out.append(_defuse_text(line[pos:start]))
        out.append(line[start:stop] if code else "\\`" * (stop - start))
        pos = stop
    out.append(_defuse_text(line[pos:]))
    return "".join(out)


def safe_markdown(text: str, *, demote: int = 0) -> str:
    """Markdown from outside as Markdown in which nothing runs or loads (see the module's
    docstring), headings ``demote`` levels deeper (at most 6) so they nest under a report's
    own, and a code fence left open at the end closed, so the report's next part is not
    swallowed by it. Linear in the text."""
    text = replace_surrogates(text.replace("\r\n", "\n"))
    text = escape_control(text, keep="\n\t")
    out: list[str] = []
    fence = ""  # the open fence's marker run ("```", "~~~~"...), "" outside code
    for line in text.split("\n"):
        if fence:
            m = _FENCE_CLOSE.fullmatch(line)
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = ""
            out.append(line)
            continue
        m = _FENCE_OPEN.match(line)
        # Only a fence at the first column is trusted as code: one indented may belong to
        # a list item, which ends (and the fence with it) at the next line less indented.
        if m and not (m.group(1)[0] == "`" and "`" in m.group(2)):
            fence = m.group(1)
            out.append(line)
            continue
        if demote:
            h = _ATX.match(line)
            if h:
                hashes = min(6, len(h.group(2)) + demote)
                line = "#" * hashes + line[h.end() :]
        out.append(_defuse_line(line))
    if fence:
        out.append(fence)
    return "\n".join(out)


# --------------------------------------------------------------------------- plain text

_MD_INLINE = re.compile(r"[\\`*\[\]|~#]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_MD_LINE_START = re.compile(r"^([ \t]*)(?:([-+=>])|(\d{1,9})([.)]))", re.MULTILINE)


def md_text(text: str, *, one_line: bool = False, block_start: bool | None = None) -> str:
    """Plain text (a title, a file name, a question, a cell) as Markdown that shows exactly
    that text: nothing in it makes emphasis, a link, an image, a heading, a list, a table
    cell or HTML; control characters are shown escaped. ``one_line`` writes line breaks as
    spaces (a heading, a table cell); otherwise each line ends in a hard break. A line's
    start is escaped where it could open a block (a list, a quote, a heading underline):
    every line of multi-line text, a one-line text's only with ``block_start``."""
    text = replace_surrogates(str(text))
    if one_line:
        text = " ".join(escape_control(text, keep="\n\t").split())
    else:
        text = escape_control(text.replace("\r\n", "\n"), keep="\n\t")
    text = text.replace("&", "&amp;").replace("<", "&lt;")
    text = _MD_INLINE.sub(lambda m: "\\" + m.group(0), text)
    if "{" in text:
        text = _ATTR_LIST.sub(r"\\{", text)
    if not one_line if block_start is None else block_start:
        text = _MD_LINE_START.sub(_line_start, text)
    if one_line:
        return text
    lines = [line.strip(" \t") for line in text.split("\n")]
    return "  \n".join(lines).replace("  \n  \n", "\n\n")


def _line_start(m: re.Match) -> str:
    # Leading blanks would make code; a marker a list, a quote or a heading underline.
    if m.group(2):
        return "\\" + m.group(2)
    return m.group(3) + "\\" + m.group(4)


# --------------------------------------------------------------------------- HTML


def markdown_renderer():
    """markdown-it with raw HTML off, http(s)/mailto/relative links only, and images
    rendered as text (``[image: alt]``): the one way outside Markdown becomes HTML."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
    md.enable("strikethrough")

    def validate(url: str) -> bool:
        u = url.strip().lower()
        return u.startswith(_SAFE_SCHEMES) or ":" not in u.split("/", 1)[0]

    def image_as_text(tokens, idx, options, env):  # noqa: ARG001 - markdown-it's signature
        # Defense in depth behind safe_markdown: an image token never becomes <img>.
        return f"[image: {html.escape(tokens[idx].content or 'untitled')}]"

    md.validateLink = validate
    md.add_render_rule("image", image_as_text)
    return md


def render_markdown(text: str, *, demote: int = 0) -> str:
    """Markdown from outside as HTML in which nothing runs or loads: the text made safe by
    :func:`safe_markdown`, then rendered with raw HTML escaped, images as text and only
    http(s), mailto and relative links."""
    return markdown_renderer().render(safe_markdown(text, demote=demote))


__all__ = [
    "markdown_renderer",
    "md_text",
    "render_markdown",
    "safe_markdown",
]
