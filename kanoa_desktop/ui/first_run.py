"""The first-run card: find a model server and make a working profile in three clicks.

Shown in the answer area while no server answers for the active profile (a fresh install
assumes vLLM on port 8000). It probes the usual local ports at once
(:func:`kanoa_desktop.core.endpoint.discovery.discover`), lists what answers, and says in
one line how to start a server when nothing does. Clicks: *Probe* (after typing a port, if
the server is elsewhere), the server, *Use this server*. Using a server runs the same check
as Settings > Test connection; only a profile that passed it is saved, and it becomes the
active one (``profileReady``).

Network work runs on the qasync loop; nothing here blocks the GUI thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import shiboken6
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from kanoa_desktop.core.config.profiles import (
    PRESETS,
    Profile,
    ProfileStore,
    profile_from_preset,
)
from kanoa_desktop.core.endpoint.client import ChatClient, Timeouts
from kanoa_desktop.core.endpoint.discovery import (
    KIND_LABELS,
    START_A_SERVER_HINT,
    FoundServer,
    discover,
    parse_ports,
)
from kanoa_desktop.core.safety import plain_tooltip
from kanoa_desktop.ui.qt_guard import guarded
from kanoa_desktop.ui.settings.connection import (
    ConnectionReport,
    ConnectionRequest,
    check_connection,
)

INTRO = (
    "kanoa desktop reads your figures and tables with a model server — vLLM, llama.cpp, "
    "Ollama, LM Studio or any OpenAI-compatible one. Pick one that answers on this machine:"
)


async def server_answers(profile: Profile, timeout_s: float = 3.0) -> bool:
    """True when the profile's server answers its health check (ok, or loading a model).
    The window shows the first-run card while this is False."""
    client = ChatClient(
        profile.api_base, timeouts=Timeouts(connect=timeout_s, read=timeout_s), verify=False
    )
    try:
        return (await client.health()).reachable
    finally:
        await client.aclose()


def profile_for(found: FoundServer, taken_names: list[str] | tuple[str, ...] = ()) -> Profile:
    """A profile for a server that answered: its kind's preset (llama.cpp, Ollama, LM
    Studio), its address and first model, marked as the user's choices."""
    key = found.preset_key
    base = profile_from_preset(PRESETS[key]) if key in PRESETS else Profile()
    model = found.model
    name = f"{KIND_LABELS[found.kind]} ({model})" if model else found.label
    if name in taken_names:  # a second server of the same kind and model
        name = f"{name} on port {found.port}"
    return base.with_user_values(name=name, api_base=found.api_base, model=model)


