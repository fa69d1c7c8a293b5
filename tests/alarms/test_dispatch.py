"""The dispatch ranking's one home (pumpwatch.alarms.dispatch), and the board and the notifier's summary
ranking the same stations the same way."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from pumpwatch.alarms.dispatch import dispatch_order, priority_rank, worst_priority
from pumpwatch.alarms.notify.messages import render

T0 = datetime(2026, 7, 1, 3, 0, tzinfo=UTC)


def test_soonest_overflow_first_then_the_worst_priority_then_the_tie_break() -> None:
    stations = {
        "PS-A": (45.0, ["low"]),
        "PS-B": (12.0, ["medium"]),
        "PS-C": (None, ["critical"]),  # no estimate: after every station that has one
        "PS-D": (12.0, ["high", "low"]),  # same minutes as PS-B, worse priority
        "PS-E": (None, ["high"]),
        "PS-F": (math.nan, ["critical"]),  # a NaN estimate counts as none
    }
    ranked = sorted(stations, key=lambda s: (*dispatch_order(*stations[s]), s))
    assert ranked == ["PS-D", "PS-B", "PS-A", "PS-C", "PS-F", "PS-E"]


def test_priorities_worst_first_and_unknown_below_low() -> None:
    assert [priority_rank(p) for p in ("critical", "high", "medium", "low")] == [0, 1, 2, 3]
    assert priority_rank("urgent") > priority_rank("low") and priority_rank(None) > priority_rank("low")
    assert worst_priority(["low", "critical", "medium"]) == "critical"
    assert worst_priority([]) == "low" and worst_priority(["bogus"]) == "low"
    assert dispatch_order(5.0, []) > dispatch_order(5.0, ["low"])


def test_the_notifiers_summary_lists_stations_in_the_boards_order() -> None:
    alarms = {
        i: {
            "id": i,
            "station_id": sid,
            "name": "power_fail",
            "priority": prio,
            "message": "mains lost",
            "raised_at": T0,
            "value": None,
            "active": True,
            "state": "unacked_active",
        }
        for i, (sid, prio) in enumerate(
            [("PS-A", "low"), ("PS-B", "medium"), ("PS-C", "critical"), ("PS-D", "high")], start=1
        )
    }
    tto = {"PS-A": (45.0, T0), "PS-B": (12.0, T0), "PS-D": (12.0, T0)}  # PS-C: no estimate
    text = render(
        [{"alarm_id": i, "kind": "alert", "detail": None, "step": 0} for i in alarms],
        alarms,
        station_names={},
        tto=tto,
        tz=ZoneInfo("Asia/Tokyo"),
        link=None,
    )
    order = [line.split(" ")[1] for line in text.body.splitlines() if line.startswith("- ")]
    board = sorted(
        ("PS-A", "PS-B", "PS-C", "PS-D"),
        key=lambda s: (*dispatch_order(tto[s][0] if s in tto else None, [alarms_of(alarms, s)]), s),
    )
    assert order == board == ["PS-D", "PS-B", "PS-A", "PS-C"]
    assert "[CRITICAL]" in text.subject


def alarms_of(alarms: dict[int, dict[str, object]], sid: str) -> str:
    return next(str(a["priority"]) for a in alarms.values() if a["station_id"] == sid)
