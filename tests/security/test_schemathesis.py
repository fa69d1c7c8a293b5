"""Schemathesis against the OpenAPI spec (goal 11): every operation, generated requests, as tenant A's
admin: no 5xx, no response that breaks the spec (status codes, content types, schemas), and, as a custom
check, no byte of tenant B's data in any answer.

Examples per operation: PUMPWATCH_SCHEMATHESIS_EXAMPLES (default 5 in `make test`; `make fuzz`: 100).
"""

from __future__ import annotations

import asyncio
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from sqlalchemy import update

from api.auth import sessions
from api.auth.config import AuthConfig
from api.main import create_app
from pumpwatch.db.schema_security import user_session
from tests.security.conftest import fill, make_api
from tests.security.test_isolation import b_markers

EXAMPLES = int(os.environ.get("PUMPWATCH_SCHEMATHESIS_EXAMPLES", "0") or 0) or 5
# login is fuzzed too: its failures must not throttle the test's own logins
CFG = AuthConfig(ip_max_failures=10**9, max_failures=10**9)


@pytest.fixture
def world(sqlite_url: str):
    api, ctx = asyncio.run(make_api(sqlite_url, CFG))
    fill(api.engine, ctx.catalog)
    app = create_app(ctx)
    yield api, app
    api.engine.dispose()


def test_api_against_its_spec(world) -> None:
    """Each operation in turn (the pytest plugin's lazy loader does not run on this pytest)."""
    api, app = world
    markers = b_markers(api)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    # The live stream opens with a snapshot of everything the user may see, then heartbeats every 5 s:
    # its first event is the one that could leak; waiting for schemathesis's default 20 cost 10 s a case.
    schema.config.max_stream_events = 1

    def no_data_of_tenant_b(ctx, response, case) -> None:
        body = response.content or b""
        found = [m.decode() for m in markers if m in body]
        if found:
            raise AssertionError(f"tenant B's data in the answer: {found}")

    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        op = result.ok()
        operations += 1

        @settings(
            max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
        )
        @given(case=op.as_strategy())
        def run(case) -> None:
            # a fresh session for every case: the fuzzer may well log out or change a password
            login = sessions.login(
                api.engine, CFG, "kita-admin", "test-password-123", ip="127.0.0.1", now=api.clock.now()
            )
            # the admin's second factor, given (hundreds of cases at one fake instant would replay one
            # TOTP code; tests/security/test_accounts.py tries the second step itself)
            with api.engine.begin() as conn:
                conn.execute(
                    update(user_session)
                    .where(user_session.c.id == login.user.session_id)
                    .values(second_factor="totp")
                )
            case.call_and_validate(
                headers={"Authorization": f"Bearer {login.token}"}, additional_checks=[no_data_of_tenant_b]
            )

        try:
            run()
        except (
            Exception,
            BaseExceptionGroup,
        ) as exc:  # collect every operation's failure, then report them all
            failures.append(f"{op.method.upper()} {op.path}: {exc}")
    assert operations >= 30
    assert not failures, "\n\n".join(failures)
