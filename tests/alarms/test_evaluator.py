"""The alarm state machine, driven by samples and a clock we control."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pumpwatch.alarms.evaluator import StationEvaluator
from pumpwatch.alarms.rules import StationRule
from pumpwatch.core.sample import Quality, Sample

T0 = datetime(2026, 8, 1, 2, 0, tzinfo=UTC)


def rule(
    name="r",
    type="state",
    point="mains_failed",
    when=True,
    limit=None,
    above=True,
    deadband=0.0,
    on=0.0,
    off=0.0,
):
    return StationRule(name, type, point, when, limit, above, deadband, on, off, "high", name)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def sample(point: str, value: float | None, t: float, q: Quality = Quality.GOOD) -> Sample:
    return Sample("S1", point, value, at(t), q)


def kinds(events) -> list[tuple[str, str]]:
    return [(e.kind, e.name) for e in events]


def test_on_delay_ignores_a_lightning_dip() -> None:
    ev = StationEvaluator("t", "S1", [rule(name="power_failure", on=3.0, off=10.0)])
    assert ev.evaluate([sample("mains_failed", 1, 0)], at(0)) == []
    assert ev.evaluate([sample("mains_failed", 0, 1.5)], at(1.5)) == []  # back within 1.5 s: no alarm
    assert ev.tick(at(10)) == []
    assert ev.evaluate([sample("mains_failed", 1, 20)], at(20)) == []
    assert ev.tick(at(22.9)) == []
    events = ev.tick(at(23))
    assert kinds(events) == [("raise", "power_failure")]
    assert events[0].at == at(23) and events[0].value == 1


def test_off_delay_and_no_double_raise() -> None:
    ev = StationEvaluator("t", "S1", [rule(on=0, off=10)])
    assert kinds(ev.evaluate([sample("mains_failed", 1, 0)], at(0))) == [("raise", "r")]
    assert ev.evaluate([sample("mains_failed", 1, 5)], at(5)) == []  # still active: no second raise
    assert ev.evaluate([sample("mains_failed", 0, 6)], at(6)) == []
    assert ev.evaluate([sample("mains_failed", 1, 8)], at(8)) == []  # flickers back: clearing restarts
    assert ev.evaluate([sample("mains_failed", 0, 9)], at(9)) == []
    assert ev.tick(at(18.9)) == []
    assert kinds(ev.tick(at(19))) == [("clear", "r")]


def test_limit_with_deadband() -> None:
    ev = StationEvaluator(
        "t", "S1", [rule(name="high_water", type="limit", point="lvl", limit=1.4, deadband=0.05)]
    )
    assert ev.evaluate([sample("lvl", 1.40, 0)], at(0)) == []  # not above
    assert kinds(ev.evaluate([sample("lvl", 1.41, 1)], at(1))) == [("raise", "high_water")]
    assert ev.evaluate([sample("lvl", 1.37, 2)], at(2)) == []  # inside the deadband: stays active
    assert kinds(ev.evaluate([sample("lvl", 1.34, 3)], at(3))) == [("clear", "high_water")]


def test_bad_quality_neither_raises_nor_clears() -> None:
    ev = StationEvaluator("t", "S1", [rule(type="limit", point="lvl", limit=1.4)])
    assert ev.evaluate([sample("lvl", 9.99, 0, Quality.BAD_VALUE)], at(0)) == []
    assert kinds(ev.evaluate([sample("lvl", 2.0, 1)], at(1))) == [("raise", "r")]
    held = ev.evaluate([sample("lvl", None, 2, Quality.COMM_LOSS)], at(2))
    assert [(e.kind, e.quality, e.at) for e in held] == [("input_not_good", "comm_loss", at(2))]
    assert ev.evaluate([sample("lvl", 0.0, 3, Quality.NOT_AVAILABLE)], at(3))[0].quality == "not_available"
    assert ev.active("r")


def test_a_pending_raise_is_abandoned_when_the_input_goes_stale() -> None:
    """The integrator's case: `high_water` was raised 1.5 s after the level had gone stale."""
    ev = StationEvaluator("t", "S1", [rule(name="high_water", type="limit", point="lvl", limit=1.4, on=5)])
    assert ev.evaluate([sample("lvl", 1.6, 0)], at(0)) == []  # pending
    assert ev.evaluate([sample("lvl", 1.6, 3.5, Quality.STALE)], at(3.5)) == []  # NDEATH: last value, stale
    assert ev.held() == {"high_water": (at(3.5), "stale")}
    for t in (5, 6, 30):
        assert ev.tick(at(t)) == [], t  # never completes on stale data
    assert ev.evaluate([sample("lvl", 1.6, 40)], at(40)) == []  # good again: the on-delay starts anew
    assert ev.held() == {}
    assert ev.tick(at(44.9)) == []
    assert kinds(ev.tick(at(45))) == [("raise", "high_water")]


