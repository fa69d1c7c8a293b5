"""Analyzers: derived points computed from one station's sample batches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from collector.model import Sample


@dataclass(frozen=True, slots=True)
class DerivedPoint:
    name: str
    unit: str | None
    kind: str  # "analog" | "state"


class Analyzer(Protocol):
    outputs: tuple[DerivedPoint, ...]

    def observe(self, samples: Sequence[Sample]) -> list[Sample]:
        """Samples of ONE station (one poll batch); returns derived samples stamped with the batch time
        (max observed_at), quality GOOD, or NOT_AVAILABLE with value None when it cannot tell yet."""
        ...
