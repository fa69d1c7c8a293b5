"""The alarm state machine, driven by samples and a clock we control."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alarms.evaluator import StationEvaluator
from alarms.rules import StationRule
from collector.model import Quality, Sample

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
    assert ev.evaluate([sample("lvl", None, 2, Quality.COMM_LOSS)], at(2)) == []
    assert ev.evaluate([sample("lvl", 0.0, 3, Quality.NOT_AVAILABLE)], at(3)) == []


def test_comm_loss_rule() -> None:
    ev = StationEvaluator("t", "S1", [rule(name="comm_loss", type="comm_loss", point=None)])
    lost = [sample("lvl", None, 0, Quality.COMM_LOSS), sample("mains_failed", None, 0, Quality.COMM_LOSS)]
    assert kinds(ev.evaluate(lost, at(0))) == [("raise", "comm_loss")]
    assert ev.evaluate(lost, at(5)) == []
    assert kinds(ev.evaluate([sample("lvl", 1.0, 9)], at(9))) == [("clear", "comm_loss")]


def test_restored_active_alarm_clears() -> None:
    ev = StationEvaluator("t", "S1", [rule()])
    ev.restore_active("r")
    assert kinds(ev.evaluate([sample("mains_failed", 0, 0)], at(0))) == [("clear", "r")]
