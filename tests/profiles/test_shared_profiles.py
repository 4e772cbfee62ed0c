"""Issue 22.5: the window and the command line share profiles.json; neither undoes the
other's saves. The command line's vision failure is remembered without writing back the
settings it read at start, and the window's next save keeps what the command line
remembered. The fleet's Prometheus is an app setting a profile may override."""

from __future__ import annotations

import dataclasses
import http.client
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from kanoa_desktop.core.config.merge import merge_documents
from kanoa_desktop.core.config.profiles import (
    Profile,
    ProfileStore,
    fleet_prometheus_url,
)
from tests.history.conftest import png_bytes
from tests.history.disk import disk  # noqa: F401 - the fixture
from tests.test_cli import _run


def _loaded() -> ProfileStore:
    store = ProfileStore()
    store.load()
    return store


# ---------------------------------------------------------------- two stores, one file


def test_two_processes_saving_keep_each_others_changes_key_by_key():
    window, cli = _loaded(), _loaded()  # both read the same file at start
    window.set_preferences(dataclasses.replace(window.preferences, theme="dark"))
    window.update(window.active.with_user_values(temperature=0.2))
    assert window.save() is None
    cli.remember_vision("http://gpu:8000/v1", "text-model", False)
    assert cli.save() is None  # after the window's save: it keeps the window's changes
    assert cli.preferences.theme == "dark" and cli.active.temperature == 0.2  # taken in
    window.update(window.active.with_user_values(max_tokens=512))
    assert window.save() is None  # and the window's next save keeps the vision result
    final = _loaded()
    assert final.preferences.theme == "dark"
    assert (final.active.temperature, final.active.max_tokens) == (0.2, 512)
    assert final.cached_vision("http://gpu:8000/v1", "text-model") is False


def test_profiles_added_and_removed_elsewhere_are_kept_as_the_other_process_left_them():
    first = _loaded()
    first.add(Profile(name="Lab router"))
    first.add(Profile(name="Old box"))
    assert first.save() is None
    window, cli = _loaded(), _loaded()
    window.remove("Old box")
    window.add(Profile(name="New box"))
    assert window.save() is None
    cli.update(cli.get("Lab router").with_user_values(model="qwen"))
    assert cli.save() is None
    final = _loaded()
    assert "Old box" not in final.names and "New box" in final.names
    assert final.get("Lab router").model == "qwen"


def test_a_full_profiles_folder_keeps_the_change_and_saves_it_with_the_next(
    disk,  # noqa: F811
):
    store = ProfileStore(disk.path / "data" / "profiles.json")
    store.load()
    assert store.save() is None
    disk.fill()
    store.set_preferences(dataclasses.replace(store.preferences, theme="dark"))
    problem = store.save()
    assert problem is not None and "is full" in problem.message
    assert "free some space" in problem.message and "kept here" in problem.message
    exported = store.export_profiles(disk.path / "data" / "export.json")
    assert exported is not None and "is full" in exported.message
    disk.free()
    store.update(store.active.with_user_values(temperature=0.3))
    assert store.save() is None
    again = ProfileStore(disk.path / "data" / "profiles.json")
    again.load()
    assert again.preferences.theme == "dark" and again.active.temperature == 0.3


# ---------------------------------------------------------------- the command line


