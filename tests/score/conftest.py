"""The qasync loop fixtures of the window tests, for the Score models window."""

from tests.ui.conftest import make_window, qloop, run  # noqa: F401
