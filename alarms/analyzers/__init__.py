"""Analyzers: derived points computed from one station's sample batches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pumpwatch.core.sample import Sample

# One entry of DerivedPoint.needs: a point name, or a tuple of names of which any one will do.
Need = str | tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DerivedPoint:
    name: str
    unit: str | None
    kind: str  # "analog" | "state"
    # The points it is computed from, every entry needed for it ever to have a value: alarm coverage
    # (alarms/coverage.py) follows a rule on a derived point down to the points that arm it. Not part of
    # the point's identity (equality): it says how the point is made, not what it is.
    needs: tuple[Need, ...] = field(default=(), compare=False)

    def missing(self, have: set[str] | frozenset[str]) -> list[str]:
        """The needs `have` does not meet, as text ("pump1_current_a", "battery_voltage_v or …")."""
        out = []
        for need in self.needs:
            alternatives = (need,) if isinstance(need, str) else need
            if not any(a in have for a in alternatives):
                out.append(" or ".join(alternatives))
        return out


class Analyzer(Protocol):
    @property
    def outputs(self) -> tuple[DerivedPoint, ...]: ...  # (read-only: each analyzer's own fixed tuple)

    def observe(self, samples: Sequence[Sample]) -> list[Sample]:
        """Samples of ONE station (one poll batch); returns derived samples stamped with the batch time
        (max observed_at), quality GOOD, or NOT_AVAILABLE with value None when it cannot tell yet."""
        ...
