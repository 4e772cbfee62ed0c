"""Every pattern applied to model output, server words or file content runs in bounded
time on adversarial text of 10^5 characters, and the text helpers do what they say.

The bound is generous (it catches the cubic and quadratic patterns that took minutes, not
a slow machine): no assertion here is about speed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from kanoa_desktop.core.ask.markdown_stream import MarkdownStream
from kanoa_desktop.core.endpoint import errors as E
from kanoa_desktop.core.endpoint.sse import SseComment, SseEvent, SseTooLarge, iter_sse
from kanoa_desktop.core.inputs.figures import _strip_css_refs
from kanoa_desktop.core.kb.chunking import chunk_segments
from kanoa_desktop.core.kb.readers import Segment
from kanoa_desktop.core.kb.retrieval import Grounding, Passage, Source, query_terms
from kanoa_desktop.core.reports.markdown import render_markdown, safe_markdown
from kanoa_desktop.core.reports.pdf import pdf_html as _pdf_html
from kanoa_desktop.core.safety import (
    MASK,
    defang_images,
    escape_control,
    escape_name,
    remember_secret,
    replace_surrogates,
    scrub_secrets,
)

N = 100_000
BOUND_S = 240  # per test; the quadratic and cubic patterns this guards took minutes a call

ADVERSARIAL = {
    "img-open": "![](" * (N // 4),
    "cut-data": "![plot](data:" + "A" * N,
    "bang": "![" * (N // 2),
    "brackets": "[" * (N // 2) + "]" * (N // 2),
    "link-open": "[a](" * (N // 4),
    "lt": "<" * N,
    "tags": "<img " * (N // 5),
    "bearer": "Bearer " * (N // 7),
    "authz": "authorization: " * (N // 15),
    "apikey": "api_key=" * (N // 8),
    "sk": "sk-" + "a" * N,
    "url": "url(" * (N // 4),
    "ctx": "maximum context length is 1 tokens. prompt contains " * (N // 50),
    "aliases": "Valid aliases: " * (N // 15),
    "cite": "[1," * (N // 3),
    "cite-space": "[1 ," + " " * N,
    "heading": "#" * N,
    "rst": "=" * N + "x",
    "spaces": " " * N,
    "newlines": "\n" * N,
    "control": "\x1b[31m" * (N // 5),
    "surrogates": "\ud83d" * N,
    "li-p": "<li> <p>" * (N // 8),
}

pytestmark = pytest.mark.timeout(BOUND_S)


def bounded(fn: Callable[[], object]) -> object:
    """Run ``fn``. The bound is the module's timeout (pytest-timeout, BOUND_S a test):
    a quadratic or cubic pattern (minutes) fails the test; a slow machine does not."""
    return fn()


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_text_helpers_are_linear(name):
    text = ADVERSARIAL[name]
    bounded(lambda: defang_images(text))
    bounded(lambda: safe_markdown(text))
    bounded(lambda: scrub_secrets(text, "secret-value-123"))
    bounded(lambda: escape_control(text))
    bounded(lambda: replace_surrogates(text))
    bounded(lambda: _strip_css_refs(text))


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_error_bodies_are_classified_in_bounded_time(name):
    body = replace_surrogates(ADVERSARIAL[name])[:65536]  # the error-body cap
    err = bounded(lambda: E.error_from_status(400, body.encode(), api_base="http://h/v1"))
    assert isinstance(err, E.KanoaError) and len(err.message) < 2000
    bounded(lambda: E.error_from_status(500, b'{"error":{"message":"' + body.encode() + b'"}}'))


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_model_text_processing_is_linear(name):
    text = replace_surrogates(ADVERSARIAL[name])
    stream = MarkdownStream()

    def feed():
        for i in range(0, len(text), 500):
            stream.feed(text[i : i + 500])
            stream.take_committed()

    bounded(feed)
    grounding = Grounding(
        "passages",
        (Passage(1, "x", Source("a.md", None)),),
        "",
        100,
        1,  # type: ignore[arg-type]
    )
    bounded(lambda: grounding.cited(text))
    bounded(lambda: _pdf_html(text))
    if len(text) <= N + 20:
        bounded(lambda: render_markdown(text))


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_file_content_processing_is_linear(name):
    text = replace_surrogates(ADVERSARIAL[name])
    bounded(lambda: chunk_segments([Segment(text)], 320, 40))
    bounded(lambda: query_terms(text))


# --- what the helpers do ---------------------------------------------------------------------


def test_every_image_form_is_defanged():
    md = "a ![x](u) b ![](v) c ![r][pic] d ![pic][] e ![pic]\n\n[pic]: /etc/passwd"
    out = defang_images(md)
    assert "![" not in out
    assert "[image: x](u)" in out and "[image: untitled](v)" in out
    assert "[image: r][pic]" in out and "[image: pic]" in out


def test_secrets_and_credentials_are_scrubbed():
    remember_secret("my-long-remembered-key-42")
    text = (
        "key my-long-remembered-key-42; Authorization: Bearer abc.DEF_123-x; "
        '"authorization": "Basic dXNlcjpwYXNz"; api_key=zzz999; x-api-key: QQQ; '
        "sk-proj-abcdefghijklmnop0123"
    )
    out = scrub_secrets(text)
    for secret in ("my-long-remembered-key-42", "abc.DEF_123-x", "dXNlcjpwYXNz", "zzz999", "QQQ",
                   "abcdefghijklmnop0123"):  # fmt: skip
        assert secret not in out
    assert out.count(MASK) >= 6
    assert scrub_secrets("a plain sentence about tokens") == "a plain sentence about tokens"


def test_every_kanoa_error_is_scrubbed_and_escaped():
    err = E.ServerError(
        "failed: Authorization: Bearer sk-live-0123456789abcdef \x1b[2J",
        "hint \x07",
        detail="raw Bearer sk-live-0123456789abcdef",
    )
    shown = str(err) + err.detail + repr(err)
    assert "0123456789abcdef" not in shown and "\x1b" not in shown and "\x07" not in shown
    assert "\\x1b[2J" in err.message


def test_names_and_control_characters_are_shown_escaped():
    assert escape_control("a\x1b[31mb\nc\u202ed\x00") == "a\\x1b[31mb\\nc\\u202ed\\x00"
    assert escape_control("line\n\tkept", keep="\n\t") == "line\n\tkept"
    assert escape_control("plain café") == "plain café"
    assert escape_name(b"caf\xe9.md") == "caf\\xe9.md"
    assert escape_name("caf\udce9.md") == "caf\\xe9.md"
    assert replace_surrogates("a\ud83db") == "a\ufffdb"
    assert replace_surrogates("ok 😀") == "ok 😀"


async def _events(chunks: list[bytes], cap: int = 1000) -> list:
    async def gen():
        for c in chunks:
            yield c

    return [e async for e in iter_sse(gen(), max_line_bytes=cap, max_event_bytes=cap)]


def test_the_sse_parser_splits_any_line_ending_across_chunks():
    body = b'data: {"a":1}\r\n\r\n: keep-alive\r\rdata: x\ndata: y\n\nevent: e\rdata: z\r\n'
    whole = asyncio.run(_events([body]))
    bytewise = asyncio.run(_events([body[i : i + 1] for i in range(len(body))]))
    assert whole == bytewise
    datas = [e.data for e in whole if isinstance(e, SseEvent)]
    assert datas == ['{"a":1}', "x\ny", "z"]
    assert sum(isinstance(e, SseComment) for e in whole) == 1


def test_the_sse_parser_stops_at_the_line_and_event_caps():
    with pytest.raises(SseTooLarge) as info:
        asyncio.run(_events([b"data: " + b"a" * 600, b"a" * 600]))
    assert info.value.what == "line"
    with pytest.raises(SseTooLarge) as info:
        asyncio.run(_events([b"data: " + b"a" * 400 + b"\n"] * 3))
    assert info.value.what == "event"


def test_the_sse_parser_is_linear_on_many_tiny_lines():
    body = b"\r" * N + b"\n" * N + b":\n" * N
    bounded(lambda: asyncio.run(_events([body[i : i + 4096] for i in range(0, len(body), 4096)])))


def test_feeding_an_answer_token_by_token_is_linear():
    # 200,000 tokens one at a time (the old stream copied the whole text per token:
    # about two minutes here); take_committed and tail per 100 tokens, like a view's flush.
    def run():
        stream = MarkdownStream()
        for i in range(200_000):
            stream.feed("word " if i % 50 else "word\n\n")
            if i % 100 == 0:
                stream.take_committed()
                _ = stream.tail
        return stream

    stream = bounded(run)
    assert len(stream.text) == 200_000 * 5 + 4_000
