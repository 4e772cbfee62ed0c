"""Endpoint profiles: which server, which model, how to ask it, and what it costs.

A :class:`Profile` is a frozen plain object; change one with :meth:`Profile.with_user_values`
(what the settings dialog does: the changed fields are remembered as *user-set*) or
:func:`dataclasses.replace`. API keys are never part of a profile: they live in the OS
keychain through :mod:`kanoa_desktop.core.config.secrets`, keyed by :attr:`Profile.id`, a random id
that survives renames.

Presets (:data:`PRESETS`) describe the models kanoa's documentation lists as tested.
:func:`apply_preset` fills only the fields the user has not set: each profile carries
``user_set``, the names of the fields a person typed or picked, and a preset never touches
those. We track this explicitly rather than comparing with the defaults because a user who
deliberately chose a default value (say temperature 0.7) must keep it too.

:class:`ProfileStore` keeps the profiles in ``profiles.json`` in
:func:`kanoa_desktop.core.config.paths.config_dir`: human-readable JSON with a ``schema_version``,
migrated forward on load, written atomically (temporary file + :func:`os.replace`) under a
lock shared with the app's other processes, each save merging only what changed in this one
(:mod:`kanoa_desktop.core.config.merge`), so none undoes another's change. A file
that cannot be read is set aside as ``profiles.json.corrupt-<timestamp>`` and the store
starts from the defaults; the reason comes back as a :class:`StoreProblem` for the UI.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from kanoa_desktop.core.config import paths
from kanoa_desktop.core.config.atomic import write_json_atomic
from kanoa_desktop.core.config.disk import os_reason
from kanoa_desktop.core.config.filelock import FileLock
from kanoa_desktop.core.config.merge import merge_documents
from kanoa_desktop.core.config.urls import root_url

SCHEMA_VERSION = 3
FILE_NAME = "profiles.json"
EXPORT_KIND = "kanoa-desktop-profiles"

DEFAULT_API_BASE = "http://localhost:8000/v1"
DEFAULT_PROFILE_NAME = "Local vLLM"
# kanoa documents ~$0.10 per million tokens as its estimate for local models.
LOCAL_PRICE_PER_MILLION = 0.10

Vision = Literal["auto", "yes", "no"]
VISION_CHOICES: tuple[str, ...] = ("auto", "yes", "no")


def _new_id() -> str:
    # 128 random bits as 32 hex digits, like uuid4().hex, without importing uuid (a first
    # start makes the preset profiles while the window is being built).
    return os.urandom(16).hex()


@dataclass(frozen=True)
class Profile:
    """One endpoint + model + generation settings. Holds no API key.

    ``metrics_url`` None means "derive it from the API base" (see
    :attr:`effective_metrics_url`). ``max_images`` None means unknown (no limit applied).
    ``user_set`` names the fields a person has chosen; presets never overwrite them.
    """

    name: str = DEFAULT_PROFILE_NAME
    api_base: str = DEFAULT_API_BASE
    model: str = ""
    temperature: float = 0.7
    max_tokens: int = 2048
    top_p: float = 1.0
    image_long_side: int = 1024
    vision: str = "auto"
    max_images: int | None = None
    price_input_per_million: float = LOCAL_PRICE_PER_MILLION
    price_output_per_million: float = LOCAL_PRICE_PER_MILLION
    request_timeout_s: float = 120.0
    # Deadlines only tokens satisfy (keep-alive comments and dripped bytes do not): the
    # first token within first_token_timeout_s of asking, then a new one at least every
    # progress_timeout_s (client.Timeouts.first_token / .progress).
    first_token_timeout_s: float = 300.0
    progress_timeout_s: float = 120.0
    metrics_url: str | None = None
    verify_tls: bool = True
    ca_bundle: str | None = None
    system_prompt: str | None = None
    electricity_price_per_kwh: float | None = None
    kb_top_k: int = 4
    kb_max_context_tokens: int = 2000
    # Hybrid knowledge-base search: the embedding model the endpoint serves on
    # /v1/embeddings (None: BM25 only).
    kb_embeddings_model: str | None = None
    # Symbolic links that lead outside the attached folders are skipped unless the user
    # opts in here (Knowledge base dock): the index reads only what the user attached.
    kb_follow_links: bool = False
    # Folders whose documents ground this profile's answers (the window and the command
    # line both read them; before schema 3 the window kept them in window.ini).
    kb_folders: tuple[str, ...] = ()
    # A DCGM exporter for a remote server's GPU (e.g. http://gpu-host:9400/metrics).
    dcgm_url: str | None = None
    # This profile's own Prometheus for the fleet view, over the app's
    # (Preferences.prometheus_url); None: the app's.
    prometheus_url: str | None = None
    preset: str | None = None
    id: str = field(default_factory=_new_id)
    user_set: frozenset[str] = frozenset()

    @property
    def effective_metrics_url(self) -> str:
        """The GPU panel's metrics URL: the explicit one, else the API base without a
        trailing ``/v1`` plus ``/metrics`` (``http://h:8000/v1`` -> ``http://h:8000/metrics``)."""
        if self.metrics_url:
            return self.metrics_url
        return derive_metrics_url(self.api_base)

    def with_user_values(self, **values: Any) -> Profile:
        """A copy with ``values`` applied; fields whose value changed become user-set.

        Unknown field names raise ``TypeError`` (a programming error, not user input).
        """
        unknown = set(values) - set(EDITABLE_FIELDS)
        if unknown:
            raise TypeError(f"not editable profile fields: {sorted(unknown)}")
        changed = {k for k, v in values.items() if getattr(self, k) != v}
        return dataclasses.replace(self, **values, user_set=self.user_set | changed)

    def restored(self, names: Iterable[str]) -> Profile:
        """A copy with the named fields back at their defaults and no longer user-set."""
        names = set(names)
        defaults = {f.name: _field_default(f) for f in dataclasses.fields(Profile)}
        return dataclasses.replace(
            self, **{n: defaults[n] for n in names}, user_set=self.user_set - names
        )


# Fields a user edits (everything but bookkeeping).
EDITABLE_FIELDS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(Profile) if f.name not in ("id", "user_set", "preset")
)


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc]


