"""The latest sample of every point, in memory: answers "every station now" without touching the database.

Fed by the collector in the same process; the API reads it. A version counter lets readers notice change;
listeners (the live stream) are told which stations got samples, and must only take note (no I/O).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from pumpwatch.core.sample import Sample


class LiveSnapshot:
    def __init__(self) -> None:
        self._by_station: dict[str, dict[str, Sample]] = {}
        self.version = 0
        self.listeners: list[Callable[[set[str]], None]] = []

    def accept(self, samples: Iterable[Sample]) -> None:
        touched: set[str] = set()
        for s in samples:
            touched.add(s.station)
            points = self._by_station.get(s.station)
            if points is None:
                points = self._by_station[s.station] = {}
            old = points.get(s.point)
            if old is None or s.observed_at >= old.observed_at:
                points[s.point] = s
        self.version += 1
        for fn in self.listeners:
            fn(touched)

    def station(self, station: str) -> dict[str, Sample]:
        return self._by_station.get(station, {})

    def seed(self, samples: Iterable[Sample]) -> None:
        """Load values persisted by an earlier run (they keep their old times, so age shows them stale)."""
        self.accept(samples)
