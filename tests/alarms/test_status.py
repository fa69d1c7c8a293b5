"""The one definition of a station's status (alarms/status.py), as a pure function over its cases."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from pumpwatch.alarms.rules import StationRule
from pumpwatch.alarms.status import (
    DEFAULT_ROLES,
    LADDER,
    AlarmRoles,
    OpenAlarm,
    assess,
    heard_at,
    shown_quality,
    station_status,
)
from pumpwatch.core.sample import Quality, Sample

NOW = datetime(2026, 9, 1, 3, 0, tzinfo=UTC)
POINTS = ["wet_well_level_m", "mains_failed", "pump1_running", "pump2_running"]
STALE_AFTER = 15.0


def sample(point: str, age_s: float, q: Quality = Quality.GOOD, value: float | None = 0.0) -> Sample:
    return Sample("S1", point, None if q is Quality.COMM_LOSS else value, NOW - timedelta(seconds=age_s), q)


def good(age_s: float = 1.0) -> dict[str, Sample]:
    return {p: sample(p, age_s) for p in POINTS}


def run(samples: dict[str, Sample], alarms=(), oos: bool = False, roles: AlarmRoles = DEFAULT_ROLES):
    return assess(
        measured=POINTS,
        samples=samples,
        alarms=list(alarms),
        out_of_service=oos,
        now=NOW,
        stale_after_s=STALE_AFTER,
        roles=roles,
    )


PF = OpenAlarm("power_failure", True)
CL = OpenAlarm("comm_loss", True)
CL_SUPPRESSED = OpenAlarm("comm_loss", True, suppressed_by="power_failure")


def test_all_good_and_no_alarm_is_normal() -> None:
    st = run(good())
    assert (st.status, st.live, st.active_alarms, st.suppressed_alarms) == ("normal", True, [], [])
    assert {q for q, _ in st.shown.values()} == {"good"}
    assert st.data_age_s == 1.0


def test_a_comm_loss_suppressed_by_the_power_failure_leaves_the_status_at_power_failure() -> None:
    # the RTU's battery ran out during the outage: every value lost, the comm-loss alarm suppressed by it
    lost = {p: sample(p, 5, Quality.COMM_LOSS) for p in POINTS}
    st = run(lost, [PF, CL_SUPPRESSED])
    assert st.status == "power_failure"
    assert st.active_alarms == ["power_failure"]  # the suppressed one is not among them…
    assert st.suppressed_alarms == ["comm_loss"]  # …but listed apart
    assert {q for q, _ in st.shown.values()} == {"comm_loss"}
    assert not st.live
    assert (st.heard_at, st.data_age_s) == (None, None)  # a comm-loss marker is no reading: no "0 s old"
    # the same comm loss, not suppressed (no power failure): the station is comm_loss
    assert run(lost, [CL]).status == "comm_loss"


def test_comm_loss_comes_from_the_alarm_not_from_the_values() -> None:
    lost = {p: sample(p, 5, Quality.COMM_LOSS) for p in POINTS}
    assert run(lost, [CL]).status == "comm_loss"
    # no comm-loss alarm (yet, or none configured): nothing live, so stale; never normal
    st = run(lost)
    assert (st.status, st.live) == ("stale", False)
    # a comm-loss alarm that has returned is no comm loss
    assert run(good(), [OpenAlarm("comm_loss", False)]).status == "normal"


def test_a_point_not_published_again_after_a_recovery_is_stale_on_its_own() -> None:
    # lost 40 s ago; 30 s ago the device came back and has published every point since, but one
    samples = good(1.0)
    samples["pump2_running"] = sample("pump2_running", 40, Quality.COMM_LOSS)
    st = run(samples)  # the comm-loss alarm cleared when the device answered
    assert st.status == "normal"
    assert st.live
    assert st.shown["pump2_running"] == ("stale", 40.0)  # stale, with its age
    assert st.data_age_s == 1.0
    assert {st.shown[p][0] for p in POINTS if p != "pump2_running"} == {"good"}
    # while nothing has come back yet, every value is lost (not stale): the link is still down
    lost = {p: sample(p, 40, Quality.COMM_LOSS) for p in POINTS}
    assert {q for q, _ in run(lost, [CL]).shown.values()} == {"comm_loss"}
    # and a comm-loss value newer than anything heard is still lost, not stale
    samples["wet_well_level_m"] = sample("wet_well_level_m", 50)
    samples["mains_failed"] = sample("mains_failed", 50)
    samples["pump1_running"] = sample("pump1_running", 50)
    assert run(samples).shown["pump2_running"][0] == "comm_loss"


def test_every_value_stale_or_old_is_stale() -> None:
    st = run(good(age_s=STALE_AFTER + 0.001))
    assert (st.status, st.live) == ("stale", False)
    assert {q for q, _ in st.shown.values()} == {"stale"}
    # at exactly its age limit a value is still live; a Sparkplug death marks values stale at once
    assert run(good(age_s=STALE_AFTER)).status == "normal"
    dead = {p: sample(p, 1, Quality.STALE) for p in POINTS}
    assert run(dead).status == "stale"
    # the data's age counts from the last reading, not from a marker written when it was noticed
    dead["wet_well_level_m"] = sample("wet_well_level_m", 30)
    assert (run(dead).status, run(dead).data_age_s) == ("stale", 30.0)
    # one value live is enough for the station (the others show stale on their own)
    mixed = good(age_s=100)
    mixed["wet_well_level_m"] = sample("wet_well_level_m", 1)
    assert (run(mixed).status, run(mixed).live) == ("normal", True)
    # bad values are not live either
    bad = {p: sample(p, 1, Quality.BAD_VALUE) for p in POINTS}
    assert run(bad).status == "stale"


def test_an_active_alarm_outranks_stale_data_and_says_it_is_not_live() -> None:
    st = run(good(age_s=600), [OpenAlarm("high_water", True)])
    assert (st.status, st.live, st.active_alarms) == ("alarm", False, ["high_water"])


def test_out_of_service_is_maintenance_whatever_else() -> None:
    lost = {p: sample(p, 5, Quality.COMM_LOSS) for p in POINTS}
    assert run(lost, [PF, CL], oos=True).status == "maintenance"
    assert run({}, oos=True).status == "maintenance"


def test_no_data() -> None:
    st = run({})
    assert (st.status, st.live, st.data_age_s) == ("no_data", False, None)
    assert set(st.shown.values()) == {("no_data", None)}
    no_points = assess(
        measured=[], samples={}, alarms=[], out_of_service=False, now=NOW, stale_after_s=STALE_AFTER
    )
    assert no_points.status == "no_data"
    # an alarm still says alarm (e.g. one left open from before a restart)
    assert run({}, [OpenAlarm("door_open", True)]).status == "alarm"


def test_a_value_with_no_source_to_refresh_it_is_never_live() -> None:
    assert shown_quality(sample("x", 0), NOW, None, None) == ("stale", 0.0)
    assert shown_quality(None, NOW, 10.0, None) == ("no_data", None)
    assert shown_quality(sample("x", 3, Quality.NOT_AVAILABLE), NOW, 10.0, NOW) == ("not_available", 3.0)


def rule(name: str, type_: str, point: str | None) -> StationRule:
    return StationRule(name, type_, point, True, None, True, 0.0, 0.0, 0.0, "high", name)


def test_which_alarms_mean_power_failure_and_comm_loss_comes_from_the_rules() -> None:
    roles = AlarmRoles.of(
        [
            rule("mains_off", "state", "mains_failed"),
            rule("link_lost", "comm_loss", None),
            rule("x", "state", "y"),
        ]
    )
    assert roles.power_failure == {"power_failure", "mains_off"}
    assert roles.comm_loss == {"comm_loss", "link_lost"}
    samples = good()
    assert run(samples, [OpenAlarm("mains_off", True)], roles=roles).status == "power_failure"
    assert run(samples, [OpenAlarm("link_lost", True)], roles=roles).status == "comm_loss"
    assert run(samples, [OpenAlarm("link_lost", True)]).status == "alarm"  # default roles: just an alarm
    assert run(samples, [OpenAlarm("x", True)], roles=roles).status == "alarm"


def test_the_ladder_is_first_that_holds_in_the_order_sent_to_the_console() -> None:
    for oos, pf, cl, other, live, sampled in itertools.product((False, True), repeat=6):
        if live and not sampled:
            continue  # impossible: a live value is a sample
        active = {n for n, on in (("power_failure", pf), ("comm_loss", cl), ("high_water", other)) if on}
        holds = {
            "maintenance": oos,
            "power_failure": pf,
            "comm_loss": cl,
            "alarm": bool(active),
            "stale": sampled and not live,
            "no_data": not sampled,
            "normal": True,
        }
        assert set(holds) == set(LADDER)
        expected = next(s for s in LADDER if holds[s])
        got = station_status(
            out_of_service=oos, active=active, live=live, sampled=sampled, roles=DEFAULT_ROLES
        )
        assert got == expected, (oos, pf, cl, other, live, sampled)


def test_the_one_pass_summary_agrees_with_the_shown_qualities() -> None:
    # assess() decides `live` and `heard_at` in one pass (fast enough for the overview of 10,000
    # stations); it must say exactly what the per-value rule (shown_quality, heard_at) says
    ages = (0.0, STALE_AFTER - 0.5, STALE_AFTER, STALE_AFTER + 0.5, 40.0)
    kinds = [None, *((q, a) for q in Quality for a in ages)]
    checked = 0
    for combo in itertools.product(kinds, repeat=2):
        samples = {p: sample(p, k[1], k[0]) for p, k in zip(POINTS[:2], combo, strict=True) if k}
        st = run(samples)
        shown = {q for q, _ in st.shown.values()}
        assert st.live is ("good" in shown), combo
        assert st.heard_at == heard_at(samples, POINTS), combo
        assert st.shown == {p: shown_quality(samples.get(p), NOW, STALE_AFTER, st.heard_at) for p in POINTS}
        checked += 1
    assert checked == (1 + len(Quality) * len(ages)) ** 2
