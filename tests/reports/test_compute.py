"""A simulated day with known truth (the simulator's own run seconds, starts and mains) against every
figure of the report: an outage 02:00–02:45 JST, a comm gap 10:00–12:30 JST, JST day boundaries,
provisional days, tenant scoping, counter resets."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from pumpwatch.core import historian
from pumpwatch.core.db import make_engine, upgrade
from pumpwatch.reports.compute import StationNotFound, build_report
from pumpwatch.reports.definitions import Definitions, load_definitions
from pumpwatch.reports.errors import DefinitionError, ReportError
from pumpwatch.reports.periods import Period, parse_period
from tests.reports.conftest import DAY, JST, LATER, POLL, START, STATION
from tests.reports.history import demo_fleet, simulate


def _report(day, defs: Definitions, period: Period | None = None, now: datetime = LATER):
    eng, fleet, _ = day
    return build_report(
        eng, fleet, defs, "kita", period or Period("day", DAY, "Asia/Tokyo"), now, station_ids=[STATION]
    )


GAP_HOURS = range(10, 12)  # no sample at all
HALF_HOUR = 12  # 12:00–12:30 missing


def test_every_hourly_figure_matches_the_simulator(day, defs: Definitions) -> None:
    _, fleet, truth = day
    st = _report(day, defs).stations[0]
    rated = {k: p.rated_flow_m3_min for k, p in enumerate(fleet.stations[STATION].pumps, start=1)}
    assert len(st.rows) == 24 and [r.label for r in st.rows[:2]] == ["00:00", "01:00"]
    for h, row in enumerate(st.rows):
        v = row.values
        if h in GAP_HOURS:  # a gap is a gap: nothing invented
            assert row.no_data and row.completeness == 0.0
            assert all(
                v[k] is None for k in v if k not in ("alarms", "power_failures", "comm_loss", "completeness")
            ), v
            assert v["comm_loss"] == 60.0
            continue
        observed = range(h, h + 1)
        for k in (1, 2):
            starts = truth.total_starts(k, observed)
            run_s = truth.total_run_s(k, observed) if h != HALF_HOUR else None
            if h == HALF_HOUR:  # the starts of 12:00–12:30 rose during the gap: in the day's total only
                assert v[f"pump{k}_starts"] <= starts, (h, k)
            else:
                assert v[f"pump{k}_starts"] == starts, (h, k)
            if run_s is not None:
                # a sample stands for one poll interval: off by at most one interval per run
                assert abs(v[f"pump{k}_run_time"] * 3600 - run_s) <= POLL * (starts + 1), (h, k)
                assert v[f"pump{k}_pumped"] == pytest.approx(v[f"pump{k}_run_time"] * 60 * rated[k])
        levels = truth.levels[h]
        assert v["level_max"] == pytest.approx(max(levels))
        assert v["level_min"] == pytest.approx(min(levels))
        assert v["level_mean"] == pytest.approx(sum(levels) / len(levels))
        assert v["power_failure_time"] == pytest.approx(truth.mains_off_s.get(h, 0.0) / 60.0)
        assert v["power_failures"] == (1.0 if h == 2 else 0.0)
        if h == HALF_HOUR:
            assert row.completeness == pytest.approx(50.0) and v["comm_loss"] == pytest.approx(30.0)
        else:
            assert row.completeness == pytest.approx(100.0) and v["comm_loss"] == 0.0
        assert not row.provisional and not row.no_data


def test_day_total_spanning_the_gap(day, defs: Definitions) -> None:
    _, _, truth = day
    st = _report(day, defs).stations[0]
    tot = st.total.values
    for k in (1, 2):
        # the counter carries the starts made while the link was down into the day's total
        assert tot[f"pump{k}_starts"] == truth.total_starts(k)
        # run time is only known where samples are: the truth outside the gap
        outside = truth.total_run_s(k) - sum(truth.run_s.get((k, h), 0.0) for h in (10, 11, 12))
        hour12 = truth.run_s.get((k, HALF_HOUR), 0.0)  # half of it was in the gap: bound it
        got = tot[f"pump{k}_run_time"] * 3600
        slack = POLL * (truth.total_starts(k) + 2)
        assert outside - slack <= got <= outside + hour12 + slack
    assert tot["power_failure_time"] == pytest.approx(45.0)
    assert tot["power_failures"] == 1.0 and st.alarms_by_kind == {"power_failure": 1}
    assert tot["comm_loss"] == pytest.approx(150.0)
    assert st.total.completeness == pytest.approx(100.0 * (24 * 60 - 150) / (24 * 60))
    hourly_starts = sum(r.values["pump1_starts"] or 0 for r in st.rows)
    assert hourly_starts <= tot["pump1_starts"]  # the gap's starts are in the total only
    assert any("gap" in en for _, en in st.notes) == (hourly_starts < tot["pump1_starts"])


def test_jst_day_boundary(tmp_path: Path, defs: Definitions) -> None:
    """A start at 23:59 JST belongs to that JST day (14:59 UTC), one at 00:01 JST to the next (15:01 UTC
    of the same UTC day): a UTC day would put both in one report."""
    fleet = demo_fleet(tmp_path, POLL)
    url = f"sqlite:///{tmp_path / 'b.db'}"
    upgrade(url)
    eng = make_engine(url)
    ids = historian.sync_catalog(eng, fleet)
    p_run, p_starts = ids[(STATION, "pump1_running")], ids[(STATION, "pump1_starts")]
    ref = ids[(STATION, "wet_well_level_m")]
    rows = []
    t = START + timedelta(hours=23, minutes=58)
    starts = 40
    while t < START + timedelta(days=1, minutes=3):
        local = t.astimezone(JST)
        if (local.hour, local.minute) in ((23, 59), (0, 1)) and local.second == 0:
            starts += 1
        running = (local.hour, local.minute) in ((23, 59), (0, 1))
        rows += [(p_run, t, float(running), 0), (p_starts, t, float(starts), 0), (ref, t, 0.8, 0)]
        t += timedelta(seconds=POLL)
    historian.write_samples(eng, rows)
    first = build_report(
        eng, fleet, defs, "kita", Period("day", DAY, "Asia/Tokyo"), LATER, station_ids=[STATION]
    )
    nxt = build_report(
        eng,
        fleet,
        defs,
        "kita",
        Period("day", DAY + timedelta(days=1), "Asia/Tokyo"),
        LATER,
        station_ids=[STATION],
    )
    last = first.stations[0].rows[23]
    assert last.label == "23:00" and last.values["pump1_starts"] == 1.0
    assert last.values["pump1_run_time"] == pytest.approx(60 / 3600)
    assert first.stations[0].total.values["pump1_starts"] == 1.0
    assert nxt.stations[0].rows[0].values["pump1_starts"] == 1.0
    assert nxt.stations[0].rows[1].values["pump1_starts"] is None  # 01:00 JST: no data
    assert first.period.start == datetime(2026, 11, 2, 15, tzinfo=UTC)
    eng.dispose()


def test_counter_reset_counts_from_zero(tmp_path: Path, defs: Definitions) -> None:
    fleet = demo_fleet(tmp_path, POLL)
    url = f"sqlite:///{tmp_path / 'r.db'}"
    upgrade(url)
    eng = make_engine(url)
    ids = historian.sync_catalog(eng, fleet)
    pid, ref = ids[(STATION, "pump1_starts")], ids[(STATION, "wet_well_level_m")]
    values = [100, 101, 102, 0, 1, 2, 3]  # the panel's counter was reset (power cycle) after 102
    rows = []
    for i, v in enumerate(values):
        t = START + timedelta(seconds=POLL * i)
        rows += [(pid, t, float(v), 0), (ref, t, 0.7, 0)]
    historian.write_samples(eng, rows)
    rep = build_report(
        eng, fleet, defs, "kita", Period("day", DAY, "Asia/Tokyo"), LATER, station_ids=[STATION]
    )
    assert rep.stations[0].rows[0].values["pump1_starts"] == 2 + 3  # 100→102, then 0→3
    eng.dispose()


def test_a_day_in_progress_is_provisional(day, defs: Definitions) -> None:
    now = START + timedelta(hours=15, minutes=20)
    rep = _report(day, defs, now=now)
    st = rep.stations[0]
    assert rep.provisional
    assert st.rows[14].provisional is False and st.rows[15].provisional is True
    assert st.rows[16].not_yet and st.rows[16].completeness is None
    assert all(v is None for v in st.rows[16].values.values())
    assert st.rows[15].completeness == pytest.approx(100.0)  # 20 minutes expected, 20 present
    assert not _report(day, defs).provisional


def test_month_rows_and_totals(day, defs: Definitions) -> None:
    _, _, truth = day
    rep = _report(day, defs, Period("month", date(2026, 11, 1), "Asia/Tokyo"))
    st = rep.stations[0]
    assert len(st.rows) == 30 and st.rows[2].label == "2026-11-03"
    assert st.rows[2].values["pump1_starts"] == truth.total_starts(1)
    assert st.rows[1].no_data and st.rows[1].values["pump1_starts"] is None
    assert st.total.values["pump2_starts"] == truth.total_starts(2)
    assert st.total.values["power_failure_time"] == pytest.approx(45.0)


def test_another_tenants_station_is_unknown(day, defs: Definitions) -> None:
    eng, fleet, _ = day
    with pytest.raises(StationNotFound):
        build_report(
            eng, fleet, defs, "kita", Period("day", DAY, "Asia/Tokyo"), LATER, station_ids=["MINAMI-MP-01"]
        )
    with pytest.raises(ReportError, match="unknown tenant"):
        build_report(eng, fleet, defs, "nowhere", Period("day", DAY, "Asia/Tokyo"), LATER)


def test_periods_and_their_errors() -> None:
    assert parse_period("2026-11", "Asia/Tokyo").rows()[-1].label == "2026-11-30"
    assert len(parse_period("2026-03-08", "America/New_York").rows()) == 23  # spring forward
    for bad in ("2026-13", "yesterday", "2026-02-30"):
        with pytest.raises(ReportError, match="expected a day"):
            parse_period(bad, "Asia/Tokyo")


def test_definition_errors_name_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "summary.yaml").write_text("summary: {title: {ja: 総括, en: Summary}}\n")
    (tmp_path / "bad.yaml").write_text(
        "id: bad\nkinds: [manhole_pump]\ntitle: {ja: x, en: x}\nreference_point: a\n"
        "columns:\n  - {key: k, figure: max, unit: m, label: {ja: x, en: x}}\n"
    )
    with pytest.raises(DefinitionError, match=r"bad.yaml: columns.0: .*figure 'max' needs a point"):
        load_definitions(tmp_path)


def test_month_boundary_in_jst_against_the_simulator(tmp_path: Path, defs: Definitions) -> None:
    """Two simulated days across a month's end (31 Oct and 1 Nov JST, an outage on each): each month's
    report has that day's row equal to the simulator's truth, and nothing of the other month."""
    fleet = demo_fleet(tmp_path, POLL)
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    eng = make_engine(url)
    start = datetime(2026, 10, 31, tzinfo=JST)
    outages = (start + timedelta(hours=22), start + timedelta(hours=26))  # 22:00 Oct 31 – 02:00 Nov 1
    truth = simulate(eng, fleet, start, 48, poll_s=POLL, outage=outages)
    october = build_report(
        eng,
        fleet,
        defs,
        "kita",
        Period("month", date(2026, 10, 1), "Asia/Tokyo"),
        LATER,
        station_ids=[STATION],
    )
    november = build_report(
        eng,
        fleet,
        defs,
        "kita",
        Period("month", date(2026, 11, 1), "Asia/Tokyo"),
        LATER,
        station_ids=[STATION],
    )
    oct31, nov1 = october.stations[0].rows[30], november.stations[0].rows[0]
    assert (oct31.label, nov1.label) == ("2026-10-31", "2026-11-01")
    for row, hours in ((oct31, range(24)), (nov1, range(24, 48))):
        for k in (1, 2):
            starts = truth.total_starts(k, hours)
            assert row.values[f"pump{k}_starts"] == starts
            assert abs(row.values[f"pump{k}_run_time"] * 3600 - truth.total_run_s(k, hours)) <= POLL * (
                starts + 1
            )
        off = sum(truth.mains_off_s.get(h, 0.0) for h in hours) / 60
        assert row.values["power_failure_time"] == pytest.approx(off) and off == pytest.approx(120.0)
        assert row.completeness == pytest.approx(100.0)
    assert october.stations[0].rows[29].no_data and november.stations[0].rows[1].no_data
    assert october.stations[0].total.values["pump1_starts"] == truth.total_starts(1, range(24))
    eng.dispose()