def derive_metrics_url(api_base: str) -> str:
    """The app's one metrics-URL rule: the server root plus ``/metrics``
    (``http://h:8000/v1/`` -> ``http://h:8000/metrics``; a base without ``/v1`` just gets
    ``/metrics``), as vLLM and llama.cpp serve it."""
    return root_url(api_base) + "/metrics"


# ---------------------------------------------------------------- presets


@dataclass(frozen=True)
class Preset:
    """Known-good settings for one model; ``values`` are Profile field values."""

    key: str
    label: str
    values: Mapping[str, Any]


def _preset(key: str, label: str, model: str, **extra: Any) -> Preset:
    values = {"api_base": DEFAULT_API_BASE, "model": model, "vision": "yes", **extra}
    return Preset(key, label, values)


# Servers other than vLLM, on their default ports. They name no model: each serves the model
# it was started with (llama.cpp) or lists what was pulled (Ollama, LM Studio), and the
# profile then uses the first model the server lists. Vision is probed ("auto").
SERVER_PRESETS: tuple[Preset, ...] = (
    Preset(
        "llama.cpp",
        "llama.cpp server (port 8080)",
        {"api_base": "http://localhost:8080/v1", "model": "", "vision": "auto"},
    ),
    Preset(
        "ollama",
        "Ollama (port 11434)",
        {"api_base": "http://localhost:11434/v1", "model": "", "vision": "auto"},
    ),
    Preset(
        "lm-studio",
        "LM Studio (port 1234)",
        {"api_base": "http://localhost:1234/v1", "model": "", "vision": "auto"},
    ),
)

# The models kanoa's vLLM documentation lists as tested (Molmo, Gemma 3) plus the two it
# names as strong candidates. Molmo accepts one image per prompt (vLLM answers 400
# "At most 1 image(s) may be provided in one prompt." otherwise).
PRESETS: dict[str, Preset] = {
    p.key: p
    for p in (
        _preset("molmo-7b-d", "Molmo 7B-D", "allenai/Molmo-7B-D-0924", max_images=1),
        _preset("gemma-3-4b", "Gemma 3 4B", "google/gemma-3-4b-it"),
        _preset("gemma-3-12b", "Gemma 3 12B", "google/gemma-3-12b-it"),
        _preset("qwen2.5-vl-7b", "Qwen2.5-VL 7B", "Qwen/Qwen2.5-VL-7B-Instruct"),
        _preset(
            "llama-3.2-11b-vision",
            "Llama 3.2 11B Vision",
            "meta-llama/Llama-3.2-11B-Vision-Instruct",
        ),
        *SERVER_PRESETS,
    )
}


def apply_preset(profile: Profile, preset: Preset | str) -> Profile:
    """A copy of ``profile`` with the preset's values in every field the user has not set.

    User-set fields (``profile.user_set``) are never changed. The filled fields stay
    not-user-set, so a later preset may replace them. Unknown preset keys raise KeyError.
    """
    if isinstance(preset, str):
        preset = PRESETS[preset]
    fill = {k: v for k, v in preset.values.items() if k not in profile.user_set}
    return dataclasses.replace(profile, **fill, preset=preset.key)


def profile_from_preset(preset: Preset | str, name: str | None = None) -> Profile:
    """A new profile (new id) built from a preset; its name defaults to the preset label."""
    if isinstance(preset, str):
        preset = PRESETS[preset]
    return apply_preset(Profile(name=name or preset.label), preset)


# ---------------------------------------------------------------- validation


