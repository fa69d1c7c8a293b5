"""Incident grouping when collector shards each store their own stations' alarms (SQLite and PostgreSQL):
an area outage spanning shards is one incident, opened once even when the shards decide at the same
instant, and restored once, by whichever shard clears the last station."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from pumpwatch.alarms import store
from pumpwatch.alarms.incidents import IncidentGrouper
from pumpwatch.alarms.rules import IncidentRule
from pumpwatch.core.config import Fleet, load_fleet
from pumpwatch.core.db.engine import make_engine
from pumpwatch.core.db.migrate import upgrade
from pumpwatch.core.db.schema import alarm, incident, incident_station
from tests.conftest import DEMO_FLEET

T0 = datetime(2026, 9, 1, 0, 0, tzinfo=UTC)
AREA_1 = ["KITA-MP-01", "KITA-MP-02", "KITA-MP-03"]  # kita-feeder-1
AREA_2 = ["KITA-MP-04", "KITA-MP-05", "KITA-MP-06"]  # kita-feeder-2
RULES = [IncidentRule(name="area_power_outage", alarm="power_failure", min_stations=3, window_s=600)]


@pytest.fixture
def world(db_all_url: str) -> Iterator[tuple[Fleet, Engine]]:
    fleet = load_fleet(DEMO_FLEET)
    engine = make_engine(db_all_url)
    upgrade(engine)
    yield fleet, engine
    engine.dispose()


def raise_pf(engine: Engine, sid: str, at: datetime) -> int:
    done = store.raise_alarm(
        engine,
        tenant_id="kita",
        station_id=sid,
        name="power_failure",
        priority="critical",
        message="mains failed",
        value=1.0,
        at=at,
    )
    assert done is not None
    return done.id


def clear_pf(engine: Engine, sid: str, at: datetime) -> None:
    store.clear_alarm(engine, station_id=sid, name="power_failure", at=at, value=0.0)


def incidents(engine: Engine) -> list[tuple[int, str, datetime | None, str]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                select(incident.c.id, incident.c.power_area, incident.c.restored_at, incident.c.phase)
            )
        ]


def members(engine: Engine, iid: int) -> set[str]:
    with engine.connect() as conn:
        return set(
            conn.execute(
                select(incident_station.c.station_id).where(incident_station.c.incident_id == iid)
            ).scalars()
        )


def test_an_outage_spanning_shards_is_one_incident(world) -> None:
    fleet, engine = world
    shard_a, shard_b = IncidentGrouper(RULES, fleet, engine), IncidentGrouper(RULES, fleet, engine)
    at = [T0 + timedelta(seconds=20 * i) for i in range(3)]
    # A raises 01 and 03, B raises 02: neither alone has three stations, together they do.
    assert shard_a.on_raise("power_failure", AREA_1[0], raise_pf(engine, AREA_1[0], at[0]), at[0]) is None
    assert shard_b.on_raise("power_failure", AREA_1[1], raise_pf(engine, AREA_1[1], at[1]), at[1]) is None
    iid = shard_a.on_raise("power_failure", AREA_1[2], raise_pf(engine, AREA_1[2], at[2]), at[2])
    assert iid is not None
    assert members(engine, iid) == set(AREA_1)
    ((_, area, restored, phase),) = incidents(engine)
    assert (area, restored, phase) == ("kita-feeder-1", None, "report")
    with engine.connect() as conn:
        linked = conn.execute(select(func.count()).where(alarm.c.incident_id == iid)).scalar_one()
    assert linked == 3  # every member alarm points at it, whichever shard stored it
    # Two stations of another area: no incident there; one raise far outside the window does not count.
    for sid in AREA_2[:2]:
        assert shard_b.on_raise("power_failure", sid, raise_pf(engine, sid, at[0]), at[0]) is None
    late = T0 + timedelta(hours=1)
    assert shard_a.on_raise("power_failure", AREA_2[2], raise_pf(engine, AREA_2[2], late), late) is None
    assert len(incidents(engine)) == 1
    # Power returns: the shards clear their own stations; the last one, on shard B, restores it once.
    back = T0 + timedelta(minutes=45)
    for grouper, sid in ((shard_b, AREA_1[1]), (shard_a, AREA_1[0])):
        clear_pf(engine, sid, back)
        grouper.on_clear("power_failure", sid, back)
        assert incidents(engine)[0][2] is None, f"restored before {AREA_1[2]} returned"
    clear_pf(engine, AREA_1[2], back)
    shard_b.on_clear("power_failure", AREA_1[2], back)
    ((_, _, restored, phase),) = incidents(engine)
    assert restored is not None and phase == "cause"
    # A new outage of the same area later is a new incident, not the restored one reopened.
    again = back + timedelta(hours=2)
    ids = []
    for g, sid in zip((shard_a, shard_b, shard_a), AREA_1, strict=True):
        ids.append(g.on_raise("power_failure", sid, raise_pf(engine, sid, again), again))
    assert ids[:2] == [None, None] and ids[2] is not None and ids[2] != iid
    assert members(engine, ids[2]) == set(AREA_1)


def test_shards_deciding_at_the_same_instant_open_one_incident(world) -> None:
    """Every raise is stored first; then three shards ask at once. Without the lock each would count
    three stations and open its own incident."""
    fleet, engine = world
    ids = {sid: raise_pf(engine, sid, T0) for sid in AREA_1}
    groupers = [IncidentGrouper(RULES, fleet, engine) for _ in AREA_1]
    start = threading.Barrier(len(AREA_1))
    got: list[int | None] = []
    errors: list[BaseException] = []

    def decide(g: IncidentGrouper, sid: str) -> None:
        start.wait()
        try:
            got.append(g.on_raise("power_failure", sid, ids[sid], T0))
        except BaseException as exc:  # reported below, not swallowed by the thread
            errors.append(exc)

    threads = [threading.Thread(target=decide, args=(g, s)) for g, s in zip(groupers, AREA_1, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert len(incidents(engine)) == 1
    (iid,) = {i for i in got if i is not None}
    assert got.count(iid) == 3  # the first opened it, the others joined it
    assert members(engine, iid) == set(AREA_1)
