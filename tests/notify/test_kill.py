"""SIGKILL the notifier process in the middle of a send: a new process takes the message over once the
lease runs out; nothing is lost, and the receiver, which drops repeats by Idempotency-Key, sees it once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from pumpwatch.alarms import store
from pumpwatch.core.db.engine import make_engine
from pumpwatch.core.db.migrate import upgrade
from pumpwatch.core.db.schema import notification
from tests.auth import SECRET
from tests.conftest import DEMO_FLEET, REPO
from tests.notify.conftest import HOOK_SECRET
from tests.notify.receivers import HttpReceiver

ONCALL = """\
notifier: {{group_wait_s: 0, retry: {{lease_s: 3}}}}
channels:
  hook: {{type: webhook, url: "{url}/hook", secret: {secret}, timeout_s: 60}}
people:
  - {{id: duty1, name: Duty One, tenant: kita, contacts: [{{channel: hook, to: duty1}}]}}
  - {{id: m1, name: Minami One, tenant: minami, contacts: [{{channel: hook, to: m1}}]}}
  - {{id: c1, name: Centre One, tenant: centre, contacts: [{{channel: hook, to: c1}}]}}
policies:
  - {{id: kita-std, tenant: kita, steps: [{{notify: [{{person: duty1}}], wait_min: 30}}], final: duty1}}
  - {{id: minami-std, tenant: minami, steps: [{{notify: [{{person: m1}}], wait_min: 30}}], final: m1}}
  - {{id: centre-std, tenant: centre, steps: [{{notify: [{{person: c1}}], wait_min: 30}}], final: c1}}
routing:
  - {{tenant: kita, policy: kita-std}}
  - {{tenant: minami, policy: minami-std}}
  - {{tenant: centre, policy: centre-std}}
"""


def _wait(cond, what: str, limit_s: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _notifier(fleet: Path, db_url: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PUMPWATCH_SECRET_KEY": SECRET, "PUMPWATCH_LOG_LEVEL": "INFO"}
    return subprocess.Popen(
        [sys.executable, "-m", "pumpwatch.app.cli", "notify", "run", "--fleet", str(fleet), "--db", db_url],
        cwd=REPO, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def test_sigkill_mid_send_loses_nothing_and_the_receiver_sees_one_message(
    db_url: str, tmp_path: Path
) -> None:
    hook = HttpReceiver(secret=HOOK_SECRET, delay_s=30).start()
    procs: list[subprocess.Popen] = []
    try:
        (tmp_path / "oncall.yaml").write_text(ONCALL.format(url=hook.url, secret=HOOK_SECRET))
        (tmp_path / "fleet.yaml").write_text(
            f"name: kill\ntenants: {DEMO_FLEET}/tenants.yaml\nstations: {DEMO_FLEET}/stations.yaml\n"
            f"controllers: {DEMO_FLEET}/controllers.yaml\nregister_maps: {DEMO_FLEET}/../maps\n"
            "oncall: oncall.yaml\n"
        )
        engine = make_engine(db_url)
        upgrade(engine)
        from pumpwatch.core import historian
        from pumpwatch.core.config import load_fleet

        historian.sync_catalog(engine, load_fleet(tmp_path))
        store.raise_alarm(
            engine, tenant_id="kita", station_id="KITA-MP-01", name="power_failure", priority="critical",
            message="mains lost", value=1.0, at=datetime.now(UTC),
        )  # fmt: skip
        log = tmp_path / "notifier.log"
        procs.append(_notifier(tmp_path / "fleet.yaml", db_url, log))
        _wait(lambda: hook.requests, "the first notifier to send")  # in flight: the receiver holds it
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(10)

        def rows() -> list[dict]:
            with engine.connect() as conn:
                return [dict(r._mapping) for r in conn.execute(select(notification))]

        [row] = rows()
        assert row["state"] == "pending" and row["attempts"] == 1  # stored, claimed, never recorded
        hook.delay_s = 0
        procs.append(_notifier(tmp_path / "fleet.yaml", db_url, log))
        _wait(lambda: rows()[0]["state"] == "sent", "the second notifier to take over", 90)
        [row] = rows()
        assert row["attempts"] == 2 and row["claimed_by"] != ""
        assert len(hook.requests) == 2  # sent twice (at least once) ...
        assert len(hook.unique_keys()) == 1  # ... one message to a receiver that drops repeats
        assert hook.bad_signatures == 0
        procs[1].send_signal(signal.SIGTERM)
        assert procs[1].wait(20) is not None
        engine.dispose()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        hook.stop()
