"""The historian against SQLite, plain PostgreSQL and TimescaleDB (`db_all_url`: a database per test)."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, Table, func, select, text

from pumpwatch.core.config.loader import Fleet, StationPoint, load_fleet
from pumpwatch.core.config.models import PointSpec, RegisterMap, StationConfig, TenantConfig
from pumpwatch.core.db import make_engine, point, sample, station, tenant, upgrade
from pumpwatch.core.historian import (
    HistoryPoint,
    read_history,
    read_latest,
    sync_catalog,
    write_samples,
)
from pumpwatch.core.sample import Quality

JST = timezone(timedelta(hours=9))
T0 = datetime(2026, 7, 1, tzinfo=UTC)
DEMO_FLEET = Path(__file__).resolve().parents[2] / "deploy" / "config" / "demo"


@pytest.fixture
def engine(db_all_url: str) -> Iterator[Engine]:
    eng = make_engine(db_all_url)
    upgrade(eng)
    try:
        yield eng
    finally:
        eng.dispose()


def _fleet(unit: str | None = "m", station_name: str = "Wet well A", tenant_name: str = "Kita") -> Fleet:
    rm = RegisterMap(
        name="tiny",
        points=[
            PointSpec(name="level_m", table="holding_register", address=0, unit=unit),
            PointSpec(name="mains_ok", table="discrete_input", address=0, type="bool"),
        ],
    )
    stations = {
        sid: StationConfig(
            id=sid,
            tenant="kita",
            name=f"{station_name} {sid}",
            kind="treatment_plant",
            plant={"design_flow_m3_d": 5000},
        )
        for sid in ("S1", "S2")
    }
    points = {sid: {p.name: StationPoint(sid, p.name, p, rm, "c1", 1) for p in rm.points} for sid in stations}
    return Fleet(
        name="t",
        root=Path("."),
        tenants={"kita": TenantConfig(id="kita", name=tenant_name)},
        stations=stations,
        controllers={},
        register_maps={"tiny": rm},
        alarm_rules=None,
        stale_factor=3.0,
        points=points,
    )


def _count(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


# --- catalogue -----------------------------------------------------------------------------------------


def test_sync_catalog_is_idempotent_and_updates(engine: Engine) -> None:
    ids = sync_catalog(engine, _fleet())
    assert set(ids) == {(s, p) for s in ("S1", "S2") for p in ("level_m", "mains_ok")}
    assert len(set(ids.values())) == 4
    with engine.connect() as conn:
        stamp = dict(conn.execute(select(station.c.id, station.c.updated_at)).all())
    assert sync_catalog(engine, _fleet()) == ids  # same ids, nothing new
    with engine.connect() as conn:
        assert dict(conn.execute(select(station.c.id, station.c.updated_at)).all()) == stamp  # untouched
    assert (_count(engine, tenant), _count(engine, station), _count(engine, point)) == (1, 2, 4)

    changed = _fleet(unit="cm", station_name="Renamed", tenant_name="Kita City")
    # S2 leaves the config: its catalogue rows (and so its history) stay
    changed = dataclasses.replace(
        changed,
        stations={"S1": changed.stations["S1"]},
        points={"S1": changed.points["S1"]},
    )
    ids2 = sync_catalog(engine, changed)
    assert ids2 == {k: v for k, v in ids.items() if k[0] == "S1"}
    with engine.connect() as conn:
        assert conn.execute(select(tenant.c.name)).scalar_one() == "Kita City"
        names = dict(conn.execute(select(station.c.id, station.c.name)).all())
        assert names == {"S1": "Renamed S1", "S2": "Wet well A S2"}
        after = dict(conn.execute(select(station.c.id, station.c.updated_at)).all())
        assert after["S1"] > stamp["S1"] and after["S2"] == stamp["S2"]
        units = {
            (s, n): (u, k)
            for s, n, u, k in conn.execute(
                select(point.c.station_id, point.c.name, point.c.unit, point.c.kind)
            )
        }
    assert units[("S1", "level_m")] == ("cm", "analog")
    assert units[("S1", "mains_ok")] == (None, "state")
    assert units[("S2", "level_m")] == ("m", "analog")


def test_sync_catalog_demo_fleet(engine: Engine) -> None:
    fleet = load_fleet(DEMO_FLEET)
    ids = sync_catalog(engine, fleet)
    assert len(ids) == sum(len(p) for p in fleet.points.values())
    assert sync_catalog(engine, fleet) == ids
    with engine.connect() as conn:
        row = conn.execute(select(station).where(station.c.id == "KITA-MP-01")).one()
    assert (row.tenant_id, row.kind, row.power_area) == ("kita", "manhole_pump", "kita-feeder-1")
    assert row.lat == pytest.approx(35.7101) and row.updated_at.tzinfo is UTC


# --- samples -------------------------------------------------------------------------------------------


def test_samples_round_trip_as_aware_utc(engine: Engine) -> None:
    jst = datetime(2026, 7, 1, 9, 0, 0, 250000, tzinfo=JST)  # = 00:00:00.25 UTC
    rows = [
        (1, jst, 1.5, Quality.GOOD),
        (1, jst + timedelta(seconds=1), None, Quality.COMM_LOSS),
        (2, jst, None, Quality.NOT_AVAILABLE),  # a point whose whole batch is NULL values
    ]
    assert write_samples(engine, rows) == 3
    hist = read_history(engine, 1, T0, T0 + timedelta(hours=1))
    assert hist == [
        HistoryPoint(datetime(2026, 7, 1, 0, 0, 0, 250000, tzinfo=UTC), 1.5, 1.5, 1.5, 1, 1),
        HistoryPoint(datetime(2026, 7, 1, 0, 0, 1, 250000, tzinfo=UTC), None, None, None, 1, 0),
    ]
    assert all(h.t.tzinfo is UTC for h in hist)
    assert hist[0].t == jst
    latest = read_latest(engine)
    assert latest == {
        1: (jst + timedelta(seconds=1), None, Quality.COMM_LOSS),
        2: (jst, None, Quality.NOT_AVAILABLE),
    }
    assert all(t.tzinfo is UTC for t, _, _ in latest.values())
    assert read_latest(engine, [2, 99]) == {2: latest[2]}
    # states may come as bool or int: stored as floats, in one batch
    write_samples(engine, [(3, jst, True, 0), (4, jst, 2, 0), (5, jst, 0.5, 0)])
    assert {p: v for p, (_, v, _) in read_latest(engine, [3, 4, 5]).items()} == {3: 1.0, 4: 2.0, 5: 0.5}
    assert len(read_latest(engine)) == 5
    if engine.dialect.name == "sqlite":
        # the fast executemany path stores exactly UTCDateTime's fixed-width text, which SQLite's date
        # functions understand
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT observed_at, julianday(observed_at) FROM sample")).all()
        assert sorted({s for s, _ in stored}) == ["2026-07-01 00:00:00.250000", "2026-07-01 00:00:01.250000"]
        assert all(jd is not None for _, jd in stored)
    assert read_latest(engine, []) == {}
    assert write_samples(engine, []) == 0


def test_replay_is_idempotent(engine: Engine) -> None:
    batch = [(p, T0 + timedelta(seconds=i), float(i * p), 0) for p in (1, 2, 3) for i in range(500)]
    assert write_samples(engine, batch) == 1500
    assert _count(engine, sample) == 1500
    latest = read_latest(engine)
    assert write_samples(engine, batch) == 1500  # offered again: nothing changes
    assert write_samples(engine, batch[:10] + batch[:10]) == 20  # duplicates inside one batch too
    assert _count(engine, sample) == 1500
    assert read_latest(engine) == latest
    # a replay with a different value for a stored instant does not rewrite history, nor latest_value
    assert write_samples(engine, [(1, T0 + timedelta(seconds=499), -1.0, 3)]) == 1
    assert read_history(engine, 1, T0 + timedelta(seconds=499), T0 + timedelta(seconds=500))[0].value == 499.0
    assert read_latest(engine, [1])[1] == (T0 + timedelta(seconds=499), 499.0, 0)


def test_failed_batch_writes_nothing_and_next_batch_works(db_all_url: str) -> None:
    # one pooled connection, so the second batch runs on the connection whose first transaction failed
    # (on PostgreSQL that transaction had created the session's staging table, and rolled it back)
    eng = make_engine(db_all_url, pool_size=1, max_overflow=0)
    try:
        upgrade(eng)
        bad = [(1, T0, 1.0, 0), (1, T0 + timedelta(seconds=1), "not a number", 0)]
        with pytest.raises(Exception):  # noqa: B017 - the driver's error type differs per dialect
            write_samples(eng, bad)  # type: ignore[arg-type]
        assert _count(eng, sample) == 0 and read_latest(eng) == {}
        for k in range(3):
            assert write_samples(eng, [(1, T0 + timedelta(seconds=k), float(k), 0)]) == 1
        assert _count(eng, sample) == 3
        assert read_latest(eng) == {1: (T0 + timedelta(seconds=2), 2.0, 0)}
    finally:
        eng.dispose()


def test_latest_value_keeps_the_newest(engine: Engine) -> None:
    new = [(1, T0 + timedelta(minutes=10), 10.0, 0), (2, T0 + timedelta(minutes=10), 20.0, 0)]
    old = [(1, T0 + timedelta(minutes=m), float(m), 0) for m in range(5)] + [(3, T0, 3.0, 0)]
    write_samples(engine, new)
    write_samples(engine, old)  # an older batch arrives later (spool drain)
    latest = read_latest(engine)
    assert latest[1] == (T0 + timedelta(minutes=10), 10.0, 0)
    assert latest[2] == (T0 + timedelta(minutes=10), 20.0, 0)
    assert latest[3] == (T0, 3.0, 0)
    # inside a batch order does not matter either; newer batch moves it forward
    shuffled = [(1, T0 + timedelta(minutes=m), float(m), 0) for m in (12, 15, 11)]
    write_samples(engine, shuffled)
    assert read_latest(engine, [1])[1] == (T0 + timedelta(minutes=15), 15.0, 0)
    assert _count(engine, sample) == 2 + 6 + 3


# --- history -------------------------------------------------------------------------------------------


def test_history_raw_is_half_open_and_ordered(engine: Engine) -> None:
    rows = [(7, T0 + timedelta(seconds=s), float(s), 0 if s % 3 else 3) for s in range(20)]
    random.Random(1).shuffle(rows)
    write_samples(engine, rows)
    write_samples(engine, [(8, T0 + timedelta(seconds=5), 99.0, 0)])  # another point: not included
    hist = read_history(engine, 7, T0 + timedelta(seconds=5), T0 + timedelta(seconds=10))
    assert [h.t for h in hist] == [T0 + timedelta(seconds=s) for s in range(5, 10)]
    assert [(h.value, h.min, h.max, h.count, h.good) for h in hist] == [
        (float(s), float(s), float(s), 1, 0 if s % 3 == 0 else 1) for s in range(5, 10)
    ]
    assert len(read_history(engine, 7, T0, T0 + timedelta(seconds=20), max_points=20)) == 20  # = max: raw
    assert read_history(engine, 7, T0 + timedelta(hours=1), T0 + timedelta(hours=2)) == []
    assert read_history(engine, 7, T0, T0) == []
    # bounds of any offset
    assert len(read_history(engine, 7, T0.astimezone(JST), (T0 + timedelta(seconds=3)).astimezone(JST))) == 3


def test_history_downsampled_on_the_server(engine: Engine) -> None:
    rng = random.Random(7)
    n = 10_000
    values = [rng.uniform(0.0, 4.0) for _ in range(n)]
    quality = [0 if rng.random() > 0.1 else rng.choice((1, 2, 3, 4)) for _ in range(n)]
    # bad samples carry wild values: they are counted, never averaged nor in min/max
    values = [v if q == 0 else 1e6 for v, q in zip(values, quality, strict=True)]
    write_samples(engine, [(5, T0 + timedelta(seconds=i), values[i], quality[i]) for i in range(n)])
    hist = read_history(engine, 5, T0, T0 + timedelta(seconds=n), max_points=100)
    assert len(hist) == 100
    for b, h in enumerate(hist):
        assert h.t == T0 + timedelta(seconds=100 * b)
        vs = [values[i] for i in range(100 * b, 100 * b + 100) if quality[i] == 0]
        assert h.count == 100
        assert h.good == len(vs)
        assert h.value == pytest.approx(sum(vs) / len(vs), rel=1e-12)
        assert (h.min, h.max) == (min(vs), max(vs))
    assert sum(h.count for h in hist) == n


def test_history_bucketing_is_exact_at_microseconds(engine: Engine) -> None:
    """Arbitrary µs timestamps and a range that does not divide evenly: same buckets as Python computes."""
    rng = random.Random(3)
    start = datetime(2026, 7, 1, 3, 0, 0, 999999, tzinfo=UTC)
    end = start + timedelta(seconds=61, microseconds=7)
    offsets = sorted({rng.randrange(0, 61_000_007) for _ in range(300)})
    # samples right on bucket edges and at the very ends of the range
    span = 61_000_007
    width = -(-span // 7)
    offsets = sorted(set(offsets) | {0, width - 1, width, 2 * width, span - 1})
    rows = [(9, start + timedelta(microseconds=o), float(o % 1000), 0) for o in offsets]
    rows += [(9, start - timedelta(microseconds=1), 0.0, 0), (9, end, 0.0, 0)]  # just outside
    write_samples(engine, rows)
    hist = read_history(engine, 9, start.astimezone(JST), end, max_points=7)
    expected: dict[int, list[float]] = {}
    for o in offsets:
        expected.setdefault(o // width, []).append(float(o % 1000))
    assert [h.t for h in hist] == [start + timedelta(microseconds=b * width) for b in sorted(expected)]
    assert [h.count for h in hist] == [len(expected[b]) for b in sorted(expected)]
    assert [(h.min, h.max) for h in hist] == [(min(v), max(v)) for _, v in sorted(expected.items())]
