"""The dispatch ranking: which station needs a crew (a mobile generator, a vacuum truck) first. The one
home of the rule, used by the API's dispatch board (`api/views.py:build_board`, and through it the live
stream and the console) and by the on-call notifier's summaries (`alarms/notify/messages.py:render`).

Order: the soonest estimated overflow first (`tto_spill_min`, minutes; a station without a good estimate
goes after every station with one), then the worst priority of its active alarms (critical, high, medium,
low; an unknown priority counts below low), then the caller's tie-break (the station id on the board, the
alarm id in a message) so that the order is stable from one refresh to the next. docs/alarms.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["PRIORITY_RANK", "UNKNOWN_PRIORITY_RANK", "dispatch_order", "priority_rank", "worst_priority"]

PRIORITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}  # lower is worse
UNKNOWN_PRIORITY_RANK = 9


def priority_rank(priority: str | None) -> int:
    return (
        PRIORITY_RANK.get(priority, UNKNOWN_PRIORITY_RANK) if priority is not None else UNKNOWN_PRIORITY_RANK
    )


def worst_priority(priorities: Iterable[str | None]) -> str:
    """The worst of the priorities ("low" when there is none or none is known)."""
    worst = min((priority_rank(p) for p in priorities), default=UNKNOWN_PRIORITY_RANK)
    return next((name for name, r in PRIORITY_RANK.items() if r == worst), "low")


def dispatch_order(tto_min: float | None, priorities: Iterable[str | None]) -> tuple[float, int]:
    """The sort key of one station (or alarm) on the ranking: append the caller's tie-break to it."""
    tto = math.inf if tto_min is None or math.isnan(tto_min) else tto_min
    return (tto, min((priority_rank(p) for p in priorities), default=UNKNOWN_PRIORITY_RANK))
