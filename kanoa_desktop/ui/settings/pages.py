"""Settings pages, one per concern (Picard's options pages).

Every page implements the same small contract so the dialog can treat them alike:
``load(profile)`` fills the widgets, ``save(profile) -> Profile`` returns a copy with the
page's values (changed fields become user-set, so presets never overwrite them),
``validate() -> list[str]`` gives inline messages, ``restore_defaults()`` puts the page's
widgets back to the defaults (and ``save`` then clears the user-set marks for them).
App-wide settings go through ``load_preferences`` / ``save_preferences``.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import urlsplit

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from kanoa_desktop.core.config.profiles import (
    PRESETS,
    THEMES,
    UNENCRYPTED_WARNING,
    Preferences,
    Profile,
    derive_metrics_url,
    is_local_host,
    is_unencrypted_remote,
    validate_api_base,
    vision_block_reason,
)
from kanoa_desktop.core.config.secrets import KeychainState, KeyStore, Secret
from kanoa_desktop.core.endpoint.client import ModelInfo
from kanoa_desktop.core.endpoint.router import RouterStatus
from kanoa_desktop.core.safety import escape_rich, plain_tooltip
from kanoa_desktop.ui.settings.connection import ConnectionReport

_DEFAULT = Profile()


@dataclasses.dataclass(frozen=True)
class KeyChange:
    """A key typed (``key``) or a request to forget the key (``key`` None)."""

    key: Secret | None


_KEYCHAIN_LINES = {
    KeychainState.KEYCHAIN: "Keys are saved in the system keychain.",
    KeychainState.SESSION_ONLY: "Keys are kept for this session only.",
    KeychainState.UNAVAILABLE: "No system keychain: keys cannot be saved.",
}

_ERROR_STYLE = "color: palette(bright-text); background: #b3261e; padding: 4px; border-radius: 3px;"
_WARN_STYLE = "color: black; background: #f6d365; padding: 4px; border-radius: 3px;"


def _label(text: str = "", *, wrap: bool = True, name: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(wrap)
    # Top-aligned: a wrapped label in a form row is often taller than its text.
    label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
    if wrap:
        # QFormLayout sizes a wrapped label's row for its minimum width; without a
        # sensible minimum the row is far taller than the text (seen in screenshots).
        label.setMinimumWidth(360)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if name:
        label.setObjectName(name)
    return label


def _hint(text: str) -> QLabel:
    label = _label(text)
    label.setStyleSheet("color: palette(placeholder-text);")
    return label


class SettingsPage(QWidget):
    """Base class: a titled page with an inline message area at the bottom."""

    title = ""
    FIELDS: tuple[str, ...] = ()
    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._restored = False
        self._profile_id = ""
        outer = QVBoxLayout(self)
        self.form = QFormLayout()
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        outer.addLayout(self.form)
        self.body = outer
        self.messages = _label(name="validationLabel")
        self.messages.setStyleSheet(_ERROR_STYLE)
        self.messages.hide()

    def finish_layout(self) -> None:
        self.body.addStretch(1)
        self.body.addWidget(self.messages)

    # -- contract
    def load(self, profile: Profile) -> None:
        self._restored = False
        self._profile_id = profile.id

    def values(self) -> dict:
        """The page's profile field values as the widgets show them."""
        return {}

    def save(self, profile: Profile) -> Profile:
        if self._restored:
            profile = profile.restored(self.FIELDS)
            self._restored = False
        return profile.with_user_values(**self.values())

    def validate(self) -> list[str]:
        return []

    def restore_defaults(self) -> None:
        self.load(dataclasses.replace(_DEFAULT, id=self._profile_id))
        self._restored = True

    def load_preferences(self, prefs: Preferences) -> None:
        pass

    def save_preferences(self, prefs: Preferences) -> Preferences:
        return prefs

    def show_messages(self, messages: list[str] | None = None) -> list[str]:
        """Validate (unless messages are given) and show the result inline."""
        messages = self.validate() if messages is None else messages
        self.messages.setText("\n".join(messages))
        self.messages.setVisible(bool(messages))
        return messages


# ---------------------------------------------------------------- endpoint


