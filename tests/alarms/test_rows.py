"""Typed rows stay true to what they type: the alarm row to the `alarm` table, the shown qualities to the
sample qualities (mypy trusts both declarations; these tests keep them honest)."""

from __future__ import annotations

import typing

from pumpwatch.alarms.status import ShownQuality
from pumpwatch.alarms.store import AlarmRow, JournalRow
from pumpwatch.core.db.schema import alarm, alarm_event
from pumpwatch.core.sample import Quality


def test_the_alarm_row_has_every_column_of_the_alarm_table_and_no_other() -> None:
    assert set(AlarmRow.__annotations__) == {c.name for c in alarm.columns}


def test_the_alarm_rows_nullable_fields_are_the_tables_nullable_columns() -> None:
    hints = typing.get_type_hints(AlarmRow)
    optional = {k for k, t in hints.items() if type(None) in typing.get_args(t)}
    assert optional == {c.name for c in alarm.columns if c.nullable and not c.primary_key}


def test_every_sample_quality_is_a_shown_quality() -> None:
    shown = set(typing.get_args(ShownQuality))
    assert {q.label for q in Quality} <= shown
    assert shown - {q.label for q in Quality} == {"no_data"}  # never read: not a sample's quality


def test_the_journal_row_is_the_event_with_its_alarms_names() -> None:
    of_alarm = {"tenant_id", "station_id", "name", "priority", "drill_id"}
    joined = {c.name for c in alarm_event.columns} | of_alarm
    assert set(JournalRow.__annotations__) == joined
