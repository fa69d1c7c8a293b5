"""The base of every simulated station model: config, seed, random streams and the time grid.

Pure, deterministic, no I/O. `StationModel.step(now)` advances the state to `now` in fixed sub-steps (1 s of
simulated time by default) on a grid anchored at `start`, so the state at a time depends only on the seed,
the start, the scenario changes and that time — never on how often `step` was called. The remainder below
one sub-step is carried over to the next call. Random streams are per station and per purpose
(`rng("inflow")`), so a scenario that changes one thing does not shift the others.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta, tzinfo
from typing import ClassVar
from zoneinfo import ZoneInfo

from pumpwatch.core.config.models import StationConfig

__all__ = ["PointValues", "StationModel"]

PointValues = dict[str, float | int | bool | None]  # None: no value (encoded as the map's not_available)


# Live simulation steps ≤ 1 s. Up to 10 s is for a history backfill only (`pumpwatch.app.backfill`: a day
# in seconds): pump cycles there are timed to the step (restart and stagger delays round to it).
MAX_SUBSTEP_S = 10.0


class StationModel:
    """Base of every station model: config, seed, start, time zone and the sub-step grid.

    Subclasses implement `_substep()` (which must end with `_end_substep(alive)`), `point_values()`,
    `mains_ok` and `site_power_ok`.
    """

    kind: ClassVar[str] = ""

    def __init__(
        self, cfg: StationConfig, seed: int, start: datetime, *, timezone: str | tzinfo, substep_s: float
    ) -> None:
        if cfg.kind != self.kind:
            raise ValueError(f"station {cfg.id} is a {cfg.kind}, not a {self.kind}")
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if not 0 < substep_s <= MAX_SUBSTEP_S:
            raise ValueError(f"substep_s must be in (0, {MAX_SUBSTEP_S:g}]")
        self.cfg = cfg
        self.id = cfg.id
        self.seed = seed
        self.start = start.astimezone(UTC)
        self.tz = ZoneInfo(timezone) if isinstance(timezone, str) else timezone
        self.substep_s = substep_s
        self.mains_ok = True
        self.heartbeat = 0
        self._tick = 0
        self._utc_offset_s = 0.0
        self._offset_valid_until = -math.inf
        self._start_epoch = self.start.timestamp()
        self._hb_seconds = 0

    def rng(self, stream: str) -> random.Random:
        """An independent random stream of this station (same seed, start and id: same numbers)."""
        return random.Random(f"pumpwatch:{self.seed}:{self.id}:{stream}")

    @property
    def now(self) -> datetime:
        """The simulated time the state is at."""
        return self.start + timedelta(seconds=self._tick * self.substep_s)

    @property
    def tick(self) -> int:
        return self._tick

    def step(self, now: datetime) -> None:
        """Advance to `now` (whole sub-steps on the grid from `start`; never backwards)."""
        target = math.floor((now - self.start).total_seconds() / self.substep_s + 1e-9)
        while self._tick < target:
            self._substep()

    def _ticks(self, seconds: float) -> int:
        return math.ceil(seconds / self.substep_s - 1e-9)

    def _time_at(self, tick: int) -> datetime:
        return self.start + timedelta(seconds=tick * self.substep_s)

    def _local_seconds_of_day(self, t_s: float) -> float:
        epoch = self._start_epoch + t_s
        if epoch >= self._offset_valid_until:
            when = datetime.fromtimestamp(epoch, UTC)
            off = when.astimezone(self.tz).utcoffset()
            self._utc_offset_s = off.total_seconds() if off is not None else 0.0
            self._offset_valid_until = (math.floor(epoch / 3600.0) + 1) * 3600.0
        return (epoch + self._utc_offset_s) % 86400.0

    def _substep(self) -> None:
        raise NotImplementedError

    def _end_substep(self, alive: bool) -> None:
        """Move the tick on; count whole seconds on the heartbeat while the telemetry is `alive`."""
        self._tick += 1
        seconds = math.floor(self._tick * self.substep_s + 1e-9)
        if seconds != self._hb_seconds:
            if alive:
                self.heartbeat = (self.heartbeat + seconds - self._hb_seconds) % 65536
            self._hb_seconds = seconds

    def set_mains(self, ok: bool) -> None:
        self.mains_ok = ok

    @property
    def site_power_ok(self) -> bool:
        """Whether the station's own equipment has power (mains, or a running generator)."""
        return self.mains_ok

    def point_values(self) -> PointValues:
        raise NotImplementedError
