"""``kanoa-desktop score``: the suite or a key against real servers from the command line;
Ctrl+C keeps what was scored and the same command continues; bad input is a clear message
and an exit status, never a traceback."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from kanoa_desktop.cli import run_cli
from kanoa_desktop.core.config.profiles import Profile, ProfileStore
from kanoa_desktop.core.history.scores import ScoreRecords
from kanoa_desktop.core.history.store import HistoryStore
from kanoa_desktop.core.score.run import suite_source
from tests.servers.score_oracle import ScoreOracle
from tests.servers.vllm_server import VLLMTestServer

pytestmark = pytest.mark.vllm

ROOT = Path(__file__).resolve().parents[2]


def _add_profile(server: VLLMTestServer, name: str) -> None:
    store = ProfileStore()
    store.load()
    store.add(Profile(name=name, api_base=server.api_base, temperature=0.0))
    assert store.save() is None


def test_two_profiles_print_one_json_object_and_write_every_report(capsys, tmp_path):
    source = suite_source(8, 3)
    good = ScoreOracle(source.items, 0.9, seed=1)
    poor = ScoreOracle(source.items, 0.3, seed=2)
    with (
        VLLMTestServer(tokens_per_second=3000, answer_for=good) as a,
        VLLMTestServer(tokens_per_second=3000, answer_for=poor) as b,
    ):
        _add_profile(a, "big")
        _add_profile(b, "small")
        code = run_cli(["score", "--suite", "charts", "-n", "8", "--seed", "3", "--profile",
                        "big", "--profile", "small", "-j", "3", "--json",
                        "--out", str(tmp_path / "score.html")])  # fmt: skip
        out = capsys.readouterr()
        assert code == 0, out.err
        data = json.loads(out.out)
        for suffix in (".md", ".csv"):
            assert run_cli(["score", "--suite", "charts", "-n", "8", "--seed", "3", "--profile",
                            "big", "--out", str(tmp_path / f"score{suffix}")]) == 0  # fmt: skip
        capsys.readouterr()
    big, small = data["results"]
    assert good.unmatched == [] and poor.unmatched == [], good.unmatched + poor.unmatched
    assert (big["profile"], big["n"], big["correct"]) == ("big", 8, good.right())
    assert (small["profile"], small["correct"]) == ("small", poor.right())
    assert big["ci_low"] <= big["accuracy"] <= big["ci_high"]
    assert sum(t["n"] for t in big["by_template"].values()) == 8
    (pair,) = data["paired"]
    assert (pair["a"], pair["b"]) == ("big", "small") and 0 < pair["mcnemar_p"] <= 1
    html = (tmp_path / "score.html").read_text()
    assert "charts-v1 (seed 3, 8 items)" in html and "ANSWER: &lt;value&gt;" in html
    md = (tmp_path / "score.md").read_text()
    assert "- **Suite**: charts-v1 (seed 3, 8 items)" in md and md.count("### ") == 8
    rows = list(csv.DictReader(io.StringIO((tmp_path / "score.csv").read_text())))
    assert len(rows) == 8 and {r["truth"] for r in rows} == {i.truth for i in source.items}
    # Each scored item is a question in the history, and the runs are recorded.
    store = HistoryStore(recover=False)
    try:
        runs = ScoreRecords(store).list_runs()
        assert [r.state for r in runs] == ["done", "done", "done"]
        assert store.list_conversations() == []
    finally:
        store.close()


def test_a_key_is_scored_against_an_api_base_and_the_table_goes_to_stdout(capsys, tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (90, 60), (10, 120, 200)).save(buf, "PNG")
    (tmp_path / "figs").mkdir()
    (tmp_path / "figs" / "a.png").write_bytes(buf.getvalue())
    key = tmp_path / "key.csv"
    key.write_text("file,question,answer\nfigs/a.png,What colour?,blue\nfigs/a.png,Bars?,3\n")
    from kanoa_desktop.core.score.run import key_source

    source = key_source(key)
    oracle = ScoreOracle(source.items, 1.0, seed=0)
    with VLLMTestServer(tokens_per_second=3000, answer_for=oracle) as server:
        code = run_cli(["score", "--key", str(key), "--api-base", server.api_base])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "Score: key key.csv, 2 items" in out.out
    assert "2/2" in out.out and "100.0 %" in out.out


@pytest.mark.parametrize(
    ("args", "content", "needle", "status"),
    [
        (["--key", "{tmp}/missing.csv"], None, "missing.csv was not found", 1),
        (
            ["--key", "{tmp}/key.csv"],
            "file,question,answer\nnope.png,Q?,1\n",
            "row 2: nope.png was not found",
            1,
        ),
        (
            ["--key", "{tmp}/key.csv"],
            "file,question,answer,tolerance\nfig.png,Q?,1,lots\n",
            "tolerance 'lots' is not a number from 0 to 1",
            1,
        ),
        (["--key", "{tmp}/key.csv"], "", "is empty", 1),
        (["--key", "{tmp}/key.csv"], "file,question,answer\n", "no questions", 1),
        (["--suite", "charts", "-n", "0"], None, "-n takes 1 to 2,000 items", 2),
        (["--suite", "charts", "--out", "{tmp}/r.pdf"], None, "Markdown (.md), HTML", 2),
        (["--suite", "charts", "-j", "0"], None, "--concurrency takes 1 to 32", 2),
        (["--suite", "charts", "--profile", "nobody"], None, "no profile named 'nobody'", 1),
    ],
)
def test_bad_input_is_a_clear_message_and_nothing_is_asked(
    args, content, needle, status, tmp_path, capsys
):
    Image.new("RGB", (8, 8)).save(tmp_path / "fig.png")
    if content is not None:
        (tmp_path / "key.csv").write_text(content)
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--profile" not in args:
        args += ["--api-base", "http://127.0.0.1:9/v1"]
    code = run_cli(["score", *args])
    err = capsys.readouterr().err
    assert code == status and needle in err and "Traceback" not in err, err


def test_suite_and_key_and_profile_and_api_base_are_exclusive(capsys):
    for args in (["--suite", "charts", "--key", "k.csv", "--api-base", "http://h/v1"],
                 ["--suite", "charts"],
                 ["--api-base", "http://h/v1"],
                 ["--suite", "charts", "--profile", "a", "--api-base", "http://h/v1"]):  # fmt: skip
        with pytest.raises(SystemExit) as exc:
            run_cli(["score", *args])
        assert exc.value.code == 2
    assert "score" in capsys.readouterr().err


def test_ctrl_c_keeps_what_was_scored_and_the_same_command_continues(tmp_path):
    source = suite_source(8, 5)
    oracle = ScoreOracle(source.items, 0.75, seed=4)
    with VLLMTestServer(tokens_per_second=25, answer_for=oracle) as server:
        cmd = [sys.executable, "-m", "kanoa_desktop", "score", "--suite", "charts", "-n", "8",
               "--seed", "5", "--api-base", server.api_base, "-j", "1", "--json"]  # fmt: skip
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=os.environ.copy(), text=True)  # fmt: skip
        deadline = time.monotonic() + 120
        while len(oracle.asked) < 3:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "Stopped: what was scored is kept" in err and "Traceback" not in err
        first = json.loads(out)["results"][0]
        assert 2 <= first["n"] < 8
        asked_before = len(oracle.asked)
        server.tokens_per_second = 3000
        again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr
    assert "Continuing the unfinished run" in again.stderr
    final = json.loads(again.stdout)["results"][0]
    assert (final["n"], final["correct"]) == (8, oracle.right())
    assert len(oracle.asked) - asked_before == 8 - first["n"]  # nothing asked twice
