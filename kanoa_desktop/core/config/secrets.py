"""API keys: only in the OS keychain (through ``keyring``), or for this session only.

Keys are stored under the service ``kanoa-desktop`` with the profile's id as the user
name, so renaming a profile keeps its key. They never go to a file, a log or an export.
:class:`Secret` wraps a key so that printing, logging or formatting it shows a mask.

When no keychain backend is usable (common on Linux without a Secret Service: keyring
then picks ``keyring.backends.fail.Keyring``, or an empty chainer), :meth:`KeyStore.status`
says so in a sentence, and the user may opt into a session-only in-memory store with
:meth:`KeyStore.use_session_only`; those keys are forgotten when the app quits.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

# keyring (its backends load entry points) is imported on the first key read, not at start.
if TYPE_CHECKING:
    import keyring.backend

SERVICE = "kanoa-desktop"
MASK = "********"

log = logging.getLogger(__name__)


class Secret:
    """A key that does not show itself: ``str``, ``repr`` and ``format`` give a mask.

    Call :meth:`reveal` only at the point of use (building the Authorization header).
    Cannot be pickled, so it cannot end up in a crash dump or a queue by accident.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = str(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return format(MASK, spec)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return hmac.compare_digest(self._value.encode(), other._value.encode())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal secrets must not be dict keys

    def __reduce__(self):
        raise TypeError("Secret values cannot be pickled")


class KeychainState(Enum):
    """Where keys go right now."""

    KEYCHAIN = "keychain"  # the OS keychain through keyring
    UNAVAILABLE = "unavailable"  # no usable backend; keys cannot be kept yet
    SESSION_ONLY = "session-only"  # the user chose memory for this session


@dataclass(frozen=True)
class KeychainStatus:
    """The state and a sentence for the user (what happened, what to do next)."""

    state: KeychainState
    message: str
    backend: str


@dataclass(frozen=True)
class KeyProblem:
    """A key could not be stored, read or deleted; ``message`` says what to do next."""

    message: str


NO_BACKEND_MESSAGE = (
    "No system keychain is available, so API keys cannot be saved. On Linux, install and "
    "unlock a Secret Service keyring (GNOME Keyring or KWallet). You can keep the key for "
    "this session only; you will need to enter it again next time."
)
SESSION_MESSAGE = "API keys are kept in memory for this session only and forgotten on quit."


def _backend_name(backend: keyring.backend.KeyringBackend) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


def backend_usable(backend: keyring.backend.KeyringBackend) -> bool:
    """False for keyring's fail and null backends and for a chainer with nothing to chain."""
    from keyring.backends import chainer, fail, null

    if isinstance(backend, fail.Keyring | null.Keyring):
        return False
    if isinstance(backend, chainer.ChainerBackend):
        return any(backend_usable(b) for b in backend.backends)
    return True


def _scrub(text: str, key: str | None) -> str:
    # Backends rarely echo the password, but a message must never carry it.
    return text.replace(key, MASK) if key else text


class KeyStore:
    """Read and write API keys per profile id.

    Every method returns a value rather than raising: ``set``/``delete`` return None on
    success or a :class:`KeyProblem`. A keychain that fails on use is reported through
    :meth:`status` from then on (state ``UNAVAILABLE``), with its message.
    """

    def __init__(
        self, service: str = SERVICE, backend: keyring.backend.KeyringBackend | None = None
    ) -> None:
        self.service = service
        self._explicit_backend = backend
        self._session_only = False
        self._memory: dict[str, Secret] = {}
        self._failure: str | None = None

    def _backend(self) -> keyring.backend.KeyringBackend:
        if self._explicit_backend is not None:
            return self._explicit_backend
        import keyring

        return keyring.get_keyring()

    def status(self) -> KeychainStatus:
        backend = self._backend()
        name = _backend_name(backend)
        if self._session_only:
            return KeychainStatus(KeychainState.SESSION_ONLY, SESSION_MESSAGE, name)
        if self._failure is not None:
            return KeychainStatus(KeychainState.UNAVAILABLE, self._failure, name)
        if not backend_usable(backend):
            return KeychainStatus(KeychainState.UNAVAILABLE, NO_BACKEND_MESSAGE, name)
        return KeychainStatus(
            KeychainState.KEYCHAIN, "API keys are saved in the system keychain.", name
        )

    @property
    def session_only(self) -> bool:
        return self._session_only

    def use_session_only(self) -> None:
        """Opt in to keeping keys in memory for this session (after the user agreed)."""
        self._session_only = True

    def _fail(self, action: str, exc: BaseException, key: str | None = None) -> KeyProblem:
        detail = _scrub(str(exc), key) or type(exc).__name__
        self._failure = (
            f"The system keychain failed while {action} an API key ({detail}). "
            "Unlock or repair the keychain, or keep keys for this session only."
        )
        # Log the failure, never the key (detail is scrubbed).
        log.warning("keychain error while %s a key: %s", action, type(exc).__name__)
        return KeyProblem(self._failure)

    def get(self, profile_id: str) -> Secret | None:
        """The key for a profile, or None when there is none (or it cannot be read;
        then :meth:`status` says why)."""
        if self._session_only:
            return self._memory.get(profile_id)
        if self.status().state is not KeychainState.KEYCHAIN:
            return None
        try:
            value = self._backend().get_password(self.service, profile_id)
        except Exception as exc:  # backends raise KeyringError, DBus errors, OSError...
            self._fail("reading", exc)
            return None
        return Secret(value) if value else None

    def set(self, profile_id: str, key: str | Secret) -> KeyProblem | None:
        """Store (or, with an empty key, delete) the key for a profile."""
        value = key.reveal() if isinstance(key, Secret) else str(key)
        if not value:
            return self.delete(profile_id)
        if self._session_only:
            self._memory[profile_id] = Secret(value)
            return None
        status = self.status()
        if status.state is not KeychainState.KEYCHAIN:
            return KeyProblem(status.message)
        try:
            self._backend().set_password(self.service, profile_id, value)
        except Exception as exc:
            return self._fail("saving", exc, value)
        return None

    def delete(self, profile_id: str) -> KeyProblem | None:
        """Forget the key for a profile; a missing key is not a problem."""
        self._memory.pop(profile_id, None)
        if self._session_only or self.status().state is not KeychainState.KEYCHAIN:
            return None
        import keyring.errors

        try:
            self._backend().delete_password(self.service, profile_id)
        except keyring.errors.PasswordDeleteError:
            return None  # nothing stored: already the state the caller wants
        except Exception as exc:
            return self._fail("deleting", exc)
        return None
