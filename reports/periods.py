"""Report periods in the tenant's time zone: a day is 00:00–24:00 local time (JST, never UTC), a month the
local calendar month. Row boundaries are computed in local time and converted, so a 23- or 25-hour day of a
zone with daylight saving has 23 or 25 hourly rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from pumpwatch.reports.errors import ReportError

__all__ = ["Period", "RowSpan", "parse_period"]

PeriodKind = Literal["day", "month"]


@dataclass(frozen=True, slots=True)
class RowSpan:
    """One row of a report: `[start, end)` in UTC, `label` in local time (`01:00` … or `2026-12-01`)."""

    label: str
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Period:
    kind: PeriodKind
    first_day: date  # the day, or the month's first day (local)
    tz: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    def _local_midnight(self, d: date) -> datetime:
        return datetime.combine(d, time(0), tzinfo=self.zone).astimezone(UTC)

    @property
    def last_day(self) -> date:
        if self.kind == "day":
            return self.first_day
        nxt = (self.first_day.replace(day=28) + timedelta(days=4)).replace(day=1)
        return nxt - timedelta(days=1)

    @property
    def start(self) -> datetime:
        return self._local_midnight(self.first_day)

    @property
    def end(self) -> datetime:
        return self._local_midnight(self.last_day + timedelta(days=1))

    @property
    def name(self) -> str:
        """`2026-12-04` or `2026-12` (what the period is called in files and titles)."""
        return self.first_day.isoformat() if self.kind == "day" else self.first_day.strftime("%Y-%m")

    def rows(self) -> list[RowSpan]:
        """Hourly rows of a day (labelled by the hour's start, local), daily rows of a month."""
        out: list[RowSpan] = []
        if self.kind == "day":
            t, end = self.start, self.end
            while t < end:
                nxt = t + timedelta(hours=1)
                out.append(RowSpan(t.astimezone(self.zone).strftime("%H:%M"), t, nxt))
                t = nxt
            return out
        day = self.first_day
        while day <= self.last_day:
            after = day + timedelta(days=1)
            out.append(RowSpan(day.isoformat(), self._local_midnight(day), self._local_midnight(after)))
            day = after
        return out

    def previous(self) -> Period:
        if self.kind == "day":
            return Period("day", self.first_day - timedelta(days=1), self.tz)
        return Period("month", (self.first_day - timedelta(days=1)).replace(day=1), self.tz)


def parse_period(text: str, tz: str) -> Period:
    """`YYYY-MM-DD` → that local day, `YYYY-MM` → that local month; anything else is a ReportError."""
    s = text.strip()
    try:
        if len(s) == 10:
            return Period("day", date.fromisoformat(s), tz)
        if len(s) == 7:
            return Period("month", date.fromisoformat(s + "-01"), tz)
    except ValueError:
        pass
    raise ReportError(f"period {text!r}: expected a day YYYY-MM-DD or a month YYYY-MM")
