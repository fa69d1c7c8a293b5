"""Tenant isolation in PostgreSQL (goal 10, database side), on plain PostgreSQL and on TimescaleDB: the app
role is not the owner, RLS is forced on every tenant table, and raw SQL as the app role with tenant A set
returns none of tenant B's rows (and nothing with no tenant set) from them and from the samples, rollups
and continuous aggregates, which it can read only through the `scoped` views (no RLS on the hypertable:
TimescaleDB's compression refuses it). It cannot write B's rows, nor any sample, and it cannot UPDATE or
DELETE the audit log. The API works through it, long trends included."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from psycopg import errors as pg_errors
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from pumpwatch.alarms import store
from pumpwatch.api.auth.config import AuthConfig
from pumpwatch.api.context import ApiContext
from pumpwatch.api.main import create_app
from pumpwatch.core import audit, historian
from pumpwatch.core.db import rls
from pumpwatch.core.historian_scale import roll_up
from pumpwatch.core.timescale import daily_name, timescale_active
from tests.auth import bearer, token
from tests.security.conftest import T0, fill, make_api

pytestmark = pytest.mark.postgres

# a column of each tenant table that names the station or tenant (what must never be B's)
OWNER_COLUMN = {
    "tenant": "id",
    "station": "id",
    "point": "station_id",
    "latest_value": "(SELECT station_id FROM point WHERE point.id = point_id)",
    "alarm": "station_id",
    "alarm_event": "(SELECT station_id FROM alarm WHERE alarm.id = alarm_id)",
    "station_mode": "station_id",
    "incident": "tenant_id",
    "incident_station": "station_id",
    "incident_note": "(SELECT tenant_id FROM incident WHERE incident.id = incident_id)",
    "user_grant": "tenant_id",
    "audit_log": "tenant_id",
    "notify_pending": "(SELECT a.tenant_id FROM alarm_event e JOIN alarm a ON a.id = e.alarm_id "
    "WHERE e.id = event_id)",
    "escalation": "tenant_id",
    "notify_item": "tenant_id",
    "notification": "tenant_id",
    "notification_alarm": "(SELECT tenant_id FROM notification WHERE notification.id = notification_id)",
}


# what the app role reads through `scoped` (the same condition, in a security-barrier view of the same name)
BY_POINT = "(SELECT station_id FROM point WHERE point.id = point_id)"
SCOPED = ["sample", "sample_1m", "sample_1h"]
SCOPED_TIMESCALE = ["sample_1h_cagg", "sample_1d"]


def b_values(v: str | None) -> bool:
    return v is not None and v.lower().startswith("minami")


@pytest.fixture
def filled(pg_both_url: str) -> Iterator[tuple[str, Engine]]:
    import asyncio

    api, ctx = asyncio.run(make_api(pg_both_url))
    fill(api.engine, ctx.catalog)
    roll_up(api.engine, range(_minute(T0), _minute(T0) + 2))  # the plain rollups hold both tenants too
    yield pg_both_url, api.engine
    api.engine.dispose()


def _minute(t) -> int:
    return int(t.timestamp()) // 60


def scoped_relations(engine: Engine) -> list[str]:
    return SCOPED + (SCOPED_TIMESCALE if timescale_active(engine) else [])


def app_rows(engine: Engine, tenants: str, table: str) -> list:
    column = OWNER_COLUMN.get(table, BY_POINT)
    relation = table if table in OWNER_COLUMN else f"{rls.SCOPED_SCHEMA}.{table}"
    with engine.begin() as conn:
        conn.execute(text(f"SET LOCAL ROLE {rls.APP_ROLE}"))
        conn.execute(text("SELECT set_config('pumpwatch.tenants', :t, true)"), {"t": tenants})
        return conn.execute(text(f"SELECT {column} FROM {relation}")).scalars().all()


def test_app_role_sees_only_its_tenants_rows(filled) -> None:
    _, engine = filled
    with engine.connect() as conn:
        assert set(OWNER_COLUMN) == set(rls.TENANT_TABLES)
        for table in rls.TENANT_TABLES:
            forced, enabled, owner = conn.execute(
                text(
                    "SELECT relforcerowsecurity, relrowsecurity, pg_get_userbyid(relowner) FROM pg_class "
                    "WHERE oid = CAST(:t AS regclass)"
                ),
                {"t": table},
            ).one()
            assert forced and enabled and owner != rls.APP_ROLE, table
        # no RLS on sample (compression refuses it); the app role holds nothing on the scoped relations
        assert (
            conn.execute(text("SELECT relrowsecurity FROM pg_class WHERE relname = 'sample'")).scalar()
            is False
        )
        relations = scoped_relations(engine)
        for table in relations:
            assert not conn.execute(
                text(
                    "SELECT has_table_privilege(:r, CAST(:t AS regclass), 'SELECT, INSERT, UPDATE, DELETE')"
                ),
                {"r": rls.APP_ROLE, "t": f"public.{table}"},
            ).scalar(), table
        # everything there, as the owner sees it
        for table in [*rls.TENANT_TABLES, *relations]:
            column = OWNER_COLUMN.get(table, BY_POINT)
            owner_rows = conn.execute(text(f"SELECT {column} FROM public.{table}")).scalars().all()
            assert any(b_values(v) for v in owner_rows), f"{table} has no row of B to hide"
    for table in [*rls.TENANT_TABLES, *relations]:
        a_rows = app_rows(engine, "kita", table)
        assert a_rows, f"{table}: tenant A sees none of its own rows"
        assert not [v for v in a_rows if b_values(v)], f"{table}: tenant A sees B's rows"
        assert app_rows(engine, "", table) == [], f"{table}: no tenant set, yet rows"
        both = app_rows(engine, "kita,minami", table)
        assert any(b_values(v) for v in both) and len(both) > len(a_rows)
    # past the views, the app role reaches nothing: not the tables, not TimescaleDB's own aggregates
    hidden = [*(f"public.{t}" for t in relations), "sample"]  # `sample` without the scoped search_path
    if timescale_active(engine):
        hidden.append(daily_name("Asia/Tokyo"))
    for relation in hidden:
        with pytest.raises(DBAPIError, match="permission denied") as e, engine.begin() as conn:
            conn.execute(text(f"SET LOCAL ROLE {rls.APP_ROLE}"))
            conn.execute(text("SELECT set_config('pumpwatch.tenants', 'kita,minami', true)"))
            conn.execute(text(f"SELECT count(*) FROM {relation}"))
        assert isinstance(e.value.orig, pg_errors.InsufficientPrivilege), relation


def test_app_role_cannot_write_b_or_edit_the_audit_log(filled) -> None:
    _, engine = filled

    def as_app(sql: str, tenants: str = "kita") -> None:
        with engine.begin() as conn:
            conn.execute(text(f"SET LOCAL ROLE {rls.APP_ROLE}"))
            conn.execute(text("SELECT set_config('pumpwatch.tenants', :t, true)"), {"t": tenants})
            conn.execute(text(sql))

    with pytest.raises(DBAPIError) as e:
        as_app(
            "INSERT INTO alarm (tenant_id, station_id, name, priority, message, active, raised_at) "
            "VALUES ('minami', 'MINAMI-MP-02', 'x', 'low', 'x', true, now())"
        )
    assert isinstance(e.value.orig, pg_errors.InsufficientPrivilege)  # new row violates the policy
    as_app("UPDATE alarm SET message = 'hacked' WHERE tenant_id = 'minami'")  # matches nothing
    for sql in (
        "INSERT INTO sample (point_id, observed_at, value, quality) VALUES (1, now(), 1, 0)",
        "INSERT INTO scoped.sample (point_id, observed_at, value, quality) VALUES (1, now(), 1, 0)",
        "DELETE FROM scoped.sample",
    ):
        with pytest.raises(DBAPIError, match="permission denied"):
            as_app(sql)  # samples come from the collector only
    with engine.connect() as conn:
        assert "hacked" not in conn.execute(text("SELECT message FROM alarm")).scalars().all()
    for sql in ("UPDATE audit_log SET result = 'ok'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
        with pytest.raises(DBAPIError, match="permission denied") as e:
            as_app(sql)
        assert isinstance(e.value.orig, pg_errors.InsufficientPrivilege)
    as_app("INSERT INTO audit_log (at, action, result) VALUES (now(), 'login', 'ok')")  # appending is fine


def app_url(url: str) -> str:
    return url + "?options=-c%20role%3D" + rls.APP_ROLE


def test_the_api_runs_through_the_app_role(filled) -> None:
    import asyncio

    import httpx

    from pumpwatch.core.clock import FakeClock
    from pumpwatch.core.config import load_fleet
    from tests.conftest import DEMO_FLEET

    pg_url, owner = filled
    with pytest.raises(RuntimeError, match="row-level security would not hold"):
        rls.app_engine(pg_url)  # the owner (here a superuser) is refused as the API's connection
    engine = rls.app_engine(app_url(pg_url))
    fleet = load_fleet(DEMO_FLEET)
    catalog = historian.sync_catalog(owner, fleet)
    ctx = ApiContext(fleet=fleet, engine=engine, clock=FakeClock(T0), catalog=catalog, auth=AuthConfig())

    async def body() -> None:
        transport = httpx.ASGITransport(app=create_app(ctx))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            h = bearer(await token(c, "kita-op"))
            alarms = (await c.get("/api/v1/alarms", params={"view": "all_open"}, headers=h)).json()["data"]
            assert [a["station"] for a in alarms] == ["KITA-MP-01"]
            r = await c.post(f"/api/v1/alarms/{alarms[0]['id']}/ack", json={}, headers=h)
            assert r.status_code == 200 and r.json()["acked_by"] == "kita-op"
            b_alarm = store.list_alarms(owner, tenant_ids=["minami"])[0]["id"]
            assert (await c.get(f"/api/v1/alarms/{b_alarm}", headers=h)).status_code == 404
            hist = await c.get(
                "/api/v1/stations/KITA-MP-01/points/wet_well_level_m/history",
                params={"start": T0.isoformat(), "end": (T0 + timedelta(minutes=1)).isoformat()},
                headers=h,
            )
            assert len(hist.json()["data"]) == 5
            # a month's trend in 2 buckets: from the scoped rollups or aggregates, as the app role
            month = await c.get(
                "/api/v1/stations/KITA-MP-01/points/wet_well_level_m/history",
                params={
                    "start": (T0 - timedelta(days=29)).isoformat(),
                    "end": (T0 + timedelta(days=1)).isoformat(),
                    "max_points": 2,
                },
                headers=h,
            )
            assert month.status_code == 200, month.text
            assert sum(p["count"] for p in month.json()["data"]) == 5
            (inc,) = (await c.get("/api/v1/incidents", headers=h)).json()["data"]
            assert inc["tenant"] == "kita"
            # RLS hides centre's minami grant from a kita admin's transaction, yet the admin is told
            adm = bearer(await token(c, "kita-admin"))
            assert (await c.post("/api/v1/users/centre/disable", headers=adm)).status_code == 403
            assert (await c.post("/api/v1/users/minami-op/disable", headers=adm)).status_code == 404
            listed = (await c.get("/api/v1/users", headers=adm)).json()["data"]
            assert "minami-op" not in {u["username"] for u in listed}
            # a shared user backs off: one record in each of its tenants, written through the app role;
            # kita's admin unlocks it, recorded in kita only (not refused by minami's policy)
            for _ in range(5):
                await c.post("/api/v1/auth/login", json={"username": "centre", "password": "guess-guess"})
            c.cookies.clear()
            r = await c.post("/api/v1/users/centre/unlock", headers=adm)
            assert r.status_code == 200, r.text
            recs = [
                (a["action"], a["tenant_id"])
                for a in audit.read(owner)
                if a["tenant_id"] and a["target"] == "user:centre"
            ]
            assert recs == [
                ("login.backoff", "kita"), ("login.backoff", "minami"), ("user.unlock", "kita")
            ], recs  # fmt: skip
            # the shared centre sees both, through the same role
            h2 = bearer(await token(c, "centre"))
            assert (
                len((await c.get("/api/v1/alarms", params={"view": "all"}, headers=h2)).json()["data"]) == 2
            )

    asyncio.run(body())
    engine.dispose()
