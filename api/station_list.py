"""`GET /api/v1/stations` at fleet size: pages, field selection, and station views kept until they change.

A station's view (api/views.py `station_view`: `build_station`'s JSON without pydantic) is built when what
it is made of changes, and kept until then: its samples (the very objects the live snapshot or the
latest-value table gave), its open alarms (name, active, suppressed by), its mode, and the next instant one
of its good values turns stale. Only the ages grow by themselves: they are written into the kept view at
each request (`data_age_s`, each value's `age_s`, on the request's clock, exactly as a fresh build would),
so every answer is what a fresh build at that instant would say; nothing is a snapshot. A view is kept
as bytes (each field's JSON, the values' JSON in pieces around their ages): little for the garbage
collector to walk.

A request takes one page (`limit`, at most `MAX_LIMIT`; the next page starts after `cursor`, the
`next_cursor` of the page before, stations in id order) and may ask for some fields only (`fields`). It
encodes with orjson and lets the event loop run every `SLICE_S` of work (views to rebuild included): a
page of any size never holds the loop for long (the collector and the live stream share it).
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from pumpwatch.api.context import ApiContext
from pumpwatch.api.schemas import StationPublic
from pumpwatch.api.views import station_view
from pumpwatch.core.sample import Quality, Sample

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
SLICE_S = 0.005  # the longest the encoding of a page works before letting the event loop run
# what `fields` may name: a station's top-level fields (`id` always comes; coverage is GET /stations/{id}'s)
FIELDS = tuple(f for f in StationPublic.model_fields if f != "coverage")
ALL = (*FIELDS, "coverage")  # the whole view, in StationPublic's order
_ONE = "(" + "|".join(FIELDS) + ")"
FIELDS_PATTERN = rf"^ *{_ONE} *(, *{_ONE} *)*$"  # what the API's schema says `fields` may be


def parse_fields(text: str | None) -> tuple[str, ...] | None:
    """`fields=id,status,values` → the names (id first, once each); None: every field. ValueError names
    the unknown ones and what is allowed."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = sorted({n for n in names if n not in FIELDS})
    if unknown or not names:
        raise ValueError(
            f"unknown field(s) {', '.join(map(repr, unknown))}; fields is a comma-separated list of: "
            + ", ".join(FIELDS)
            if unknown
            else "fields is empty; leave it out for every field, or name some of: " + ", ".join(FIELDS)
        )
    return tuple(dict.fromkeys(["id", *names]))


@dataclass(slots=True)
class _Kept:
    """A station's view, encoded: each field's JSON (bytes: nothing the garbage collector walks), the
    values' JSON in pieces around their ages."""

    key: tuple  # what the view was built from
    built_at: datetime
    valid_until: datetime | None  # the first instant a good value turns stale (None: never by itself)
    fields: dict[str, bytes]  # field -> b'"name":<json>' (values and data_age_s apart)
    pieces: list[bytes]  # the values' JSON around each age: pieces[0] age0 pieces[1] age1 … pieces[-1]
    observed: tuple[datetime, ...]  # when each of those values was observed
    heard: datetime | None


def _alarm_key(alarms: Iterable[Mapping[str, Any]]) -> tuple:
    return tuple((a["name"], bool(a["active"]), a.get("suppressed_by")) for a in alarms)


_AGE = b',"age_s":'


def _age(now: datetime, t: datetime, memo: dict[datetime, bytes]) -> bytes:
    """The JSON of an age at `now` (`memo`: of this request; a poll's values share their instant)."""
    got = memo.get(t)
    if got is None:
        got = memo[t] = orjson.dumps(round(max(0.0, (now - t).total_seconds()), 3))
    return got


