"""The audit log (goal 13): a scripted operator session leaves one complete record per action; the log is
append-only; an action whose record cannot be written does not happen (fail closed)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from pumpwatch.alarms.rules import RuleSet, StationRule
from pumpwatch.alarms.service import AlarmService
from pumpwatch.core import audit
from pumpwatch.core.sample import Quality, Sample
from tests.auth import PASSWORD, bearer
from tests.security.conftest import Api, make_api

MAINS = StationRule(
    "power_failure",
    "state",
    "mains_failed",
    True,
    None,
    True,
    0.0,
    0.0,
    0.0,
    "critical",
    "outage",
    True,
    (),
    (),
)


@pytest.fixture
async def rig(db_url: str) -> AsyncIterator[tuple[Api, AlarmService]]:
    api, _ = await make_api(db_url)
    rules = RuleSet({sid: [MAINS] for sid in api.fleet.stations}, [], 8.0)
    svc = AlarmService(api.fleet, rules, api.engine, api.clock)
    import asyncio

    task = asyncio.create_task(svc._persist_forever())
    async with api.client:
        yield api, svc
    task.cancel()
    api.engine.dispose()


async def raise_power_failure(api: Api, svc: AlarmService, station: str) -> int:
    svc.accept([Sample(station, "mains_failed", 1.0, api.clock.now(), Quality.GOOD)])
    await svc.drain()
    r = await api.client.get(
        "/api/v1/alarms", params={"station": station}, headers=bearer(await api.token("boss"))
    )
    (a,) = r.json()["data"]
    return a["id"]


async def test_scripted_session_is_audited_completely(rig) -> None:
    api, svc = rig
    alarm_id = await raise_power_failure(api, svc, "KITA-MP-01")
    c = api.client
    assert (await api.login("kita-op", "wrong-password")).status_code == 401
    op = await api.token("kita-op")
    eng = await api.token("kita-eng")
    adm = await api.token("kita-admin")
    viewer = await api.token("kita-view")
    h = bearer(op)
    assert (
        await c.post(f"/api/v1/alarms/{alarm_id}/ack", json={"comment": "crew sent"}, headers=h)
    ).is_success
    body = {"minutes": 30, "reason": "crew on site"}
    assert (await c.post(f"/api/v1/alarms/{alarm_id}/shelve", json=body, headers=h)).is_success
    assert (await c.post(f"/api/v1/alarms/{alarm_id}/unshelve", json={}, headers=h)).is_success
    svc.accept([Sample("KITA-MP-01", "mains_failed", 0.0, api.clock.now(), Quality.GOOD)])
    await svc.drain()
    assert (await c.post(f"/api/v1/alarms/{alarm_id}/reset", json={}, headers=h)).is_success
    oos = "/api/v1/stations/KITA-MP-02/out-of-service"
    assert (await c.post(oos, json={"reason": "new pump"}, headers=bearer(eng))).is_success
    assert (await c.delete(oos, headers=bearer(eng))).is_success
    assert (await c.post(oos, json={"reason": "x"}, headers=bearer(viewer))).status_code == 403
    new = {
        "username": "suzuki",
        "password": "suzuki-password",
        "grants": [{"tenant": "kita", "role": "viewer"}],
    }
    assert (await c.post("/api/v1/users", json=new, headers=bearer(adm))).status_code == 201
    grant = {"role": "operator"}
    assert (await c.put("/api/v1/users/suzuki/grants/kita", json=grant, headers=bearer(adm))).is_success
    assert (await c.post("/api/v1/users/suzuki/disable", headers=bearer(adm))).is_success
    r = await c.get("/api/v1/stations/KITA-MP-01/points/wet_well_level_m/export.csv", headers=h)
    assert r.status_code == 200 and r.text.startswith("time_utc,value")
    assert (await c.post("/api/v1/auth/logout", headers=h)).is_success

    rows = audit.read(api.engine)
    got = [(r["action"], r["username"], r["tenant_id"], r["result"]) for r in rows if r["username"] != "boss"]
    logins = [g for g in got if g[0] == "login"]
    assert ("login", "kita-op", None, "failed") in logins
    assert {g[1] for g in logins if g[3] == "ok"} >= {"kita-op", "kita-eng", "kita-admin", "kita-view"}
    # the second step of the engineer's and the admin's sign-in
    assert [g for g in got if g[0] == "login.mfa"] == [
        ("login.mfa", "kita-eng", None, "ok"),
        ("login.mfa", "kita-admin", None, "ok"),
    ]
    actions = [g for g in got if g[0] not in ("login", "login.mfa")]
    assert actions == [
        ("alarm.ack", "kita-op", "kita", "ok"),
        ("alarm.shelve", "kita-op", "kita", "ok"),
        ("alarm.unshelve", "kita-op", "kita", "ok"),
        ("alarm.reset", "kita-op", "kita", "ok"),
        ("station.out_of_service", "kita-eng", "kita", "ok"),
        ("station.in_service", "kita-eng", "kita", "ok"),
        ("POST /api/v1/stations/KITA-MP-02/out-of-service", "kita-view", None, "denied"),
        ("user.create", "kita-admin", "kita", "ok"),
        ("user.grant", "kita-admin", "kita", "ok"),
        ("user.disable", "kita-admin", "kita", "ok"),
        ("export", "kita-op", "kita", "ok"),
        ("logout", "kita-op", None, "ok"),
    ]
    by_action = {r["action"]: r for r in rows}
    ack = by_action["alarm.ack"]
    assert (ack["old_value"], ack["new_value"], ack["detail"]) == (
        "unacked_active",
        "acked_active",
        "crew sent",
    )
    assert ack["target"] == f"alarm:{alarm_id} KITA-MP-01/power_failure"
    assert (
        by_action["user.grant"]["old_value"] == "viewer"
        and by_action["user.grant"]["new_value"] == "operator"
    )
    assert by_action["station.out_of_service"]["new_value"] == "out_of_service"
    for r in rows:  # every record: UTC time, a source address, an action and a result
        assert r["at"].utcoffset().total_seconds() == 0 and r["source_ip"] == "127.0.0.1"
        assert r["action"] and r["result"] in {"ok", "failed", "denied"}


async def test_audit_log_is_append_only(rig) -> None:
    api, _ = rig
    assert (await api.login("kita-op", "wrong-password")).status_code == 401
    for sql in ("UPDATE audit_log SET result = 'ok'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), api.engine.begin() as conn:
            conn.execute(text(sql))  # even the owner
    assert [r["result"] for r in audit.read(api.engine)] == ["failed"]


async def test_action_fails_closed_without_its_audit_record(rig) -> None:
    api, svc = rig
    alarm_id = await raise_power_failure(api, svc, "KITA-MP-03")
    h = bearer(await api.token("kita-op"))
    with api.engine.begin() as conn:  # the audit log breaks (a full disk, a revoked grant…)
        if conn.dialect.name == "sqlite":
            conn.execute(
                text(
                    "CREATE TRIGGER t_broken BEFORE INSERT ON audit_log "
                    "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
                )
            )
        else:
            conn.execute(text("ALTER TABLE audit_log ADD CONSTRAINT broken CHECK (false) NOT VALID"))
    r = await api.client.post(f"/api/v1/alarms/{alarm_id}/ack", json={}, headers=h)
    assert r.status_code == 503 and "audit" in r.json()["detail"]
    r = await api.client.get(f"/api/v1/alarms/{alarm_id}", headers=h)
    assert r.json()["state"] == "unacked_active" and r.json()["acked_by"] is None  # not acknowledged
    journal = (await api.client.get(f"/api/v1/alarms/{alarm_id}/journal", headers=h)).json()["data"]
    assert [e["kind"] for e in journal] == ["raise"]
    r = await api.client.get("/api/v1/stations/KITA-MP-03/points/wet_well_level_m/export.csv", headers=h)
    assert r.status_code == 503  # no record, no export
    assert (await api.login("kita-op", PASSWORD)).status_code == 503  # nor a login