def validate_api_base(url: str) -> str | None:
    """A plain-language problem with an API base URL, or None when it looks usable."""
    text = url.strip()
    if not text:
        return "Enter the server's API address, for example http://localhost:8000/v1."
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        return "The address must start with http:// or https:// (for example http://localhost:8000/v1)."
    if not parts.hostname:
        return "The address has no host name (for example http://localhost:8000/v1)."
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return "The port in the address is not a number between 0 and 65535."
    return None


def is_local_host(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1 (traffic that never leaves this machine)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_unencrypted_remote(url: str) -> bool:
    """True when ``url`` is plain http:// to a host other than this machine."""
    parts = urlsplit(url.strip())
    return parts.scheme == "http" and bool(parts.hostname) and not is_local_host(parts.hostname)


UNENCRYPTED_WARNING = (
    "This address uses http:// to another machine: your figures, questions and API key "
    "would travel unencrypted. Use https:// or an SSH tunnel if the network is not trusted."
)


def validate_profile(profile: Profile) -> list[str]:
    """Every problem with ``profile`` as a sentence the user can act on (empty when fine)."""
    problems: list[str] = []
    if not profile.name.strip():
        problems.append("Give the profile a name.")
    if (msg := validate_api_base(profile.api_base)) is not None:
        problems.append(msg)
    if profile.metrics_url and (msg := validate_api_base(profile.metrics_url)) is not None:
        problems.append("Metrics address: " + msg)
    if profile.prometheus_url and (msg := validate_api_base(profile.prometheus_url)) is not None:
        problems.append("Prometheus address: " + msg)
    if not 0.0 <= profile.temperature <= 2.0:
        problems.append("Temperature must be between 0 and 2.")
    if not 0.0 < profile.top_p <= 1.0:
        problems.append("Top p must be above 0 and at most 1.")
    if profile.max_tokens < 1:
        problems.append("Max tokens must be at least 1.")
    if profile.image_long_side < 64:
        problems.append("The image long side must be at least 64 pixels.")
    if profile.vision not in VISION_CHOICES:
        problems.append("Vision must be auto, yes or no.")
    if profile.max_images is not None and profile.max_images < 1:
        problems.append("Max images must be at least 1 (or unknown).")
    if profile.price_input_per_million < 0 or profile.price_output_per_million < 0:
        problems.append("Prices cannot be negative.")
    if profile.request_timeout_s <= 0:
        problems.append("The request timeout must be above 0 seconds.")
    if profile.first_token_timeout_s <= 0 or profile.progress_timeout_s <= 0:
        problems.append("The first-token and progress timeouts must be above 0 seconds.")
    if profile.ca_bundle and not Path(profile.ca_bundle).expanduser().is_file():
        problems.append(f"The CA bundle {profile.ca_bundle} does not exist or is not a file.")
    return problems


# ---------------------------------------------------------------- vision


def vision_block_reason(profile: Profile, probed: bool | None) -> str | None:
    """Why figures cannot be sent with this profile, or None when they may be.

    ``probed`` is the cached result of the one-pixel probe for this model (None: not probed).
    """
    if profile.vision == "no":
        return "This profile is set to text only (Settings > Images > Vision), so figures are not sent."
    if profile.vision == "auto" and probed is False:
        model = profile.model or "this model"
        return f"{model} did not accept a test image, so it reads text only: figures are not sent."
    return None


# ---------------------------------------------------------------- app-wide preferences


@dataclass(frozen=True)
class Preferences:
    """App-wide settings (not per endpoint), kept in the same file as the profiles."""

    theme: str = "system"  # "system" | "light" | "dark"
    font_size_pt: int | None = None  # None: the platform's default
    gpu_panel_visible: bool = True
    gpu_poll_interval_s: float = 1.0  # the GPU panel polls once a second by default
    local_nvml: bool = True
    # A Prometheus server scraping the lab's fleet (the Fleet view, ``fleet``), e.g.
    # http://prom:9090; a profile's own prometheus_url overrides it.
    prometheus_url: str | None = None


def fleet_prometheus_url(profile: Profile, preferences: Preferences) -> str | None:
    """The Prometheus the fleet view reads for ``profile``: its own, else the app's."""
    return profile.prometheus_url or preferences.prometheus_url or None


THEMES: tuple[str, ...] = ("system", "light", "dark")


# ---------------------------------------------------------------- serialisation


@dataclass(frozen=True)
class StoreProblem:
    """Something the user should read about the profiles file, and what to do next."""

    message: str
    path: Path | None = None


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "api_base": (str,),
    "model": (str,),
    "temperature": (int, float),
    "max_tokens": (int,),
    "top_p": (int, float),
    "image_long_side": (int,),
    "vision": (str,),
    "max_images": (int, type(None)),
    "price_input_per_million": (int, float),
    "price_output_per_million": (int, float),
    "request_timeout_s": (int, float),
    "first_token_timeout_s": (int, float),
    "progress_timeout_s": (int, float),
    "metrics_url": (str, type(None)),
    "verify_tls": (bool,),
    "ca_bundle": (str, type(None)),
    "system_prompt": (str, type(None)),
    "electricity_price_per_kwh": (int, float, type(None)),
    "kb_top_k": (int,),
    "kb_max_context_tokens": (int,),
    "kb_embeddings_model": (str, type(None)),
    "kb_folders": (list, tuple),
    "kb_follow_links": (bool,),
    "dcgm_url": (str, type(None)),
    "prometheus_url": (str, type(None)),
    "preset": (str, type(None)),
    "id": (str,),
}


