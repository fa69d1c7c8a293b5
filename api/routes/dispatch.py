"""The dispatch board: where the portable generators and vacuum trucks go first.

Stations that cannot pump now (power failure, no pump available, pumps not restarted) or whose time to
overflow is short, ranked by the estimated minutes to overflow (soonest first), then by priority. It re-ranks
on every request: a station whose power returns and whose pumps run leaves the board.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import datetime, timedelta

from fastapi import APIRouter

from pumpwatch.alarms import store
from pumpwatch.api.auth import access
from pumpwatch.api.context import ApiContext, station_samples
from pumpwatch.api.deps import Ctx, CurrentUser
from pumpwatch.api.schemas import DispatchEntry, DispatchPublic, LocationPublic
from pumpwatch.core.live import LiveSnapshot
from pumpwatch.core.sample import Quality, Sample

router = APIRouter(prefix="/dispatch", tags=["dispatch"])

# An active alarm of one of these puts a station on the board: it cannot pump, or its water is high.
REASONS = (
    "power_failure",
    "pumps_unavailable",
    "pumps_not_restarted",
    "time_to_overflow",
    "time_to_overflow_critical",
    "high_water",
    "hwl_float",
)


def good(samples: dict, name: str) -> float | None:
    s = samples.get(name)
    return s.value if s is not None and s.quality is Quality.GOOD else None


@router.get("", response_model=DispatchPublic)
async def dispatch_board(
    ctx: Ctx,
    user: CurrentUser,
    tenant: str | None = None,
) -> DispatchPublic:
    tenants = access.tenants_for(user, tenant)
    now = ctx.clock.now()
    latest = await ctx.latest()
    rows = await asyncio.to_thread(
        store.list_alarms, ctx.engine, open_=True, active=True, tenant_ids=tenants, limit=1_000_000
    )
    data = build_board(ctx, latest, rows, now, tenants)
    return DispatchPublic(at=now, data=data, count=len(data))


def build_board(
    ctx: ApiContext,
    latest: dict[str, dict[str, Sample]] | LiveSnapshot,
    active_alarms: list[dict],
    now: datetime,
    tenants: Collection[str] | None,
) -> list[DispatchEntry]:
    """The ranked board from the latest values and the active alarms (None: every tenant)."""
    active: dict[str, list[dict]] = {}
    for a in active_alarms:
        active.setdefault(a["station_id"], []).append(a)
    entries = []
    for sid, st in ctx.fleet.stations.items():
        if tenants is not None and st.tenant not in tenants:
            continue
        samples = station_samples(latest, sid)
        reasons = sorted({a["name"] for a in active.get(sid, []) if a["name"] in REASONS})
        tto = good(samples, "tto_spill_min")
        if not reasons:
            continue
        prio = min((store.PRIORITY_RANK.get(a["priority"], 9) for a in active.get(sid, [])), default=9)
        entries.append(
            (tto if tto is not None else float("inf"), prio, sid, st, reasons, samples, active.get(sid, []))
        )
    entries.sort(key=lambda e: (e[0], e[1], e[2]))
    data = []
    names = {v: k for k, v in store.PRIORITY_RANK.items()}
    for rank, (tto, prio, sid, st, reasons, samples, alarms) in enumerate(entries, start=1):
        spill_at = now + timedelta(minutes=tto) if tto != float("inf") else None
        data.append(
            DispatchEntry(
                rank=rank,
                station=sid,
                tenant=st.tenant,
                name=st.name,
                power_area=st.power_area,
                location=LocationPublic(lat=st.location.lat, lon=st.location.lon) if st.location else None,
                reasons=reasons,
                priority=names.get(prio, "low"),
                level_m=good(samples, "wet_well_level_m"),
                tto_spill_min=None if tto == float("inf") else round(tto, 1),
                tto_spill_conservative_min=good(samples, "tto_spill_conservative_min"),
                spill_at=spill_at,
                inflow_m3_min=good(samples, "inflow_m3_min"),
                incident_id=next((a["incident_id"] for a in alarms if a["incident_id"]), None),
            )
        )
    return data
