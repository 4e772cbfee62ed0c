"""The in-memory keychain of the profile tests (the only fake: there is no OS keychain)."""

from tests.profiles.conftest import memory_keyring  # noqa: F401