class EndpointPage(SettingsPage):
    """Name, address, key, model, TLS, and Test connection."""

    title = "Endpoint"
    FIELDS = (
        "api_base",
        "model",
        "request_timeout_s",
        "first_token_timeout_s",
        "progress_timeout_s",
        "verify_tls",
        "ca_bundle",
    )
    testConnectionRequested = Signal()
    presetRequested = Signal(str)
    sessionOnlyRequested = Signal()

    def __init__(self, keys: KeyStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._scroll_body()
        self._keys = keys
        self._pending_key: Secret | None = None
        self._forget_key = False

        self.preset_combo = QComboBox(objectName="presetCombo")
        self.preset_combo.addItem("Choose a preset to fill empty fields…", "")
        for preset in PRESETS.values():
            self.preset_combo.addItem(preset.label, preset.key)
        self.preset_combo.setAccessibleName("Model preset")
        self.preset_combo.activated.connect(self._preset_chosen)
        self.form.addRow("Preset", self.preset_combo)

        self.name_edit = QLineEdit(objectName="profileNameEdit")
        self.name_edit.setAccessibleName("Profile name")
        self.form.addRow("Profile name", self.name_edit)

        self.api_base_edit = QLineEdit(objectName="apiBaseEdit")
        self.api_base_edit.setPlaceholderText("http://localhost:8000/v1")
        self.api_base_edit.setAccessibleName("API address")
        self.api_base_edit.textChanged.connect(self._api_base_changed)
        self.form.addRow("API address", self.api_base_edit)
        self.unencrypted_label = _label(UNENCRYPTED_WARNING, name="unencryptedWarning")
        self.unencrypted_label.setStyleSheet(_WARN_STYLE)
        self.form.addRow("", self.unencrypted_label)
        self.form.setRowVisible(self.unencrypted_label, False)

        self.api_key_edit = QLineEdit(objectName="apiKeyEdit")
        self.api_key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.api_key_edit.setAccessibleName("API key")
        self.api_key_edit.editingFinished.connect(self._take_key)
        self.forget_key_button = QPushButton("Forget key", objectName="forgetKeyButton")
        self.forget_key_button.clicked.connect(self._forget)
        key_row = QHBoxLayout()
        key_row.addWidget(self.api_key_edit, 1)
        key_row.addWidget(self.forget_key_button)
        self.form.addRow("API key", key_row)
        # Where keys are kept: one short line (the full story in its tooltip), shown only
        # when a key matters — a key is set, or the server is another machine. A wrapped
        # paragraph here dominated the page and was squeezed (clipped) after Test connection.
        self.keychain_label = _label(wrap=False, name="keychainStatusLabel")
        self.session_button = QPushButton(
            "Keep keys for this session only", objectName="sessionOnlyButton"
        )
        self.session_button.clicked.connect(self._session_only)
        session_row = QHBoxLayout()
        session_row.addWidget(self.keychain_label)
        session_row.addWidget(self.session_button)
        session_row.addStretch(1)
        self.form.addRow("", session_row)
        self._session_row = session_row

        self.model_combo = QComboBox(objectName="modelCombo")
        self.model_combo.setEditable(True)
        self.model_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.model_combo.lineEdit().setPlaceholderText(
            "Model id, or pick one after Test connection"
        )
        self.model_combo.setAccessibleName("Model")
        self.model_combo.currentTextChanged.connect(self._model_changed)
        self.form.addRow("Model", self.model_combo)
        self.model_info = _hint("")
        self.model_info.setObjectName("modelInfoLabel")
        self.form.addRow("", self.model_info)
        self.form.setRowVisible(self.model_info, False)

        self.timeout_spin = QDoubleSpinBox(objectName="timeoutSpin")
        self.timeout_spin.setRange(1, 3600)
        self.timeout_spin.setDecimals(0)
        self.timeout_spin.setSuffix(" s")
        self.form.addRow("Request timeout", self.timeout_spin)
        # Deadlines a server cannot reset with keep-alive comments or dripped bytes.
        self.first_token_spin = QDoubleSpinBox(objectName="firstTokenTimeoutSpin")
        self.progress_spin = QDoubleSpinBox(objectName="progressTimeoutSpin")
        for spin, tip in (
            (self.first_token_spin, "Give up when no token came this long after asking."),
            (self.progress_spin, "Give up when the answer stalls this long between tokens."),
        ):
            spin.setRange(1, 3600)
            spin.setDecimals(0)
            spin.setSuffix(" s")
            spin.setToolTip(tip)
        self.form.addRow("First-token timeout", self.first_token_spin)
        self.form.addRow("Progress timeout", self.progress_spin)

        self.verify_tls_check = QCheckBox("Verify TLS certificates", objectName="verifyTlsCheck")
        self.form.addRow("", self.verify_tls_check)
        self.ca_bundle_edit = QLineEdit(objectName="caBundleEdit")
        self.ca_bundle_edit.setPlaceholderText("System certificates")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_ca)
        ca_row = QHBoxLayout()
        ca_row.addWidget(self.ca_bundle_edit, 1)
        ca_row.addWidget(browse)
        self.form.addRow("CA bundle", ca_row)

        test_group = QGroupBox("Connection")
        test_layout = QVBoxLayout(test_group)
        self.test_button = QPushButton("Test connection", objectName="testConnectionButton")
        self.test_button.clicked.connect(self.testConnectionRequested)
        test_layout.addWidget(self.test_button, 0, Qt.AlignmentFlag.AlignLeft)
        self.result_label = _label("Not tested yet.", name="connectionResultLabel")
        # Built for markup (bold, colour): every server word in it goes through escape_rich.
        self.result_label.setTextFormat(Qt.TextFormat.RichText)
        test_layout.addWidget(self.result_label)
        self.model_list = QTreeWidget(objectName="modelList")
        self.model_list.setHeaderLabels(["Model", "Context"])
        self.model_list.setRootIsDecorated(False)
        self.model_list.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.model_list.header().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.model_list.setAccessibleName("Models on the server")
        self.model_list.itemActivated.connect(lambda item, _c: self.pick_model(item.text(0)))
        self.model_list.itemClicked.connect(lambda item, _c: self.pick_model(item.text(0)))
        self.model_list.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.model_list.setMaximumHeight(130)
        self.model_list.hide()
        test_layout.addWidget(self.model_list)
        # A vLLM router: the servers behind it, with health and load.
        self.worker_list = QTreeWidget(objectName="routerWorkerList")
        self.worker_list.setHeaderLabels(["Server behind the router", "Model", "Health", "Load"])
        self.worker_list.setRootIsDecorated(False)
        self.worker_list.header().setSectionResizeMode(
            0, QHeaderView.ResizeMode.ResizeToContents
        )
        self.worker_list.header().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.worker_list.setAccessibleName("Servers behind the router")
        self.worker_list.setMaximumHeight(130)
        self.worker_list.hide()
        test_layout.addWidget(self.worker_list)
        self.body.addWidget(test_group)

        self._context: dict[str, int | None] = {}
        for w in (self.name_edit, self.api_base_edit, self.ca_bundle_edit):
            w.textChanged.connect(self.changed)
        self.finish_layout()

    def _scroll_body(self) -> None:
        """Put the page's form (and what comes below it) in a scroll area: with a remote
        address, a key and a Test connection result it is taller than the dialog, and Qt
        squeezed the warnings until they were clipped instead."""
        outer = self.body
        outer.removeItem(self.form)
        self.form.setParent(None)
        content = QWidget(objectName="endpointPageContent")
        self.body = QVBoxLayout(content)
        self.body.setContentsMargins(0, 0, 0, 0)
        self.body.addLayout(self.form)
        self.scroll = QScrollArea(objectName="endpointPageScroll")
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setWidget(content)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.scroll)

    # -- key handling: the widget never keeps the key after entry
    def _take_key(self) -> None:
        text = self.api_key_edit.text()
        if text:
            self._pending_key = Secret(text)
            self._forget_key = False
            self.api_key_edit.clear()
        self._refresh_key_status()

    def _forget(self) -> None:
        self._pending_key = None
        self._forget_key = True
        self.api_key_edit.clear()
        self._refresh_key_status()

    def _session_only(self) -> None:
        self._keys.use_session_only()
        self.sessionOnlyRequested.emit()
        self._refresh_key_status()
        self.show_messages()

    def pending_key(self) -> Secret | None:
        """The key typed but not yet saved (taken out of the widget)."""
        if self.api_key_edit.text():
            self._take_key()
        return self._pending_key

    def take_key_change(self) -> KeyChange | None:
        """The key edit made on this page since load (None: none), and forget it here.

        The dialog collects these and writes them to the key store on OK/Apply."""
        self.pending_key()
        if self._forget_key:
            change: KeyChange | None = KeyChange(None)
        elif self._pending_key is not None:
            change = KeyChange(self._pending_key)
        else:
            change = None
        self._pending_key, self._forget_key = None, False
        self._refresh_key_status()
        return change

    def put_key_change(self, change: KeyChange | None) -> None:
        """Show a not-yet-saved key edit again (after switching back to its profile)."""
        if change is not None:
            self._pending_key = change.key
            self._forget_key = change.key is None
        self._refresh_key_status()

    def _refresh_key_status(self) -> None:
        status = self._keys.status()
        stored = bool(self._profile_id) and self._keys.get(self._profile_id) is not None
        if self._pending_key is not None:
            self.api_key_edit.setPlaceholderText("Key entered: it is saved when you press OK")
        elif self._forget_key:
            self.api_key_edit.setPlaceholderText("The key will be removed when you press OK")
        elif stored:
            where = "keychain" if status.state is KeychainState.KEYCHAIN else "session"
            self.api_key_edit.setPlaceholderText(f"Saved in the {where}: type to replace")
        else:
            self.api_key_edit.setPlaceholderText("None (most local servers need no key)")
        self.forget_key_button.setEnabled(stored or self._pending_key is not None)
        unavailable = status.state is KeychainState.UNAVAILABLE
        self.keychain_label.setText(_KEYCHAIN_LINES[status.state])
        self.keychain_label.setToolTip(plain_tooltip(status.message))
        self.keychain_label.setStyleSheet(_WARN_STYLE if unavailable else "")
        host = urlsplit(self.api_base_edit.text().strip()).hostname or "localhost"
        key_matters = stored or self._pending_key is not None or not is_local_host(host)
        self.form.setRowVisible(self._session_row, key_matters)  # shows the whole row
        self.session_button.setVisible(key_matters and unavailable)

    # -- fields
    def _api_base_changed(self, text: str) -> None:
        self.form.setRowVisible(self.unencrypted_label, is_unencrypted_remote(text))
        self._refresh_key_status()

    def _model_changed(self, text: str) -> None:
        ctx = self._context.get(text)
        self.model_info.setText(f"Context window: {ctx:,} tokens" if ctx else "")
        self.form.setRowVisible(self.model_info, bool(ctx))
        self.changed.emit()

    def _preset_chosen(self, index: int) -> None:
        key = self.preset_combo.itemData(index)
        self.preset_combo.setCurrentIndex(0)
        if key:
            self.presetRequested.emit(key)

    def _browse_ca(self) -> None:
        # open(), not exec(): no nested event loop under qasync.
        dialog = QFileDialog(
            self, "CA bundle", "", "Certificates (*.pem *.crt *.cer);;All files (*)"
        )
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.fileSelected.connect(self.ca_bundle_edit.setText)
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()

    def pick_model(self, model_id: str) -> None:
        self.model_combo.setCurrentText(model_id)

    def load(self, profile: Profile) -> None:
        if profile.id != self._profile_id:
            self._pending_key = None
            self._forget_key = False
        super().load(profile)
        self.name_edit.setText(profile.name)
        self.api_base_edit.setText(profile.api_base)
        self.model_combo.setCurrentText(profile.model)
        self.timeout_spin.setValue(profile.request_timeout_s)
        self.first_token_spin.setValue(profile.first_token_timeout_s)
        self.progress_spin.setValue(profile.progress_timeout_s)
        self.verify_tls_check.setChecked(profile.verify_tls)
        self.ca_bundle_edit.setText(profile.ca_bundle or "")
        self._refresh_key_status()

    def restore_defaults(self) -> None:
        name = self.name_edit.text()
        super().restore_defaults()
        self.name_edit.setText(name)

    def values(self) -> dict:
        return {
            "name": self.name_edit.text().strip(),
            "api_base": self.api_base_edit.text().strip(),
            "model": self.model_combo.currentText().strip(),
            "request_timeout_s": float(self.timeout_spin.value()),
            "first_token_timeout_s": float(self.first_token_spin.value()),
            "progress_timeout_s": float(self.progress_spin.value()),
            "verify_tls": self.verify_tls_check.isChecked(),
            "ca_bundle": self.ca_bundle_edit.text().strip() or None,
        }

    def validate(self) -> list[str]:
        from pathlib import Path

        messages = []
        if not self.name_edit.text().strip():
            messages.append("Give the profile a name.")
        if (msg := validate_api_base(self.api_base_edit.text())) is not None:
            messages.append(msg)
        ca = self.ca_bundle_edit.text().strip()
        if ca and not Path(ca).expanduser().is_file():
            messages.append(f"The CA bundle {ca} does not exist or is not a file.")
        if self._pending_key is not None and not self._keys.session_only:
            status = self._keys.status()
            if status.state is KeychainState.UNAVAILABLE:
                messages.append(
                    "The API key cannot be saved: no keychain is available. Press 'Keep keys "
                    "for this session only', or forget the key."
                )
        return messages

    # -- connection results
    def show_connection_result(self, report: ConnectionReport) -> None:
        # A rich-text label: what the server said (its health detail, version, model
        # names, errors) is escaped, so it shows as the characters it is.
        e = escape_rich
        lines = []
        health = report.health
        if health is not None:
            state = {"ok": "Reachable", "loading": "Loading the model", "down": "Not reachable"}
            text = state.get(health.state, health.state)
            if health.latency_s is not None:
                text += f" ({health.latency_s * 1000:.0f} ms)"
            lines.append(f"<b>{e(text)}</b>" + (f" — {e(health.detail)}" if health.detail else ""))
        if report.server is not None:
            kind = {"vllm": "vLLM", "llama.cpp": "llama.cpp", "ollama": "Ollama"}.get(
                report.server.kind, "Other OpenAI-compatible server"
            )
            version = f" {report.server.version}" if report.server.version else ""
            lines.append(e(f"Server: {kind}{version}"))
        if report.router is not None:
            lines.append(f"<b>{e(report.router.summary())}</b>")
        self.show_router_workers(report.router)
        if report.models:
            lines.append(f"{len(report.models)} model(s): click one to use it.")
        if report.vision is not None:
            model = report.vision_model or "The model"
            lines.append(
                e(
                    f"{model} can see: it accepts images."
                    if report.vision
                    else f"{model} is text-only: it did not accept a test image, so figures "
                    "will not be sent to it."
                )
            )
        if report.image_tokens:
            lines.append(f"One figure costs {report.image_tokens:,} prompt tokens on this server.")
        if report.error:
            lines.append(f"<span style='color:#b3261e'>{e(report.error)}</span>")
        self.result_label.setText("<br>".join(lines) or "No answer.")
        self.set_models(report.models)

    def show_router_workers(self, router: RouterStatus | None) -> None:
        """List a vLLM router's servers (url, model, healthy or down, load); hide the list
        when the address is not a router."""
        self.worker_list.clear()
        for w in router.workers if router is not None else ():
            item = QTreeWidgetItem(
                [
                    w.url,
                    w.model or "—",
                    "healthy" if w.healthy else "down",
                    "—" if w.load is None else str(w.load),
                ]
            )
            if not w.healthy:
                item.setForeground(2, QColor("#b3261e"))
            self.worker_list.addTopLevelItem(item)
        self.worker_list.setVisible(router is not None and bool(router.workers))

    def set_models(self, models: list[ModelInfo] | tuple) -> None:
        current = self.model_combo.currentText()
        self._context = {m.id: m.context_length for m in models}
        self.model_list.clear()
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for m in models:
            ctx = f"{m.context_length:,}" if m.context_length else "not reported"
            item = QTreeWidgetItem([m.id, ctx])
            item.setToolTip(0, plain_tooltip(m.root or m.id))  # the server's words
            self.model_list.addTopLevelItem(item)
            self.model_combo.addItem(m.id)
        self.model_combo.setCurrentText(current or (models[0].id if models else ""))
        self.model_combo.blockSignals(False)
        self._model_changed(self.model_combo.currentText())
        self.model_list.setVisible(bool(models))


