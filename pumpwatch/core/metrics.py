"""Metrics primitives: fixed-bucket histograms the parts observe into, and Prometheus text rendering.

Nothing is counted twice: the sources, the writer, the spool and the alarm service keep their own counters
(a `Histogram` costs one bucket increment per observation); the exporter of the composition root
(`pumpwatch/app/metrics.py`) turns them into metric families when Prometheus scrapes.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Histogram:
    """Fixed buckets, plain counters: cheap enough to observe every poll on the event loop."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def merged(self, others: list[Histogram]) -> tuple[list[tuple[str, float]], float]:
        counts = [sum(h.counts[i] for h in others) for i in range(len(self.counts))]
        acc: float = 0
        buckets: list[tuple[str, float]] = []
        for bound, c in zip([*map(str, self.bounds), "+Inf"], counts, strict=True):
            acc += c
            buckets.append((bound, acc))
        return buckets, float(sum(h.total for h in others))


POLL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
ALARM_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def render(registry: CollectorRegistry | None) -> bytes:
    return generate_latest(registry) if registry is not None else b""


Render = Callable[[], bytes]
