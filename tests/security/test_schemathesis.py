"""Schemathesis against the OpenAPI spec (goal 11): every operation, generated requests, as tenant A's
admin: no 5xx, no response that breaks the spec (status codes, content types, schemas), and, as a custom
check, no byte of tenant B's data in any answer.

Widened for issue 15 the way tests/security/test_hostile_fuzz.py fuzzes: `date-time` values include
the edges (year 1 and 9999, offsets beyond ±14 h, naive times) besides schemathesis's own; and a negative
pass (values that break the schema: out-of-range integers, wrong types, missing fields) runs with and
without a session, where every answer must be no 5xx and no leak.

Examples per operation: PUMPWATCH_SCHEMATHESIS_EXAMPLES (default 5 positive, 3 negative in `make test`;
`make fuzz`: 100 of each).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import FlakyStrategyDefinition, Unsatisfiable
from schemathesis.checks import not_a_server_error, positive_data_acceptance
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi import formats
from sqlalchemy import update

from pumpwatch.api.auth import sessions
from pumpwatch.api.auth.config import AuthConfig
from pumpwatch.api.main import create_app
from pumpwatch.core.db.schema_security import user_session
from tests.security.conftest import fill, make_api
from tests.security.test_isolation import b_markers

SCALE = int(os.environ.get("PUMPWATCH_SCHEMATHESIS_EXAMPLES", "0") or 0)
EXAMPLES = SCALE or 5
NEGATIVE_EXAMPLES = SCALE or 3
# login is fuzzed too: its failures must not throttle the test's own logins
CFG = AuthConfig(ip_max_failures=10**9, max_failures=10**9)
ZONES = [UTC, timezone(timedelta(hours=9)), timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))]
# outside what the API accepts (api.inputs.Timestamp): each must be a 422, never a 5xx
HOSTILE_TIMES = [
    "0001-01-01T00:00:00+00:00",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00",
    "1969-12-31T23:59:59Z",
    "2026-09-01T00:00:00",
    "2026-09-01T00:00:00+14:30",
    "2026-09-01T00:00:00-23:59",
]
# what it accepts, edges included: a positive pass may expect these to be taken
VALID_TIMES = st.sampled_from(
    ["1970-01-01T00:00:00Z", "8999-12-31T09:59:59-14:00", "1970-01-01T14:00:00+14:00"]
) | (
    st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(8999, 12, 30), timezones=st.sampled_from(ZONES)
    ).map(lambda d: d.isoformat())
)


@contextlib.contextmanager
def date_times(strategy: st.SearchStrategy[str]) -> Iterator[None]:
    """`format: date-time` draws from `strategy` while the block runs (schemathesis's own restored after)."""
    before = formats.STRING_FORMATS.get("date-time")
    schemathesis.openapi.format("date-time", strategy)
    try:
        yield
    finally:
        if before is None:
            formats.unregister_string_format("date-time")
        else:
            formats.STRING_FORMATS["date-time"] = before
            formats._invalidate_caches()


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

    def bearer() -> dict[str, str]:
        # a fresh session for every case: the fuzzer may well log out or change a password
        login = sessions.login(
            api.engine, CFG, "kita-admin", "test-password-123", ip="127.0.0.1", now=api.clock.now()
        )
        # the admin's second factor, given (hundreds of cases at one fake instant would replay one TOTP
        # code; tests/security/test_accounts.py tries the second step itself)
        with api.engine.begin() as conn:
            conn.execute(
                update(user_session)
                .where(user_session.c.id == login.user.session_id)
                .values(second_factor="totp")
            )
        return {"Authorization": f"Bearer {login.token}"}

    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=bearer())  # the spec needs a login
    # The live stream opens with a snapshot of everything the user may see, then heartbeats every 5 s:
    # its first event is the one that could leak; waiting for schemathesis's default 20 cost 10 s a case.
    schema.config.max_stream_events = 1

    def no_data_of_tenant_b(ctx, response, case) -> None:
        body = response.content or b""
        found = [m.decode() for m in markers if m in body]
        if found:
            raise AssertionError(f"tenant B's data in the answer: {found}")

    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    no_5xx = [not_a_server_error, no_data_of_tenant_b]
    passes = [
        # (name, mode, date-times, NUL in strings, examples, session, checks: None = every check of the spec)
        ("positive", GenerationMode.POSITIVE, VALID_TIMES, False, EXAMPLES, True, None),
        (
            "hostile",
            GenerationMode.POSITIVE,
            st.sampled_from(HOSTILE_TIMES),
            True,
            NEGATIVE_EXAMPLES,
            True,
            no_5xx,
        ),
        ("negative", GenerationMode.NEGATIVE, VALID_TIMES, True, NEGATIVE_EXAMPLES, True, no_5xx),
        (
            "negative, no session",
            GenerationMode.NEGATIVE,
            VALID_TIMES,
            True,
            NEGATIVE_EXAMPLES,
            False,
            no_5xx,
        ),
    ]
    for name, mode, times, nul, examples, with_session, checks in passes:
        # a NUL in a string is a 422 by design (api.inputs): schema-valid to schemathesis, so only the
        # passes that do not expect schema-valid requests to be accepted send it
        schema.config.generation.update(allow_x00=nul)
        with date_times(times):
            for op in operations:
                try:
                    try:
                        _run(
                            op, mode, examples, bearer if with_session else dict, checks, no_data_of_tenant_b
                        )
                    except FlakyStrategyDefinition:
                        # schemathesis' negative generation for a path parameter now and then draws
                        # differently on Hypothesis's replay (seen twice on /notify/ack/{token} on a loaded
                        # machine, never reproduced alone): that is the generator's, not the API's; run the
                        # operation again, and whatever fails then is reported
                        _run(
                            op, mode, examples, bearer if with_session else dict, checks, no_data_of_tenant_b
                        )
                except Unsatisfiable:
                    pass  # nothing to break in this operation (no parameters, no body)
                except (Exception, BaseExceptionGroup) as exc:  # every operation's failure, then all
                    failures.append(f"{op.method.upper()} {op.path} [{name}]: {exc}")
    assert len(operations) >= 30
    assert not failures, "\n\n".join(failures)


DOCUMENT_BODIES = {("POST", "/api/v1/drills")}


def _run(op, mode: GenerationMode, examples: int, headers, checks, leak_check) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case) -> None:
        if checks is None:
            # a body whose validity no JSON schema can say (a drill scenario is a YAML document in a
            # string): a 422 for a schema-valid one is the right answer, not a rejected valid request
            skip = [positive_data_acceptance] if (op.method.upper(), op.path) in DOCUMENT_BODIES else []
            case.call_and_validate(headers=headers(), additional_checks=[leak_check], excluded_checks=skip)
        else:
            case.call_and_validate(headers=headers(), checks=checks)

    run()