# ---------------------------------------------------------------- generation


class GenerationPage(SettingsPage):
    title = "Generation"
    FIELDS = (
        "temperature",
        "max_tokens",
        "top_p",
        "system_prompt",
        "price_input_per_million",
        "price_output_per_million",
    )

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.temperature_spin = QDoubleSpinBox(objectName="temperatureSpin")
        self.temperature_spin.setRange(0.0, 2.0)
        self.temperature_spin.setSingleStep(0.1)
        self.form.addRow("Temperature", self.temperature_spin)
        self.max_tokens_spin = QSpinBox(objectName="maxTokensSpin")
        self.max_tokens_spin.setRange(1, 1_000_000)
        self.max_tokens_spin.setGroupSeparatorShown(True)
        self.form.addRow("Max answer tokens", self.max_tokens_spin)
        self.top_p_spin = QDoubleSpinBox(objectName="topPSpin")
        self.top_p_spin.setRange(0.01, 1.0)
        self.top_p_spin.setSingleStep(0.05)
        self.form.addRow("Top p", self.top_p_spin)
        self.system_prompt_edit = QPlainTextEdit(objectName="systemPromptEdit")
        self.system_prompt_edit.setPlaceholderText("Empty: kanoa desktop's built-in instructions")
        self.system_prompt_edit.setMaximumHeight(110)
        self.form.addRow("System prompt", self.system_prompt_edit)
        self.price_in_spin = self._price_spin("priceInputSpin")
        self.price_out_spin = self._price_spin("priceOutputSpin")
        self.form.addRow("Input price", self.price_in_spin)
        self.form.addRow("Output price", self.price_out_spin)
        self.form.addRow(
            "",
            _hint(
                "US dollars per million tokens. Local servers default to $0.10, kanoa's "
                "estimate. Prices in kanoa's ~/.config/kanoa/pricing.json win for models "
                "listed there."
            ),
        )
        self.finish_layout()

    @staticmethod
    def _price_spin(name: str) -> QDoubleSpinBox:
        spin = QDoubleSpinBox(objectName=name)
        spin.setRange(0.0, 1000.0)
        spin.setDecimals(4)
        spin.setSingleStep(0.01)
        spin.setPrefix("$ ")
        spin.setSuffix(" / M tokens")
        return spin

    def load(self, profile: Profile) -> None:
        super().load(profile)
        self.temperature_spin.setValue(profile.temperature)
        self.max_tokens_spin.setValue(profile.max_tokens)
        self.top_p_spin.setValue(profile.top_p)
        self.system_prompt_edit.setPlainText(profile.system_prompt or "")
        self.price_in_spin.setValue(profile.price_input_per_million)
        self.price_out_spin.setValue(profile.price_output_per_million)

    def values(self) -> dict:
        return {
            "temperature": round(self.temperature_spin.value(), 2),
            "max_tokens": self.max_tokens_spin.value(),
            "top_p": round(self.top_p_spin.value(), 2),
            "system_prompt": self.system_prompt_edit.toPlainText().strip() or None,
            "price_input_per_million": round(self.price_in_spin.value(), 4),
            "price_output_per_million": round(self.price_out_spin.value(), 4),
        }


