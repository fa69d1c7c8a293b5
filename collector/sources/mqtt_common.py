"""Shared by the MQTT handlers: rejections, and per-station feeds that track values and liveness."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pumpwatch.collector.errors import DecodeError
from pumpwatch.core.clock import Clock
from pumpwatch.core.sample import Quality, Sample

# `reject(reason, detail)`: one value of a message does not fit; the handler counts it and goes on
PartReject = Callable[[str, str], None]


class Rejected(DecodeError):
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

    Liveness, the same for JSON and Sparkplug B (README "What pumpwatch alarms on, and how fast"):
    - `died()`: a definitive loss (the device's will / `status` offline, NDEATH, DDEATH) → every point STALE
      at once with its last value (Sparkplug's rule), and COMM_LOSS at the next `check_silence()` (the
      watchdog's next second): the comm-loss alarm's condition;
    - `went_stale()`: values not current but the device not known dead (a Sparkplug seq gap awaiting its
      rebirth) → STALE at once; COMM_LOSS only if nothing usable follows for `silence_after_s`;
    - `check_silence()`: nothing usable heard for `silence_after_s` (the device is silent, or this host lost
      its broker) → every point COMM_LOSS, once.
    Any usable message (`heard()`) makes the station live again; its samples clear the comm-loss alarm.
    """

    def __init__(self, station: str, points: list[str], clock: Clock, silence_after_s: float) -> None:
        self.station = station
        self.points = points
        self.clock = clock
        self.silence_after_s = silence_after_s
        self.values: dict[str, float | None] = {}
        self.last_heard = clock.monotonic()
        self.lost = False  # COMM_LOSS emitted: the comm-loss condition holds until the station is heard
        self.dead = False  # a death was announced: COMM_LOSS follows at the next check
        self.why: str | None = None  # what ended the link, for the log
        self._died_at: datetime | None = None

    def heard(self) -> None:
        self.last_heard = self.clock.monotonic()
        self.lost = self.dead = False
        self.why = None

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

    def died(self, now: datetime, why: str = "death") -> list[Sample]:
        if self.dead or self.lost:
            return []
        self.dead, self.why, self._died_at = True, why, now
        return self.went_stale(now)

    def went_stale(self, now: datetime) -> list[Sample]:
        return [Sample(self.station, p, self.values.get(p), now, Quality.STALE) for p in self.points]

    def check_silence(self, now: datetime) -> list[Sample]:
        if self.lost:
            return []
        if self.dead:
            if self._died_at is not None and now <= self._died_at:
                return []  # a later time than the STALE samples: one sample per point and time
        elif self.clock.monotonic() - self.last_heard <= self.silence_after_s:
            return []
        if not self.dead:
            self.why = f"silent for more than {self.silence_after_s:g} s"
        self.lost = True
        return [Sample(self.station, p, None, now, Quality.COMM_LOSS) for p in self.points]
