"""Fixtures for the endpoint benchmark tests: the qasync loop of the window tests."""

from tests.ui.conftest import qloop, run  # noqa: F401
