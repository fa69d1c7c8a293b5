"""Level gauge against the high-water float: a failed gauge reads low and stops the pumps (docs/domain.md
§1.4 item 6, §5), so a float that says "high" while the gauge says "low" is an alarm of its own."""

from __future__ import annotations

from collections.abc import Sequence

from pumpwatch.alarms.analyzers import DerivedPoint
from pumpwatch.core.config.models import StationConfig
from pumpwatch.core.sample import Quality, Sample


class LevelCheck:
    outputs = (DerivedPoint("level_float_disagreement", None, "state", ("wet_well_level_m", "hwl_float")),)

    def __init__(self, cfg: StationConfig, *, margin_m: float = 0.3) -> None:
        assert cfg.levels is not None
        self.station = cfg.id
        self.hwl = cfg.levels.hwl_m
        self.margin = margin_m
        self.level: float | None = None
        self.float_high: bool | None = None

    def observe(self, samples: Sequence[Sample]) -> list[Sample]:
        if not samples:
            return []
        at = max(s.observed_at for s in samples)
        for s in samples:
            if s.quality is not Quality.GOOD or s.value is None:
                continue
            if s.point == "wet_well_level_m":
                self.level = s.value
            elif s.point == "hwl_float":
                self.float_high = s.value >= 0.5
        if self.level is None or self.float_high is None:
            return [Sample(self.station, "level_float_disagreement", None, at, Quality.NOT_AVAILABLE)]
        disagree = (self.float_high and self.level < self.hwl - self.margin) or (
            not self.float_high and self.level > self.hwl + self.margin
        )
        return [Sample(self.station, "level_float_disagreement", 1.0 if disagree else 0.0, at, Quality.GOOD)]
