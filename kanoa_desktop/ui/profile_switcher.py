"""The toolbar's profile switcher: a combo bound to a ProfileStore.

Choosing a profile makes it the store's active one (saved at once) and emits
``profileChanged(Profile)``; the next question uses it. The combo follows the store:
profiles added, renamed or removed elsewhere (the settings dialog) show up here.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QWidget

from kanoa_desktop.core.config.profiles import Profile, ProfileStore
from kanoa_desktop.core.safety import plain_tooltip

MIN_NAME_CHARS = 14
MAX_NAME_CHARS = 28


class ProfileSwitcher(QComboBox):
    profileChanged = Signal(object)  # Profile
    storeProblem = Signal(str)  # a save failed: a sentence for the status bar

    def __init__(self, store: ProfileStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("profileSwitcher")
        self.setAccessibleName("Endpoint profile")
        self.setToolTip("Endpoint profile used for the next question")
        # As wide as a usual name, never wider: a long profile name (a GGUF's path) must
        # not push the toolbar's buttons off the window; the list shows names whole.
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(MIN_NAME_CHARS)
        self.setMaximumWidth(self.fontMetrics().averageCharWidth() * MAX_NAME_CHARS + 40)
        self.store = store
        self._syncing = False
        self.activated.connect(self._chosen)
        store.add_listener(self.refresh)
        self.destroyed.connect(lambda *_: store.remove_listener(self.refresh))
        self.refresh()

    def refresh(self) -> None:
        """Rebuild the list from the store and select its active profile."""
        self._syncing = True
        try:
            self.clear()
            for profile in self.store.profiles:
                self.addItem(profile.name, profile.id)
                self.setItemData(
                    self.count() - 1,
                    plain_tooltip(f"{profile.model or '(no model)'} at {profile.api_base}"),
                    Qt.ItemDataRole.ToolTipRole,
                )
            self.setCurrentIndex(self.findData(self.store.active.id))
            view = self.view()
            if view is not None:  # the open list shows whole names
                widest = max((self.fontMetrics().horizontalAdvance(self.itemText(i))
                              for i in range(self.count())), default=0)  # fmt: skip
                view.setMinimumWidth(min(widest + 40, 640))
        finally:
            self._syncing = False

    def current_profile(self) -> Profile:
        return self.store.active

    def _chosen(self, index: int) -> None:
        if self._syncing:
            return
        pid = self.itemData(index)
        if pid is None or pid == self.store.active.id:
            return
        profile = self.store.set_active(pid)
        problem = self.store.save()
        if problem is not None:
            self.storeProblem.emit(problem.message)
        self.profileChanged.emit(profile)
