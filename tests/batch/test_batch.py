"""A batch over real inputs against the vLLM test server: every item asked once, bounded
concurrency, pause/resume, cancel and continue, retry failed, and the reports."""

from __future__ import annotations

import asyncio
import csv
import io
import re

import pytest

from kanoa_desktop.core.ask.services import Services
from kanoa_desktop.core.batch.plan import BatchError, Template
from kanoa_desktop.core.batch.report import write_report
from kanoa_desktop.core.batch.runner import (
    Batch,
    BatchEnded,
    ItemFinished,
    ItemStarted,
    Progress,
)
from kanoa_desktop.core.batch.store import BatchStore
from kanoa_desktop.core.config.profiles import Profile
from kanoa_desktop.core.endpoint.pool import ClientPool
from kanoa_desktop.core.reports.markdown import safe_markdown
from tests.batch.conftest import MIXED_ITEMS, png_bytes
from tests.servers.vllm_server import VLLMTestServer

pytestmark = pytest.mark.vllm

QUESTION = "Describe {item}."


@pytest.fixture
async def pool():
    services = Services(ClientPool())  # the batch's services: a pool on this loop
    yield services
    await services.pool.aclose()


@pytest.fixture
def store(tmp_path):
    s = BatchStore(tmp_path / "batches.sqlite3")
    yield s
    s.close()


def chat_requests(server) -> list:
    # A request the cancel cut off before its body arrived is recorded with no body: it
    # asked nothing (the server cannot have answered it), so it is not a question.
    return [
        r for r in server.received if r.path.endswith("/chat/completions") and r.body is not None
    ]


def asked_items(server) -> list[str]:
    """The {item} each chat request asked about (from the question's text)."""
    out = []
    for r in chat_requests(server):
        content = r.body["messages"][-1]["content"]
        text = (
            content
            if isinstance(content, str)
            else " ".join(p.get("text", "") for p in content if p.get("type") == "text")
        )
        m = re.search(r"Describe (.+?)\.(\s|$)", text)
        out.append(m.group(1) if m else text)
    return out


def _profile(server) -> Profile:
    return Profile(name="vllm", api_base=server.api_base, max_tokens=24, temperature=0.0)


