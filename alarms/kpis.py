"""Alarm-system KPIs (ISA-18.2 / IEC 62682, EEMUA 191) from the journal: rate per 10 minutes, share of
time in flood (> 10 alarms in 10 minutes), chattering, stale alarms, top bad actors, priority mix."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

PERIOD = timedelta(minutes=10)
FLOOD = 10  # alarms per 10 minutes per operator position
CHATTER_COUNT, CHATTER_WINDOW = 3, timedelta(seconds=60)
STALE_AFTER = timedelta(hours=24)


@dataclass(frozen=True)
class Kpis:
    alarms: int
    per_10min_avg: float
    per_10min_max: int
    flood_share: float
    chattering: int
    stale: int
    top_bad_actors: list[tuple[str, str, int]]
    priority_mix: dict[str, int]
    per_10min: tuple[int, ...] = ()  # alarms raised in each 10-minute period from `start` (the chart)
    chattering_alarms: tuple[tuple[str, str, int], ...] = ()  # (station, name, raises) of the chattering


def compute(
    raises: Sequence[Mapping[str, Any]],
    open_active: Sequence[Mapping[str, Any]],
    start: datetime,
    end: datetime,
) -> Kpis:
    """`raises`: journal 'raise' events in [start, end) with station_id, name, priority, at.
    `open_active`: alarms active at `end` with raised_at."""
    periods = max(1, int((end - start) / PERIOD + 0.999999))
    per: Counter[int] = Counter(int((e["at"] - start) / PERIOD) for e in raises)
    by_alarm: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for e in raises:
        by_alarm[(e["station_id"], e["name"])].append(e["at"])
    chattering: list[tuple[str, str, int]] = []
    for (sid, name), times in by_alarm.items():
        times.sort()
        if any(
            times[i + CHATTER_COUNT - 1] - times[i] <= CHATTER_WINDOW
            for i in range(len(times) - CHATTER_COUNT + 1)
        ):
            chattering.append((sid, name, len(times)))
    chattering.sort(key=lambda c: (-c[2], c[0], c[1]))
    top = Counter({k: len(v) for k, v in by_alarm.items()}).most_common(10)
    return Kpis(
        alarms=len(raises),
        per_10min_avg=round(len(raises) / periods, 3),
        per_10min_max=max(per.values(), default=0),
        flood_share=round(sum(1 for n in per.values() if n > FLOOD) / periods, 4),
        chattering=len(chattering),
        stale=sum(1 for a in open_active if end - a["raised_at"] > STALE_AFTER),
        top_bad_actors=[(s, n, c) for (s, n), c in top],
        priority_mix=dict(Counter(e["priority"] for e in raises)),
        per_10min=tuple(per.get(i, 0) for i in range(periods)),
        chattering_alarms=tuple(chattering),
    )