# ---------------------------------------------------------------- images


class ImagesPage(SettingsPage):
    title = "Images"
    FIELDS = ("vision", "max_images", "image_long_side")
    VISION_LABELS = {
        "auto": "Detect (send a one-pixel test image)",
        "yes": "Yes, the model reads images",
        "no": "No, text only",
    }

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vision_combo = QComboBox(objectName="visionCombo")
        for key, label in self.VISION_LABELS.items():
            self.vision_combo.addItem(label, key)
        self.vision_combo.currentIndexChanged.connect(self._update_reason)
        self.form.addRow("Vision", self.vision_combo)
        self.max_images_spin = QSpinBox(objectName="maxImagesSpin")
        self.max_images_spin.setRange(0, 64)
        self.max_images_spin.setSpecialValueText("Unknown")
        self.form.addRow("Images per prompt", self.max_images_spin)
        self.long_side_spin = QSpinBox(objectName="imageLongSideSpin")
        self.long_side_spin.setRange(64, 8192)
        self.long_side_spin.setSingleStep(64)
        self.long_side_spin.setSuffix(" px")
        self.form.addRow("Image long side", self.long_side_spin)
        self.form.addRow(
            "",
            _hint(
                "Figures are scaled so their longer side is at most this many pixels before "
                "sending. Larger keeps fine text legible but costs more prompt tokens."
            ),
        )
        self.reason_label = _label(name="visionReasonLabel")
        self.reason_label.setStyleSheet(_WARN_STYLE)
        self.reason_label.hide()
        self.form.addRow("", self.reason_label)
        self._probed: bool | None = None
        self._model = ""
        self.finish_layout()

    def set_probe_result(self, model: str, probed: bool | None) -> None:
        """The cached one-pixel probe for the profile's model (None: not probed)."""
        self._model, self._probed = model, probed
        self._update_reason()

    def _update_reason(self) -> None:
        profile = Profile(model=self._model, vision=self.vision_combo.currentData() or "auto")
        reason = vision_block_reason(profile, self._probed)
        self.reason_label.setText(reason or "")
        self.reason_label.setVisible(bool(reason))

    def load(self, profile: Profile) -> None:
        super().load(profile)
        self.vision_combo.setCurrentIndex(max(self.vision_combo.findData(profile.vision), 0))
        self.max_images_spin.setValue(profile.max_images or 0)
        self.long_side_spin.setValue(profile.image_long_side)
        self._model = profile.model
        self._update_reason()

    def values(self) -> dict:
        return {
            "vision": self.vision_combo.currentData(),
            "max_images": self.max_images_spin.value() or None,
            "image_long_side": self.long_side_spin.value(),
        }