async def test_a_mixed_folder_asks_each_item_once_and_reports_the_corrupt_file(
    mixed_folder, pool, store, tmp_path
):
    events = []
    with VLLMTestServer(tokens_per_second=400, answer_tokens=12) as server:
        batch = Batch(
            [mixed_folder],
            _profile(server),
            Template(context="Experiment {folder}, file {stem}", question=QUESTION),
            pool,
            store=store,
            listener=events.append,
        )
        ended = await batch.run()
        asked = asked_items(server)
        bodies = [r.body for r in chat_requests(server)]

    assert ended.state == "done"
    assert ended.progress.total == MIXED_ITEMS
    assert (ended.progress.done, ended.progress.failed) == (MIXED_ITEMS - 1, 1)
    labels = [i.label for i in batch.items]
    assert "paper.pdf, page 1" in labels
    assert "analysis.ipynb, figure 2 (cell 2)" in labels
    # Every item but the corrupt file asked exactly once; the corrupt one never.
    assert sorted(asked) == sorted(label for label in labels if label != "broken.png")
    # Each question carries its figure (tables their summary), and a notebook figure the
    # source of the cell that drew it.
    for body in bodies:
        text = str(body["messages"][-1]["content"])
        if "growth.csv" in text:
            assert "od600" in text
        else:
            assert "data:image/" in text
        if "analysis.ipynb, figure 2" in text:
            assert "plt.plot(run_1)" in text
        assert "Experiment experiment" in text
    (failure,) = batch.failures
    assert failure.label == "broken.png" and "not an image" in failure.error
    assert sum(isinstance(e, ItemStarted) for e in events) == MIXED_ITEMS
    assert sum(isinstance(e, ItemFinished) for e in events) == MIXED_ITEMS
    assert isinstance(events[-1], BatchEnded)

    md = write_report(batch, tmp_path / "out" / "report.md").read_text()
    assert "## Failures" in md and "**broken.png**: broken.png is not an image" in md
    assert f"**Items**: {MIXED_ITEMS} ({MIXED_ITEMS - 1} done, 1 failed)" in md
    thumbs = sorted((tmp_path / "out" / "report_thumbs").iterdir())
    assert len(thumbs) == MIXED_ITEMS - 2  # figures only: not the table, not the corrupt file
    for t in thumbs:
        assert f"report_thumbs/{t.name}" in md
    html = write_report(batch, tmp_path / "out" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == MIXED_ITEMS - 2
    assert "broken.png is not an image" in html
    rows = list(csv.DictReader(io.StringIO(write_report(batch, tmp_path / "r.csv").read_text())))
    assert len(rows) == MIXED_ITEMS
    assert {r["state"] for r in rows} == {"done", "error"}
    done = [r for r in rows if r["state"] == "done"]
    assert all(int(r["output_tokens"]) > 0 and float(r["cost"]) > 0 for r in done)


async def test_the_report_says_how_each_answer_ended_and_marks_estimated_cost(
    tmp_path, pool, store
):
    """An answer cut at max tokens reads "Cut at max tokens" (the endings' words, never the
    server's "length"), and a server that does not count tokens gives a cost marked ``~``,
    per item and in the totals, in every format."""
    folder = tmp_path / "plots"
    folder.mkdir()
    for i in range(2):
        (folder / f"plot{i}.png").write_bytes(png_bytes(colour=(90 * i, 60, 60)))
    # llama-cpp-python's way: no usage in the stream, so the tokens (and cost) are estimated.
    with VLLMTestServer(answer_tokens=40, ignore_stream_options=True) as server:
        profile = Profile(name="vllm", api_base=server.api_base, max_tokens=6)
        batch = Batch([folder], profile, Template(question=QUESTION), pool, store=store)
        ended = await batch.run()
    assert (ended.state, ended.progress.done) == ("done", 2)
    assert all(r.finish_reason == "length" and r.estimated for r in batch.results.values())

    md = write_report(batch, tmp_path / "report.md").read_text()
    assert md.count("*Cut at max tokens (raise Max tokens in Settings > Generation).*") == 2
    assert "length" not in md
    # Markdown writes the mark escaped (\~ reads as ~, never as strikethrough).
    assert re.search(r"\*\*Cost\*\*: \\~\$", md)  # the totals
    assert len(re.findall(r"output tokens \(estimated\) · .* · \\~\$", md)) == 2  # each item
    html = write_report(batch, tmp_path / "report.html").read_text()
    assert html.count("<em>Cut at max tokens") == 2 and "~$" in html
    rows = list(csv.DictReader(io.StringIO(write_report(batch, tmp_path / "r.csv").read_text())))
    assert [r["ending"] for r in rows] == ["Cut at max tokens"] * 2
    assert "finish_reason" not in rows[0] and {r["estimated"] for r in rows} == {"1"}


async def test_no_more_than_the_concurrency_asks_at_once(mixed_folder, pool, store):
    running, peak = 0, 0

    def listen(ev):
        nonlocal running, peak
        if isinstance(ev, ItemStarted):
            running += 1
            peak = max(peak, running)
        elif isinstance(ev, ItemFinished):
            running -= 1

    server_peak = 0
    with VLLMTestServer(tokens_per_second=60, answer_tokens=40) as server:
        batch = Batch([mixed_folder], _profile(server), Template(question=QUESTION),
                      pool, store=store, concurrency=3, listener=listen)  # fmt: skip
        task = asyncio.ensure_future(batch.run())
        while not task.done():
            server_peak = max(server_peak, server.stats.running + server.stats.waiting)
            await asyncio.sleep(0.01)
        await task
    assert peak == 3
    assert 2 <= server_peak <= 3


async def test_pause_starts_no_new_item_and_resume_finishes_the_batch(mixed_folder, pool, store):
    progress: list[Progress] = []
    with VLLMTestServer(tokens_per_second=40, answer_tokens=8) as server:
        batch = Batch([mixed_folder], _profile(server), Template(question=QUESTION),
                      pool, store=store, concurrency=1,
                      listener=lambda e: progress.append(e) if isinstance(e, Progress) else None)  # fmt: skip
        task = asyncio.ensure_future(batch.run())
        while len(batch.results) < 2:
            await asyncio.sleep(0.01)
        batch.pause()
        while batch.progress().running:
            await asyncio.sleep(0.01)
        held = len(chat_requests(server))
        await asyncio.sleep(1.0)  # paused: nothing new starts however long we wait
        assert len(chat_requests(server)) == held
        assert batch.progress().paused and "paused" in batch.progress().line()
        batch.resume()
        ended = await task
    assert ended.state == "done"
    assert ended.progress.finished == MIXED_ITEMS
    assert any(p.eta_s is not None and p.remaining for p in progress)


async def test_cancel_keeps_finished_items_and_the_same_batch_continues_without_asking_again(
    mixed_folder, pool, store
):
    with VLLMTestServer(tokens_per_second=40, answer_tokens=20) as server:
        profile, template = _profile(server), Template(question=QUESTION)
        first = Batch([mixed_folder], profile, template, pool, store=store)
        task = asyncio.ensure_future(first.run())
        # Cancel while a question is streaming (not while the next file is being loaded).
        while sum(r.ok for r in first.results.values()) < 3 or not server.stats.running:
            await asyncio.sleep(0.01)
        first.cancel()
        ended = await task
        assert ended.state == "cancelled"
        finished = {r.label for r in first.results.values()}
        asked_before = asked_items(server)
        assert server.wait_for(lambda s: s.aborted >= 1, timeout=5)  # the running ones stopped

        again = Batch([mixed_folder], profile, template, pool, store=store)
        await again.prepare()
        assert {r.label for r in again.results.values()} == finished
        ended = await again.run()
        asked_after = asked_items(server)[len(asked_before) :]
    assert ended.state == "done" and ended.progress.finished == MIXED_ITEMS
    assert not finished & set(asked_after), "a finished item was asked again"
    assert again.asked == len(asked_after)
    everything = {i.label for i in again.items} - {"broken.png"}
    assert set(asked_before) | set(asked_after) == everything


async def test_retry_failed_asks_only_the_failed_items_again(mixed_folder, pool, store):
    with VLLMTestServer(tokens_per_second=400, answer_tokens=6) as server:
        server.fail_next("internal_error")
        batch = Batch([mixed_folder], _profile(server), Template(question=QUESTION),
                      pool, store=store, concurrency=1)  # fmt: skip
        await batch.run()
        failed = {r.label for r in batch.failures}
        assert len(failed) == 2 and "broken.png" in failed  # the server's error and the file
        server_failure = next(r for r in batch.failures if r.label != "broken.png")
        assert server_failure.error
        n = len(chat_requests(server))
        ended = await batch.retry_failed()
        retried = asked_items(server)[n:]
    assert retried == [server_failure.label]
    assert [r.label for r in batch.failures] == ["broken.png"]
    assert ended.progress.done == MIXED_ITEMS - 1


async def test_another_template_or_model_changes_every_item_and_the_first_answers_stay_kept(
    mixed_folder, pool, store
):
    with VLLMTestServer(tokens_per_second=400, answer_tokens=4, extra_models=("other",)) as s:
        a = Batch([mixed_folder], _profile(s), Template(question=QUESTION), pool, store=store)
        await a.run()
        b = Batch([mixed_folder], _profile(s), Template(question="Explain {item}."), pool,
                  store=store)  # fmt: skip
        c = Batch([mixed_folder], Profile(name="vllm", api_base=s.api_base, model="other",
                  max_tokens=24, temperature=0.0), Template(question=QUESTION), pool,
                  store=store)  # fmt: skip
        same = Batch([mixed_folder], _profile(s), Template(question=QUESTION), pool,
                     store=store)  # fmt: skip
        for other in (b, c, same):
            await other.prepare()
    # The same folder is the same batch; what each item would send is not the same request.
    assert a.key == b.key == c.key == same.key
    assert same.rerun.line() == f"{MIXED_ITEMS} kept" and len(same.results) == MIXED_ITEMS
    for other in (b, c):
        assert not other.results and other.rerun.line() == f"{MIXED_ITEMS} changed"


def test_a_template_with_an_unknown_field_is_refused_naming_the_fields(mixed_folder):
    with pytest.raises(BatchError) as err:
        Template(question="Describe {file}").check()
    assert "{file}" in err.value.message and "{stem}" in err.value.hint
    with pytest.raises(BatchError):
        Template(context="a { b").check()
    Template(context="{{literal}} {name} {stem} {folder} {item}").check()


def test_an_empty_folder_says_what_it_looks_for(tmp_path):
    from kanoa_desktop.core.inputs.plan import PlanError, expand

    (tmp_path / "readme.txt.bak").write_text("x")
    with pytest.raises(PlanError) as err:
        expand([tmp_path])
    assert "nothing to interpret" in err.value.message
    with pytest.raises(PlanError) as err:
        expand([tmp_path / "missing"])
    assert "does not exist" in err.value.message


def test_answer_headings_nest_under_the_report_headings():
    text = "## Result\n\nbody\n```\n# code comment\n```\n###### deep"
    assert safe_markdown(text, demote=3) == (
        "##### Result\n\nbody\n```\n# code comment\n```\n###### deep"
    )


def test_a_state_file_that_cannot_be_opened_is_a_message(tmp_path):
    (tmp_path / "not-a-db.sqlite3").write_bytes(b"this is not SQLite" * 100)
    (tmp_path / "afile").write_text("x")
    for path, why in ((tmp_path / "not-a-db.sqlite3", "file is not a database"),
                      (tmp_path / "afile" / "state.sqlite3", "a file is in the way of its folder")):  # fmt: skip
        with pytest.raises(BatchError) as err:
            BatchStore(path)
        assert err.value.message == f"The batch state {path} cannot be opened ({why})."
        assert "--state" in err.value.hint
