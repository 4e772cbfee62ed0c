"""The settings dialog: one page per concern, for every profile, without nested loops.

Open it with ``open()`` or ``show()`` and connect ``accepted`` / ``finished``: never
``exec()`` (under qasync a nested loop breaks running tasks). "Test connection" emits
``testConnectionRequested(ConnectionRequest)``; the window runs the check on its loop and
calls :meth:`SettingsDialog.show_connection_result` with a ``ConnectionReport``.

Edits live in drafts until OK or Apply, which validate every page (inline messages,
the dialog stays open on a problem), write the store and the key store, and emit
``profilesSaved``. Keys typed in the dialog leave the widget as editing ends
and are written to the keychain on OK/Apply, never to the profile file.
"""

from __future__ import annotations

import dataclasses
import uuid

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from kanoa_desktop.core.config.profiles import (
    Profile,
    ProfileStore,
    apply_preset,
    unique_name,
    validate_profile,
)
from kanoa_desktop.core.config.secrets import KeyStore
from kanoa_desktop.ui.plain_text import make_labels_plain
from kanoa_desktop.ui.qt_guard import guarded
from kanoa_desktop.ui.settings.connection import ConnectionReport, ConnectionRequest
from kanoa_desktop.ui.settings.pages import (
    AppearancePage,
    EndpointPage,
    GenerationPage,
    GpuPanelPage,
    ImagesPage,
    KeyChange,
    KnowledgeBasePage,
    SettingsPage,
)