class StationViews:
    """The kept views of one API process (one per app: `app.state.station_views`)."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self._kept: dict[str, _Kept] = {}
        self._order = sorted(ctx.fleet.stations)
        self._totals: dict[tuple[frozenset[str], str | None], int] = {}  # the fleet is fixed
        self.built = 0  # views built (the rest were kept ones brought up to the request's instant)

    def encode_one(
        self,
        sid: str,
        samples: Mapping[str, Sample],
        alarms: Sequence[Mapping[str, Any]],
        mode: dict | None,
        now: datetime,
        fields: tuple[str, ...] | None = None,
        memo: dict[datetime, bytes] | None = None,
    ) -> bytes:
        """The station's JSON at `now`: what `build_station(...).model_dump(mode="json")` says (with
        only `fields`, when given)."""
        oos = bool(mode and mode.get("out_of_service"))
        key = (tuple(samples.values()), _alarm_key(alarms), oos)
        k = self._kept.get(sid)
        if (
            k is None
            or k.key != key
            or now < k.built_at
            or (k.valid_until is not None and now >= k.valid_until)
        ):
            k = self._kept[sid] = self._build(sid, samples, alarms, mode, now, key)
        memo = {} if memo is None else memo
        parts = []
        for f in fields or ALL:
            if f == "values":
                vals = [k.pieces[0]]
                for piece, t in zip(k.pieces[1:], k.observed, strict=True):
                    vals += (_age(now, t, memo), piece)
                parts.append(b'"values":' + b"".join(vals))
            elif f == "data_age_s":
                parts.append(
                    b'"data_age_s":' + (_age(now, k.heard, memo) if k.heard is not None else b"null")
                )
            else:
                parts.append(k.fields[f])
        return b"{" + b",".join(parts) + b"}"

    def _build(self, sid, samples, alarms, mode, now, key) -> _Kept:
        self.built += 1
        view = station_view(self.ctx, sid, dict(samples), alarms, now, mode)
        after = self.ctx.fleet.stale_after_s(sid)
        valid_until = None
        if after is not None:
            since = now - timedelta(seconds=after)
            turns = [
                s.observed_at + timedelta(seconds=after)
                for s in samples.values()
                if s.quality is Quality.GOOD and s.observed_at >= since
            ]
            valid_until = min(turns, default=None)
        dumps = orjson.dumps
        fields = {f: dumps(f) + b":" + dumps(v) for f, v in view.items() if f not in ("values", "data_age_s")}
        pieces: list[bytes] = []
        observed: list[datetime] = []
        cur = b"{"
        for i, (name, vd) in enumerate(view["values"].items()):
            s = samples.get(name)
            cur += (b"," if i else b"") + dumps(name) + b":"
            if s is not None and vd["age_s"] is not None:  # age_s is a value's last field
                cur += dumps({k: v for k, v in vd.items() if k != "age_s"})[:-1] + _AGE
                pieces.append(cur)
                observed.append(s.observed_at)
                cur = b"}"
            else:
                cur += dumps(vd)
        pieces.append(cur + b"}")
        heard = datetime.fromisoformat(view["heard_at"]) if view.get("heard_at") else None
        return _Kept(key, now, valid_until, fields, pieces, tuple(observed), heard)

    def page_ids(
        self, tenants: frozenset[str], kind: str | None, cursor: str | None, limit: int
    ) -> tuple[list[str], int, str | None]:
        """(this page's station ids, how many stations match in all, the cursor of the next page or None)."""
        stations = self.ctx.fleet.stations

        def match(sid: str) -> bool:
            st = stations[sid]
            return st.tenant in tenants and (kind is None or st.kind == kind)

        start = bisect.bisect_right(self._order, cursor) if cursor else 0
        page: list[str] = []
        more = False
        for sid in self._order[start:]:
            if match(sid):
                if len(page) == limit:
                    more = True
                    break
                page.append(sid)
        total = self._totals.get((tenants, kind))
        if total is None:
            if len(self._totals) > 256:  # bounded: one entry per distinct tenant set and kind
                self._totals.clear()
            total = self._totals[(tenants, kind)] = sum(1 for sid in self._order if match(sid))
        return page, total, (page[-1] if more else None)

    async def encode(
        self,
        ids: list[str],
        samples_of,
        alarms: Mapping[str, Sequence[Mapping[str, Any]]],
        modes: dict[str, dict],
        now: datetime,
        fields: tuple[str, ...] | None,
    ) -> list[bytes]:
        """Each station's JSON, letting the loop run every `SLICE_S`."""
        out: list[bytes] = []
        memo: dict[datetime, bytes] = {}
        clock = time.perf_counter
        until = clock() + SLICE_S
        for sid in ids:
            out.append(
                self.encode_one(sid, samples_of(sid), alarms.get(sid, []), modes.get(sid), now, fields, memo)
            )
            if clock() >= until:
                await asyncio.sleep(0)
                until = clock() + SLICE_S
        return out


def body(parts: list[bytes], head: dict[str, Any]) -> bytes:
    return orjson.dumps(head)[:-1] + b',"data":[' + b",".join(parts) + b"]}"
