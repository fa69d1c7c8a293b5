"""The demo's yesterday: simulate the last `hours` of every station faster than real time into the historian,
so trends, learned inflow and time to overflow mean something in the first minute (issue 18 part 1).

Throw-away station models (the same seeds and kinds as the live simulator) run from `end − hours` to `end`
on coarse sub-steps (10 s: a day in seconds); every `every_s` their values become samples, the alarm
analyzers observe them (so the inflow forecasters have learned by the time live polling starts: they are
the same objects the alarm service then uses) and the samples and the derived points are written to the
historian in batches. No alarm is evaluated for the past: the demo starts with a clean alarm list and a
day of history. `continue_live` then puts each live model where its backfilled twin ended (wet-well
level), so the trend has no jump at the seam.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from pumpwatch.core import historian
from pumpwatch.core.config import Fleet
from pumpwatch.core.db.schema import sample
from pumpwatch.core.db.types import to_utc
from pumpwatch.core.sample import Quality, Sample
from pumpwatch.simulators.fleet import SIMULATED_KINDS, SimulatedFleet
from pumpwatch.simulators.kinds import accepted_options, make_station
from pumpwatch.simulators.station_model import StationModel

__all__ = ["backfill", "continue_live"]

log = logging.getLogger(__name__)


def _samples(sid: str, values: Mapping[str, Any], names: Sequence[str], at: datetime) -> list[Sample]:
    out = []
    for name in names:
        v = values.get(name)
        if isinstance(v, bool | int | float):
            out.append(Sample(sid, name, float(v), at, Quality.GOOD))
    return out


def backfill(
    fleet: Fleet,
    engine: Engine,
    catalog: Mapping[tuple[str, str], int],
    analyzers: Mapping[str, Sequence[Any]],
    *,
    end: datetime,
    hours: float = 24.0,
    every_s: float = 120.0,
    seed: int = 7,
    substep_s: float = 10.0,
    batch_rows: int = 50_000,
) -> dict[str, StationModel]:
    """Simulate `hours` before `end` into the historian (from the newest sample already stored, if that is
    later: a demo started again on the same database continues its history); returns the models as they
    ended (empty: nothing to fill)."""
    t0 = time.monotonic()
    start = end - timedelta(hours=hours)
    with engine.connect() as conn:
        newest = conn.execute(select(func.max(sample.c.observed_at))).scalar()
    if newest is not None and to_utc(newest) > start:
        start = to_utc(newest)
        hours = (end - start).total_seconds() / 3600
    if hours * 3600 < every_s:
        return {}
    models: dict[str, StationModel] = {}
    for sid, cfg in fleet.stations.items():
        if cfg.kind not in SIMULATED_KINDS:
            continue
        tenant = fleet.tenants.get(cfg.tenant)
        opts = {"substep_s": substep_s} if "substep_s" in accepted_options(cfg.kind) else {}
        seed_of = SimulatedFleet.station_seed_of(seed, sid)
        models[sid] = make_station(
            cfg, seed_of, start, timezone=tenant.timezone if tenant else "Asia/Tokyo", **opts
        )
    names = {sid: list(fleet.points.get(sid, {})) for sid in models}
    rows: list[tuple[int, datetime, float | None, int]] = []
    written = 0
    steps = int(hours * 3600 // every_s)
    for k in range(1, steps + 1):
        at = start + timedelta(seconds=k * every_s)
        for sid, st in models.items():
            st.step(at)
            batch = _samples(sid, st.point_values(), names[sid], at)
            for a in analyzers.get(sid, ()):
                try:
                    batch += a.observe(batch)
                except Exception:  # as in the alarm service: one analyzer must not stop the rest
                    log.exception("backfill: analyzer %s failed on %s", type(a).__name__, sid)
            for s in batch:
                pid = catalog.get((sid, s.point))
                if pid is not None:
                    rows.append((pid, s.observed_at, s.value, int(s.quality)))
        if len(rows) >= batch_rows:
            written += historian.write_samples(engine, rows)
            rows = []
    written += historian.write_samples(engine, rows)
    log.info(
        "backfill: %d stations, %g h of history (%d samples) in %.1f s",
        len(models),
        hours,
        written,
        time.monotonic() - t0,
    )
    return models


def continue_live(sim: SimulatedFleet, models: Mapping[str, StationModel]) -> None:
    """Put each live station's wet well where its backfilled twin ended."""
    for sid, done in models.items():
        live = sim.stations.get(sid)
        level = getattr(done, "level_m", None)
        if live is not None and level is not None and hasattr(live, "set_level"):
            live.set_level(level)
