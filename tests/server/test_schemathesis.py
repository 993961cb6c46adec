"""Property-based requests generated from the OpenAPI schema, sent authenticated as an admin to the real
server: nothing may answer 5xx. Bounded to a few dozen examples per operation (about a minute in all).

schemathesis drives hypothesis directly here (one strategy per operation) rather than through its pytest
plugin, whose lazy sub-tests do not run on this pytest version.
"""

from __future__ import annotations

import time
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from server_support import ADMIN, ServerFactory

#: Ends the very session the run authenticates with; covered in test_access.
EXCLUDED = {("POST", "/api/v1/auth/logout")}
EXAMPLES = 75


def test_no_server_errors_anywhere(server_factory: ServerFactory) -> None:
    srv = server_factory(
        login_failures_per_client=100_000,
        login_failures_per_user=100_000,
        login_attempts_per_minute=100_000,
        history=True,
    )
    schema = schemathesis.openapi.from_url(f"{srv.url}/api/v1/openapi.json")
    state = {"cookie": srv.cookie(ADMIN)}
    seen: list[str] = []
    statuses: dict[int, int] = {}
    t0 = time.monotonic()

    for result in schema.get_all_operations():
        op = result.ok()
        if (op.method.upper(), op.path) in EXCLUDED:
            continue
        seen.append(f"{op.method.upper()} {op.path}")

        @given(case=op.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Any) -> None:
            headers = {"Cookie": f"perfpulse_session={state['cookie']}"}
            response = case.call_and_validate(headers=headers, checks=[not_a_server_error], timeout=10)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code == 401 and srv.accounts.session_count(ADMIN[0]) == 0:
                # A generated request ended the session (a role change, say): log in again.
                state["cookie"] = srv.cookie(ADMIN)

        check()

    print(f"{sum(statuses.values())} requests over {len(seen)} operations: {sorted(statuses.items())}")
    assert time.monotonic() - t0 < 150
    # The run reached every kind of operation and got real answers, not only rejections.
    assert {"GET /api/v1/snapshot", "PUT /api/v1/config", "POST /api/v1/users", "GET /api/v1/metrics"} <= set(
        seen
    )
    assert statuses.get(200, 0) > 50