# ---------------------------------------------------------------- knowledge base


class KnowledgeBasePage(SettingsPage):
    title = "Knowledge base"
    FIELDS = ("kb_top_k", "kb_max_context_tokens", "kb_embeddings_model")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.top_k_spin = QSpinBox(objectName="kbTopKSpin")
        self.top_k_spin.setRange(1, 50)
        self.form.addRow("Passages per question", self.top_k_spin)
        self.budget_spin = QSpinBox(objectName="kbBudgetSpin")
        self.budget_spin.setRange(0, 200_000)
        self.budget_spin.setSingleStep(500)
        self.budget_spin.setGroupSeparatorShown(True)
        self.budget_spin.setSuffix(" tokens")
        self.form.addRow("Passage budget", self.budget_spin)
        self.form.addRow(
            "",
            _hint(
                "How much of the model's context the retrieved passages may use. Keep it "
                "well below the context window shown on the Endpoint page."
            ),
        )
        self.embeddings_edit = QLineEdit(objectName="kbEmbeddingsModelEdit")
        self.embeddings_edit.setAccessibleName("Embedding model for hybrid search")
        self.embeddings_edit.setPlaceholderText("empty: keyword search (BM25) only")
        self.embeddings_edit.textChanged.connect(lambda _t: self.changed.emit())
        self.form.addRow("Hybrid search model", self.embeddings_edit)
        self.form.addRow(
            "",
            _hint(
                "When the endpoint also serves /v1/embeddings (vLLM with an embedding model, "
                "llama.cpp started with --embeddings), name the model here: keyword and "
                "vector rankings are then fused."
            ),
        )
        self.finish_layout()

    def load(self, profile: Profile) -> None:
        super().load(profile)
        self.top_k_spin.setValue(profile.kb_top_k)
        self.budget_spin.setValue(profile.kb_max_context_tokens)
        self.embeddings_edit.setText(profile.kb_embeddings_model or "")

    def values(self) -> dict:
        return {
            "kb_top_k": self.top_k_spin.value(),
            "kb_max_context_tokens": self.budget_spin.value(),
            "kb_embeddings_model": self.embeddings_edit.text().strip() or None,
        }