class FirstRunCard(QFrame):
    """The card. ``profileReady(Profile)`` after a tested profile was saved and made
    active; ``settingsRequested()`` for manual setup (a server that needs a key).

    ``discover_fn`` and ``check_fn`` default to the real probe and connection check.
    """

    profileReady = Signal(object)
    settingsRequested = Signal()

    def __init__(
        self,
        store: ProfileStore,
        parent: QWidget | None = None,
        *,
        discover_fn: Callable[..., Awaitable[list[FoundServer]]] = discover,
        check_fn: Callable[[ConnectionRequest], Awaitable[ConnectionReport]] = check_connection,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("firstRunCard")
        self.setAccessibleName("Connect a model server")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet(
            "#firstRunCard { border: 1px solid palette(mid); border-radius: 8px;"
            " background: palette(base); }"
        )
        self.store = store
        self._discover = discover_fn
        self._check = check_fn
        self._tasks: set[asyncio.Task] = set()
        # A probe or test still running when the card is deleted (the window closed) is
        # cancelled, so it never touches deleted widgets.
        tasks = self._tasks
        self.destroyed.connect(lambda *_: [t.cancel() for t in list(tasks)])
        self._probed_once = False
        self._probe_task: asyncio.Task | None = None
        self.probing = False
        self.found: list[FoundServer] = []

        lay = QVBoxLayout(self)
        lay.setContentsMargins(16, 14, 16, 14)
        title = QLabel("<b>Connect a model server</b>")
        title.setObjectName("firstRunTitle")
        intro = QLabel(INTRO)
        intro.setWordWrap(True)
        lay.addWidget(title)
        lay.addWidget(intro)

        row = QHBoxLayout()
        self.ports_edit = QLineEdit(objectName="firstRunPorts")
        self.ports_edit.setPlaceholderText("Other ports, e.g. 8081 (optional)")
        self.ports_edit.setAccessibleName("Other ports to probe")
        self.ports_edit.returnPressed.connect(self.probe)
        self.probe_button = QPushButton("Probe", objectName="firstRunProbeButton")
        self.probe_button.setToolTip("Ask ports 8000, 8080, 11434, 1234 and any you typed")
        self.probe_button.clicked.connect(self.probe)
        row.addWidget(self.ports_edit, 1)
        row.addWidget(self.probe_button)
        lay.addLayout(row)

        self.server_list = QListWidget(objectName="firstRunServers")
        self.server_list.setAccessibleName("Servers that answered")
        self.server_list.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Maximum)
        self.server_list.setMaximumHeight(self.fontMetrics().lineSpacing() * 5 + 12)
        self.server_list.currentRowChanged.connect(self._selection_changed)
        self.server_list.itemDoubleClicked.connect(lambda _item: self.use_selected())
        self.server_list.hide()
        lay.addWidget(self.server_list)

        self.status = QLabel(objectName="firstRunStatus")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.status)

        buttons = QHBoxLayout()
        self.use_button = QPushButton("Use this server", objectName="firstRunUseButton")
        self.use_button.setEnabled(False)
        self.use_button.clicked.connect(self.use_selected)
        self.settings_button = QPushButton("Settings…", objectName="firstRunSettingsButton")
        self.settings_button.setToolTip("Set up a server by hand (address, key, model)")
        self.settings_button.clicked.connect(self.settingsRequested)
        buttons.addWidget(self.use_button)
        buttons.addStretch(1)
        buttons.addWidget(self.settings_button)
        lay.addLayout(buttons)
        # Never widens the window: in a very narrow answer column the card is cut, not the
        # window made wider (its buttons alone would add ~220 px to the window's minimum).
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Maximum)

    # -- probing --------------------------------------------------------------------------

    @guarded()
    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if not self._probed_once:
            self._probed_once = True
            self.probe()

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def probe(self) -> asyncio.Task | None:
        """Probe the usual ports and the typed ones; the list shows what answers."""
        try:
            extra = parse_ports(self.ports_edit.text())
        except ValueError as exc:
            self.status.setText(str(exc))
            return None
        # A new probe (a port typed while the first one runs) replaces the running one.
        if self._probe_task is not None and not self._probe_task.done():
            self._probe_task.cancel()
        self.probing = True
        self.use_button.setEnabled(False)
        self.status.setText("Looking for servers…")
        self._probe_task = self._spawn(self._probe(extra))
        return self._probe_task

    async def _probe(self, extra: list[int]) -> None:
        found = await self._discover(extra)
        if not shiboken6.isValid(self):
            return
        self.probing = False
        self.found = found
        self.server_list.clear()
        for server in self.found:
            item = QListWidgetItem(server.summary)
            item.setToolTip(plain_tooltip(server.api_base))
            self.server_list.addItem(item)
        self.server_list.setVisible(bool(self.found))
        if not self.found:
            self.status.setText(START_A_SERVER_HINT)
            return
        self.server_list.setCurrentRow(0)
        n = len(self.found)
        self.status.setText(
            f"{n} server{'s' if n > 1 else ''} answered. Pick one and press Use this server."
        )

    def _selection_changed(self, row: int) -> None:
        server = self.found[row] if 0 <= row < len(self.found) else None
        self.use_button.setEnabled(server is not None and server.state != "loading")
        if server is not None and server.state == "needs-key":
            self.status.setText(
                f"{server.label} needs an API key: press Use this server to enter it in Settings."
            )

    # -- making the profile ----------------------------------------------------------------

    def use_selected(self) -> asyncio.Task | None:
        """Test the chosen server like Settings > Test connection; save and activate the
        profile only if it passed."""
        row = self.server_list.currentRow()
        if not 0 <= row < len(self.found):
            return None
        server = self.found[row]
        profile = profile_for(server, self.store.names)
        if server.state == "needs-key":
            stored = self._save(profile)
            if stored is not None:
                self.settingsRequested.emit()
            return None
        self.use_button.setEnabled(False)
        self.status.setText(f"Testing {server.label}…")
        return self._spawn(self._use(profile))

    async def _use(self, profile: Profile) -> None:
        request = ConnectionRequest(
            profile_id=profile.id,
            api_base=profile.api_base,
            model=profile.model,
            vision=profile.vision,
            api_key=None,
            verify=profile.verify_tls,
            timeout_s=min(profile.request_timeout_s, 30.0),
        )
        try:
            report = await self._check(request)
        except Exception as exc:  # noqa: BLE001 - the card must come back usable
            report = ConnectionReport(error=str(exc) or type(exc).__name__)
        if not shiboken6.isValid(self):
            return
        self.use_button.setEnabled(True)
        if report.error or report.health is None or report.health.state == "down":
            self.status.setText(
                f"{profile.api_base} did not pass the connection test: "
                f"{report.error or 'no answer'}"
            )
            return
        if report.vision is not None and report.vision_model:
            self.store.remember_vision(profile.api_base, report.vision_model, report.vision)
        if not profile.model and report.vision_model:
            profile = profile.with_user_values(model=report.vision_model)
        stored = self._save(profile)
        if stored is None:
            return
        self.status.setText(f"Connected: {stored.name} is now the active profile.")
        self.profileReady.emit(stored)

    def _save(self, profile: Profile) -> Profile | None:
        stored = self.store.add(profile)
        self.store.set_active(stored.id)
        problem = self.store.save()
        if problem is not None:
            self.status.setText(problem.message)
            return None
        return stored
