"""The sample: one value of one point of one station, with its time and quality.

What the collector's sources emit, what the live snapshot and the historian keep and the alarm engine
evaluates: the one type every part shares, so it lives in the kernel.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class Quality(enum.IntEnum):
    """Per-sample quality. Stored as a small integer; the API speaks the names."""

    GOOD = 0
    STALE = 1  # no fresh value within the expected interval (set at read time or on MQTT death)
    COMM_LOSS = 2  # the device did not answer for the configured number of polls
    BAD_VALUE = 3  # the device answered, but the value is malformed, out of range or an exception
    SENSOR_FAULT = 4  # the device itself flags the sensor as failed
    NOT_AVAILABLE = 5  # the device says "no value" (e.g. 0xFFFF in maps that declare it)

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def is_good(self) -> bool:
        return self is Quality.GOOD


@dataclass(frozen=True, slots=True)
class Sample:
    station: str
    point: str
    value: float | None
    observed_at: datetime
    quality: Quality = Quality.GOOD
