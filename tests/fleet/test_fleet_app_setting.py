"""The fleet's Prometheus is an app setting (issue 22.5): switching profile keeps the
Fleet dock on it, a profile may name its own, and Settings > GPU panel edits both."""

from __future__ import annotations

import dataclasses

from kanoa_desktop.core.config.profiles import Profile
from tests.profiles.conftest import memory_keyring  # noqa: F401 - the fixture
from tests.servers.vllm_server import VLLMTestServer

APP = "http://prom:9090"
OWN = "http://lab-prom:9090"


def test_switching_profile_keeps_the_fleet_on_the_apps_prometheus(make_window):
    with VLLMTestServer() as server:
        w = make_window(server.api_base, server.model)
        w.store.set_preferences(dataclasses.replace(w.store.preferences, prometheus_url=APP))
        other = w.store.add(Profile(name="Other", api_base=server.api_base))
        own = w.store.add(Profile(name="Own", api_base=server.api_base, prometheus_url=OWN))
        assert w.store.save() is None
        w.apply_preferences()
        label = w.fleet_panel.state_label
        assert APP in label.text()
        w._on_profile_changed(w.store.set_active(other.id))
        assert APP in label.text()  # the dock no longer empties on a profile switch
        w._on_profile_changed(w.store.set_active(own.id))
        assert OWN in label.text()


def test_the_gpu_page_edits_the_apps_address_and_the_profiles_own(
    qtbot,
    memory_keyring,  # noqa: F811
):
    from kanoa_desktop.core.config.profiles import ProfileStore
    from kanoa_desktop.core.config.secrets import KeyStore
    from kanoa_desktop.ui.settings import SettingsDialog

    store = ProfileStore()
    store.load()
    dialog = SettingsDialog(store, KeyStore())
    qtbot.addWidget(dialog)
    dialog.open()
    page = dialog.pages["gpu_panel"]
    page.prometheus_edit.setText(APP)
    assert APP in page.profile_prometheus_edit.placeholderText()
    assert dialog.apply()
    assert store.preferences.prometheus_url == APP and store.active.prometheus_url is None
    page.profile_prometheus_edit.setText(OWN)
    assert dialog.apply()
    assert store.preferences.prometheus_url == APP and store.active.prometheus_url == OWN
