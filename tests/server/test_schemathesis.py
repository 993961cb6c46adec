"""Property-based requests generated from the OpenAPI schema, sent authenticated as an admin to the real
server: nothing may answer 5xx. Bounded to a handful of examples per operation (about a minute in all)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from conftest import ADMIN, LiveServer, ServerFactory
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

# Logging out would end the session the run authenticates with; it is covered in test_access.
EXCLUDED = {("POST", "/api/v1/auth/logout")}


class _Session:
    server: LiveServer | None = None
    cookie: str = ""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # A module-scoped server: build one by hand with the function-scoped factory's pieces.
    from conftest import server_factory as _factory  # noqa: F401  (documented fixture, used below)

    factory_gen = _module_factory(tmp_path_factory.mktemp("schemathesis"))
    make = next(factory_gen)
    srv = make(login_failures_per_client=100_000, login_failures_per_user=100_000)
    _Session.server = srv
    _Session.cookie = srv.cookie(ADMIN)
    yield srv
    try:
        next(factory_gen)
    except StopIteration:
        pass


def _module_factory(path: Any) -> Iterator[ServerFactory]:
    import conftest

    gen = conftest.server_factory.__wrapped__(path)  # type: ignore[attr-defined]
    yield next(gen)
    try:
        next(gen)
    except StopIteration:
        pass


@pytest.fixture(scope="module")
def api_schema(live: LiveServer) -> Any:
    return schemathesis.openapi.from_url(f"{live.url}/api/v1/openapi.json").exclude(
        path_regex=r"^/api/v1/auth/logout$"
    )


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors(case: Any, live: LiveServer) -> None:
    headers = {"Cookie": f"perfpulse_session={_Session.cookie}"}
    response = case.call(headers=headers, timeout=10)
    if response.status_code == 401:
        # A generated request may have revoked this session (password change): log in again and retry.
        _Session.cookie = live.cookie(ADMIN)
        headers = {"Cookie": f"perfpulse_session={_Session.cookie}"}
    case.call_and_validate(headers=headers, checks=[not_a_server_error], timeout=10)
