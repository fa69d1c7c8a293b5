"""A station's safety coverage (alarms/coverage.py) as the API shows it: no file paths, only what an
operator or engineer needs to know why a function is armed, waived or not."""

from __future__ import annotations

from pumpwatch.alarms.coverage import FleetCoverage
from pumpwatch.api.schemas import (
    CoverageDroppedPublic,
    CoverageFunctionPublic,
    CoveragePublic,
    CoverageRulePublic,
)


def coverage_public(coverage: FleetCoverage | None, station_id: str) -> CoveragePublic | None:
    sc = coverage.stations.get(station_id) if coverage is not None else None
    if sc is None:
        return None
    return CoveragePublic(
        functions=[
            CoverageFunctionPublic(
                function=f.function,
                title=f.title,
                pump=f.pump,
                state=f.state,
                rules=[
                    CoverageRulePublic(
                        rule=r.rule,
                        armed=r.armed,
                        points=list(r.points),
                        via=r.via,
                        sources=list(r.sources),
                        why=r.why,
                    )
                    for r in f.rules
                ],
                why=f.why,
                waiver_reason=f.waiver,
            )
            for f in sc.functions
        ],
        rules_not_applied=[CoverageDroppedPublic(rule=d.rule, point=d.point, why=d.why) for d in sc.dropped],
    )
