"""Plain JSON over MQTT, the documented layout (README "MQTT JSON topics"):

- `{prefix}/{station}` → `{"ts": <ISO 8601 with offset | epoch ms>, "values": {"<metric>": <value>, ...}}`

`metric` is the name on the wire from the station's metric map (default: the point name).
- `{prefix}/{station}/{metric}` → `{"v": <value>, "ts": ..., "q": "<quality>"}` (`ts`, `q` optional)
- `{prefix}/{station}/status` → `online` | `offline` (retained; the device's MQTT will is `offline`)

A value must fit its metric's type (bool: JSON true/false, nothing else; int; float), be finite, and name a
point of the station's metric map. A bad value in a batch is rejected alone; the others are stored.
Reasons (the dead letter's and the counter's label): `empty`, `too large`, `malformed JSON`, `not finite`
(NaN, Infinity, or a number beyond a double: refused by JSON itself, so they are told apart from a broken
payload), `wrong type`, `unknown point`, `unknown station`, `bad timestamp`, `bad quality`, `bad status`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import orjson

from pumpwatch.collector.sources.mqtt_common import Ignored, PartReject, Rejected, StationFeed
from pumpwatch.core.config.models import MetricMap, MetricSpec, MqttJsonController
from pumpwatch.core.sample import Quality, Sample

MAX_PAYLOAD = 256 * 1024
QUALITY_BY_LABEL = {q.label: q for q in Quality}
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


def parse_time(raw: object, now: datetime) -> datetime:
    """ISO 8601 with an offset, or epoch milliseconds; absent → receipt time."""
    if raw is None:
        return now
    if isinstance(raw, bool):
        raise Rejected("bad timestamp", f"ts must be ISO 8601 or epoch ms, got {raw!r}")
    if isinstance(raw, int | float):
        try:
            t = datetime.fromtimestamp(raw / 1000.0, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise Rejected("bad timestamp", f"epoch ms {raw!r} is out of range") from None
    elif isinstance(raw, str):
        try:
            t = datetime.fromisoformat(raw)
        except ValueError:
            raise Rejected("bad timestamp", f"ts {raw[:64]!r} is not ISO 8601") from None
        if t.tzinfo is None:
            raise Rejected("bad timestamp", f"ts {raw[:64]!r} has no UTC offset")
    else:
        raise Rejected("bad timestamp", f"ts must be ISO 8601 or epoch ms, got {type(raw).__name__}")
    if t < EARLIEST or t > now + timedelta(days=1):
        raise Rejected("bad timestamp", f"ts {t.isoformat()} is implausible (now {now.isoformat()})")
    return t.astimezone(UTC)


def coerce(spec: MetricSpec, v: object) -> float | None:
    """The value as a float (states 1.0/0.0), or raise Rejected saying why it does not fit."""
    if v is None:
        return None
    if spec.type == "bool":  # 1 is not true: a device that sends numbers for a state is misconfigured
        if isinstance(v, bool):
            return 1.0 if v else 0.0
        raise Rejected(
            "wrong type", f"{spec.name}: expected bool (true/false), got {type(v).__name__} {v!r:.40}"
        )
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise Rejected("wrong type", f"{spec.name}: expected {spec.type}, got {type(v).__name__} {v!r:.40}")
    try:
        x = float(v)
    except OverflowError:  # an integer beyond any double
        raise Rejected("not finite", f"{spec.name}: an integer of {len(str(abs(v)))} digits") from None
    if x != x or x in (float("inf"), float("-inf")):
        raise Rejected("not finite", f"{spec.name}: {v!r:.40}")
    if spec.type == "int" and not x.is_integer():
        raise Rejected("wrong type", f"{spec.name}: expected int, got {v!r}")
    return x


def loads(payload: bytes) -> object:
    """The JSON document. orjson refuses NaN, Infinity and numbers beyond a double as malformed; Python's
    parser reads them (as floats), so `coerce` can reject just that value as `not finite` and keep the
    rest of a batch. Anything else that does not parse is `malformed JSON`."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        try:
            return json.loads(payload)  # only on a payload orjson refused: rare, so its cost does not matter
        except (ValueError, RecursionError):
            raise Rejected("malformed JSON", str(exc)[:120]) from None