# ---------------------------------------------------------------- GPU panel


class GpuPanelPage(SettingsPage):
    title = "GPU panel"
    FIELDS = ("metrics_url", "dcgm_url", "prometheus_url", "electricity_price_per_kwh")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.visible_check = QCheckBox("Show the GPU panel", objectName="gpuPanelVisibleCheck")
        self.form.addRow("", self.visible_check)
        self.metrics_edit = QLineEdit(objectName="metricsUrlEdit")
        self.metrics_edit.setAccessibleName("Metrics address")
        self.metrics_edit.textChanged.connect(lambda _t: self.changed.emit())
        self.form.addRow("Metrics address", self.metrics_edit)
        self.form.addRow("", _hint("Empty: derived from the API address (…/metrics)."))
        self.dcgm_edit = QLineEdit(objectName="dcgmUrlEdit")
        self.dcgm_edit.setAccessibleName("DCGM exporter address")
        self.dcgm_edit.setPlaceholderText("optional, e.g. http://gpu-host:9400/metrics")
        self.dcgm_edit.textChanged.connect(lambda _t: self.changed.emit())
        self.form.addRow("Remote GPU (DCGM)", self.dcgm_edit)
        # The fleet's Prometheus is the app's (every profile shows the same fleet); a
        # profile may name its own instead.
        self.prometheus_edit = QLineEdit(objectName="prometheusUrlEdit")
        self.prometheus_edit.setAccessibleName("Prometheus address for the fleet view")
        self.prometheus_edit.setPlaceholderText("optional, e.g. http://prometheus:9090")
        self.prometheus_edit.textChanged.connect(lambda _t: self.changed.emit())
        self.prometheus_edit.textChanged.connect(self._show_override_placeholder)
        self.form.addRow("Fleet (Prometheus)", self.prometheus_edit)
        self.form.addRow(
            "",
            _hint(
                "A Prometheus server scraping all your model servers: the Fleet view, for "
                "every profile (one may name its own below)."
            ),
        )
        self.profile_prometheus_edit = QLineEdit(objectName="profilePrometheusUrlEdit")
        self.profile_prometheus_edit.setAccessibleName("This profile's own Prometheus address")
        self.profile_prometheus_edit.textChanged.connect(lambda _t: self.changed.emit())
        self.form.addRow("This profile's fleet", self.profile_prometheus_edit)
        self._show_override_placeholder()
        self.interval_spin = QDoubleSpinBox(objectName="gpuIntervalSpin")
        self.interval_spin.setRange(0.5, 60.0)
        self.interval_spin.setSingleStep(0.5)
        self.interval_spin.setDecimals(1)
        self.interval_spin.setSuffix(" s")
        self.form.addRow("Refresh every", self.interval_spin)
        self.nvml_check = QCheckBox(
            "Read this computer's NVIDIA GPU (NVML)", objectName="localNvmlCheck"
        )
        self.form.addRow("", self.nvml_check)
        self.kwh_spin = QDoubleSpinBox(objectName="electricityPriceSpin")
        self.kwh_spin.setRange(0.0, 10.0)
        self.kwh_spin.setDecimals(3)
        self.kwh_spin.setSingleStep(0.01)
        self.kwh_spin.setSpecialValueText("Not set")
        self.kwh_spin.setPrefix("$ ")
        self.kwh_spin.setSuffix(" / kWh")
        self.form.addRow("Electricity price", self.kwh_spin)
        self.finish_layout()

    def set_api_base(self, api_base: str) -> None:
        """Show the derived metrics address as the placeholder."""
        self.metrics_edit.setPlaceholderText(derive_metrics_url(api_base) if api_base else "")

    def load(self, profile: Profile) -> None:
        super().load(profile)
        self.metrics_edit.setText(profile.metrics_url or "")
        self.set_api_base(profile.api_base)
        self.kwh_spin.setValue(profile.electricity_price_per_kwh or 0.0)
        self.dcgm_edit.setText(profile.dcgm_url or "")
        self.profile_prometheus_edit.setText(profile.prometheus_url or "")

    def _show_override_placeholder(self) -> None:
        app = self.prometheus_edit.text().strip()
        self.profile_prometheus_edit.setPlaceholderText(
            f"empty: the app's ({app})" if app else "optional: this profile's own Prometheus"
        )

    def values(self) -> dict:
        kwh = round(self.kwh_spin.value(), 3)
        return {
            "metrics_url": self.metrics_edit.text().strip() or None,
            "dcgm_url": self.dcgm_edit.text().strip() or None,
            "prometheus_url": self.profile_prometheus_edit.text().strip() or None,
            "electricity_price_per_kwh": kwh or None,
        }

    def validate(self) -> list[str]:
        problems = []
        for label, edit in (
            ("Metrics address", self.metrics_edit),
            ("DCGM exporter", self.dcgm_edit),
            ("Prometheus", self.prometheus_edit),
            ("This profile's Prometheus", self.profile_prometheus_edit),
        ):
            url = edit.text().strip()
            if url and (msg := validate_api_base(url)) is not None:
                problems.append(f"{label}: {msg}")
        return problems

    def restore_defaults(self) -> None:
        super().restore_defaults()
        self.load_preferences(Preferences())

    def load_preferences(self, prefs: Preferences) -> None:
        self.visible_check.setChecked(prefs.gpu_panel_visible)
        self.interval_spin.setValue(prefs.gpu_poll_interval_s)
        self.nvml_check.setChecked(prefs.local_nvml)
        self.prometheus_edit.setText(prefs.prometheus_url or "")

    def save_preferences(self, prefs: Preferences) -> Preferences:
        return dataclasses.replace(
            prefs,
            gpu_panel_visible=self.visible_check.isChecked(),
            gpu_poll_interval_s=float(self.interval_spin.value()),
            local_nvml=self.nvml_check.isChecked(),
            prometheus_url=self.prometheus_edit.text().strip() or None,
        )


