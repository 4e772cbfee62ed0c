"""A batch run again asks by content (issue 22): unchanged items keep their answers, new and
changed ones are asked, removed files leave the report, and the run says so; a replaced
figure never keeps its old answer or thumbnail. Against the vLLM test server."""

from __future__ import annotations

import csv
import io
import re

import pytest
from PIL import Image

from kanoa_desktop.core.ask.services import Services
from kanoa_desktop.core.batch.plan import Template
from kanoa_desktop.core.batch.report import write_report
from kanoa_desktop.core.batch.runner import Batch
from kanoa_desktop.core.batch.store import BatchStore
from kanoa_desktop.core.config.profiles import Profile
from kanoa_desktop.core.endpoint.pool import ClientPool
from tests.batch.conftest import png_bytes
from tests.batch.test_batch import asked_items, chat_requests

pytestmark = pytest.mark.vllm

TEMPLATE = Template(context="Run {stem}", question="Describe {item}.")


@pytest.fixture
async def pool():
    services = Services(ClientPool())  # the batch's services: a pool on this loop
    yield services
    await services.pool.aclose()


def _colour(png: bytes) -> tuple[int, int, int]:
    im = Image.open(io.BytesIO(png)).convert("RGB")
    return im.getpixel((im.width // 2, im.height // 2))


async def test_a_rerun_keeps_unchanged_answers_asks_new_and_changed_and_drops_removed(
    tmp_path, pool
):
    from tests.servers.vllm_server import VLLMTestServer

    folder = tmp_path / "runs"
    folder.mkdir()
    for name, colour in (("a", (200, 0, 0)), ("b", (0, 200, 0)), ("c", (0, 0, 200)),
                         ("e", (90, 90, 90))):  # fmt: skip
        (folder / f"{name}.png").write_bytes(png_bytes(colour=colour))
    (folder / "d.csv").write_text("t,v\n0,1\n1,2\n")
    store = BatchStore(tmp_path / "state.sqlite3")
    with VLLMTestServer(tokens_per_second=400, answer_tokens=6) as server:
        profile = Profile(name="lab", api_base=server.api_base, max_tokens=16, temperature=0.0)

        def batch() -> Batch:
            return Batch([folder], profile, TEMPLATE, pool, store=store)

        first = batch()
        ended = await first.run()
        assert ended.line() == "5 new; asked 5"
        old_b = first.results[str(folder / "b.png")]

        # b.png replaced by another figure, f.png added, e.png removed.
        (folder / "b.png").write_bytes(png_bytes(colour=(250, 250, 0)))
        (folder / "f.png").write_bytes(png_bytes(colour=(0, 250, 250)))
        (folder / "e.png").unlink()
        second = batch()
        await second.prepare()
        assert second.rerun.line() == "3 kept, 1 new, 1 changed, 1 removed"
        assert {k.rsplit("/", 1)[-1] for k in second.results} == {"a.png", "c.png", "d.csv"}
        before = len(chat_requests(server))
        ended = await second.run()
        assert sorted(asked_items(server)[before:]) == ["b.png", "f.png"]
        assert ended.line() == "3 kept, 1 new, 1 changed, 1 removed; asked 2"
        new_b = second.results[str(folder / "b.png")]
        assert new_b.fingerprint != old_b.fingerprint and new_b.content != old_b.content
        assert _colour(new_b.thumbnail) == (250, 250, 0) != _colour(old_b.thumbnail)

        before = len(chat_requests(server))
        third = batch()
        ended = await third.run()
        assert len(chat_requests(server)) == before and ended.line() == "5 kept; asked 0"

        # Another question is another request for every item; the first answers stay kept.
        other = Batch([folder], profile, Template(question="Explain {item}."), pool,
                      store=store)  # fmt: skip
        ended = await other.run()
        assert ended.line() == "5 changed; asked 5"
        again = batch()
        await again.prepare()
        assert again.rerun.line() == "5 kept"
    store.close()

    md = write_report(third, tmp_path / "report.md").read_text()
    removed = re.compile(r"\be\.png")  # not "…1e.png", a thumbnail named by its hash
    assert not removed.search(md) and "### 2. b.png" in md and "### 5. f.png" in md
    assert f"- **Server**: {server.api_base} (profile lab)" in md
    assert "- **Model**: " in md and "- **Question template**: Describe {item}." in md
    assert "- **Context template**: Run {stem}" in md
    thumbs = {p.name.split("-")[0]: p for p in (tmp_path / "report_thumbs").iterdir()}
    assert _colour(thumbs["002"].read_bytes()) == (250, 250, 0)  # b.png's new thumbnail
    html = write_report(third, tmp_path / "report.html").read_text()
    assert not removed.search(html) and "Describe {item}." in html
    rows = list(csv.DictReader(io.StringIO(write_report(third, tmp_path / "r.csv").read_text())))
    assert [r["item"] for r in rows] == ["a.png", "b.png", "c.png", "d.csv", "f.png"]
    b = rows[1]
    assert b["question"] == "Describe b.png." and b["context"] == "Run b"
    assert b["server"] == server.api_base and b["model"]
