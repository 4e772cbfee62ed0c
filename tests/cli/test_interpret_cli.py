"""``kanoa-desktop interpret`` as the window's pipeline on the command line: a profile (its
endpoint, model, settings, prices, key and knowledge base), ``--kb``, history and cost,
against the real llama.cpp server and the vLLM test server."""

from __future__ import annotations

import json
import re

import pytest

from kanoa_desktop.cli import run_cli
from kanoa_desktop.core.config.pricing import format_cost
from kanoa_desktop.core.config.profiles import Profile, ProfileStore
from tests.servers.vllm_server import VLLMTestServer
from tests.test_cli import _run

USAGE = re.compile(
    r"^\[usage\] prompt (\d+) tokens, output (\d+) tokens.*, cost (\$[\d.,]+), model (.+)$"
)
NOTES = (
    "# Station notes\n\n"
    "The Mauna Loa record shows a seasonal cycle with an amplitude of about six ppm.\n"
    "The seasonal cycle at Mauna Loa peaks in May and bottoms out in October.\n"
)


def _save_profiles(*profiles: Profile, active: str | None = None) -> ProfileStore:
    store = ProfileStore()
    store.load()
    for p in profiles:
        store.add(p)
    if active:
        store.set_active(active)
    assert store.save() is None
    return store


def _csv(tmp_path):
    path = tmp_path / "co2.csv"
    path.write_text("month,ppm\n" + "\n".join(f"{m},{410 + (m % 6)}" for m in range(1, 25)) + "\n")
    return path


def _usage(stdout: str) -> re.Match:
    last = stdout.strip().splitlines()[-1]
    match = USAGE.match(last)
    assert match, last
    return match


@pytest.mark.llama
def test_a_profile_gives_endpoint_model_prices_and_knowledge_base_and_the_turn_is_recorded(
    llama_server, tmp_path
):
    kb = tmp_path / "notes"
    kb.mkdir()
    (kb / "mauna_loa.md").write_text(NOTES)
    _save_profiles(
        Profile(
            name="smol",
            api_base=llama_server.api_base,
            max_tokens=40,
            temperature=0.0,
            price_input_per_million=1000.0,
            price_output_per_million=2000.0,
            kb_folders=(str(kb),),
        )
    )  # the active profile stays the default one, whose server does not exist
    out = _run(["interpret", str(_csv(tmp_path)), "--profile", "smol",
                "-q", "What is the seasonal cycle at Mauna Loa?"])  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr

    usage = _usage(out.stdout)
    prompt, output = int(usage[1]), int(usage[2])
    assert prompt > 0 and output > 0
    assert usage[3] == format_cost((prompt * 1000.0 + output * 2000.0) / 1e6)
    assert usage[4] == llama_server.model
    body, _, tail = out.stdout.partition("\nSources (* cited):\n")
    assert body.strip(), out.stdout  # the answer
    assert re.search(r"^  \[1\][* ] mauna_loa\.md", tail, re.M), tail

    saved = re.search(r"kanoa-desktop history show (\d+)", out.stderr)
    assert saved, out.stderr
    listed = _run(["history", "list", "--json"])
    rows = json.loads(listed.stdout)
    assert [(r["id"], r["profile"], r["model"], r["last_state"]) for r in rows] == [
        (int(saved[1]), "smol", llama_server.model, "done")
    ]
    shown = _run(["history", "show", saved[1]])
    assert shown.returncode == 0, shown.stderr
    assert body.strip() in shown.stdout
    assert "mauna_loa.md" in shown.stdout  # the sources it was given are on record
    pdf = tmp_path / "turn.pdf"
    exported = _run(["history", "export", saved[1], "--format", "pdf", "-o", str(pdf)])
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.strip() == str(pdf)
    assert pdf.read_bytes().startswith(b"%PDF")


@pytest.mark.llama
def test_kb_folders_are_indexed_first_with_progress_and_no_history_records_nothing(
    llama_server, tmp_path
):
    kb = tmp_path / "papers"
    kb.mkdir()
    (kb / "mauna_loa.md").write_text(NOTES)
    out = _run(["interpret", str(_csv(tmp_path)), "--api-base", llama_server.api_base,
                "--max-tokens", "24", "--kb", str(kb), "--no-history",
                "-q", "When does the seasonal cycle at Mauna Loa peak?"])  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "1/1 files" in out.stderr  # indexing progress, on stderr
    assert "Sources (* cited):" in out.stdout and "mauna_loa.md" in out.stdout
    assert "history show" not in out.stderr
    assert json.loads(_run(["history", "list", "--json"]).stdout) == []


