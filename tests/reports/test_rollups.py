"""On PostgreSQL the report reads the hourly rollups (plain `sample_1h`, or TimescaleDB's continuous
aggregate) and must give the same figures as from raw samples: a simulated span with an outage and a gap
(a recent one: inside the aggregates' refresh window). And the bench's report of the city, on two days,
in seconds (the smoke of `make bench`'s reports section)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bench.reports_part import smoke
from pumpwatch.core.db import make_engine
from pumpwatch.core.historian_scale import roll_up
from pumpwatch.core.timescale import timescale_active
from pumpwatch.reports.compute import build_report
from pumpwatch.reports.definitions import Definitions
from pumpwatch.reports.periods import Period
from tests.historian.test_rollups import refresh_caggs
from tests.reports.history import demo_fleet, simulate

pytestmark = pytest.mark.postgres
JST = ZoneInfo("Asia/Tokyo")


def test_rollups_give_the_raw_figures(pg_both_url: str, tmp_path: Path, defs: Definitions) -> None:
    day = (datetime.now(JST) - timedelta(days=3)).date()
    start = datetime.combine(day, datetime.min.time(), tzinfo=JST)
    fleet = demo_fleet(tmp_path, 10)
    engine = make_engine(pg_both_url)
    try:
        simulate(
            engine, fleet, start, 6,
            outage=(start + timedelta(hours=1), start + timedelta(hours=1, minutes=30)),
            gap=(start + timedelta(hours=3), start + timedelta(hours=4, minutes=30)),
        )  # fmt: skip
        period = Period("day", day, "Asia/Tokyo")
        now = period.end + timedelta(hours=1)
        raw = build_report(
            engine, fleet, defs, "kita", period, now, station_ids=["KITA-MP-01"], use_rollups=False
        )
        if timescale_active(engine):
            assert refresh_caggs(engine) >= 1
            table = "sample_1h_cagg"
        else:
            first = (start.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(minutes=1)
            assert roll_up(engine, range(first, first + 6 * 60)) > 0
            table = "sample_1h"
        rolled = build_report(engine, fleet, defs, "kita", period, now, station_ids=["KITA-MP-01"])
        a, b = raw.stations[0], rolled.stations[0]
        assert a.source == "raw" and b.source.startswith(table)
        for ra, rb in [*zip(a.rows, b.rows, strict=True), (a.total, b.total)]:
            assert ra.no_data == rb.no_data and ra.completeness == pytest.approx(rb.completeness), ra.label
            for key, va in ra.values.items():
                vb = rb.values[key]
                assert (va is None and vb is None) or va == pytest.approx(vb, abs=1e-9), (
                    ra.label,
                    key,
                    va,
                    vb,
                )
        assert a.total.values["pump1_starts"] > 0 and a.total.values["power_failure_time"] == pytest.approx(
            30.0
        )
        assert a.rows[3].no_data and a.rows[4].completeness == pytest.approx(50.0)
    finally:
        engine.dispose()


def test_city_month_smoke(pg_url: str) -> None:
    """216 stations, a month whose first two days have data (hourly rollups): seconds, every day there."""
    out = smoke(pg_url)
    assert out["stations"] == 216
    for rep in out["reports"]:
        for st in rep.stations:
            assert not st.rows[0].no_data and st.rows[0].completeness == pytest.approx(100.0)
            assert st.rows[2].no_data and st.rows[29].no_data
            assert st.source.startswith("sample_1h")
    assert out["elapsed_s"] < 30  # the goal (10 s for the whole month) is measured by make bench
