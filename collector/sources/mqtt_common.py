"""Shared by the MQTT handlers: rejections, and per-station feeds that track values and liveness."""

from __future__ import annotations

from datetime import datetime

from collector.model import Quality, Sample
from pumpwatch.clock import Clock


class Rejected(Exception):
    """A message (or one value of it) does not fit: `reason` is a short category, `detail` says what."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Ignored(Rejected):
    """A well-formed message we cannot use yet, by protocol rather than by fault: Sparkplug data from a
    node whose birth this host has not seen (it joined late, or the node's birth was lost). A rebirth is
    requested; the birth brings the current values. Counted apart from rejections, kept as no dead letter."""


class StationFeed:
    """What we last heard from one station over MQTT, and whether it is alive.

    - `died()`: the device's will / NDEATH arrived → every point STALE at once, with its last value;
    - `check_silence()`: nothing heard for `silence_after_s` → every point COMM_LOSS, once.
    """

    def __init__(self, station: str, points: list[str], clock: Clock, silence_after_s: float) -> None:
        self.station = station
        self.points = points
        self.clock = clock
        self.silence_after_s = silence_after_s
        self.values: dict[str, float | None] = {}
        self.last_heard = clock.monotonic()
        self.lost = False
        self.dead = False

    def heard(self) -> None:
        self.last_heard = self.clock.monotonic()
        self.lost = self.dead = False

    def update(
        self, changes: dict[str, tuple[float | None, Quality]], at: datetime, *, hold: bool = False
    ) -> list[Sample]:
        """Samples for the changed points; with `hold`, also every other known point at its last value
        (report-by-exception sources: an unchanged value is confirmed live by the message)."""
        out = []
        for name, (value, quality) in changes.items():
            self.values[name] = value
            out.append(Sample(self.station, name, value, at, quality))
        if hold:
            out.extend(
                Sample(self.station, name, value, at, Quality.GOOD)
                for name, value in self.values.items()
                if name not in changes
            )
        return out

    def died(self, now: datetime) -> list[Sample]:
        if self.dead:
            return []
        self.dead = True
        return [Sample(self.station, p, self.values.get(p), now, Quality.STALE) for p in self.points]

    def check_silence(self, now: datetime) -> list[Sample]:
        if self.dead or self.lost or self.clock.monotonic() - self.last_heard <= self.silence_after_s:
            return []
        self.lost = True
        return [Sample(self.station, p, None, now, Quality.COMM_LOSS) for p in self.points]