def test_without_overrides_the_request_uses_the_profiles_settings_like_the_window(tmp_path):
    with VLLMTestServer(answer_tokens=8) as server:
        _save_profiles(Profile(name="lab", api_base=server.api_base), active="lab")
        out = _run(["interpret", str(_csv(tmp_path)), "--no-history"])
        assert out.returncode == 0, out.stderr
        body = server.received[-1].body
        defaults = Profile()
        assert (body["temperature"], body["max_tokens"]) == (
            defaults.temperature,
            defaults.max_tokens,
        )
        assert body["model"] == "qwen2.5-vl-7b"  # the first the server lists
        out = _run(["interpret", str(_csv(tmp_path)), "--no-history", "--max-tokens", "30",
                    "--temperature", "0.1", "--system-prompt", "Be brief."])  # fmt: skip
        assert out.returncode == 0, out.stderr
        body = server.received[-1].body
    assert (body["temperature"], body["max_tokens"]) == (0.1, 30)
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}


def test_the_profiles_key_comes_from_the_keychain_and_is_never_printed(
    tmp_path, memory_keyring, monkeypatch, capsys
):
    from kanoa_desktop.core.config.secrets import KeyStore

    monkeypatch.delenv("KANOA_API_KEY", raising=False)
    with VLLMTestServer(api_key="sk-keychain-secret-31337", answer_tokens=6) as server:
        store = _save_profiles(Profile(name="keyed", api_base=server.api_base))
        assert KeyStore().set(store.get("keyed").id, "sk-keychain-secret-31337") is None
        code = run_cli(["interpret", str(_csv(tmp_path)), "--profile", "keyed", "--no-history"])
        auth = server.received[-1].headers.get("Authorization") or server.received[-1].headers.get(
            "authorization"
        )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert auth == "Bearer sk-keychain-secret-31337"
    assert "sk-keychain-secret-31337" not in captured.out + captured.err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--profile", "nope"], "No profile named 'nope'"),
        (["--kb", "/no/such/folder"], "Not a folder: /no/such/folder"),
    ],
)
def test_bad_options_say_what_to_do(tmp_path, args, needle):
    out = _run(["interpret", str(_csv(tmp_path)), "--api-base", "http://127.0.0.1:9/v1", *args])
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and "hint:" in out.stderr
    assert needle in out.stderr


def _two_page_pdf(path):
    from fpdf import FPDF

    pdf = FPDF()
    for text in ("Page one: growth curve", "Page two: seasonal cycle"):
        pdf.add_page()
        pdf.set_font("helvetica", size=24)
        pdf.cell(0, 20, text)
    pdf.output(str(path))
    return path


def _notebook_with_a_figure(path):
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (120, 80), "navy").save(buf, "PNG")
    cell = {
        "cell_type": "code",
        "execution_count": 1,
        "metadata": {},
        "source": ["plt.plot(x, y)"],
        "outputs": [
            {
                "output_type": "display_data",
                "metadata": {},
                "data": {"image/png": base64.b64encode(buf.getvalue()).decode()},
            }
        ],
    }
    doc = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [cell]}
    path.write_text(json.dumps(doc))
    return path


def _images(body) -> int:
    return sum(
        1
        for m in body["messages"]
        if isinstance(m["content"], list)
        for part in m["content"]
        if part["type"] == "image_url"
    )


def test_pdf_pages_and_notebook_figures_are_sent_as_figures(tmp_path):
    pdf = _two_page_pdf(tmp_path / "paper.pdf")
    nb = _notebook_with_a_figure(tmp_path / "analysis.ipynb")
    with VLLMTestServer(answer_tokens=6) as server:
        base = ["--api-base", server.api_base, "--no-history"]
        out = _run(["interpret", str(pdf), "--pages", "1-2", *base])
        assert out.returncode == 0, out.stderr
        assert _images(server.received[-1].body) == 2
        out = _run(["interpret", str(pdf), str(nb), "--pages", "2", *base])
        assert out.returncode == 0, out.stderr
        assert _images(server.received[-1].body) == 2  # page 2 and the notebook's plot
        out = _run(["interpret", str(pdf), "--pages", "3", *base])
        unsaid = _run(["interpret", str(pdf), *base])
        asked = sum(r.path.endswith("/chat/completions") for r in server.received)
    assert out.returncode == 1
    assert "error: paper.pdf has 2 pages; there is no page 3." in out.stderr
    assert "Traceback" not in out.stderr
    # A longer PDF without --pages is refused with its page count, before anything is sent.
    assert unsaid.returncode == 1 and asked == 2
    assert "error: paper.pdf has 2 pages; say which to send." in unsaid.stderr
    assert "--pages" in unsaid.stderr
