"""API keys through keyring: round trip, no backend, session-only, masking."""

from __future__ import annotations

import logging
import pickle

import keyring
import keyring.backend
import keyring.errors
import pytest
from keyring.backends import chainer

from kanoa_desktop.core.config.secrets import SERVICE, KeychainState, KeyStore, Secret


def test_key_round_trips_through_the_keychain_under_the_profile_id(memory_keyring):
    store = KeyStore()
    assert store.status().state is KeychainState.KEYCHAIN
    assert store.set("profile-id-1", "sk-abc") is None
    assert memory_keyring.passwords == {(SERVICE, "profile-id-1"): "sk-abc"}
    got = store.get("profile-id-1")
    assert isinstance(got, Secret)
    assert got.reveal() == "sk-abc"
    assert store.delete("profile-id-1") is None
    assert store.get("profile-id-1") is None
    assert store.delete("profile-id-1") is None  # deleting nothing is fine


def test_setting_an_empty_key_removes_it(memory_keyring):
    store = KeyStore()
    store.set("p", "sk-abc")
    store.set("p", "")
    assert store.get("p") is None


def test_no_backend_is_reported_as_a_state_with_a_plain_message(no_keyring):
    store = KeyStore()
    status = store.status()
    assert status.state is KeychainState.UNAVAILABLE
    assert "No system keychain" in status.message
    assert "this session only" in status.message
    problem = store.set("p", "sk-abc")
    assert problem is not None and "No system keychain" in problem.message
    assert store.get("p") is None


def test_session_only_store_keeps_keys_in_memory_after_opt_in(no_keyring):
    store = KeyStore()
    store.use_session_only()
    assert store.status().state is KeychainState.SESSION_ONLY
    assert store.set("p", "sk-session") is None
    assert store.get("p").reveal() == "sk-session"
    assert KeyStore().get("p") is None  # another session (store) does not see it


def test_an_empty_chainer_counts_as_no_backend(monkeypatch):
    monkeypatch.setattr(chainer.ChainerBackend, "backends", [])
    store = KeyStore(backend=chainer.ChainerBackend())
    assert store.status().state is KeychainState.UNAVAILABLE


class BrokenKeyring(keyring.backend.KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def get_password(self, service, username):
        raise keyring.errors.KeyringLocked("the collection is locked")

    def set_password(self, service, username, password):
        raise keyring.errors.PasswordSetError(f"cannot store {password}")

    def delete_password(self, service, username):
        raise keyring.errors.KeyringLocked("the collection is locked")


def test_a_keychain_that_fails_on_use_becomes_unavailable_without_leaking_the_key(caplog):
    store = KeyStore(backend=BrokenKeyring())
    with caplog.at_level(logging.DEBUG):
        problem = store.set("p", "sk-must-not-leak")
    assert problem is not None
    assert "sk-must-not-leak" not in problem.message
    assert "sk-must-not-leak" not in caplog.text
    assert store.status().state is KeychainState.UNAVAILABLE
    assert "keychain failed while saving" in store.status().message


def test_secret_masks_itself_everywhere_but_reveal():
    s = Secret("sk-hidden")
    assert "sk-hidden" not in repr(s)
    assert "sk-hidden" not in str(s)
    assert "sk-hidden" not in f"{s} {s!r} {s:>20}"
    assert "sk-hidden" not in repr({"key": s})
    assert s.reveal() == "sk-hidden"
    assert s == Secret("sk-hidden") and s != Secret("other")
    with pytest.raises(TypeError):
        pickle.dumps(s)