def quality_of(spec: MetricSpec, value: float | None, declared: Quality) -> Quality:
    if value is None:
        return Quality.NOT_AVAILABLE if declared is Quality.GOOD else declared
    if declared is Quality.GOOD and (
        (spec.valid_min is not None and value < spec.valid_min)
        or (spec.valid_max is not None and value > spec.valid_max)
    ):
        return Quality.BAD_VALUE
    return declared


class JsonHandler:
    def __init__(self, ctrl: MqttJsonController, maps: dict[str, MetricMap], feeds: dict[str, StationFeed]):
        self.ctrl = ctrl
        self.prefix = ctrl.topic_prefix
        self.feeds = {ms.station: feeds[ms.station] for ms in ctrl.stations}
        # keyed by the name on the wire (`metric`, default the point name); samples carry the point name
        self.specs = {ms.station: {m.wire_name: m for m in maps[ms.map].metrics} for ms in ctrl.stations}

    def filters(self) -> list[str]:
        return [f"{self.prefix}/{st}/#" for st in self.feeds]  # `#` also matches the station topic itself

    def handle(self, rest: str, payload: bytes, now: datetime, reject: PartReject) -> list[Sample]:
        """`rest` is the topic after `{prefix}/`. `reject(reason, detail)` counts a partial rejection."""
        station, _, point = rest.partition("/")
        feed = self.feeds.get(station)
        if feed is None:
            raise Rejected("unknown station", f"no station {station!r} under {self.prefix}")
        if len(payload) > MAX_PAYLOAD:
            raise Rejected("too large", f"{len(payload)} bytes > {MAX_PAYLOAD}")
        if not payload.strip():
            if point == "status":  # an empty retained message is how a retained status is cleared
                raise Ignored("status cleared", f"{self.prefix}/{rest}: retained status removed")
            raise Rejected("empty", f"{len(payload)} bytes, no JSON document")
        if point == "status":
            text = payload.decode("utf-8", "replace").strip().strip('"').lower()
            if text == "offline":
                return feed.died(now, "status offline (the device's will)")
            if text == "online":
                feed.heard()
                return []
            raise Rejected("bad status", f"status must be online or offline, got {text[:40]!r}")
        body = loads(payload)
        if not isinstance(body, dict):
            raise Rejected("malformed JSON", f"expected an object, got {type(body).__name__}")
        specs = self.specs[station]
        if point:
            spec = specs.get(point)
            if spec is None:
                raise Rejected("unknown point", f"station {station} has no point {point!r}")
            unknown = set(body) - {"v", "ts", "q"}
            if "v" not in body or unknown:
                raise Rejected("malformed JSON", f"expected keys v, ts, q; got {sorted(body)[:8]}")
            at = parse_time(body.get("ts"), now)
            q = body.get("q", "good")
            declared = QUALITY_BY_LABEL.get(q) if isinstance(q, str) else None
            if declared is None:
                raise Rejected(
                    "bad quality", f"q must be one of {', '.join(QUALITY_BY_LABEL)}, got {q!r:.40}"
                )
            value = coerce(spec, body["v"])
            feed.heard()
            return feed.update({spec.name: (value, quality_of(spec, value, declared))}, at)
        values = body.get("values")
        if not isinstance(values, dict) or set(body) - {"ts", "values"}:
            raise Rejected("malformed JSON", 'expected {"ts": ..., "values": {point: value}}')
        at = parse_time(body.get("ts"), now)
        changes: dict[str, tuple[float | None, Quality]] = {}
        for name, raw in values.items():
            spec = specs.get(name)
            if spec is None:
                reject("unknown point", f"station {station} has no point {name!r:.80}")
                continue
            try:
                value = coerce(spec, raw)
            except Rejected as exc:
                reject(exc.reason, exc.detail)
                continue
            changes[spec.name] = (value, quality_of(spec, value, Quality.GOOD))
        feed.heard()
        return feed.update(changes, at) if changes else []
