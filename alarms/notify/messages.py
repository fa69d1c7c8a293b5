"""What a person reads: one alarm in full, or a summary of many ("37 stations: power failure, 5 below 30
min to overflow"), then acknowledgements by others and returns to normal, and the one-click ack link.

Pure functions of the rows they are given; times are shown in the tenant's zone. A time to overflow is
shown only from a good, recent value, with its age, never a stale one as if it were live.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pumpwatch.alarms.dispatch import dispatch_order, worst_priority

TTO_SOON_MIN = 30  # "N below 30 min to overflow" in a summary


@dataclass(frozen=True)
class Text:
    subject: str
    body: str
    short: str  # SMS / chat / voice


def _label(name: str) -> str:
    return name.replace("_", " ")


def _minutes(tto: dict[str, tuple[float, datetime]], sid: str) -> float | None:
    return tto[sid][0] if sid in tto else None


def _hm(t: datetime | None, tz: ZoneInfo) -> str:
    return t.astimezone(tz).strftime("%m-%d %H:%M") if t else "?"


def render(
    items: list[dict[str, Any]],
    alarms: dict[int, dict[str, Any]],
    *,
    station_names: dict[str, str],
    tto: dict[str, tuple[float, datetime]],
    tz: ZoneInfo,
    link: str | None,
    summary_stations: int = 10,
) -> Text:
    """`items` of one person (kind alert | final | ack | rtn, with `alarm_id`, `detail`, `step`)."""
    alerts: dict[int, dict[str, Any]] = {}
    finals: set[int] = set()
    acks: list[dict[str, Any]] = []
    rtns: list[dict[str, Any]] = []
    for it in items:
        a = alarms.get(it["alarm_id"])
        if a is None:
            continue
        if it["kind"] in ("alert", "final"):
            alerts.setdefault(a["id"], a)
            if it["kind"] == "final":
                finals.add(a["id"])
        elif it["kind"] == "ack":
            acks.append({**a, "_detail": it["detail"]})
        else:
            rtns.append({**a, "_detail": it["detail"]})

    def st(a: dict[str, Any]) -> str:
        sid = a["station_id"]
        return f"{station_names.get(sid, sid)} ({sid})"

    def tto_text(sid: str) -> str:
        if sid not in tto:
            return ""
        minutes, at = tto[sid]
        return f", overflow in {minutes:.0f} min (as of {_hm(at, tz)})"

    lines: list[str] = []
    first = ""
    if len(alerts) == 1:
        a = next(iter(alerts.values()))
        state = "" if a["active"] else " (returned to normal since)"
        first = f"[{a['priority'].upper()}] {st(a)}: {_label(a['name'])}{state}"
        if a["id"] in finals:
            first = "UNACKNOWLEDGED " + first
        lines += [
            first,
            a["message"],
            f"Raised {_hm(a['raised_at'], tz)}"
            + (f", value {a['value']:g}" if a["value"] is not None else "")
            + tto_text(a["station_id"]),
        ]
    elif alerts:
        stations = {a["station_id"] for a in alerts.values()}
        names = Counter(a["name"] for a in alerts.values())
        what = (
            _label(next(iter(names)))
            if len(names) == 1
            else ", ".join(f"{_label(n)} {c}" for n, c in names.most_common())
        )
        soon = sum(1 for s in stations if s in tto and tto[s][0] < TTO_SOON_MIN)
        first = f"{len(stations)} stations: {what}" + (
            f", {soon} below {TTO_SOON_MIN} min to overflow" if soon else ""
        )
        prio = worst_priority(a["priority"] for a in alerts.values())
        first = f"[{prio.upper()}] {first}"
        if finals:
            first = "UNACKNOWLEDGED " + first
        lines.append(first)
        ranked = sorted(  # as on the dispatch board: soonest overflow, worst priority
            alerts.values(),
            key=lambda a: (*dispatch_order(_minutes(tto, a["station_id"]), [a["priority"]]), a["id"]),
        )
        for a in ranked[:summary_stations]:
            lines.append(f"- {st(a)}: {_label(a['name'])}{tto_text(a['station_id'])}")
        if len(ranked) > summary_stations:
            lines.append(f"- and {len(ranked) - summary_stations} more")
    for a in acks:
        lines.append(f"Acknowledged: {st(a)} {_label(a['name'])} {a['_detail'] or ''}".rstrip())
    for a in rtns:
        lines.append(f"Returned to normal: {st(a)} {_label(a['name'])} {a['_detail'] or ''}".rstrip())
    if not first:
        if acks and not rtns:
            first = f"Acknowledged: {len(acks)} alarm(s)" if len(acks) > 1 else lines[0]
        elif rtns and not acks:
            first = f"Returned to normal: {len(rtns)} alarm(s)" if len(rtns) > 1 else lines[0]
        else:
            first = f"{len(acks)} acknowledged, {len(rtns)} returned to normal"
    unacked = [a for a in alerts.values() if a["state"] in ("unacked_active", "unacked_rtn")]
    if link and unacked:
        what = "this alarm" if len(unacked) == 1 else f"all {len(unacked)} alarms"
        lines += ["", f"Acknowledge {what}: {link}"]
    if any(a.get("drill_id") is not None for a in [*alerts.values(), *acks, *rtns]):
        first = f"[DRILL] {first}"  # an exercise: said first, whatever the channel shows
        lines.insert(0, "DRILL: an exercise, not a real event.")
    body = "\n".join(lines)
    short = first + (f" Ack: {link}" if link and unacked else "")
    return Text(subject=first[:200], body=body, short=short)