def test_an_active_alarm_holds_on_stale_input_and_says_so() -> None:
    ev = StationEvaluator("t", "S1", [rule(name="high_water", type="limit", point="lvl", limit=1.4, off=2)])
    assert kinds(ev.evaluate([sample("lvl", 1.6, 0)], at(0))) == [("raise", "high_water")]
    assert ev.evaluate([sample("lvl", 1.0, 1)], at(1)) == []  # clearing, off-delay 2 s
    (held,) = ev.evaluate([sample("lvl", 1.0, 2, Quality.STALE)], at(2))  # a stale low value clears nothing
    assert (held.kind, held.quality, held.at) == ("input_not_good", "stale", at(2))
    assert ev.tick(at(10)) == [] and ev.active("high_water")
    # stale → comm loss: the same hold, the worse quality, the first time kept
    (worse,) = ev.evaluate([sample("lvl", None, 12, Quality.COMM_LOSS)], at(12))
    assert (worse.kind, worse.quality, worse.at) == ("input_not_good", "comm_loss", at(2))
    assert ev.evaluate([sample("lvl", None, 13, Quality.COMM_LOSS)], at(13)) == []  # said once
    back = ev.evaluate([sample("lvl", 1.0, 20)], at(20))
    assert kinds(back) == [("input_good", "high_water")]
    assert ev.tick(at(21.9)) == [] and kinds(ev.tick(at(22))) == [("clear", "high_water")]


def test_a_value_older_than_stale_after_is_not_good() -> None:
    """No sample at all (a source that stopped before reporting comm loss): age makes the input stale."""
    rules = [rule(name="slow", type="limit", point="lvl", limit=1.4, on=30), rule(name="pf", on=0)]
    ev = StationEvaluator("t", "S1", rules, stale_after_s=10)
    ev.evaluate([sample("lvl", 1.6, 0), sample("mains_failed", 1, 0)], at(0))
    assert ev.active("pf")
    events = ev.tick(at(10.5))
    assert [(e.kind, e.name, e.quality, e.at) for e in events] == [("input_not_good", "pf", "stale", at(10))]
    assert set(ev.held()) == {"slow", "pf"}
    assert ev.tick(at(31)) == [] and not ev.active("slow")
    assert kinds(ev.evaluate([sample("lvl", 1.6, 40), sample("mains_failed", 0, 40)], at(40))) == [
        ("input_good", "pf"),
        ("clear", "pf"),
    ]


def tto_rules() -> list[StationRule]:
    pf = rule(name="power_failure", on=0)
    tto = StationRule(
        "time_to_overflow",
        "limit",
        "tto",
        True,
        60.0,
        False,
        5.0,
        0.0,
        0.0,
        "high",
        "tto",
        enabled_by=("power_failure",),
    )
    return [tto, pf]


