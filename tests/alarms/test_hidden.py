"""The one definition of a hidden alarm (alarms/hidden.py): the Python predicate and its SQL twin agree on
every combination of the columns it reads, with shelve ends around `now`, on SQLite and PostgreSQL; and the
three places that use it (the store's views, the API's `hidden` field, the notifier's mute) follow it."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import insert, select

from pumpwatch.alarms import store
from pumpwatch.alarms.hidden import hidden_clause, is_hidden, is_shelved, shelved_clause
from pumpwatch.alarms.notify import dispatcher
from pumpwatch.api.views import alarm_public
from pumpwatch.core.db.engine import make_engine
from pumpwatch.core.db.migrate import upgrade
from pumpwatch.core.db.schema import alarm

NOW = datetime(2026, 9, 1, 3, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)
SHELVE_KINDS = (None, "timed", "oneshot")
SHELVE_ENDS = (None, NOW - timedelta(hours=1), NOW - TICK, NOW, NOW + TICK, NOW + timedelta(hours=1))
SUPPRESSORS = (None, "power_failure")
OOS = (False, True)
COMBOS = list(itertools.product(SHELVE_KINDS, SHELVE_ENDS, SUPPRESSORS, OOS))
# the same instants seen from Tokyo: the rule compares instants, not wall-clock text
JST = timezone(timedelta(hours=9))


def _rows(engine) -> list[dict]:
    with engine.begin() as conn:
        for i, (kind, until, by, oos) in enumerate(COMBOS):
            conn.execute(
                insert(alarm).values(
                    tenant_id="kita",
                    station_id=f"S{i:03d}",
                    name="pump1_fault",
                    priority="high",
                    message="x",
                    state="unacked_active",
                    open=True,
                    active=True,
                    raised_at=NOW - timedelta(hours=2),
                    shelve_kind=kind,
                    shelved_until=until,
                    shelved_by="sato" if kind else None,
                    shelve_reason="test" if kind else None,
                    suppressed_by=by,
                    out_of_service=oos,
                )
            )
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(alarm).order_by(alarm.c.id))]


def test_python_and_sql_agree_on_every_combination(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    try:
        rows = _rows(engine)
        assert len(rows) == len(COMBOS) == 3 * 6 * 2 * 2
        for now in (NOW, NOW.astimezone(JST), NOW - TICK, NOW + timedelta(hours=1)):
            py = {r["id"]: is_hidden(r, now) for r in rows}
            py_shelved = {r["id"]: is_shelved(r, now) for r in rows}
            with engine.connect() as conn:
                stmt = select(
                    alarm.c.id,
                    hidden_clause(now).label("hidden"),
                    shelved_clause(now).label("shelved"),
                )
                sql = {r.id: (r.hidden, r.shelved) for r in conn.execute(stmt)}
            for r in rows:
                h, s = sql[r["id"]]
                # never NULL: a NULL would drop the row from both the open and the hidden list
                assert h is not None and s is not None, (now, r)
                assert bool(h) is py[r["id"]], (now, {k: r[k] for k in ("shelve_kind", "shelved_until")}, r)
                assert bool(s) is py_shelved[r["id"]], (now, r)
            # the store's views through the SQL twin: `open` and `hidden` split the open alarms exactly
            hidden = {a["id"] for a in store.list_alarms(engine, now=now, hidden=True, limit=10_000)}
            shown = {a["id"] for a in store.list_alarms(engine, now=now, hidden=False, limit=10_000)}
            assert hidden == {i for i, h in py.items() if h}
            assert shown == {i for i, h in py.items() if not h}
            # the API's field and the notifier's mute decide one row with the Python twin
            for r in rows:
                pub = alarm_public(r, now)
                assert pub.hidden is py[r["id"]]
                assert (pub.shelve_kind is not None) is py_shelved[r["id"]]
        # spot checks of the rule itself, so both twins being wrong the same way would still fail
        by = {
            (r["shelve_kind"], r["shelved_until"], r["suppressed_by"], r["out_of_service"]): r for r in rows
        }
        assert is_hidden(by[("timed", NOW + TICK, None, False)], NOW)
        assert not is_hidden(by[("timed", NOW, None, False)], NOW)  # the shelve's time is up at its end
        assert not is_hidden(by[("oneshot", None, None, False)], NOW)  # a shelve without an end hides nothing
        assert not is_hidden(by[(None, NOW + timedelta(hours=1), None, False)], NOW)
        assert is_hidden(by[(None, None, "power_failure", False)], NOW)
        assert is_hidden(by[(None, None, None, True)], NOW)
        assert not is_hidden(by[(None, None, None, False)], NOW)
    finally:
        engine.dispose()


def test_the_notifier_uses_the_one_definition() -> None:
    # the dispatcher keeps no copy of the rule (it had one): the escalation mute follows alarms/hidden.py
    assert dispatcher.is_hidden is is_hidden
    assert not hasattr(dispatcher, "hidden")