class SettingsDialog(QDialog):
    """Edit profiles and preferences. ``pages`` maps a page key to its page widget:
    endpoint, generation, images, knowledge_base, gpu_panel, appearance."""

    testConnectionRequested = Signal(object)  # ConnectionRequest
    profilesSaved = Signal()

    def __init__(
        self,
        store: ProfileStore,
        keys: KeyStore,
        parent: QWidget | None = None,
        profile_name: str | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("settingsDialog")
        self.setWindowTitle("Settings")
        self.store = store
        self.keys = keys
        self._drafts: dict[str, Profile] = {p.id: p for p in store.profiles}
        self._deleted: set[str] = set()
        self._key_changes: dict[str, KeyChange] = {}
        # Profiles whose Test connection passed, with the address tested (last one last):
        # on save, the last one still pointing there becomes the active profile.
        self._passed: dict[str, str] = {}
        start = store.get(profile_name) if profile_name else None
        self._current_id = (start or store.active).id

        # -- profile row
        self.profile_combo = QComboBox(objectName="profileCombo")
        self.profile_combo.setAccessibleName("Profile to edit")
        self.profile_combo.setMinimumContentsLength(18)
        self.profile_combo.activated.connect(self._profile_chosen)
        row = QHBoxLayout()
        row.addWidget(QLabel("Profile"))
        row.addWidget(self.profile_combo, 1)
        self.new_button = self._button(row, "New", "newProfileButton", self._new_profile)
        self.duplicate_button = self._button(
            row, "Duplicate", "duplicateProfileButton", self._duplicate
        )
        self.delete_button = self._button(row, "Delete", "deleteProfileButton", self._delete)
        self.import_button = self._button(row, "Import…", "importButton", self._import)
        self.export_button = self._button(row, "Export…", "exportButton", self._export)
        self.export_button.setToolTip("Export the saved profiles. API keys are never exported.")

        # -- pages
        self.endpoint = EndpointPage(keys)
        self.pages: dict[str, SettingsPage] = {
            "endpoint": self.endpoint,
            "generation": GenerationPage(),
            "images": ImagesPage(),
            "knowledge_base": KnowledgeBasePage(),
            "gpu_panel": GpuPanelPage(),
            "appearance": AppearancePage(),
        }
        self.page_list = QListWidget(objectName="pageList")
        self.page_list.setAccessibleName("Settings pages")
        self.stack = QStackedWidget(objectName="pageStack")
        for page in self.pages.values():
            self.page_list.addItem(page.title)
            self.stack.addWidget(page)
            page.changed.connect(lambda p=page: p.messages.isVisible() and p.show_messages())
        self.page_list.setFixedWidth(self.page_list.sizeHintForColumn(0) + 24)
        self.page_list.currentRowChanged.connect(self.stack.setCurrentIndex)
        self.page_list.setCurrentRow(0)
        middle = QHBoxLayout()
        middle.addWidget(self.page_list)
        middle.addWidget(self.stack, 1)

        self.status_label = QLabel(objectName="settingsStatusLabel")
        self.status_label.setWordWrap(True)
        self.status_label.hide()

        buttons = QDialogButtonBox.StandardButton
        self.button_box = QDialogButtonBox(
            buttons.Ok | buttons.Cancel | buttons.Apply | buttons.RestoreDefaults
        )
        self.button_box.accepted.connect(self.accept)
        self.button_box.rejected.connect(self.reject)
        self.button_box.button(buttons.Apply).clicked.connect(self.apply)
        self.button_box.button(buttons.RestoreDefaults).clicked.connect(self.restore_defaults)

        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addLayout(middle, 1)
        layout.addWidget(self.status_label)
        layout.addWidget(self.button_box)

        self.endpoint.testConnectionRequested.connect(self._test_connection)
        self.endpoint.presetRequested.connect(self.apply_preset)
        self.endpoint.api_base_edit.textChanged.connect(self.gpu_page.set_api_base)
        self.endpoint.model_combo.currentTextChanged.connect(self._refresh_probe)

        self._refresh_profiles()
        self._load(self._drafts[self._current_id])
        for page in self.pages.values():
            page.load_preferences(store.preferences)
        # Labels quote servers (model names, errors) and paths: text, never markup (the
        # connection result is the one label built for markup, and escapes what it quotes).
        make_labels_plain(self)
        self.resize(780, 620)

    @staticmethod
    def _button(row: QHBoxLayout, text: str, name: str, slot) -> QPushButton:
        button = QPushButton(text, objectName=name)
        button.clicked.connect(slot)
        row.addWidget(button)
        return button

    @property
    def gpu_page(self) -> GpuPanelPage:
        return self.pages["gpu_panel"]  # type: ignore[return-value]

    @property
    def images_page(self) -> ImagesPage:
        return self.pages["images"]  # type: ignore[return-value]

    # -- drafts
    def current_profile(self) -> Profile:
        """The profile being edited, with what the pages show right now."""
        profile = self._drafts[self._current_id]
        for page in self.pages.values():
            profile = page.save(profile)
        return profile

    def unapplied(self) -> dict | None:
        """The edits not yet applied (profiles, deletions, preferences) as plain data for
        the crash draft (core/config/recovery.py), or None when there are none. Keys
        typed here are left out: they go to the keychain on OK/Apply only."""
        from kanoa_desktop.core.config.recovery import settings_snapshot

        drafts = {pid: p for pid, p in self._drafts.items() if pid != self._current_id}
        drafts[self._current_id] = self.current_profile()
        prefs = self.store.preferences
        for page in self.pages.values():
            prefs = page.save_preferences(prefs)
        stored = {p.id: p for p in self.store.profiles}
        if not (
            self._deleted
            or prefs != self.store.preferences
            or any(stored.get(pid) != p for pid, p in drafts.items())
        ):
            return None
        order = [pid for pid in self._drafts if pid in drafts]
        return settings_snapshot(
            current=self._current_id,
            profiles=[drafts[pid] for pid in order],
            deleted=sorted(self._deleted),
            preferences=prefs,
        )

    def restore_unapplied(self, restored) -> None:
        """Show edits a crashed session had not applied (a RestoredSettings from
        core/config/recovery.py), still unapplied: OK or Apply saves them."""
        self._drafts = {p.id: p for p in restored.profiles}
        for profile in self.store.profiles:  # added since, elsewhere: keep them
            self._drafts.setdefault(profile.id, profile)
        self._deleted = {pid for pid in restored.deleted if pid in self._drafts}
        current = restored.current
        if current in self._deleted or current not in self._drafts:
            current = next(pid for pid in self._drafts if pid not in self._deleted)
        self._key_changes.clear()
        self._load(self._drafts[current])
        self._refresh_profiles()
        if restored.preferences is not None:
            for page in self.pages.values():
                page.load_preferences(restored.preferences)
        self.show_status(
            "These are the changes you had not applied when kanoa desktop closed "
            "unexpectedly. OK or Apply saves them; Cancel discards them. An API key typed "
            "then was not kept: type it again."
        )

    def _collect(self) -> None:
        self._drafts[self._current_id] = self.current_profile()
        change = self.endpoint.take_key_change()
        if change is not None:
            self._key_changes[self._current_id] = change
        self.endpoint.put_key_change(self._key_changes.get(self._current_id))

    def _load(self, profile: Profile) -> None:
        self._current_id = profile.id
        for page in self.pages.values():
            page.load(profile)
            page.show_messages([])
        self.endpoint.put_key_change(self._key_changes.get(profile.id))
        self._refresh_probe()

    def _refresh_profiles(self) -> None:
        self.profile_combo.clear()
        for pid, profile in self._drafts.items():
            if pid not in self._deleted:
                self.profile_combo.addItem(profile.name, pid)
        self.profile_combo.setCurrentIndex(self.profile_combo.findData(self._current_id))
        self.delete_button.setEnabled(self.profile_combo.count() > 1)

    def _profile_chosen(self, index: int) -> None:
        pid = self.profile_combo.itemData(index)
        if pid == self._current_id:
            return
        self._collect()
        self._load(self._drafts[pid])
        self._refresh_profiles()

    def _taken_names(self) -> list[str]:
        return [p.name for pid, p in self._drafts.items() if pid not in self._deleted]

    def _add_draft(self, profile: Profile) -> None:
        self._collect()
        profile = dataclasses.replace(profile, name=unique_name(profile.name, self._taken_names()))
        self._drafts[profile.id] = profile
        self._load(profile)
        self._refresh_profiles()

    def _new_profile(self) -> None:
        self._add_draft(Profile(name="New profile"))

    def _duplicate(self) -> None:
        self._collect()
        copy = dataclasses.replace(self._drafts[self._current_id], id=uuid.uuid4().hex)
        self._add_draft(copy)

    def _delete(self) -> None:
        remaining = [pid for pid in self._drafts if pid not in self._deleted]
        if len(remaining) <= 1:
            return
        self._deleted.add(self._current_id)
        self._key_changes.pop(self._current_id, None)
        nxt = next(pid for pid in remaining if pid != self._current_id)
        self._load(self._drafts[nxt])
        self._refresh_profiles()

    def apply_preset(self, key: str) -> None:
        """Fill the current profile's fields the user has not set from a preset."""
        self._collect()
        self._load(apply_preset(self._drafts[self._current_id], key))

    def restore_defaults(self) -> None:
        page = self.stack.currentWidget()
        if isinstance(page, SettingsPage):
            page.restore_defaults()
            page.show_messages()

    # -- import / export (file dialogs opened with open(), never exec())
    def _import(self) -> None:
        dialog = QFileDialog(self, "Import profiles", "", "Profiles (*.json);;All files (*)")
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.fileSelected.connect(self.import_file)
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()

    def import_file(self, path: str) -> None:
        """Merge profiles from ``path`` into the store (saved at once) and the drafts."""
        self._collect()
        result = self.store.import_profiles(path)
        notes = [p.message for p in result.problems]
        if result.added:
            problem = self.store.save()
            if problem is not None:
                notes.append(problem.message)
            for name in result.added:
                profile = self.store.get(name)
                if profile is not None:
                    self._drafts[profile.id] = profile
            notes.insert(0, f"Imported {len(result.added)} profile(s).")
        notes += [f"'{old}' was renamed to '{new}'." for old, new in result.renamed]
        self._refresh_profiles()
        self.show_status(" ".join(notes))

    def _export(self) -> None:
        dialog = QFileDialog(self, "Export profiles", "kanoa-profiles.json", "Profiles (*.json)")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.fileSelected.connect(self.export_file)
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()

    def export_file(self, path: str) -> None:
        problem = self.store.export_profiles(path)
        self.show_status(problem.message if problem else f"Exported to {path} (without keys).")

    def show_status(self, text: str) -> None:
        self.status_label.setText(text)
        self.status_label.setVisible(bool(text))

    # -- connection test
    def connection_request(self) -> ConnectionRequest:
        """What "Test connection" checks: the endpoint as the page shows it now."""
        v = self.endpoint.values()
        verify: bool | str = v["verify_tls"]
        if verify and v["ca_bundle"]:
            verify = v["ca_bundle"]
        vision = self.images_page.values()["vision"]
        pending = self.endpoint.pending_key() or (
            self._key_changes[self._current_id].key
            if self._current_id in self._key_changes
            else None
        )
        return ConnectionRequest(
            profile_id=self._current_id,
            api_base=v["api_base"],
            model=v["model"],
            vision=vision,
            api_key=pending,
            verify=verify,
            timeout_s=v["request_timeout_s"],
        )

    def _test_connection(self) -> None:
        messages = [m for m in self.endpoint.validate() if "address" in m.lower()]
        if messages:
            self.endpoint.show_messages(messages)
            return
        self.endpoint.test_button.setEnabled(False)
        self.endpoint.result_label.setText("Testing…")
        self.testConnectionRequested.emit(self.connection_request())

    def show_connection_result(self, report: ConnectionReport) -> None:
        """Render a finished check: health, latency, models (pick one), server, vision.
        A vision probe result is remembered per server and model."""
        self.endpoint.test_button.setEnabled(True)
        self.endpoint.show_connection_result(report)
        passed = report.error is None and report.health is not None and report.health.reachable
        self._passed.pop(self._current_id, None)
        if passed:
            self._passed[self._current_id] = self.endpoint.values()["api_base"]
        if report.vision is not None and report.vision_model:
            api_base = self.endpoint.values()["api_base"]
            self.store.remember_vision(api_base, report.vision_model, report.vision)
        self._refresh_probe()

    def _refresh_probe(self, *_args) -> None:
        v = self.endpoint.values()
        self.images_page.set_probe_result(
            v["model"], self.store.cached_vision(v["api_base"], v["model"])
        )

    # -- apply
    def validate(self) -> bool:
        """Show inline messages on every page; select the first page with a problem."""
        first = None
        for key, page in self.pages.items():
            if page.show_messages() and first is None:
                first = key
        if first is None:
            for pid, draft in self._drafts.items():
                if pid in self._deleted or pid == self._current_id:
                    continue
                if problems := validate_profile(draft):
                    self.show_status(f"Profile '{draft.name}': " + " ".join(problems))
                    return False
            return True
        self.page_list.setCurrentRow(list(self.pages).index(first))
        return False

    def apply(self) -> bool:
        """Validate, then write profiles, preferences and keys. False (dialog stays as
        it is, messages shown) when something must be fixed first."""
        if not self.validate():
            return False
        self._collect()
        for pid, change in list(self._key_changes.items()):
            problem = self.keys.set(pid, change.key) if change.key else self.keys.delete(pid)
            if problem is not None:
                if pid == self._current_id:
                    self.endpoint.put_key_change(change)
                self.page_list.setCurrentRow(0)
                self.endpoint.show_messages([problem.message])
                return False
            del self._key_changes[pid]
        self.endpoint.put_key_change(None)
        for pid in self._deleted:
            if self.store.get_by_id(pid) is not None:
                self.store.remove(pid)
        self._drafts = {k: v for k, v in self._drafts.items() if k not in self._deleted}
        self._deleted.clear()
        for pid, draft in self._drafts.items():
            if self.store.get_by_id(pid) is None:
                self._drafts[pid] = self.store.add(draft)
            else:
                self._drafts[pid] = self.store.update(draft)
        prefs = self.store.preferences
        for page in self.pages.values():
            prefs = page.save_preferences(prefs)
        self.store.set_preferences(prefs)
        # A profile that passed Test connection and is saved now becomes the active one.
        tested = [
            pid
            for pid, api_base in self._passed.items()
            if pid in self._drafts and self._drafts[pid].api_base == api_base
        ]
        self._passed.clear()
        if tested:
            self.store.set_active(tested[-1])
        problem = self.store.save()
        self._refresh_profiles()
        self.show_status(problem.message if problem else "")
        self.profilesSaved.emit()
        return problem is None

    @guarded()
    def accept(self) -> None:
        if self.apply():
            super().accept()
