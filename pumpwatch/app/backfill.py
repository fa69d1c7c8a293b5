"""The demo's yesterday: simulate the last `hours` of every station faster than real time into the historian,
so trends, learned inflow and time to overflow mean something in the first minute (issue 18 part 1).

Throw-away station models (the same seeds and kinds as the live simulator) run on coarse sub-steps (10 s)
and their values become samples written to the historian in batches. The last 2 h (the forecasters'
memory) are simulated first, a sample a minute, the alarm analyzers observing, so the inflow forecasters
have learned before live polling starts (they are the same objects the alarm service then uses) and time
to overflow has a history; the older 22 h follow in the background while the demo runs (history only, a
sample every 5 min, another run of models: the trend has a seam 2 h ago). `plan` says which spans a start
fills. No alarm is evaluated for the past: the demo starts with a clean alarm list and a day of history.
`continue_live` puts each live model where its learning twin ended (wet-well level), so the trend has no
jump at the present.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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

__all__ = ["Plan", "continue_live", "plan", "simulate_into"]

log = logging.getLogger(__name__)


def _samples(sid: str, values: Mapping[str, Any], names: Sequence[str], at: datetime) -> list[Sample]:
    out = []
    for name in names:
        v = values.get(name)
        if isinstance(v, bool | int | float):
            out.append(Sample(sid, name, float(v), at, Quality.GOOD))
    return out


def newest_sample(engine: Engine) -> datetime | None:
    with engine.connect() as conn:
        newest = conn.execute(select(func.max(sample.c.observed_at))).scalar()
    return to_utc(newest) if newest is not None else None


def simulate_into(
    fleet: Fleet,
    engine: Engine,
    catalog: Mapping[tuple[str, str], int],
    *,
    start: datetime,
    end: datetime,
    every_s: float,
    analyzers: Mapping[str, Sequence[Any]] | None = None,
    seed: int = 7,
    substep_s: float = 10.0,
    batch_rows: int = 50_000,
    cancel: threading.Event | None = None,
) -> dict[str, StationModel]:
    """Simulate every station from `start` to `end` into the historian, a sample every `every_s` (and the
    analyzers observing each, when given); returns the models as they ended. `cancel` set: it stops after
    the step it is in (what it wrote stays)."""
    t0 = time.monotonic()
    models: dict[str, StationModel] = {}
    for sid, cfg in fleet.stations.items():
        if cfg.kind not in SIMULATED_KINDS:
            continue
        tenant = fleet.tenants.get(cfg.tenant)
        opts = {"substep_s": substep_s} if "substep_s" in accepted_options(cfg.kind) else {}
        tz = tenant.timezone if tenant else "Asia/Tokyo"
        models[sid] = make_station(cfg, SimulatedFleet.station_seed_of(seed, sid), start, timezone=tz, **opts)
    names = {sid: list(fleet.points.get(sid, {})) for sid in models}
    rows: list[tuple[int, datetime, float | None, int]] = []
    written = 0
    steps = int((end - start).total_seconds() // every_s)
    for k in range(1, steps + 1):
        if cancel is not None and cancel.is_set():
            log.info("backfill cancelled at %s", (start + timedelta(seconds=k * every_s)).isoformat())
            break
        at = start + timedelta(seconds=k * every_s)
        for sid, st in models.items():
            st.step(at)
            batch = _samples(sid, st.point_values(), names[sid], at)
            for a in (analyzers or {}).get(sid, ()):
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
        "backfill: %d stations, %s → %s (%d samples) in %.1f s",
        len(models),
        start.isoformat(timespec="minutes"),
        end.isoformat(timespec="minutes"),
        written,
        time.monotonic() - t0,
    )
    return models


@dataclass(frozen=True)
class Plan:
    """What a demo start fills: the recent part with the analyzers learning (before polling starts), the
    older part as history only (in the background, while the demo runs). Empty spans: nothing."""

    learn: tuple[datetime, datetime] | None
    history: tuple[datetime, datetime] | None


def plan(engine: Engine, end: datetime, hours: float, learn_hours: float = 2.0) -> Plan:
    """The spans to fill before `end`, from the newest sample already stored if that is later (a demo
    started again on the same database continues its history)."""
    start = end - timedelta(hours=hours)
    newest = newest_sample(engine)
    if newest is not None and newest > start:
        start = newest
    if end - start < timedelta(minutes=5):
        return Plan(None, None)
    split = max(start, end - timedelta(hours=learn_hours))
    return Plan((split, end), (start, split) if split - start >= timedelta(minutes=5) else None)


def continue_live(sim: SimulatedFleet, models: Mapping[str, StationModel]) -> None:
    """Put each live station's wet well where its backfilled twin ended."""
    for sid, done in models.items():
        live = sim.stations.get(sid)
        level = getattr(done, "level_m", None)
        if live is not None and level is not None and hasattr(live, "set_level"):
            live.set_level(level)