class _Gate:
    """A loopback proxy in front of the vLLM test server that holds chat requests until
    ``open()``: the window saves while the command line waits for its answer."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.waiting = threading.Event()
        self._open = threading.Event()
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _forward(self, body: bytes | None) -> None:
                if self.path.endswith("/chat/completions"):
                    gate.waiting.set()
                    gate._open.wait(60)
                conn = http.client.HTTPConnection(gate.upstream.hostname, gate.upstream.port)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request(self.command, self.path, body, headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            def do_GET(self) -> None:  # noqa: N802
                self._forward(None)

            def do_POST(self) -> None:  # noqa: N802
                self._forward(self.rfile.read(int(self.headers.get("Content-Length", 0))))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.api_base = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def open(self) -> None:
        self._open.set()

    def close(self) -> None:
        self._open.set()
        self.server.shutdown()
        self.server.server_close()


def test_a_vision_failure_on_the_command_line_keeps_settings_the_window_saved_meanwhile(
    vllm_text_server, _isolated_home, tmp_path
):
    gate = _Gate(vllm_text_server.api_base)
    try:
        window = _loaded()
        window.update(
            window.active.with_user_values(api_base=gate.api_base, model=vllm_text_server.model)
        )
        assert window.save() is None
        figure = tmp_path / "plot.png"
        figure.write_bytes(png_bytes())
        cli = subprocess.Popen(
            [sys.executable, "-m", "kanoa_desktop", "interpret", str(figure), "--no-history"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**_env(), "KANOA_DESKTOP_HOME": str(_isolated_home)},
        )  # fmt: skip
        assert gate.waiting.wait(60), "the command line never asked"
        # The command line has read the settings; the window changes and saves some now.
        window.set_preferences(dataclasses.replace(window.preferences, theme="dark"))
        window.update(window.active.with_user_values(temperature=0.25))
        assert window.save() is None
        gate.open()
        out, err = cli.communicate(timeout=60)
    finally:
        gate.close()
    assert cli.returncode == 1, err  # the vision failure, said
    assert "Traceback" not in err
    after = _loaded()
    assert after.cached_vision(gate.api_base, vllm_text_server.model) is False  # the CLI's
    assert after.preferences.theme == "dark" and after.active.temperature == 0.25  # kept
    # The other way round: the window saves again from what it read before the CLI's save.
    window.update(window.active.with_user_values(max_tokens=700))
    assert window.save() is None
    final = _loaded()
    assert final.cached_vision(gate.api_base, vllm_text_server.model) is False
    assert final.active.max_tokens == 700


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}


# ---------------------------------------------------------------- the fleet's Prometheus


def test_the_fleet_prometheus_is_the_apps_and_a_profile_may_name_its_own():
    store = _loaded()
    store.set_preferences(dataclasses.replace(store.preferences, prometheus_url="http://prom:9090"))
    other = store.add(Profile(name="Other"))
    own = store.add(Profile(name="Own", prometheus_url="http://lab-prom:9090"))
    assert fleet_prometheus_url(store.active, store.preferences) == "http://prom:9090"
    assert fleet_prometheus_url(other, store.preferences) == "http://prom:9090"
    assert fleet_prometheus_url(own, store.preferences) == "http://lab-prom:9090"


def test_a_file_with_a_per_profile_prometheus_makes_it_the_apps_once(_isolated_home):
    store = _loaded()
    first = store.active.with_user_values(prometheus_url="http://prom:9090")
    store.update(first)
    store.add(Profile(name="Second"))
    assert store.save() is None
    path = store.path
    doc = json.loads(path.read_text())
    del doc["preferences"]["prometheus_url"]  # as written before the app-wide setting
    path.write_text(json.dumps(doc))
    again = _loaded()
    assert again.preferences.prometheus_url == "http://prom:9090"
    assert again.active.prometheus_url is None and "prometheus_url" not in again.active.user_set
    assert fleet_prometheus_url(again.get("Second"), again.preferences) == "http://prom:9090"


def test_fleet_on_the_command_line_uses_the_configured_prometheus(_isolated_home):
    env = {"KANOA_DESKTOP_HOME": str(_isolated_home)}
    unset = _run(["fleet", "--once"], env=env)
    assert unset.returncode == 2 and "no Prometheus server" in unset.stderr
    assert "Settings > GPU panel" in unset.stderr
    store = _loaded()
    store.set_preferences(
        dataclasses.replace(store.preferences, prometheus_url="http://127.0.0.1:9/")
    )
    assert store.save() is None
    tried = _run(["fleet", "--once", "--timeout", "2"], env=env)
    assert tried.returncode == 1 and "127.0.0.1:9" in tried.stderr
    assert "Traceback" not in tried.stderr


def test_any_section_of_the_document_merges_key_by_key():
    base = {"profiles": [], "active_profile": "A", "some_cache": {"x": 1}, "gone": 1}
    ours = {"profiles": [], "active_profile": "A", "some_cache": {"x": 1, "mine": 2}}
    theirs = {"profiles": [], "active_profile": "B", "some_cache": {"x": 1, "theirs": 3}, "gone": 1}
    merged = merge_documents(base, ours, theirs)
    assert merged["some_cache"] == {"x": 1, "mine": 2, "theirs": 3}
    assert merged["active_profile"] == "B"  # changed there only
    assert "gone" not in merged  # removed here
