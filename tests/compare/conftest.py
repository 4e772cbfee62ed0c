"""The qasync loop fixtures of the window tests, for the comparison window."""

from tests.ui.conftest import make_window, qloop, run  # noqa: F401
