"""The API's long lists page (limit/cursor) without losing or repeating anything, select fields, keep
station views only while they are true, and agree with each other: the overview, the station pages, a
fresh build of each station, the alarm pages and the dispatch board. Nothing here is timed (`make bench`
measures)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from pumpwatch.alarms import store
from pumpwatch.alarms.analyzers import DerivedPoint
from pumpwatch.api.context import ApiContext
from pumpwatch.api.main import create_app
from pumpwatch.api.views import build_station
from pumpwatch.core.clock import FakeClock
from pumpwatch.core.config import load_fleet
from pumpwatch.core.db import make_engine, upgrade
from pumpwatch.core.live import LiveSnapshot
from pumpwatch.core.sample import Quality, Sample
from tests.auth import LONG_SESSIONS, log_in
from tests.conftest import DEMO_FLEET

NOW = datetime(2026, 7, 1, 1, 0, tzinfo=UTC)


def _rig(tmp_path: Path):
    fleet = load_fleet(DEMO_FLEET)
    engine = make_engine(f"sqlite:///{tmp_path / 'l.db'}")
    upgrade(engine)
    live = LiveSnapshot()
    ids = sorted(fleet.stations)
    for i, sid in enumerate(ids):
        age = timedelta(seconds=600 if i == 1 else 1 + 0.3 * i)  # one station's values are old
        q = Quality.COMM_LOSS if i == 2 else Quality.GOOD
        live.accept([Sample(sid, p, float(i % 2), NOW - age, q) for p in fleet.points[sid]])
    # alarms on every station: two each, of mixed priorities and instants (equal instants on purpose)
    for i, sid in enumerate(ids):
        st = fleet.stations[sid]
        for name, prio in (("power_failure", "critical"), ("high_water", ("high", "medium", "low")[i % 3])):
            store.raise_alarm(
                engine, tenant_id=st.tenant, station_id=sid, name=name, priority=prio, message=name,
                value=None, at=NOW - timedelta(minutes=i % 4),
            )  # fmt: skip
    # a value our analyzers derive (same age rule, no say in the status), on two stations; one has none yet
    derived = {sid: [DerivedPoint("tto_spill_min", "min", "analog")] for sid in ids[:2]}
    live.accept([Sample(ids[0], "tto_spill_min", 42.5, NOW - timedelta(seconds=2))])
    clock = FakeClock(NOW)
    ctx = ApiContext(
        fleet=fleet, engine=engine, clock=clock, catalog={}, live=live, auth=LONG_SESSIONS, derived=derived
    )
    return fleet, engine, live, clock, ctx, ids


async def _pages(c: httpx.AsyncClient, path: str, limit: int, **params) -> tuple[list[dict], list[dict]]:
    """Every page of `path` at `limit`: (the items in order, the page bodies)."""
    items, bodies, cursor = [], [], None
    while True:
        q = {"limit": limit, **params} | ({"cursor": cursor} if cursor else {})
        r = await c.get(path, params=q)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["count"] == len(body["data"]) <= limit
        bodies.append(body)
        items += body["data"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items, bodies
        assert len(bodies) < 100, "the pages never end"


async def test_station_pages_cover_the_fleet_once_and_agree_with_the_overview_and_a_fresh_build(
    tmp_path: Path,
) -> None:
    fleet, engine, live, clock, ctx, ids = _rig(tmp_path)
    app = create_app(ctx)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        await log_in(c, engine, fleet.tenants)
        whole = (await c.get("/api/v1/stations")).json()
        assert whole["count"] == whole["total"] == len(ids) and whole["next_cursor"] is None
        paged, bodies = await _pages(c, "/api/v1/stations", 5)
        assert len(bodies) == -(-len(ids) // 5)
        assert {b["total"] for b in bodies} == {len(ids)}
        assert [s["id"] for s in paged] == ids == [s["id"] for s in whole["data"]]  # all, once, in order
        assert paged == whole["data"]  # the same instant (a fake clock): the same views
        assert paged[0]["values"]["tto_spill_min"]["value"] == 42.5
        assert paged[1]["values"]["tto_spill_min"]["quality"] == "no_data"
        kita, _ = await _pages(c, "/api/v1/stations", 3, tenant="kita")
        assert {s["tenant"] for s in kita} == {"kita"}
        assert [s["id"] for s in kita] == [s for s in ids if fleet.stations[s].tenant == "kita"]

        # field selection: only these, id first; the same values as the whole view
        r = await c.get("/api/v1/stations", params={"fields": "status,data_age_s,live", "limit": 4})
        part = r.json()["data"]
        assert [list(s) for s in part] == [["id", "status", "data_age_s", "live"]] * 4
        assert part == [{k: s[k] for k in ("id", "status", "data_age_s", "live")} for s in whole["data"][:4]]
        r = await c.get("/api/v1/stations", params={"fields": "status,secret"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "fields"]
        assert "heard_at" in r.json()["detail"][0]["msg"]  # what is allowed
        assert (await c.get("/api/v1/stations", params={"limit": 0})).status_code == 422
        assert (await c.get("/api/v1/stations", params={"limit": 10_001})).status_code == 422
        past = (await c.get("/api/v1/stations", params={"cursor": "~~~~"})).json()  # after every id
        assert past["data"] == [] and past["next_cursor"] is None and past["total"] == len(ids)

        # the overview says the same of every station
        over = {s["id"]: s for s in (await c.get("/api/v1/overview")).json()["data"]}
        for s in paged:
            o = over[s["id"]]
            for key in ("status", "active_alarms", "suppressed_alarms", "live", "data_age_s", "heard_at"):
                assert o[key] == s[key], (s["id"], key)
            assert o["values"] == {
                k: v["value"] for k, v in s["values"].items() if k in fleet.points[s["id"]]
            }

        # kept views are never stale: time passes (ages grow, a value crosses its age limit), a sample
        # arrives, an alarm clears; each page says what a fresh build at that instant says
        views = app.state.station_views
        young = ids[0]
        limit_s = fleet.stale_after_s(young)
        assert limit_s is not None
        for step in (0.5, limit_s - 1.5, 1.0, 30.0):
            clock.advance(step)
            if step == 1.0:
                live.accept([Sample(ids[3], p, 7.0, clock.now()) for p in fleet.points[ids[3]]])
                store.clear_alarm(engine, station_id=ids[4], name="power_failure", value=None, at=clock.now())
            built = views.built
            got, _ = await _pages(c, "/api/v1/stations", 5)
            now = clock.now()
            modes = store.station_modes(engine)
            open_ = {}
            for a in store.list_alarms(engine, open_=True, limit=10_000):
                open_.setdefault(a["station_id"], []).append(a)
            for s in got:
                sid = s["id"]
                fresh = build_station(ctx, sid, live.station(sid), open_.get(sid, []), now, modes.get(sid))
                assert s == fresh.model_dump(mode="json"), (sid, step)
            if step == 0.5:
                assert views.built == built, "nothing changed but the ages: every view was kept"
            if step == 1.0:
                assert views.built - built >= 2  # the new samples, the cleared alarm
        # a value past its age limit is never shown live
        assert not any(s["live"] for s in got if s["id"] != ids[3])
        assert {v["quality"] for v in got[0]["values"].values() if v["age_s"] is not None} == {"stale"}
    engine.dispose()


async def test_alarm_pages_cover_the_list_once_in_its_order(tmp_path: Path) -> None:
    fleet, engine, live, clock, ctx, ids = _rig(tmp_path)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(ctx)), base_url="http://t"
    ) as c:
        await log_in(c, engine, fleet.tenants)
        whole = (await c.get("/api/v1/alarms", params={"limit": 5000})).json()
        assert whole["count"] == 2 * len(ids) and whole["next_cursor"] is None
        for limit in (1, 4, 7):
            paged, _ = await _pages(c, "/api/v1/alarms", limit)
            assert [a["id"] for a in paged] == [a["id"] for a in whole["data"]], limit
        # a filter is applied before the page is cut, not after: a full page of what was asked
        highs, _ = await _pages(c, "/api/v1/alarms", 2, priority="high")
        assert highs and {a["priority"] for a in highs} == {"high"}
        assert len(highs) == sum(a["priority"] == "high" for a in whole["data"])
        r = await c.get("/api/v1/alarms", params={"priority": "high", "limit": 2})
        assert r.json()["count"] == min(2, len(highs))
        # an alarm raised between two pages does not shift the later pages
        first = (await c.get("/api/v1/alarms", params={"limit": 6})).json()
        st = fleet.stations[ids[0]]
        store.raise_alarm(
            engine, tenant_id=st.tenant, station_id=ids[0], name="comm_loss", priority="critical",
            message="comm loss", value=None, at=NOW + timedelta(minutes=1),
        )  # fmt: skip
        rest, _ = await _pages(c, "/api/v1/alarms", 6, cursor=first["next_cursor"])
        assert [a["id"] for a in first["data"] + rest] == [a["id"] for a in whole["data"]]
        for bad in ("x", "1.2.3", "0.1.2.3.4", "9.1.2.3", "0.1.2.1234567890"):
            r = await c.get("/api/v1/alarms", params={"cursor": bad})
            assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "cursor"], bad
        # every cursor of that shape is a place in the order: after the last alarm, nothing
        r = await c.get("/api/v1/alarms", params={"cursor": "3.9.0.1"})
        assert r.status_code == 200 and r.json()["data"] == [] and r.json()["next_cursor"] is None

        # the dispatch board: every station without power is on it, once, ranked from 1
        board = (await c.get("/api/v1/dispatch")).json()
        assert board["count"] == len(ids) and [e["rank"] for e in board["data"]] == list(
            range(1, len(ids) + 1)
        )
        assert sorted(e["station"] for e in board["data"]) == ids
        kpis = await c.get("/api/v1/kpis", params={"tenant": "kita"})
        assert kpis.status_code == 200 and kpis.json()["tenant"] == "kita"
    engine.dispose()
