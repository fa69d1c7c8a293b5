"""The kernel: what every part shares and nothing above it is needed for.

Configuration (`config/`), the clock, the sample type (`sample`), storage (`db/`, `migrations/`, the
historian and its writer, spool, rollups and TimescaleDB set-up, the live snapshot, audit, rejected input,
shard heartbeats), hydraulics, metrics primitives, the process settings and the field-write rules
(`writable`). It imports nothing of `pumpwatch.protocols`, the parts or `pumpwatch.app`
(docs/architecture.md).
"""
