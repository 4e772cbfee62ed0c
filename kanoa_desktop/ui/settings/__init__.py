"""Settings: the dialog, its pages and the connection-test objects."""

from kanoa_desktop.ui.settings.connection import (
    ConnectionReport,
    ConnectionRequest,
    check_connection,
)
from kanoa_desktop.ui.settings.dialog import SettingsDialog
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

__all__ = [
    "AppearancePage",
    "ConnectionReport",
    "ConnectionRequest",
    "EndpointPage",
    "GenerationPage",
    "GpuPanelPage",
    "ImagesPage",
    "KeyChange",
    "KnowledgeBasePage",
    "SettingsDialog",
    "SettingsPage",
    "check_connection",
]
