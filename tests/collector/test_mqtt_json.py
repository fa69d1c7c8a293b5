"""The JSON handler and station feeds without a broker: each bad input has a reason; nothing else is lost."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from pumpwatch.collector.sources.mqtt_common import Rejected, StationFeed
from pumpwatch.collector.sources.mqtt_json import JsonHandler
from pumpwatch.core.clock import FakeClock
from pumpwatch.core.config.models import MetricMap, MqttJsonController
from pumpwatch.core.sample import Quality

T0 = datetime(2026, 7, 1, 0, 0, tzinfo=UTC)
MAP = MetricMap.model_validate(
    {
        "name": "m",
        "metrics": [
            {"name": "wet_well_level_m", "type": "float", "unit": "m", "valid_min": -0.5, "valid_max": 10},
            {"name": "pump1_running", "type": "bool"},
            {"name": "pump1_starts", "type": "int", "kind": "counter"},
        ],
    }
)
CTRL = MqttJsonController.model_validate(
    {"id": "edge", "protocol": "mqtt_json", "stations": [{"station": "S1", "map": "m"}]}
)


class Rig:
    def __init__(self) -> None:
        self.clock = FakeClock(T0)
        self.feed = StationFeed("S1", [m.name for m in MAP.metrics], self.clock, silence_after_s=20)
        self.handler = JsonHandler(CTRL, {"m": MAP}, {"S1": self.feed})
        self.rejected: list[tuple[str, str]] = []

    def send(self, rest: str, payload: bytes | str | dict):
        if isinstance(payload, dict):
            payload = json.dumps(payload)
        if isinstance(payload, str):
            payload = payload.encode()
        return self.handler.handle(rest, payload, self.clock.now(), lambda r, d: self.rejected.append((r, d)))


def test_batch_and_single_values() -> None:
    r = Rig()
    ts = "2026-07-01T09:00:01+09:00"
    got = r.send(
        "S1", {"ts": ts, "values": {"wet_well_level_m": 1.25, "pump1_running": True, "pump1_starts": 12}}
    )
    assert {(s.point, s.value, s.quality) for s in got} == {
        ("wet_well_level_m", 1.25, Quality.GOOD),
        ("pump1_running", 1.0, Quality.GOOD),
        ("pump1_starts", 12.0, Quality.GOOD),
    }
    assert all(s.observed_at == T0 + timedelta(seconds=1) for s in got)
    (one,) = r.send("S1/pump1_running", {"v": False, "ts": 1782864002000})
    assert (one.value, one.quality, one.observed_at) == (
        0.0,
        Quality.GOOD,
        datetime.fromtimestamp(1782864002, UTC),
    )
    (no_ts,) = r.send("S1/wet_well_level_m", {"v": 11.0, "q": "good"})
    assert no_ts.observed_at == T0 and no_ts.quality is Quality.BAD_VALUE  # out of the valid range, kept
    (declared,) = r.send("S1/wet_well_level_m", {"v": 1.0, "q": "sensor_fault"})
    assert declared.quality is Quality.SENSOR_FAULT
    (na,) = r.send("S1/wet_well_level_m", {"v": None})
    assert (na.value, na.quality) == (None, Quality.NOT_AVAILABLE)
    assert r.rejected == []


@pytest.mark.parametrize(
    ("rest", "payload", "reason"),
    [
        ("S1", "{not json", "malformed JSON"),
        ("S1", "[1, 2]", "malformed JSON"),
        ("S1", '{"values": 3}', "malformed JSON"),
        ("S1", b"\xff\xfe\x00garbage", "malformed JSON"),
        ("S1", {"ts": "yesterday", "values": {"pump1_running": True}}, "bad timestamp"),
        ("S1", {"ts": "2026-07-01T09:00:00", "values": {"pump1_running": True}}, "bad timestamp"),
        ("S1", {"ts": 99e99, "values": {"pump1_running": True}}, "bad timestamp"),
        ("S1/nosuch_point", {"v": 1}, "unknown point"),
        ("S9", {"values": {}}, "unknown station"),
        ("S1/wet_well_level_m", {"v": "1.2"}, "wrong type"),
        ("S1/wet_well_level_m", {"v": True}, "wrong type"),
        ("S1/pump1_running", {"v": 2}, "wrong type"),
        ("S1/pump1_running", {"v": 1}, "wrong type"),  # 1 is not true: README says a wrong type is rejected
        ("S1/pump1_running", {"v": 0}, "wrong type"),
        ("S1/wet_well_level_m", '{"v": NaN}', "not finite"),  # not JSON, but told apart from garbage
        ("S1/wet_well_level_m", '{"v": -Infinity}', "not finite"),
        ("S1/wet_well_level_m", b"", "empty"),
        ("S1", b"  \n", "empty"),
        ("S1/pump1_starts", {"v": 1.5}, "wrong type"),
        ("S1/wet_well_level_m", {"v": 1.0, "q": "great"}, "bad quality"),
        ("S1/wet_well_level_m", {"value": 1.0}, "malformed JSON"),
        ("S1/wet_well_level_m", '{"v": 1e400}', "not finite"),  # beyond a double: orjson refuses it
        ("S1/wet_well_level_m", '{"v": ' + "9" * 400 + "}", "not finite"),  # an int beyond any double
        ("S1", '{"values": {"wet_well_level_m": 1.0', "malformed JSON"),
        ("S1", b"{" + b" " * (256 * 1024) + b"}", "too large"),
        ("S1/status", "sleeping", "bad status"),
    ],
)
def test_bad_messages_are_rejected_with_a_reason(rest, payload, reason) -> None:
    r = Rig()
    with pytest.raises(Rejected) as exc:
        r.send(rest, payload)
    assert exc.value.reason == reason, exc.value


def test_a_bad_value_in_a_batch_is_rejected_alone() -> None:
    r = Rig()
    got = r.send(
        "S1", {"values": {"wet_well_level_m": 1.1, "pump1_running": "yes", "ghost_m": 1, "pump1_starts": 3}}
    )
    assert {s.point for s in got} == {"wet_well_level_m", "pump1_starts"}
    assert sorted(reason for reason, _ in r.rejected) == ["unknown point", "wrong type"]


def test_a_non_finite_value_in_a_batch_is_rejected_alone() -> None:
    r = Rig()
    got = r.send("S1", b'{"values": {"wet_well_level_m": NaN, "pump1_starts": 4, "pump1_running": Infinity}}')
    assert {(s.point, s.value) for s in got} == {("pump1_starts", 4.0)}
    assert sorted(reason for reason, _ in r.rejected) == ["not finite", "wrong type"]  # Infinity is no bool


def test_a_cleared_retained_status_is_ignored_not_rejected() -> None:
    from pumpwatch.collector.sources.mqtt_common import Ignored

    r = Rig()
    with pytest.raises(Ignored):
        r.send("S1/status", b"")


def test_offline_status_turns_every_value_stale_with_its_last_value() -> None:
    r = Rig()
    r.send("S1", {"values": {"wet_well_level_m": 1.3, "pump1_running": True}})
    stale = r.send("S1/status", "offline")
    assert {(s.point, s.value, s.quality) for s in stale} == {
        ("wet_well_level_m", 1.3, Quality.STALE),
        ("pump1_running", 1.0, Quality.STALE),
        ("pump1_starts", None, Quality.STALE),
    }
    assert r.send("S1/status", "offline") == []  # once
    assert r.send("S1/status", '"online"') == []
    assert r.feed.dead is False


def test_silence_turns_comm_loss_once() -> None:
    r = Rig()
    r.send("S1", {"values": {"wet_well_level_m": 1.3}})
    r.clock.advance(20)
    assert r.feed.check_silence(r.clock.now()) == []
    r.clock.advance(0.5)
    lost = r.feed.check_silence(r.clock.now())
    assert {s.quality for s in lost} == {Quality.COMM_LOSS} and len(lost) == 3
    assert r.feed.check_silence(r.clock.now()) == []
    r.send("S1", {"values": {"wet_well_level_m": 1.3}})
    assert r.feed.lost is False


def test_a_death_is_a_comm_loss_at_the_next_check() -> None:
    """Will / offline: STALE at once with the last values, then COMM_LOSS (the comm-loss alarm's condition)
    at the watchdog's next check, at a later time than the STALE samples; never twice."""
    r = Rig()
    r.send("S1", {"values": {"wet_well_level_m": 1.3}})
    stale = r.send("S1/status", "offline")
    assert {s.quality for s in stale} == {Quality.STALE}
    assert r.feed.check_silence(r.clock.now()) == []  # same instant: one sample per point and time
    r.clock.advance(1)
    lost = r.feed.check_silence(r.clock.now())
    assert {s.quality for s in lost} == {Quality.COMM_LOSS} and len(lost) == 3
    assert all(s.observed_at == T0 + timedelta(seconds=1) for s in lost)
    r.clock.advance(60)
    assert r.feed.check_silence(r.clock.now()) == []
    assert r.send("S1/status", "offline") == []  # a retained offline seen again after a reconnect
    r.send("S1", {"values": {"wet_well_level_m": 1.4}})
    assert (r.feed.lost, r.feed.dead) == (False, False)


def test_silence_then_death_reports_the_loss_once() -> None:
    r = Rig()
    r.clock.advance(21)
    assert len(r.feed.check_silence(r.clock.now())) == 3
    assert r.send("S1/status", "offline") == []  # already lost: nothing new to say
    r.clock.advance(1)
    assert r.feed.check_silence(r.clock.now()) == []
