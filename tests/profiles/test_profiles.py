"""Profiles: file round trip, migration, corrupt files, presets, import/export."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from kanoa_desktop.core.config import paths
from kanoa_desktop.core.config.profiles import (
    DEFAULT_API_BASE,
    DEFAULT_PROFILE_NAME,
    PRESETS,
    SCHEMA_VERSION,
    Preferences,
    Profile,
    ProfileStore,
    apply_preset,
    derive_metrics_url,
    is_unencrypted_remote,
    migrate,
    profile_from_preset,
    validate_api_base,
    validate_profile,
    vision_block_reason,
)


def test_first_run_has_the_local_vllm_default_profile():
    store = ProfileStore()
    assert store.load() == []
    assert store.names == [DEFAULT_PROFILE_NAME]
    assert store.active.api_base == "http://localhost:8000/v1"
    assert store.path == paths.config_dir() / "profiles.json"
    assert not store.path.exists()  # loading alone writes nothing


def test_profiles_round_trip_through_the_file():
    store = ProfileStore()
    store.load()
    gemma = store.add(
        Profile(
            name="Gemma remote",
            api_base="https://gpu.example.org/v1",
            model="google/gemma-3-12b-it",
            temperature=0.2,
            max_tokens=512,
            top_p=0.9,
            image_long_side=768,
            vision="no",
            max_images=3,
            price_input_per_million=0.5,
            price_output_per_million=1.5,
            request_timeout_s=30.0,
            metrics_url="https://gpu.example.org/prom/metrics",
            verify_tls=False,
            ca_bundle="/etc/ssl/lab.pem",
            system_prompt="Be brief.",
            electricity_price_per_kwh=0.31,
            user_set=frozenset({"temperature"}),
        )
    )
    store.set_active("Gemma remote")
    store.set_preferences(Preferences(theme="dark", font_size_pt=12, gpu_poll_interval_s=5.0))
    assert store.save() is None

    again = ProfileStore()
    assert again.load() == []
    assert again.profiles == store.profiles
    assert again.active == gemma
    assert again.preferences == Preferences(theme="dark", font_size_pt=12, gpu_poll_interval_s=5.0)
    doc = json.loads(again.path.read_text())
    assert doc["schema_version"] == SCHEMA_VERSION
    assert doc["active_profile"] == "Gemma remote"


def test_save_replaces_the_file_atomically_leaving_no_temporary_files():
    store = ProfileStore()
    store.load()
    store.save()
    store.add(Profile(name="Second"))
    store.save()
    assert sorted(p.name for p in store.path.parent.iterdir()) == [
        "profiles.json",
        "profiles.json.lock",
    ]


V1_DOC = {
    "schema_version": 1,
    "active": "Molmo box",
    "profiles": {
        "Molmo box": {
            "api_base": "http://10.0.0.5:8000/v1",
            "model": "allenai/Molmo-7B-D-0924",
            "price_per_million": 0.25,
            "vision": True,
            "api_key": "sk-v1-secret-in-old-file",
        },
        "Text only": {"api_base": DEFAULT_API_BASE, "vision": False},
    },
}


def test_v1_document_migrates_to_v2_and_hands_keys_out():
    doc, keys = migrate(json.loads(json.dumps(V1_DOC)))
    assert doc["schema_version"] == SCHEMA_VERSION
    by_name = {p["name"]: p for p in doc["profiles"]}
    molmo = by_name["Molmo box"]
    assert molmo["price_input_per_million"] == 0.25
    assert molmo["price_output_per_million"] == 0.25
    assert molmo["vision"] == "yes"
    assert by_name["Text only"]["vision"] == "no"
    assert "api_key" not in molmo
    assert keys == {molmo["id"]: "sk-v1-secret-in-old-file"}
    assert doc["active_profile"] == "Molmo box"


def test_loading_a_v1_file_moves_its_key_to_the_keychain_and_rewrites_the_file(memory_keyring):
    from kanoa_desktop.core.config.secrets import KeyStore

    keys = KeyStore()
    store = ProfileStore(keys=keys)
    store.path.write_text(json.dumps(V1_DOC))
    assert store.load() == []
    assert store.active.name == "Molmo box"
    assert store.active.vision == "yes"
    assert keys.get(store.active.id).reveal() == "sk-v1-secret-in-old-file"
    text = store.path.read_text()
    assert json.loads(text)["schema_version"] == SCHEMA_VERSION
    assert "sk-v1-secret-in-old-file" not in text


def test_v1_key_is_dropped_from_the_file_with_a_message_when_no_keychain(no_keyring):
    from kanoa_desktop.core.config.secrets import KeyStore

    store = ProfileStore(keys=KeyStore())
    store.path.write_text(json.dumps(V1_DOC))
    problems = store.load()
    assert len(problems) == 1
    assert "enter them again" in problems[0].message
    assert "sk-v1-secret-in-old-file" not in store.path.read_text()


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[1, 2]",
        b'{"profiles": []}',
        b'{"schema_version": 2, "profiles": 3}',
        b"\xff\xfe",
    ],
)
def test_corrupt_file_is_set_aside_with_a_message_and_defaults_are_used(content):
    store = ProfileStore()
    store.path.write_bytes(content)
    problems = store.load()
    assert len(problems) == 1
    aside = problems[0].path
    assert aside.name.startswith("profiles.json.corrupt-")
    assert aside.read_bytes() == content  # nothing the user had is lost
    assert not store.path.exists()
    assert "could not be read" in problems[0].message
    assert store.names == [DEFAULT_PROFILE_NAME]
    assert store.save() is None


def test_file_from_a_newer_version_is_left_untouched_and_not_overwritten():
    store = ProfileStore()
    newer = json.dumps({"schema_version": SCHEMA_VERSION + 1, "profiles": []})
    store.path.write_text(newer)
    problems = store.load()
    assert "newer kanoa desktop" in problems[0].message
    assert store.save() is not None
    assert store.path.read_text() == newer


def test_a_mistyped_field_falls_back_to_its_default_and_is_reported():
    store = ProfileStore()
    good = dataclasses.asdict(Profile(name="A"))
    good["user_set"] = []
    good["temperature"] = "hot"
    store.path.write_text(json.dumps({"schema_version": 2, "profiles": [good]}))
    problems = store.load()
    assert store.active.temperature == Profile().temperature
    assert any("temperature" in p.message for p in problems)


def test_preset_fills_fields_the_user_has_not_set():
    profile = Profile(name="Mine")
    molmo = apply_preset(profile, "molmo-7b-d")
    assert molmo.model == "allenai/Molmo-7B-D-0924"
    assert molmo.vision == "yes"
    assert molmo.max_images == 1
    assert molmo.user_set == frozenset()
    # a preset-filled value is not the user's: a second preset may replace it
    gemma = apply_preset(molmo, PRESETS["gemma-3-12b"])
    assert gemma.model == "google/gemma-3-12b-it"


def test_preset_never_overwrites_user_values_even_ones_equal_to_defaults():
    profile = Profile(name="Mine").with_user_values(
        api_base="http://gpu-box:9000/v1", model="my-finetune", max_images=4
    )
    # the user explicitly re-picked "auto" after choosing "no": it stays user-set
    profile = profile.with_user_values(vision="no").with_user_values(vision="auto")
    assert {"api_base", "model", "max_images", "vision"} <= profile.user_set
    result = apply_preset(profile, "molmo-7b-d")
    assert result.api_base == "http://gpu-box:9000/v1"
    assert result.model == "my-finetune"
    assert result.max_images == 4
    assert result.vision == "auto"


def test_every_preset_points_at_the_local_server_and_is_valid():
    vllm_models = {
        "molmo-7b-d",
        "gemma-3-4b",
        "gemma-3-12b",
        "qwen2.5-vl-7b",
        "llama-3.2-11b-vision",
    }
    servers = {"llama.cpp": 8080, "ollama": 11434, "lm-studio": 1234}
    assert set(PRESETS) == vllm_models | set(servers)
    for key in vllm_models:
        profile = profile_from_preset(key)
        assert profile.api_base == "http://localhost:8000/v1"
        assert profile.vision == "yes"
        assert validate_profile(profile) == []
    for key, port in servers.items():
        profile = profile_from_preset(key)
        assert profile.api_base == f"http://localhost:{port}/v1"
        assert profile.model == "" and profile.vision == "auto"
        assert validate_profile(profile) == []


def test_metrics_url_is_derived_from_the_api_base_unless_set():
    assert Profile(api_base="http://h:8000/v1").effective_metrics_url == "http://h:8000/metrics"
    assert Profile(api_base="http://h:8000/v1/").effective_metrics_url == "http://h:8000/metrics"
    assert Profile(api_base="http://h:8080").effective_metrics_url == "http://h:8080/metrics"
    explicit = Profile(metrics_url="http://h:9400/metrics")
    assert explicit.effective_metrics_url == "http://h:9400/metrics"
    assert derive_metrics_url("https://x/api/v1") == "https://x/api/metrics"


def test_renaming_keeps_the_profile_id_and_clashing_names_are_made_unique():
    store = ProfileStore()
    store.load()
    first = store.active
    second = store.add(Profile(name=first.name))
    assert second.name == f"{first.name} (2)"
    renamed = store.update(dataclasses.replace(first, name="Workstation"))
    assert renamed.id == first.id
    clash = store.update(dataclasses.replace(second, name="Workstation"))
    assert clash.name == "Workstation (2)"


def test_export_never_contains_keys_and_import_renames_on_clash(memory_keyring, tmp_path):
    from kanoa_desktop.core.config.secrets import KeyStore

    keys = KeyStore()
    store = ProfileStore(keys=keys)
    store.load()
    keys.set(store.active.id, "sk-export-test-key-123")
    store.add(profile_from_preset("molmo-7b-d"))
    out = tmp_path / "exported.json"
    assert store.export_profiles(out) is None
    text = out.read_text()
    assert "sk-export-test-key-123" not in text
    assert "api_key" not in text
    assert all("id" not in p for p in json.loads(text)["profiles"])

    result = store.import_profiles(out)
    assert result.added == [f"{DEFAULT_PROFILE_NAME} (2)", "Molmo 7B-D (2)"]
    assert result.renamed == [
        (DEFAULT_PROFILE_NAME, f"{DEFAULT_PROFILE_NAME} (2)"),
        ("Molmo 7B-D", "Molmo 7B-D (2)"),
    ]
    ids = [p.id for p in store.profiles]
    assert len(set(ids)) == len(ids)
    # an imported profile has no key (keys are never carried)
    assert keys.get(store.get(f"{DEFAULT_PROFILE_NAME} (2)").id) is None


def test_importing_a_file_that_is_not_a_profiles_file_reports_it(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("hello")
    store = ProfileStore()
    store.load()
    result = store.import_profiles(bad)
    assert result.added == []
    assert "is not a profiles file" in result.problems[0].message
    assert store.names == [DEFAULT_PROFILE_NAME]


def test_api_key_is_absent_from_every_file_the_store_writes(memory_keyring, app_home: Path):
    from kanoa_desktop.core.config.secrets import KeyStore

    key = "sk-live-0123456789abcdef-never-on-disk"
    keys = KeyStore()
    store = ProfileStore(keys=keys)
    store.load()
    store.add(profile_from_preset("gemma-3-12b"))
    assert keys.set(store.get("Gemma 3 12B").id, key) is None
    store.remember_vision(DEFAULT_API_BASE, "google/gemma-3-12b-it", True)
    assert store.save() is None
    store.export_profiles(paths.data_dir() / "export.json")

    files = [p for p in app_home.rglob("*") if p.is_file()]
    assert files, "the store wrote nothing: the check below would prove nothing"
    for path in files:
        data = path.read_bytes()
        assert key.encode() not in data, path
    assert memory_keyring.passwords  # it did go to the keychain


def test_url_checks_give_plain_messages():
    assert validate_api_base("http://localhost:8000/v1") is None
    assert "http://" in validate_api_base("localhost:8000/v1")
    assert "no host" in validate_api_base("http:///v1")
    assert "port" in validate_api_base("http://host:99999/v1")
    assert "Enter" in validate_api_base("  ")


@pytest.mark.parametrize(
    ("url", "warn"),
    [
        ("http://localhost:8000/v1", False),
        ("http://127.0.0.1:8000/v1", False),
        ("http://127.1.2.3:8000/v1", False),
        ("http://[::1]:8000/v1", False),
        ("https://gpu.example.org/v1", False),
        ("http://gpu.example.org/v1", True),
        ("http://10.0.0.5:8000/v1", True),
        ("http://[fe80::1]:8000/v1", True),
    ],
)
def test_plain_http_off_this_machine_is_flagged(url, warn):
    assert is_unencrypted_remote(url) is warn


def test_vision_block_reason_explains_text_only_models():
    auto = Profile(model="smollm2")
    assert vision_block_reason(auto, None) is None
    assert vision_block_reason(auto, True) is None
    assert "smollm2 did not accept a test image" in vision_block_reason(auto, False)
    assert "text only" in vision_block_reason(Profile(vision="no"), True)
    assert vision_block_reason(Profile(vision="yes"), False) is None


def test_vision_probe_result_is_cached_per_model_across_loads():
    store = ProfileStore()
    store.load()
    store.remember_vision("http://localhost:8000/v1/", "smollm2", False)
    store.save()
    again = ProfileStore()
    again.load()
    assert again.cached_vision("http://localhost:8000/v1", "smollm2") is False
    assert again.cached_vision("http://localhost:8000/v1", "other") is None


def test_listeners_hear_about_changes():
    store = ProfileStore()
    store.load()
    calls = []
    store.add_listener(lambda: calls.append(1))
    store.add(Profile(name="B"))
    store.set_active("B")
    assert len(calls) == 2


def test_removing_a_profile_deletes_its_key(memory_keyring):
    from kanoa_desktop.core.config.secrets import KeyStore

    keys = KeyStore()
    store = ProfileStore(keys=keys)
    store.load()
    extra = store.add(Profile(name="Extra"))
    keys.set(extra.id, "sk-to-delete")
    store.remove("Extra")
    assert keys.get(extra.id) is None
    with pytest.raises(ValueError):
        store.remove(store.active.name)
