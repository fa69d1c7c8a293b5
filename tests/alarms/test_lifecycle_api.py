"""The alarm lifecycle through the API (ISA-18.2): acknowledge, latch and reset, shelving, suppression by
design, out of service, the journal, incidents and KPIs — on SQLite and PostgreSQL, with a FakeClock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from pumpwatch.alarms import store
from pumpwatch.alarms.rules import IncidentRule, RuleSet, StationRule
from pumpwatch.alarms.service import AlarmService
from pumpwatch.api.context import ApiContext
from pumpwatch.api.main import create_app
from pumpwatch.core import historian
from pumpwatch.core.clock import FakeClock
from pumpwatch.core.config import load_fleet
from pumpwatch.core.db.engine import make_engine
from pumpwatch.core.db.migrate import upgrade
from pumpwatch.core.sample import Quality, Sample
from tests.auth import log_in
from tests.conftest import DEMO_FLEET

T0 = datetime(2026, 9, 1, 0, 0, tzinfo=UTC)
STATIONS = ["KITA-MP-01", "KITA-MP-02", "KITA-MP-03"]  # all on kita-feeder-1


def rule(
    name, point, *, when=True, latch=False, suppressed_by=(), enabled_by=(), prio="high", on=0.0, off=0.0
):
    return StationRule(
        name,
        "state",
        point,
        when,
        None,
        True,
        0.0,
        on,
        off,
        prio,
        f"{name} at {{station}}",
        latch,
        tuple(suppressed_by),
        tuple(enabled_by),
    )


RULES = [
    rule("power_failure", "mains_failed", prio="critical"),
    rule("pump1_fault", "pump1_faulted", suppressed_by=["power_failure"]),
    rule("hwl_float", "hwl_float", latch=True),
    rule("door_open", "door_open", prio="low", enabled_by=["power_failure"]),
]


class Rig:
    def __init__(self, svc: AlarmService, clock: FakeClock, client: httpx.AsyncClient) -> None:
        self.svc, self.clock, self.client = svc, clock, client

    async def feed(self, station: str, **values: float) -> None:
        at = self.clock.now()
        self.svc.accept([Sample(station, p, v, at, Quality.GOOD) for p, v in values.items()])
        await self.svc.drain()

    async def alarms(self, **params) -> list[dict]:
        r = await self.client.get("/api/v1/alarms", params=params)
        assert r.status_code == 200, r.text
        return r.json()["data"]

    async def one(self, station: str, name: str, view: str = "all_open") -> dict:
        (a,) = [a for a in await self.alarms(view=view, station=station) if a["name"] == name]
        return a

    async def post(self, path: str, body: dict, status: int = 200) -> dict:
        r = await self.client.post(path, json=body)
        assert r.status_code == status, r.text
        return r.json()


@pytest.fixture
async def rig(db_url: str) -> AsyncIterator[Rig]:
    fleet = load_fleet(DEMO_FLEET)
    engine = make_engine(db_url)
    upgrade(engine)
    catalog = historian.sync_catalog(engine, fleet)
    clock = FakeClock(T0)
    rules = RuleSet(
        {sid: RULES for sid in fleet.stations},
        [IncidentRule(name="area_power_outage", alarm="power_failure")],
        8.0,
    )
    svc = AlarmService(fleet, rules, engine, clock)
    task = __import__("asyncio").create_task(svc._persist_forever())
    ctx = ApiContext(fleet=fleet, engine=engine, clock=clock, catalog=catalog, rules=rules)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(ctx)), base_url="http://t"
    ) as client:
        await log_in(client, engine, fleet.tenants)  # tanaka: admin of every tenant
        yield Rig(svc, clock, client)
    task.cancel()
    engine.dispose()


async def test_acknowledge_and_return_to_normal(rig: Rig) -> None:
    await rig.feed("KITA-MP-01", mains_failed=1)
    a = await rig.one("KITA-MP-01", "power_failure")
    assert (a["state"], a["active"], a["message"]) == ("unacked_active", True, "power_failure at KITA-MP-01")
    a = await rig.post(f"/api/v1/alarms/{a['id']}/ack", {"comment": "crew sent"})
    assert (a["state"], a["acked_by"]) == ("acked_active", "tanaka")
    await rig.post(f"/api/v1/alarms/{a['id']}/ack", {}, status=409)  # nothing to acknowledge
    rig.clock.advance(60)
    await rig.feed("KITA-MP-01", mains_failed=0)
    assert await rig.alarms(view="all_open", station="KITA-MP-01") == []  # acked and returned: closed
    # returned while unacknowledged: stays on the list until acknowledged
    await rig.feed("KITA-MP-02", mains_failed=1)
    await rig.feed("KITA-MP-02", mains_failed=0)
    b = await rig.one("KITA-MP-02", "power_failure")
    assert (b["state"], b["active"]) == ("unacked_rtn", False)
    await rig.feed("KITA-MP-02", mains_failed=1)  # comes back before the ack: the same occurrence
    b2 = await rig.one("KITA-MP-02", "power_failure")
    assert (b2["id"], b2["state"], b2["raise_count"]) == (b["id"], "unacked_active", 2)
    journal = (await rig.client.get(f"/api/v1/alarms/{a['id']}/journal")).json()["data"]
    assert [(e["kind"], e["actor"], e["state"]) for e in journal] == [
        ("raise", None, "unacked_active"),
        ("ack", "tanaka", "acked_active"),
        ("clear", None, "normal"),
    ]
    assert journal[1]["detail"] == "crew sent"


async def test_latched_alarm_needs_a_reset(rig: Rig) -> None:
    await rig.feed("KITA-MP-01", hwl_float=1)
    await rig.feed("KITA-MP-01", hwl_float=0)
    a = await rig.one("KITA-MP-01", "hwl_float")
    assert a["latched"] and a["state"] == "unacked_active"
    a = await rig.post(f"/api/v1/alarms/{a['id']}/ack", {})
    assert a["state"] == "acked_active"  # still there: latched
    a = await rig.post(f"/api/v1/alarms/{a['id']}/reset", {"comment": "float cleaned"})
    assert a["state"] == "normal" and not a["latched"]
    await rig.post(f"/api/v1/alarms/{a['id']}/reset", {}, status=409)
    # the condition comes back while latched: the latch ends and it alerts again, so a reset cannot close
    # an alarm whose condition holds
    await rig.feed("KITA-MP-01", hwl_float=1)
    await rig.feed("KITA-MP-01", hwl_float=0)
    b = await rig.one("KITA-MP-01", "hwl_float")
    assert b["latched"]
    await rig.post(f"/api/v1/alarms/{b['id']}/ack", {})
    await rig.feed("KITA-MP-01", hwl_float=1)
    b2 = await rig.one("KITA-MP-01", "hwl_float")
    assert (b2["id"], b2["state"], b2["latched"], b2["active"]) == (b["id"], "unacked_active", False, True)
    await rig.post(f"/api/v1/alarms/{b['id']}/reset", {}, status=409)  # not latched: its condition holds
    await rig.feed("KITA-MP-01", hwl_float=0)
    b3 = await rig.post(f"/api/v1/alarms/{b['id']}/reset", {})
    assert b3["state"] == "unacked_rtn" and not b3["latched"]


async def test_shelving_timed_oneshot_and_limits(rig: Rig) -> None:
    await rig.feed("KITA-MP-01", pump1_faulted=1)
    a = await rig.one("KITA-MP-01", "pump1_fault")
    url = f"/api/v1/alarms/{a['id']}"
    await rig.post(f"{url}/shelve", {"minutes": 30, "reason": ""}, status=422)
    await rig.post(f"{url}/shelve", {"minutes": 600, "reason": "x"}, status=422)  # > 8 h
    s = await rig.post(f"{url}/shelve", {"minutes": 30, "reason": "pump being pulled"})
    assert s["hidden"] and s["shelve_kind"] == "timed"
    assert await rig.alarms(station="KITA-MP-01") == []  # off the operator's list
    assert [x["id"] for x in await rig.alarms(view="hidden", station="KITA-MP-01")] == [a["id"]]
    rig.clock.advance(31 * 60)
    assert (await rig.one("KITA-MP-01", "pump1_fault", view="open"))["hidden"] is False  # time is up
    assert store.expire_shelves(rig.svc.engine, rig.clock.now()) == [a["id"]]  # journaled by the system
    # one-shot: ends when the alarm returns to normal
    await rig.post(f"{url}/shelve", {"kind": "oneshot", "minutes": 240, "reason": "known"})
    await rig.feed("KITA-MP-01", pump1_faulted=0)
    b = await rig.one("KITA-MP-01", "pump1_fault")
    assert b["state"] == "unacked_rtn" and b["shelve_kind"] is None and not b["hidden"]
    kinds = [e["kind"] for e in (await rig.client.get(f"{url}/journal")).json()["data"]]
    assert kinds == ["raise", "shelve", "unshelve", "shelve", "clear"]


async def test_suppression_by_design_and_state_based_rules(rig: Rig) -> None:
    await rig.feed("KITA-MP-01", pump1_faulted=1, door_open=1)
    assert {a["name"] for a in await rig.alarms(station="KITA-MP-01")} == {"pump1_fault"}  # door gated off
    await rig.feed("KITA-MP-01", mains_failed=1, door_open=1)
    names = {a["name"]: a for a in await rig.alarms(view="all_open", station="KITA-MP-01")}
    assert names["pump1_fault"]["suppressed_by"] == "power_failure" and names["pump1_fault"]["hidden"]
    assert not names["power_failure"]["hidden"] and "door_open" in names  # enabled by the outage
    assert {a["name"] for a in await rig.alarms(station="KITA-MP-01")} == {"power_failure", "door_open"}
    await rig.feed("KITA-MP-01", mains_failed=0)
    names = {a["name"]: a for a in await rig.alarms(view="all_open", station="KITA-MP-01")}
    assert names["pump1_fault"]["suppressed_by"] is None  # the cause went away: it shows again
    assert not names["door_open"]["active"]  # no longer enabled
    kinds = [
        e["kind"]
        for e in (await rig.client.get(f"/api/v1/alarms/{names['pump1_fault']['id']}/journal")).json()["data"]
    ]
    assert kinds == ["raise", "suppress", "unsuppress"]


async def test_out_of_service_station(rig: Rig) -> None:
    await rig.feed("KITA-MP-03", pump1_faulted=1)
    r = await rig.client.post("/api/v1/stations/KITA-MP-03/out-of-service", json={"reason": ""})
    assert r.status_code == 422
    r = await rig.client.post(
        "/api/v1/stations/KITA-MP-03/out-of-service", json={"reason": "pump replacement"}
    )
    assert r.status_code == 200 and r.json()["status"] == "maintenance" and r.json()["out_of_service"]
    assert await rig.alarms(station="KITA-MP-03") == []
    await rig.feed("KITA-MP-03", mains_failed=1)  # raised while out of service: hidden too
    assert {a["name"] for a in await rig.alarms(view="hidden", station="KITA-MP-03")} == {
        "pump1_fault",
        "power_failure",
    }
    r = await rig.client.delete("/api/v1/stations/KITA-MP-03/out-of-service")
    assert r.status_code == 200 and not r.json()["out_of_service"]
    assert {a["name"] for a in await rig.alarms(station="KITA-MP-03")} == {
        "power_failure"
    }  # pump1 suppressed


async def test_an_out_of_service_window_ends_by_itself(rig: Rig) -> None:
    """A maintenance window nobody closed must not hide the station's alarms for ever: at `until` the
    station is back in service, journaled by the system, and its alarms are on the list again."""
    await rig.feed("KITA-MP-04", pump1_faulted=1)
    past = (rig.clock.now() - timedelta(minutes=1)).isoformat()
    r = await rig.client.post(
        "/api/v1/stations/KITA-MP-04/out-of-service", json={"reason": "x", "until": past}
    )
    assert r.status_code == 422  # a window that is already over
    until = (rig.clock.now() + timedelta(minutes=30)).isoformat()
    r = await rig.client.post(
        "/api/v1/stations/KITA-MP-04/out-of-service", json={"reason": "pump pulled", "until": until}
    )
    assert r.status_code == 200 and r.json()["status"] == "maintenance"
    assert await rig.alarms(station="KITA-MP-04") == []
    assert store.expire_out_of_service(rig.svc.engine, rig.clock.now()) == []  # not yet
    rig.clock.advance(30 * 60 + 1)  # (within the session's idle time)
    assert store.expire_out_of_service(rig.svc.engine, rig.clock.now()) == ["KITA-MP-04"]
    st = (await rig.client.get("/api/v1/stations/KITA-MP-04")).json()
    assert st["status"] != "maintenance"
    (a,) = await rig.alarms(station="KITA-MP-04")
    journal = (await rig.client.get(f"/api/v1/alarms/{a['id']}/journal")).json()["data"]
    assert [(e["kind"], e["actor"]) for e in journal][-2:] == [
        ("out_of_service", "tanaka"),
        ("in_service", None),
    ]
    assert journal[-1]["detail"] == "out-of-service time is up"


async def test_area_outage_incident_and_kpis(rig: Rig) -> None:
    for sid in STATIONS:
        await rig.feed(sid, mains_failed=1)
        rig.clock.advance(20)
    (inc,) = (await rig.client.get("/api/v1/incidents")).json()["data"]
    assert inc["station_count"] == 3 and inc["phase"] == "report" and inc["power_area"] == "kita-feeder-1"
    a = await rig.one("KITA-MP-02", "power_failure")
    assert a["incident_id"] == inc["id"]
    await rig.post(f"/api/v1/alarms/{a['id']}/ack", {})
    inc = (await rig.client.get(f"/api/v1/incidents/{inc['id']}")).json()
    assert inc["phase"] == "first_response" and inc["first_response_at"] is not None
    await rig.post(f"/api/v1/incidents/{inc['id']}/notes", {"text": "x", "phase": "report"}, status=409)
    inc = await rig.post(
        f"/api/v1/incidents/{inc['id']}/notes",
        {"text": "generators to 2 and 3", "phase": "restoration"},
    )
    assert inc["phase"] == "restoration" and inc["notes"][-1]["actor"] == "tanaka"
    for sid in STATIONS:
        await rig.feed(sid, mains_failed=0)
    inc = (await rig.client.get(f"/api/v1/incidents/{inc['id']}")).json()
    assert inc["restored_at"] is not None and inc["stations_out"] == 0 and inc["phase"] == "cause"
    # a chattering alarm and a flood of them for the KPIs
    for _ in range(4):
        await rig.feed("KITA-MP-04", door_open=0, mains_failed=1)
        rig.clock.advance(5)
        await rig.feed("KITA-MP-04", mains_failed=0)
        rig.clock.advance(5)
    k = (
        await rig.client.get(
            "/api/v1/kpis",
            params={
                "tenant": "kita",
                "start": T0.isoformat(),
                "end": (rig.clock.now() + timedelta(seconds=1)).isoformat(),
            },
        )
    ).json()
    assert k["alarms"] == 3 + 4
    assert k["chattering"] == 1 and k["top_bad_actors"][0] == {
        "station": "KITA-MP-04",
        "name": "power_failure",
        "count": 4,
    }
    assert k["per_10min_max"] == 7 and k["flood_share"] == 0.0  # 7 ≤ 10 in the busiest 10 minutes
    # the chart's series: one count per 10 minutes from the start, with the flood threshold beside it
    assert k["period_s"] == 600 and k["flood_threshold"] == 10
    assert sum(k["per_10min"]) == 7 and max(k["per_10min"]) == 7
    assert k["chattering_alarms"] == [{"station": "KITA-MP-04", "name": "power_failure", "count": 4}]