def profile_to_dict(profile: Profile) -> dict[str, Any]:
    """JSON-ready dict of a profile (``user_set`` as a sorted list)."""
    data = {f.name: getattr(profile, f.name) for f in dataclasses.fields(Profile)}
    data["user_set"] = sorted(profile.user_set)
    data["kb_folders"] = list(profile.kb_folders)
    return data


def profile_from_dict(data: Mapping[str, Any]) -> tuple[Profile, list[str]]:
    """A profile from a dict, tolerant: unknown keys are ignored, a value of the wrong
    type falls back to the default. Returns the profile and notes on what was replaced."""
    notes: list[str] = []
    kwargs: dict[str, Any] = {}
    label = data.get("name") if isinstance(data.get("name"), str) else "?"
    for name, types in _FIELD_TYPES.items():
        if name not in data:
            continue
        value = data[name]
        # bool is an int subclass: never accept true/false for a number field.
        if isinstance(value, bool) and bool not in types:
            ok = False
        else:
            ok = isinstance(value, types)
        if name == "vision" and value not in VISION_CHOICES:
            ok = False
        if name == "kb_folders" and ok:
            ok = all(isinstance(x, str) and x for x in value)
            value = tuple(dict.fromkeys(value))  # order kept, repeats dropped
        if ok:
            kwargs[name] = float(value) if float in types and isinstance(value, int) else value
        else:
            notes.append(f"Profile {label!s}: {name} had an unusable value and was reset.")
    raw_user = data.get("user_set", [])
    if isinstance(raw_user, list):
        kwargs["user_set"] = frozenset(x for x in raw_user if x in EDITABLE_FIELDS)
    return Profile(**kwargs), notes


def preferences_to_dict(prefs: Preferences) -> dict[str, Any]:
    return dataclasses.asdict(prefs)


def preferences_from_dict(data: Any) -> Preferences:
    """Preferences from a dict; missing or mistyped values take their defaults."""
    if not isinstance(data, Mapping):
        return Preferences()
    kwargs: dict[str, Any] = {}
    if data.get("theme") in THEMES:
        kwargs["theme"] = data["theme"]
    font = data.get("font_size_pt")
    if font is None or (type(font) is int and 6 <= font <= 48):
        kwargs["font_size_pt"] = font
    for name in ("gpu_panel_visible", "local_nvml"):
        if isinstance(data.get(name), bool):
            kwargs[name] = data[name]
    interval = data.get("gpu_poll_interval_s")
    if type(interval) in (int, float) and interval > 0:
        kwargs["gpu_poll_interval_s"] = float(interval)
    prometheus = data.get("prometheus_url")
    if isinstance(prometheus, str) and prometheus.strip():
        kwargs["prometheus_url"] = prometheus.strip()
    return Preferences(**kwargs)


# ---------------------------------------------------------------- migrations


class SchemaError(ValueError):
    """The file's content is not a profiles document we can read."""