# ---------------------------------------------------------------- appearance


class AppearancePage(SettingsPage):
    title = "Appearance"
    THEME_LABELS = {"system": "Follow the system", "light": "Light", "dark": "Dark"}

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.theme_combo = QComboBox(objectName="themeCombo")
        for key in THEMES:
            self.theme_combo.addItem(self.THEME_LABELS[key], key)
        self.form.addRow("Theme", self.theme_combo)
        self.font_spin = QSpinBox(objectName="fontSizeSpin")
        self.font_spin.setRange(5, 48)
        self.font_spin.setSpecialValueText("System default")
        self.font_spin.setSuffix(" pt")
        self.form.addRow("Answer font size", self.font_spin)
        self.finish_layout()

    def restore_defaults(self) -> None:
        self.load_preferences(Preferences())

    def load_preferences(self, prefs: Preferences) -> None:
        self.theme_combo.setCurrentIndex(max(self.theme_combo.findData(prefs.theme), 0))
        self.font_spin.setValue(prefs.font_size_pt or self.font_spin.minimum())

    def save_preferences(self, prefs: Preferences) -> Preferences:
        font = self.font_spin.value()
        return dataclasses.replace(
            prefs,
            theme=self.theme_combo.currentData(),
            font_size_pt=None if font == self.font_spin.minimum() else font,
        )