def test_a_derived_point_from_a_batch_without_an_answer_decides_nothing() -> None:
    """Time to overflow dead-reckoned from a lost level must not raise or clear its alarm."""
    ev = StationEvaluator("t", "S1", tto_rules())
    ev.evaluate([sample("mains_failed", 1, 0)], at(0))
    lost = [sample("lvl", None, 1, Quality.COMM_LOSS)]
    assert ev.evaluate(lost, at(1), derived=[sample("tto", 20.0, 1)]) == []  # would raise: held instead
    assert ev.held() == {"time_to_overflow": (at(1), "comm_loss")}
    stale = [sample("lvl", 1.5, 2, Quality.STALE)]
    assert ev.evaluate(stale, at(2), derived=[sample("tto", 20.0, 2)]) == []
    assert ev.held()["time_to_overflow"] == (at(1), "stale")
    got = ev.evaluate([sample("lvl", 1.5, 3)], at(3), derived=[sample("tto", 20.0, 3)])
    assert kinds(got) == [("raise", "time_to_overflow")]  # an answer: the same figure now decides
    ev.evaluate(lost, at(4), derived=[sample("tto", 500.0, 4)])
    assert ev.active("time_to_overflow")  # a reassuring figure from a dead link clears nothing


def test_a_gated_rule_holds_when_its_enabler_goes_while_its_input_is_not_good() -> None:
    ev = StationEvaluator("t", "S1", tto_rules())
    ev.evaluate([sample("mains_failed", 1, 0)], at(0), derived=[sample("tto", 20.0, 0)])
    assert ev.active("time_to_overflow")
    ev.evaluate([sample("lvl", None, 1, Quality.COMM_LOSS)], at(1), derived=[sample("tto", 20.0, 1)])
    assert kinds(ev.evaluate([sample("mains_failed", 0, 2)], at(2))) == [("clear", "power_failure")]
    assert ev.active("time_to_overflow")  # its own input is not good: no decision
    back = ev.evaluate([sample("lvl", 1.0, 3)], at(3), derived=[sample("tto", 20.0, 3)])
    assert kinds(back) == [("input_good", "time_to_overflow"), ("clear", "time_to_overflow")]


def test_comm_loss_rule() -> None:
    ev = StationEvaluator("t", "S1", [rule(name="comm_loss", type="comm_loss", point=None)])
    lost = [sample("lvl", None, 0, Quality.COMM_LOSS), sample("mains_failed", None, 0, Quality.COMM_LOSS)]
    assert kinds(ev.evaluate(lost, at(0))) == [("raise", "comm_loss")]
    assert ev.evaluate(lost, at(5)) == []
    # a death after the silence (STALE, last values) is no answer: it clears nothing
    assert ev.evaluate([sample("lvl", 1.0, 6, Quality.STALE)], at(6)) == []
    assert ev.active("comm_loss")
    assert kinds(ev.evaluate([sample("lvl", 1.0, 9)], at(9))) == [("clear", "comm_loss")]
    # any answer of the device is one, even a bad value
    ev.evaluate(lost, at(10))
    assert kinds(ev.evaluate([sample("lvl", 99, 11, Quality.BAD_VALUE)], at(11))) == [("clear", "comm_loss")]


def test_comm_loss_under_a_power_failure_is_suppressed_and_the_power_failure_holds() -> None:
    cl = StationRule(
        "comm_loss",
        "comm_loss",
        None,
        True,
        None,
        True,
        0.0,
        0.0,
        0.0,
        "high",
        "cl",
        suppressed_by=("power_failure",),
    )
    ev = StationEvaluator("t", "S1", [cl, rule(name="power_failure", on=0, off=10)])
    ev.evaluate([sample("mains_failed", 1, 0)], at(0))
    lost = ev.evaluate([sample("mains_failed", None, 5, Quality.COMM_LOSS)], at(5))
    assert [(e.kind, e.name, e.suppressed_by) for e in lost] == [
        ("input_not_good", "power_failure", None),
        ("raise", "comm_loss", "power_failure"),
    ]
    assert ev.tick(at(100)) == [] and ev.active("power_failure")  # the outage explains the silence
    back = ev.evaluate([sample("mains_failed", 0, 200)], at(200))  # the battery-backed RTU answers again
    assert kinds(back) == [("input_good", "power_failure"), ("clear", "comm_loss")]
    assert kinds(ev.tick(at(210))) == [("clear", "power_failure")]


def test_restored_active_alarm_clears() -> None:
    ev = StationEvaluator("t", "S1", [rule()])
    ev.restore_active("r")
    assert kinds(ev.evaluate([sample("mains_failed", 0, 0)], at(0))) == [("clear", "r")]
