"""The historian schema: one SQLAlchemy Core `MetaData` for SQLite and PostgreSQL.

Tables are singular snake_case; every timestamp ends in `_at` and is a `UTCDateTime` (aware UTC).

- `tenant`, `station`, `point`: the catalogue, upserted from the fleet configuration (never deleted).
- `sample`: the history, keyed `(point_id, observed_at)` so replays are idempotent. No foreign key to `point`
  (ingest stays cheap) and the time column is part of the primary key, so a later migration can turn it into a
  TimescaleDB hypertable (`create_hypertable('sample', 'observed_at')`) without changing the API. PostgreSQL
  gets a BRIN index on `observed_at`; SQLite stores it `WITHOUT ROWID` (clustered on the key), nothing more.
- `latest_value`: one row per point, the newest sample, so "every station now" never scans history.
- `alarm`: one row per occurrence with its ISA-18.2 state (at most one open per `(station_id, name)`,
  enforced by a partial unique index), and `alarm_event`, its append-only journal (who, when, why).
- `station_mode` (out of service), `incident` with `incident_station` and `incident_note` (mass events).
- `notify_pending`, `escalation`, `notify_item`, `notification` (the outbox), `notification_alarm`: on-call
  notification (see the section below).
- `sample_1m`, `sample_1h`: rollups of `sample` per point and minute / hour (count, good count, sum, min,
  max of good values), kept by `pumpwatch.core.historian_scale.Rollups` on plain PostgreSQL so a month's trend
  reads 720 rows, not 2.6 million. (With TimescaleDB, continuous aggregates take their place.)
- `collector_shard` (one row per collector shard, its heartbeat) and `station_owner` (which shard polls a
  station): a dead shard is noticed by the others and the API; a station claimed twice is visible.
- `link_lease` (who polls a link now, its generation and expiry) and `lease_grant` (every grant): a dead
  collector's links are taken over, and writes are fenced by generation (`pumpwatch.core.leases`).
- `dead_letter` (rejected inputs, the newest N per source) and `rejection_count` (every rejection ever, by
  source and reason, and how many dead letters the bound dropped): the centre's data (`tenant_id` is the
  centre), written by `pumpwatch.core.rejections`. `service_heartbeat`: the notifier replicas' heartbeats, so
  any collector's system monitor notices a stopped notifier.

Objects that exist on one dialect only use `ddl_if(dialect=...)`; `include_object_for(dialect)` makes
Alembic's autogenerate and `compare_metadata` honour that (Alembic itself ignores `ddl_if`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
)

# Accounts, sessions and the audit log live in their own module, on the same `metadata`: importing this
# module gives the whole schema (Alembic's env, the drift test).
from pumpwatch.core.db import schema_security  # noqa: F401
from pumpwatch.core.db.base import metadata, sa_false, sa_true
from pumpwatch.core.db.types import UTCDateTime

tenant = Table(
    "tenant",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("timezone", Text, nullable=False),
)

station = Table(
    "station",
    metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, ForeignKey("tenant.id"), nullable=False),
    Column("name", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("power_area", Text, nullable=True),
    Column("lat", Double, nullable=True),
    Column("lon", Double, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_station_tenant_id", "tenant_id"),
)

point = Table(
    "point",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("station_id", Text, ForeignKey("station.id"), nullable=False),
    Column("name", Text, nullable=False),
    Column("unit", Text, nullable=True),
    Column("kind", Text, nullable=False),
    UniqueConstraint("station_id", "name"),
)

sample = Table(
    "sample",
    metadata,
    Column("point_id", Integer, primary_key=True, autoincrement=False),
    Column("observed_at", UTCDateTime, primary_key=True),
    Column("value", Double, nullable=True),
    Column("quality", SmallInteger, nullable=False),
    sqlite_with_rowid=False,
)
Index("ix_sample_observed_at", sample.c.observed_at, postgresql_using="brin").ddl_if(dialect="postgresql")

latest_value = Table(
    "latest_value",
    metadata,
    Column("point_id", Integer, primary_key=True, autoincrement=False),
    Column("observed_at", UTCDateTime, nullable=False),
    Column("value", Double, nullable=True),
    Column("quality", SmallInteger, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
)

alarm = Table(
    "alarm",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Text, nullable=False),
    Column("station_id", Text, nullable=False),
    Column("name", Text, nullable=False),  # the rule name, e.g. power_failure
    Column("priority", Text, nullable=False),
    Column("message", Text, nullable=False),
    # ISA-18.2 state: unacked_active | acked_active | unacked_rtn | normal. `open` while not normal.
    Column("state", Text, nullable=False, server_default="unacked_active"),
    Column("open", Boolean, nullable=False, server_default=sa_true()),
    Column("active", Boolean, nullable=False),  # the condition (or a latch holding it) is true
    Column("latched", Boolean, nullable=False, server_default=sa_false()),  # condition gone, awaits reset
    Column("raised_at", UTCDateTime, nullable=False),
    Column("last_raised_at", UTCDateTime, nullable=True),
    Column("raise_count", Integer, nullable=False, server_default="1"),
    Column("cleared_at", UTCDateTime, nullable=True),
    Column("value", Double, nullable=True),
    Column("acked_at", UTCDateTime, nullable=True),
    Column("acked_by", Text, nullable=True),
    Column("shelve_kind", Text, nullable=True),  # timed | oneshot
    Column("shelved_until", UTCDateTime, nullable=True),
    Column("shelved_by", Text, nullable=True),
    Column("shelve_reason", Text, nullable=True),
    Column("suppressed_by", Text, nullable=True),  # the alarm that suppresses it by design
    Column("out_of_service", Boolean, nullable=False, server_default=sa_false()),
    Column("incident_id", Integer, nullable=True),
    # the rule's input is not good (stale, comm_loss, ...) since then: the alarm holds, it cannot clear
    Column("input_not_good_since", UTCDateTime, nullable=True),
    Column("input_quality", Text, nullable=True),
    Column("drill_id", Integer, nullable=True),  # raised while a drill of its tenant ran (migration 0012)
)
Index(
    "uq_alarm_open_station_id_name",
    alarm.c.station_id,
    alarm.c.name,
    unique=True,
    sqlite_where=alarm.c.open,
    postgresql_where=alarm.c.open,
)
Index("ix_alarm_tenant_id_open", alarm.c.tenant_id, alarm.c.open)

alarm_event = Table(
    "alarm_event",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alarm_id", Integer, ForeignKey("alarm.id"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    # raise | clear | ack | reset | shelve | unshelve | suppress | unsuppress | out_of_service | in_service
    # | notified (a message about it was delivered; alarms/notify)
    Column("kind", Text, nullable=False),
    Column("detail", Text, nullable=True),
    Column("actor", Text, nullable=True),  # who (None: the system)
    Column("state", Text, nullable=True),  # the alarm's state after the event
    Column("value", Double, nullable=True),
    Index("ix_alarm_event_alarm_id", "alarm_id"),
    Index("ix_alarm_event_at", "at"),
)

station_mode = Table(
    "station_mode",
    metadata,
    Column("station_id", Text, primary_key=True),
    Column("out_of_service", Boolean, nullable=False),
    Column("reason", Text, nullable=True),
    Column("actor", Text, nullable=True),
    Column("since", UTCDateTime, nullable=False),
    Column("until", UTCDateTime, nullable=True),
)

incident = Table(
    "incident",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Text, nullable=False),
    Column("kind", Text, nullable=False),  # e.g. area_power_outage
    Column("power_area", Text, nullable=True),
    Column("title", Text, nullable=False),
    # report | first_response | restoration | cause | prevention | closed
    Column("phase", Text, nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("first_response_at", UTCDateTime, nullable=True),
    Column("restored_at", UTCDateTime, nullable=True),
    Column("closed_at", UTCDateTime, nullable=True),
    Column("drill_id", Integer, nullable=True),  # opened while a drill of its tenant ran
    Index("ix_incident_tenant_id_phase", "tenant_id", "phase"),
)

incident_station = Table(
    "incident_station",
    metadata,
    Column("incident_id", Integer, ForeignKey("incident.id"), primary_key=True),
    Column("station_id", Text, primary_key=True),
    Column("joined_at", UTCDateTime, nullable=False),
    Column("restored_at", UTCDateTime, nullable=True),
)

incident_note = Table(
    "incident_note",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", Integer, ForeignKey("incident.id"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("phase", Text, nullable=False),
    Column("actor", Text, nullable=True),
    Column("text", Text, nullable=False),
    Index("ix_incident_note_incident_id", "incident_id"),
)


# --- on-call notification (alarms/notify) ---------------------------------------------------------------
# `notify_pending` is written in the same transaction as each journal entry (alarms/store.py), so the
# notifier never misses an alarm transition even if it was down; it deletes a row once it has acted on it.
# `escalation` is one per notified alarm occurrence; `notify_item` queues what a person must be told until
# the person's group window flushes it into one `notification` (the durable outbox) per contact attempt;
# `notification_alarm` links a (summary) message to every alarm it covers.

notify_pending = Table(
    "notify_pending",
    metadata,
    Column("event_id", Integer, ForeignKey("alarm_event.id"), primary_key=True, autoincrement=False),
    Column("created_at", UTCDateTime, nullable=False),
)

escalation = Table(
    "escalation",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alarm_id", Integer, ForeignKey("alarm.id"), nullable=False),
    Column("tenant_id", Text, nullable=False),
    Column("route", Text, nullable=False),  # which route matched, for the record
    Column("policy", Text, nullable=False),
    # active | muted (shelved, suppressed, out of service) | acked | resolved | exhausted
    Column("state", Text, nullable=False),
    Column("step", Integer, nullable=False, server_default="0"),  # the next step to fire
    Column("loop", Integer, nullable=False, server_default="0"),
    Column("next_at", UTCDateTime, nullable=True),
    Column("started_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("acked_by", Text, nullable=True),
    Column("acked_at", UTCDateTime, nullable=True),
    UniqueConstraint("alarm_id"),
    Index("ix_escalation_state_next_at", "state", "next_at"),
)

notify_item = Table(
    "notify_item",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("person", Text, nullable=False),
    Column("tenant_id", Text, nullable=False),
    Column("alarm_id", Integer, ForeignKey("alarm.id"), nullable=True),
    Column("escalation_id", Integer, nullable=True),
    Column("kind", Text, nullable=False),  # alert | final | ack | rtn
    Column("step", Integer, nullable=True),
    Column("priority", Text, nullable=True),
    Column("detail", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("notification_id", Integer, nullable=True),  # set when flushed into a message
    Index("ix_notify_item_person_notification_id", "person", "notification_id"),
    Index("ix_notify_item_alarm_id", "alarm_id"),
)

notification = Table(
    "notification",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dedupe_key", Text, nullable=False),  # Message-ID / Idempotency-Key derive from it
    Column("tenant_id", Text, nullable=False),
    Column("person", Text, nullable=False),
    Column("kind", Text, nullable=False),  # alarm | test
    Column("channel", Text, nullable=False),
    Column("recipient", Text, nullable=False),
    Column("contact_index", Integer, nullable=False, server_default="0"),
    Column("origin_id", Integer, nullable=True),  # the primary message a fallback stands in for
    Column("subject", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("short", Text, nullable=False),  # the SMS / chat text
    # pending | sent | failed (gave up on this contact) | cancelled (acknowledged before it went out)
    Column("state", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("max_attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("claimed_until", UTCDateTime, nullable=True),
    Column("claimed_by", Text, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("link_used_at", UTCDateTime, nullable=True),  # its ack link acknowledged: the link is spent
    UniqueConstraint("dedupe_key"),
    Index("ix_notification_state_next_attempt_at", "state", "next_attempt_at"),
    Index("ix_notification_person_created_at", "person", "created_at"),
)

notification_alarm = Table(
    "notification_alarm",
    metadata,
    Column("notification_id", Integer, ForeignKey("notification.id"), primary_key=True),
    Column("alarm_id", Integer, ForeignKey("alarm.id"), primary_key=True),
    Index("ix_notification_alarm_alarm_id", "alarm_id"),
)


def _rollup(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("point_id", Integer, primary_key=True, autoincrement=False),
        Column("bucket_at", UTCDateTime, primary_key=True),
        Column("n", Integer, nullable=False),  # samples in the bucket
        Column("good", Integer, nullable=False),  # of good quality (sum/min/max are over these)
        Column("sum", Double, nullable=True),
        Column("min", Double, nullable=True),
        Column("max", Double, nullable=True),
        sqlite_with_rowid=False,
    )


sample_1m = _rollup("sample_1m")
sample_1h = _rollup("sample_1h")

collector_shard = Table(
    "collector_shard",
    metadata,
    Column("shard", Integer, primary_key=True, autoincrement=False),
    Column("shard_count", Integer, nullable=False),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
    Column("interval_s", Double, nullable=False),  # dead after three missed beats
    Column("stations", Integer, nullable=False),
    Column("polls", BigInteger, nullable=False),
    Column("late_polls", BigInteger, nullable=False),
    Column("spool_rows", BigInteger, nullable=False),
    Column("historian_state", Text, nullable=False),
)

station_owner = Table(
    "station_owner",
    metadata,
    Column("station_id", Text, primary_key=True),
    Column("shard", Integer, nullable=False),
    Column("shard_count", Integer, nullable=False),
    Column("claimed_at", UTCDateTime, nullable=False),
)

# Leases on links (a Modbus endpoint: one device or a gateway), pumpwatch.core.leases: who polls a link now,
# under which generation, until when; every grant is kept, so a write can be fenced by the generation it was
# read under (a sample of generation g stands only if read between g's grant and the next one's).
link_lease = Table(
    "link_lease",
    metadata,
    Column("link_id", Text, primary_key=True),
    Column("owner", Text, nullable=True),  # a collector id (shard-0, standby-a); None: released
    Column("generation", BigInteger, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("renewed_at", UTCDateTime, nullable=True),
    Column("wanted_by", Text, nullable=True),  # the link's home collector asks for it back
)

lease_grant = Table(
    "lease_grant",
    metadata,
    Column("link_id", Text, primary_key=True),
    Column("generation", BigInteger, primary_key=True, autoincrement=False),
    Column("owner", Text, nullable=False),
    Column("granted_at", UTCDateTime, nullable=False),
    Column("previous_owner", Text, nullable=True),
    Column("previous_expired_at", UTCDateTime, nullable=True),  # when the lease it replaced lapsed
)

# --- rejected input and service heartbeats (pumpwatch.core.rejections, alarms.system_monitor) ------------

dead_letter = Table(
    "dead_letter",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Text, nullable=True),  # the centre (row-level security); None: no centre declared
    Column("source", Text, nullable=False),  # the controller id (or "unconfigured")
    Column("topic", Text, nullable=False),  # MQTT topic, or "unit 3 holding_register 100+20" for Modbus
    Column("reason", Text, nullable=False),  # not finite | empty | wrong type | unknown point | ...
    Column("detail", Text, nullable=False),
    Column("payload_excerpt", Text, nullable=False),  # bounded, secrets redacted (pumpwatch.core.rejections)
    Column("payload_bytes", Integer, nullable=False),  # the whole payload's size
    Column("at", UTCDateTime, nullable=False),  # when it was received
    Index("ix_dead_letter_source_id", "source", "id"),
)

rejection_count = Table(
    "rejection_count",
    metadata,
    Column("source", Text, primary_key=True),
    Column("reason", Text, primary_key=True),
    Column("tenant_id", Text, nullable=True),
    Column("count", BigInteger, nullable=False),  # every rejection of this source and reason
    Column("dropped", BigInteger, nullable=False),  # of them, dead letters not kept (bound, outage)
    Column("first_at", UTCDateTime, nullable=False),
    Column("last_at", UTCDateTime, nullable=False),
)

service_heartbeat = Table(
    "service_heartbeat",
    metadata,
    Column("kind", Text, primary_key=True),  # notifier
    Column("instance", Text, primary_key=True),  # host:pid
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
    Column("interval_s", Double, nullable=False),
)


# --- drills and mobile resources (issue 18; pumpwatch.core.drills, pumpwatch.core.resources) -----------
# A drill runs a scenario file on a simulated fleet for one tenant: while it runs (`stopped_at` null) the
# tenant's new alarms and incidents carry its id. `drill_event` is its journal (start, each fault, each
# simulated spill, stop). A mobile resource (portable generator, vacuum truck) is configured per tenant
# (resources.yaml); `resource_assignment` sends one to a station and `resource_event` journals each state
# (dispatched → on_site → running → returned) with who and when.

drill = Table(
    "drill",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("scenario", Text, nullable=False),  # the file as given (YAML)
    Column("notify", Text, nullable=False),  # drill_contacts | normal
    Column("contacts", Text, nullable=False),  # on-call person ids, comma-separated
    Column("started_at", UTCDateTime, nullable=False),
    Column("started_by", Text, nullable=True),
    Column("ends_at", UTCDateTime, nullable=False),
    Column("stopped_at", UTCDateTime, nullable=True),
    Column("stopped_by", Text, nullable=True),
    Column("outcome", Text, nullable=True),  # completed | stopped | abandoned (the process ended)
    Index("ix_drill_tenant_id_stopped_at", "tenant_id", "stopped_at"),
)

drill_event = Table(
    "drill_event",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("drill_id", Integer, ForeignKey("drill.id"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("kind", Text, nullable=False),  # start | fault | spill | spill_end | stop
    Column("station_id", Text, nullable=True),
    Column("label", Text, nullable=False),
    Column("actor", Text, nullable=True),
    Index("ix_drill_event_drill_id", "drill_id"),
)

resource_assignment = Table(
    "resource_assignment",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Text, nullable=False),
    Column("resource_id", Text, nullable=False),
    Column("station_id", Text, nullable=False),
    Column("state", Text, nullable=False),  # dispatched | on_site | running | returned
    Column("assigned_at", UTCDateTime, nullable=False),
    Column("assigned_by", Text, nullable=True),
    Column("eta_at", UTCDateTime, nullable=False),  # assigned_at + the travel time estimate
    Column("travel_s", Double, nullable=False),
    # when the station was expected to spill as it was sent (its time to overflow then; None: not known)
    Column("spill_expected_at", UTCDateTime, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("open", Boolean, nullable=False, server_default=sa_true()),  # not returned yet
    Column("drill_id", Integer, nullable=True),
    Index("ix_resource_assignment_tenant_id_open", "tenant_id", "open"),
)
Index(
    "uq_resource_assignment_open_resource_id",
    resource_assignment.c.resource_id,
    unique=True,
    sqlite_where=resource_assignment.c.open,
    postgresql_where=resource_assignment.c.open,
)

resource_event = Table(
    "resource_event",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("assignment_id", Integer, ForeignKey("resource_assignment.id"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("state", Text, nullable=False),
    Column("actor", Text, nullable=True),
    Index("ix_resource_event_assignment_id", "assignment_id"),
)


def include_object_for(dialect_name: str) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """An Alembic `include_object` hook: skip objects whose `ddl_if(dialect=...)` excludes `dialect_name`.

    Without it the PostgreSQL-only BRIN index would show up as missing on SQLite.
    """

    def hook(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        ddl_if = getattr(obj, "_ddl_if", None)
        if reflected or ddl_if is None or ddl_if.dialect is None:
            return True
        wanted = ddl_if.dialect
        return dialect_name == wanted if isinstance(wanted, str) else dialect_name in wanted

    return hook