def _migrate_v1_to_v2(doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """v1 (the pre-release format) -> v2.

    v1 kept ``profiles`` as an object keyed by name, one ``price_per_million`` for input and
    output, ``vision`` as true/false, and sometimes an ``api_key`` in the file. v2 keeps a
    list of profiles with stable ids, separate input/output prices, vision auto/yes/no, and
    no keys: keys found here are returned so the store can move them to the keychain.
    """
    raw = doc.get("profiles", {})
    if not isinstance(raw, Mapping):
        raise SchemaError("v1 'profiles' is not an object")
    keys: dict[str, str] = {}
    profiles = []
    for name, entry in raw.items():
        if not isinstance(entry, Mapping):
            continue
        new = {k: v for k, v in entry.items() if k not in ("api_key", "price_per_million")}
        new["name"] = str(name)
        new["id"] = _new_id()
        if "price_per_million" in entry:
            new["price_input_per_million"] = entry["price_per_million"]
            new["price_output_per_million"] = entry["price_per_million"]
        if isinstance(entry.get("vision"), bool):
            new["vision"] = "yes" if entry["vision"] else "no"
        key = entry.get("api_key")
        if isinstance(key, str) and key:
            keys[new["id"]] = key
        profiles.append(new)
    migrated = {
        "schema_version": 2,
        "active_profile": doc.get("active"),
        "profiles": profiles,
        "preferences": doc.get("preferences", {}),
    }
    return migrated, keys


def _migrate_v2_to_v3(doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """v2 -> v3: profiles gain ``kb_folders``. The folders themselves come from the
    window's ``window.ini`` (:func:`window_kb_folders`), merged by :meth:`ProfileStore.load`
    (this function only sees the document)."""
    profiles = doc.get("profiles")
    if isinstance(profiles, list):
        for entry in profiles:
            if isinstance(entry, dict):
                entry.setdefault("kb_folders", [])
    return {**doc, "schema_version": 3}, {}


# version -> function taking a document of that version to the next version
MIGRATIONS: dict[int, Callable[[dict[str, Any]], tuple[dict[str, Any], dict[str, str]]]] = {
    1: _migrate_v1_to_v2,
    2: _migrate_v2_to_v3,
}

WINDOW_INI = "window.ini"


def _qt_ini_list(raw: str) -> list[str]:
    """A value as QSettings' INI format writes a string list: items split on ``,`` or ``;``
    outside double quotes, unquoted items trimmed, C-style escapes (``\\"``, ``\\\\``,
    ``\\xHH``...). ``@Invalid()`` (an empty list) and other ``@`` variants give nothing;
    ``@@`` stands for a leading ``@``."""
    items: list[str] = []
    cur: list[str] = []
    quoted_item = in_quotes = False
    escapes = dict(zip("abfnrtv0", "\a\b\f\n\r\t\v\0", strict=True))
    i, n = 0, len(raw)

    def end_item() -> None:
        text = "".join(cur)
        items.append(text if quoted_item else text.strip())

    while i < n:
        ch = raw[i]
        if ch == "\\" and i + 1 < n:
            nxt = raw[i + 1]
            if nxt == "x":
                j = i + 2
                while j < n and raw[j] in "0123456789abcdefABCDEF" and j - i - 2 < 4:
                    j += 1
                cur.append(chr(int(raw[i + 2 : j], 16)) if j > i + 2 else "x")
                i = j
                continue
            cur.append(escapes.get(nxt, nxt))
            i += 2
            continue
        if ch == '"':
            in_quotes = not in_quotes
            quoted_item = True
        elif ch in ",;" and not in_quotes:
            end_item()
            cur, quoted_item = [], False
        elif not in_quotes and ch in " \t" and (not cur or quoted_item):
            pass  # spaces around an item, or around its quotes, are not part of it
        else:
            cur.append(ch)
        i += 1
    end_item()
    out = []
    for item in items:
        if item.startswith("@@"):
            item = item[1:]
        elif item.startswith("@"):
            continue  # @Invalid() (an empty list), @Variant(...), @ByteArray(...)
        if item:
            out.append(item)
    return out


def window_kb_folders(ini_path: Path) -> dict[str, tuple[str, ...]]:
    """Knowledge-base folders per profile id from the window's QSettings INI file (the
    ``[kb]`` group, one list per profile id), as windows before schema 3 kept them.
    A missing or unreadable file gives an empty dict."""
    import configparser

    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # ids keep their case
    try:
        parser.read_string(Path(ini_path).read_text(encoding="utf-8", errors="replace"))
    except (OSError, configparser.Error):
        return {}
    if not parser.has_section("kb"):
        return {}
    return {
        key: tuple(dict.fromkeys(folders))
        for key, value in parser.items("kb")
        if (folders := _qt_ini_list(value))
    }


def migrate(doc: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Bring a parsed document to :data:`SCHEMA_VERSION`.

    Returns the migrated document and any API keys found in old files (profile id -> key),
    which must go to the keychain, never back to disk. Raises :class:`SchemaError` when
    the document is not a profiles document, and :class:`NewerSchemaError` when it was
    written by a newer kanoa desktop.
    """
    if not isinstance(doc, dict):
        raise SchemaError("the top level is not a JSON object")
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SchemaError("schema_version is missing or not a positive integer")
    if version > SCHEMA_VERSION:
        raise NewerSchemaError(version)
    keys: dict[str, str] = {}
    while version < SCHEMA_VERSION:
        doc, found = MIGRATIONS[version](doc)
        keys.update(found)
        version = doc["schema_version"]
    if not isinstance(doc.get("profiles"), list):
        raise SchemaError("'profiles' is not a list")
    return doc, keys


class NewerSchemaError(SchemaError):
    def __init__(self, version: int) -> None:
        super().__init__(f"schema_version {version} is newer than {SCHEMA_VERSION}")
        self.version = version


# ---------------------------------------------------------------- store

LOCK_WAIT_S = 10.0  # how long a save waits for another process's save


class KeySink(Protocol):
    """What the store needs from a key store (see :class:`secrets.KeyStore`)."""

    def set(self, profile_id: str, key: str) -> Any: ...

    def delete(self, profile_id: str) -> Any: ...


@dataclass(frozen=True)
class ImportResult:
    """What an import did: names added, (old, new) renames on clash, and problems."""

    added: list[str]
    renamed: list[tuple[str, str]]
    problems: list[StoreProblem]


def unique_name(wanted: str, taken: Iterable[str]) -> str:
    """``wanted``, or ``wanted (2)``, ``wanted (3)``... whichever is not taken."""
    taken = set(taken)
    if wanted not in taken:
        return wanted
    n = 2
    while f"{wanted} ({n})" in taken:
        n += 1
    return f"{wanted} ({n})"


class ProfileStore:
    """The user's profiles, the active one, and app preferences, backed by a JSON file.

    Not thread-safe: use it from one thread (the GUI thread). Mutating methods do not save;
    call :meth:`save`. Listeners added with :meth:`add_listener` are called (no arguments)
    after every change so views can refresh.
    """

    def __init__(self, path: Path | None = None, keys: KeySink | None = None) -> None:
        self.path = Path(path) if path is not None else paths.config_dir() / FILE_NAME
        self._keys = keys
        self._profiles: list[Profile] = [Profile()]
        self._active_id: str = self._profiles[0].id
        self._prefs = Preferences()
        self._listeners: list[Callable[[], None]] = []
        self._vision_cache: dict[str, bool] = {}
        # True when the file was written by a newer version: we must not overwrite it.
        self.read_only = False
        # The document as last read or written here: save() writes what changed since.
        self._base: dict[str, Any] = self.to_document()

    # -- listeners
    def add_listener(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[], None]) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)

    def _changed(self) -> None:
        for callback in list(self._listeners):
            callback()

    # -- load / save
    def load(self) -> list[StoreProblem]:
        """Read the file (missing: first run, defaults). Never raises for bad content:
        returns problems for the UI instead. A corrupt file is moved aside first."""
        problems: list[StoreProblem] = []
        self.read_only = False
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            self._reset()
            self._changed()
            return problems
        except OSError as exc:
            self._reset()
            self.read_only = True
            self._changed()
            return [
                StoreProblem(
                    f"Could not read the profiles file ({exc.strerror}). Using the default "
                    "profile for now; changes will not be saved until the file is readable.",
                    self.path,
                )
            ]
        try:
            parsed = json.loads(raw.decode("utf-8"))
            doc, found_keys = migrate(parsed)
        except NewerSchemaError as exc:
            self._reset()
            self.read_only = True
            self._changed()
            return [
                StoreProblem(
                    f"The profiles file was written by a newer kanoa desktop (schema "
                    f"{exc.version}). Using the default profile and leaving the file "
                    "untouched; update kanoa desktop to use your profiles.",
                    self.path,
                )
            ]
        except (UnicodeDecodeError, json.JSONDecodeError, SchemaError) as exc:
            aside = self._set_aside()
            self._reset()
            self._changed()
            return [
                StoreProblem(
                    f"The profiles file could not be read ({exc}). It was kept as "
                    f"{aside.name} and the default profile is in use; you can repair that "
                    "file and import it from Settings.",
                    aside,
                )
            ]
        problems.extend(self._adopt(doc))
        self._base = self.to_document()
        if parsed.get("schema_version", SCHEMA_VERSION) < 3:
            self._merge_window_kb_folders()
        if parsed.get("schema_version") != SCHEMA_VERSION:
            problems.extend(self._after_migration(found_keys))
        self._changed()
        return problems

    def _adopt(self, doc: Mapping[str, Any]) -> list[StoreProblem]:
        """Take a migrated document as the store's contents; returns notes on values that
        were reset."""
        problems: list[StoreProblem] = []
        profiles: list[Profile] = []
        for entry in doc["profiles"]:
            if not isinstance(entry, Mapping):
                continue
            profile, notes = profile_from_dict(entry)
            problems.extend(StoreProblem(n, self.path) for n in notes)
            if any(p.id == profile.id for p in profiles):
                profile = dataclasses.replace(profile, id=_new_id())
            if any(p.name == profile.name for p in profiles):
                profile = dataclasses.replace(
                    profile, name=unique_name(profile.name, (p.name for p in profiles))
                )
            profiles.append(profile)
        if not profiles:
            profiles = [Profile()]
        self._profiles = profiles
        active = doc.get("active_profile")
        match = next((p for p in profiles if p.name == active), profiles[0])
        self._active_id = match.id
        self._prefs = preferences_from_dict(doc.get("preferences"))
        cache = doc.get("vision_cache", {})
        if isinstance(cache, Mapping):
            self._vision_cache = {k: v for k, v in cache.items() if isinstance(v, bool)}
        prefs = doc.get("preferences")
        if not (isinstance(prefs, Mapping) and "prometheus_url" in prefs):
            self._promote_prometheus_url()
        return problems

    def _promote_prometheus_url(self) -> None:
        """Once, for a file from before the app-wide Prometheus address: the active
        profile's (else the first one set) becomes the app's, and the profiles that had
        that same address no longer override it, so switching profile keeps the fleet."""
        ordered = [self.active, *(p for p in self._profiles if p.id != self._active_id)]
        url = next((p.prometheus_url for p in ordered if p.prometheus_url), None)
        if url is None:
            return
        self._prefs = dataclasses.replace(self._prefs, prometheus_url=url)
        self._profiles = [
            dataclasses.replace(p, prometheus_url=None, user_set=p.user_set - {"prometheus_url"})
            if p.prometheus_url == url
            else p
            for p in self._profiles
        ]

    def _on_disk(self) -> dict[str, Any] | None:
        """The document in the file now, as :meth:`to_document` would write it; None when
        there is none, it cannot be read or it is in an older format (whose profiles may
        have no ids yet): then ours replaces it."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            parsed = json.loads(raw.decode("utf-8"))
            doc, _keys = migrate(parsed)
        except NewerSchemaError:
            raise
        except (UnicodeDecodeError, json.JSONDecodeError, SchemaError):
            return None
        if parsed.get("schema_version") != SCHEMA_VERSION:
            return None
        scratch = ProfileStore(self.path)
        scratch._adopt(doc)
        return scratch.to_document()

    def _merge_window_kb_folders(self) -> int:
        """Once, when a pre-3 file is loaded: each profile takes the knowledge-base folders
        the window kept for it in ``window.ini`` beside this file. Returns how many
        profiles got folders."""
        found = window_kb_folders(self.path.with_name(WINDOW_INI))
        merged = 0
        for i, profile in enumerate(self._profiles):
            folders = found.get(profile.id)
            if folders and not profile.kb_folders:
                self._profiles[i] = profile.with_user_values(kb_folders=folders)
                merged += 1
        return merged

    def _after_migration(self, found_keys: dict[str, str]) -> list[StoreProblem]:
        problems: list[StoreProblem] = []
        moved = False
        for profile_id, key in found_keys.items():
            if self._keys is None:
                break
            result = self._keys.set(profile_id, key)
            moved = moved or not result  # KeyStore.set returns None on success
        if found_keys and not moved:
            problems.append(
                StoreProblem(
                    "Your old profiles file held API keys. They were removed from the file "
                    "but could not be stored in a keychain; enter them again in Settings > "
                    "Endpoint.",
                    self.path,
                )
            )
        # Rewrite now so the old format (and any key in it) leaves the disk.
        if (problem := self.save()) is not None:
            problems.append(problem)
        return problems

    def _set_aside(self) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while aside.exists():
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
            n += 1
        os.replace(self.path, aside)
        return aside

    def _reset(self) -> None:
        self._profiles = [Profile()]
        self._active_id = self._profiles[0].id
        self._prefs = Preferences()
        self._vision_cache = {}
        self._base = self.to_document()

    def to_document(self) -> dict[str, Any]:
        """The document :meth:`save` writes (never contains keys)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "active_profile": self.active.name,
            "profiles": [profile_to_dict(p) for p in self._profiles],
            "preferences": preferences_to_dict(self._prefs),
            "vision_cache": dict(sorted(self._vision_cache.items())),
        }

    def save(self) -> StoreProblem | None:
        """Write what changed here since the last load or save, key by key, into the file
        as it is now (under a lock shared with the other processes), so a change another
        process saved meanwhile stays; this store then holds the merged result. Returns a
        problem instead of raising; the unsaved changes stay here for the next save."""
        if self.read_only:
            return StoreProblem(
                "Profiles were not saved: the profiles file belongs to a newer kanoa desktop "
                "or could not be read.",
                self.path,
            )
        ours = self.to_document()
        try:
            with FileLock(self.path.with_name(self.path.name + ".lock"), LOCK_WAIT_S):
                theirs = self._on_disk()
                doc = ours if theirs is None else merge_documents(self._base, ours, theirs)
                write_json_atomic(self.path, doc)
        except NewerSchemaError:
            self.read_only = True
            return self.save()
        except TimeoutError:
            return StoreProblem(
                f"Profiles were not saved: another program kept the profiles file locked for "
                f"{LOCK_WAIT_S:.0f} s. Your changes are kept here; save again in a moment.",
                self.path,
            )
        except OSError as exc:
            return StoreProblem(
                f"Could not save profiles: {os_reason(exc, self.path.parent)}. Your changes "
                "are kept here and saved with the next change.",
                self.path,
            )
        self._base = doc
        if doc != ours:  # another process saved meanwhile: take its changes in
            self._adopt(doc)
            self._base = self.to_document()
            self._changed()
        return None

    # -- access
    @property
    def profiles(self) -> list[Profile]:
        return list(self._profiles)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self._profiles]

    @property
    def active(self) -> Profile:
        return next(p for p in self._profiles if p.id == self._active_id)

    @property
    def preferences(self) -> Preferences:
        return self._prefs

    def set_preferences(self, prefs: Preferences) -> None:
        self._prefs = prefs
        self._changed()

    def get(self, name: str) -> Profile | None:
        return next((p for p in self._profiles if p.name == name), None)

    def get_by_id(self, profile_id: str) -> Profile | None:
        return next((p for p in self._profiles if p.id == profile_id), None)

    def set_active(self, name_or_id: str) -> Profile:
        """Make a profile active (by name or id); KeyError if there is none."""
        profile = self.get(name_or_id) or self.get_by_id(name_or_id)
        if profile is None:
            raise KeyError(name_or_id)
        if profile.id != self._active_id:
            self._active_id = profile.id
            self._changed()
        return profile

    def add(self, profile: Profile) -> Profile:
        """Add a profile; on a name or id clash it is renamed / given a new id. Returns
        the profile as stored."""
        if self.get_by_id(profile.id) is not None:
            profile = dataclasses.replace(profile, id=_new_id())
        profile = dataclasses.replace(profile, name=unique_name(profile.name, self.names))
        self._profiles.append(profile)
        self._changed()
        return profile

    def update(self, profile: Profile) -> Profile:
        """Replace the stored profile with the same id. A new name that clashes with
        another profile is made unique. KeyError if the id is unknown."""
        index = next((i for i, p in enumerate(self._profiles) if p.id == profile.id), None)
        if index is None:
            raise KeyError(profile.id)
        others = [p.name for p in self._profiles if p.id != profile.id]
        profile = dataclasses.replace(profile, name=unique_name(profile.name, others))
        self._profiles[index] = profile
        self._changed()
        return profile

    def remove(self, name_or_id: str) -> None:
        """Remove a profile and its key. The last profile cannot be removed (ValueError)."""
        profile = self.get(name_or_id) or self.get_by_id(name_or_id)
        if profile is None:
            raise KeyError(name_or_id)
        if len(self._profiles) == 1:
            raise ValueError("at least one profile must remain")
        self._profiles = [p for p in self._profiles if p.id != profile.id]
        if self._active_id == profile.id:
            self._active_id = self._profiles[0].id
        if self._keys is not None:
            self._keys.delete(profile.id)
        self._changed()

    # -- vision probe cache (per api base + model)
    @staticmethod
    def _vision_key(api_base: str, model: str) -> str:
        return f"{api_base.strip().rstrip('/')}|{model}"

    def cached_vision(self, api_base: str, model: str) -> bool | None:
        """The remembered one-pixel probe result for this server and model, or None."""
        return self._vision_cache.get(self._vision_key(api_base, model))

    def remember_vision(self, api_base: str, model: str, supported: bool) -> None:
        self._vision_cache[self._vision_key(api_base, model)] = bool(supported)
        self._changed()

    # -- import / export
    def export_profiles(
        self, path: Path, names: Iterable[str] | None = None
    ) -> StoreProblem | None:
        """Write the chosen profiles (all by default) to ``path``. Keys are never included
        (profiles hold none), and ids are left out so an import always gets fresh ones."""
        chosen = set(names) if names is not None else None
        items = []
        for profile in self._profiles:
            if chosen is None or profile.name in chosen:
                data = profile_to_dict(profile)
                data.pop("id")
                items.append(data)
        doc = {"schema_version": SCHEMA_VERSION, "kind": EXPORT_KIND, "profiles": items}
        try:
            write_json_atomic(Path(path), doc)
        except OSError as exc:
            reason = os_reason(exc, Path(path).parent)
            return StoreProblem(f"Could not export profiles: {reason}.", Path(path))
        return None

    def import_profiles(self, path: Path) -> ImportResult:
        """Merge profiles from an export (or a profiles.json). Clashing names get
        ``(2)``, ``(3)``... Imported profiles get new ids. Nothing is saved; call save()."""
        path = Path(path)
        try:
            doc, found_keys = migrate(json.loads(path.read_text(encoding="utf-8")))
        except OSError as exc:
            return ImportResult(
                [], [], [StoreProblem(f"Could not read {path.name} ({exc.strerror}).", path)]
            )
        except (UnicodeDecodeError, json.JSONDecodeError, SchemaError) as exc:
            return ImportResult(
                [], [], [StoreProblem(f"{path.name} is not a profiles file ({exc}).", path)]
            )
        added: list[str] = []
        renamed: list[tuple[str, str]] = []
        problems: list[StoreProblem] = []
        if found_keys:
            problems.append(
                StoreProblem(
                    f"{path.name} contained API keys; they were not imported. Enter keys in "
                    "Settings > Endpoint.",
                    path,
                )
            )
        for entry in doc["profiles"]:
            if not isinstance(entry, Mapping):
                continue
            profile, notes = profile_from_dict({k: v for k, v in entry.items() if k != "id"})
            problems.extend(StoreProblem(n, path) for n in notes)
            stored = self.add(profile)
            added.append(stored.name)
            if stored.name != profile.name:
                renamed.append((profile.name, stored.name))
        return ImportResult(added, renamed, problems)
