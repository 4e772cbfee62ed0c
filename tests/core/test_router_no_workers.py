"""Every way a vLLM router says "no server can take this" is one error, RouterNoWorkers
(the phrases sit in one list, core/endpoint/errors._NO_WORKERS). The real router's own
wording is covered live by tests/fleet/test_router.py."""

from __future__ import annotations

import pytest

from kanoa_desktop.core.endpoint import errors as E


@pytest.mark.parametrize(
    "body",
    [
        "No available workers",
        "no workers are currently available for model m",
        "No models available",
        "No healthy workers available",
        "no routers with healthy workers",
    ],
)
def test_a_routers_503_without_workers_is_router_no_workers(body):
    err = E.error_from_status(503, body.encode(), api_base="http://router:8000/v1")
    assert isinstance(err, E.RouterNoWorkers), repr(err)


def test_another_503_is_not():
    err = E.error_from_status(503, b"Service Unavailable", api_base="http://h/v1")
    assert not isinstance(err, E.RouterNoWorkers)
