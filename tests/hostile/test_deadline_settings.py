"""The profile's first-token and progress deadlines are edited in Settings and really bound
a stream that sends keep-alives forever."""

from __future__ import annotations

import pytest

from kanoa_desktop.core.config.profiles import Profile, ProfileStore, validate_profile
from kanoa_desktop.core.config.secrets import KeyStore
from kanoa_desktop.core.endpoint import errors as E
from kanoa_desktop.core.endpoint.chat import ChatRequest, user_message
from kanoa_desktop.core.endpoint.client import ChatClient, collect
from kanoa_desktop.core.endpoint.pool import timeouts_for
from tests.hostile.server import HostileServer
from tests.profiles.conftest import MemoryKeyring


@pytest.fixture(scope="module")
def server():
    with HostileServer() as s:
        yield s


def test_defaults_are_stated_and_valid():
    p = Profile()
    assert (p.first_token_timeout_s, p.progress_timeout_s) == (300.0, 120.0)
    assert validate_profile(p) == []
    assert validate_profile(Profile(progress_timeout_s=0)) != []


def test_the_endpoint_page_edits_both_deadlines(qtbot):
    from kanoa_desktop.ui.settings import SettingsDialog

    store = ProfileStore()
    store.load()
    dialog = SettingsDialog(store, KeyStore(backend=MemoryKeyring()))
    qtbot.addWidget(dialog)
    dialog.open()
    page = dialog.pages["endpoint"]
    assert page.first_token_spin.value() == 300 and page.progress_spin.value() == 120
    page.first_token_spin.setValue(45)
    page.progress_spin.setValue(20)
    assert dialog.apply()
    again = ProfileStore()
    again.load()
    assert (again.active.first_token_timeout_s, again.active.progress_timeout_s) == (45, 20)


@pytest.mark.parametrize(
    "scenario, error, field",
    [
        ("keepalive", E.FirstTokenTimeout, "first_token_timeout_s"),
        ("keepalive-after-token", E.ProgressTimeout, "progress_timeout_s"),
    ],
)
async def test_a_profile_deadline_ends_a_keep_alive_stream(server, scenario, error, field):
    profile = Profile(api_base=server.api_base(scenario), request_timeout_s=60, **{field: 1.0})
    async with ChatClient(profile.api_base, timeouts=timeouts_for(profile)) as client:
        with pytest.raises(error) as info:
            await collect(client, ChatRequest("m", [user_message("Hi")], max_tokens=10))
    # The profile's deadline ended it (its error and "1 s"), not the 60 s read timeout.
    assert "1 s" in info.value.message
