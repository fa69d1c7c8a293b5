"""What the API needs from the running system, passed in explicitly (no import-time globals)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine

from alarms.analyzers import DerivedPoint
from alarms.rules import RuleSet
from collector.model import Quality, Sample
from pumpwatch import historian
from pumpwatch.clock import Clock
from pumpwatch.config import Fleet
from pumpwatch.live import LiveSnapshot


@dataclass
class ApiContext:
    fleet: Fleet
    engine: Engine
    clock: Clock
    catalog: dict[tuple[str, str], int]  # (station, point) -> point id
    live: LiveSnapshot | None = None  # in-process collector; None: read the latest_value table
    readiness: Callable[[], dict[str, bool]] | None = None  # extra checks (e.g. collector tasks alive)
    status: Callable[[], dict] | None = None  # storage path of an in-process collector (spool, shard)
    metrics: Callable[[], bytes] | None = None  # Prometheus text of this process
    derived: dict[str, list[DerivedPoint]] = field(default_factory=dict)  # points our analyzers compute
    rules: RuleSet | None = None
    latest_cache_s: float = 1.0
    _points_by_id: dict[int, tuple[str, str]] = field(default_factory=dict)
    _db_latest: dict[str, dict[str, Sample]] = field(default_factory=dict)
    _db_latest_at: float = -1e9
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self._points_by_id = {pid: key for key, pid in self.catalog.items()}

    async def latest(self) -> dict[str, dict[str, Sample]] | LiveSnapshot:
        """Latest samples by station and point: the in-process snapshot, or the table (cached briefly)."""
        if self.live is not None:
            return self.live
        async with self._lock:
            if time.monotonic() - self._db_latest_at > self.latest_cache_s:
                rows = await asyncio.to_thread(historian.read_latest, self.engine)
                self._db_latest = _by_station(rows, self._points_by_id)
                self._db_latest_at = time.monotonic()
        return self._db_latest


def _by_station(
    rows: dict[int, tuple[datetime, float | None, int]], names: dict[int, tuple[str, str]]
) -> dict[str, dict[str, Sample]]:
    out: dict[str, dict[str, Sample]] = {}
    for pid, (at, value, q) in rows.items():
        key = names.get(pid)
        if key is not None:
            out.setdefault(key[0], {})[key[1]] = Sample(key[0], key[1], value, at, Quality(q))
    return out


def station_samples(latest: dict[str, dict[str, Sample]] | LiveSnapshot, sid: str) -> dict[str, Sample]:
    if isinstance(latest, LiveSnapshot):
        return latest.station(sid)
    return latest.get(sid, {})
