"""The field write path (goal 12, second half): off unless the station's configuration enables it; then an
engineer of the station's tenant only, a second confirmation (same user, point and value, within 60 s,
once), the audit record committed before anything is sent, and a read-back. Over a real Modbus socket."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from pumpwatch.collector.field_write import FieldWriter
from pumpwatch.collector.fleet import build_modbus_sources
from pumpwatch.core import audit
from pumpwatch.core.config import load_fleet
from tests.conftest import DEMO_FLEET
from tests.fakes import RawModbusServer
from tests.security.conftest import Api, make_api

SID, POINT = "KITA-MP-01", "stop_level_m"  # holding register 0, int16, 0.01 m
URL = f"/api/v1/stations/{SID}/points/{POINT}"


class WritableServer(RawModbusServer):
    """Accepts write single register (6) and coil (5); `stuck` ignores the value (a bad read-back)."""

    stuck = False

    def _answer(self, unit_id: int, fc: int, pdu: bytes) -> bytes | None:
        if fc in (5, 6):
            address, value = struct.unpack(">HH", pdu[1:5])
            if not self.stuck:
                table = "coil" if fc == 5 else "holding_register"
                self.unit(unit_id).set(table, address, [int(value == 0xFF00) if fc == 5 else value])
            return pdu[:5]
        return super()._answer(unit_id, fc, pdu)


@pytest.fixture
async def rig(sqlite_url: str) -> AsyncIterator[tuple[Api, WritableServer, int]]:
    fleet = load_fleet(DEMO_FLEET)
    fleet.stations[SID] = fleet.stations[SID].model_copy(update={"write_enabled": True})
    sp = fleet.points[SID][POINT]
    async with WritableServer() as srv:
        srv.unit(sp.unit_id).set("holding_register", 0, [40])
        fleet.controllers[sp.controller] = fleet.controllers[sp.controller].model_copy(
            update={"host": "127.0.0.1", "port": srv.port}
        )
        api, ctx = await make_api(sqlite_url, fleet=fleet)
        sources = build_modbus_sources(fleet, api.clock, lambda batch: None, stations={SID})
        ctx.field_write = FieldWriter(fleet, sources)
        async with api.client:
            yield api, srv, sp.unit_id
        for s in sources:
            s._close()
        api.engine.dispose()


def h(t: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {t}"}


async def confirm(api: Api, token: str, value: float) -> str:
    r = await api.client.post(f"{URL}/write-requests", json={"value": value}, headers=h(token))
    assert r.status_code == 200, r.text
    return r.json()["confirmation"]


async def test_confirmed_engineer_write_is_audited_first_and_read_back(rig) -> None:
    api, srv, unit = rig
    eng = await api.token("kita-eng")
    for who, status in (("kita-view", 403), ("kita-op", 403), ("minami-op", 404)):
        r = await api.client.post(
            f"{URL}/write-requests", json={"value": 0.45}, headers=h(await api.token(who))
        )
        assert r.status_code == status, (who, r.text)
    r = await api.client.post(
        "/api/v1/stations/KITA-MP-02/points/stop_level_m/write-requests", json={"value": 0.45}, headers=h(eng)
    )
    assert r.status_code == 409 and "write_enabled" in r.json()["detail"]  # not enabled for that station
    r = await api.client.post(
        f"{URL}/writes", json={"value": 0.45, "confirmation": "made-up"}, headers=h(eng)
    )
    assert r.status_code == 403
    c = await confirm(api, eng, 0.45)
    r = await api.client.post(f"{URL}/writes", json={"value": 0.5, "confirmation": c}, headers=h(eng))
    assert r.status_code == 403  # another value than confirmed (and the confirmation is used up)
    assert 6 not in srv.function_codes  # nothing went to the field so far
    c = await confirm(api, eng, 0.45)
    r = await api.client.post(f"{URL}/writes", json={"value": 0.45, "confirmation": c}, headers=h(eng))
    assert r.status_code == 200, r.text
    assert r.json()["read_back"] == pytest.approx(0.45)
    assert srv.unit(unit).tables["holding_register"][0] == 45 and srv.function_codes.count(6) == 1
    r = await api.client.post(f"{URL}/writes", json={"value": 0.45, "confirmation": c}, headers=h(eng))
    assert r.status_code == 403  # once only
    c = await confirm(api, eng, 0.42)
    api.clock.advance(61)
    r = await api.client.post(f"{URL}/writes", json={"value": 0.42, "confirmation": c}, headers=h(eng))
    assert r.status_code == 403  # too late
    rows = [(a["action"], a["result"], a["username"], a["new_value"]) for a in audit.read(api.engine)]
    writes = [r for r in rows if r[0].startswith("field.")]
    assert writes == [
        ("field.write", "denied", "kita-eng", "0.45"),
        ("field.write_request", "ok", "kita-eng", "0.45"),
        ("field.write", "denied", "kita-eng", "0.5"),
        ("field.write_request", "ok", "kita-eng", "0.45"),
        ("field.write", "requested", "kita-eng", "0.45"),
        ("field.write", "ok", "kita-eng", "0.45"),
        ("field.write", "denied", "kita-eng", "0.45"),
        ("field.write_request", "ok", "kita-eng", "0.42"),
        ("field.write", "denied", "kita-eng", "0.42"),
    ]


async def test_failed_write_and_wrong_read_back(rig) -> None:
    api, srv, _ = rig
    eng = await api.token("kita-eng")
    srv.stuck = True
    c = await confirm(api, eng, 0.47)
    r = await api.client.post(f"{URL}/writes", json={"value": 0.47, "confirmation": c}, headers=h(eng))
    assert r.status_code == 502 and "read back 0.4" in r.json()["detail"]
    results = [a["result"] for a in audit.read(api.engine, action="field.write")]
    assert results == ["requested", "failed"]  # the attempt was on record before the device answered


async def test_no_audit_record_no_write(rig) -> None:
    api, srv, _ = rig
    eng = await api.token("kita-eng")
    c = await confirm(api, eng, 0.46)
    with api.engine.begin() as conn:
        conn.execute(
            text("CREATE TRIGGER t_broken BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'full'); END")
        )
    r = await api.client.post(f"{URL}/writes", json={"value": 0.46, "confirmation": c}, headers=h(eng))
    assert r.status_code == 503
    assert 6 not in srv.function_codes
