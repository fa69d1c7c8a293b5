"""The daily schedule: at 06:00 JST the previous day's report goes by e-mail (a real SMTP server on
loopback) with the file attached; the delivery is audited and read back, so a second run sends nothing; an
SMTP outage is recorded as an error and retried after `retry_s`."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from pumpwatch.alarms.notify.config import EmailChannel
from pumpwatch.core.db.schema_security import audit_log
from pumpwatch.reports.definitions import Definitions
from pumpwatch.reports.errors import DefinitionError
from pumpwatch.reports.schedule import ScheduleDef, due_period, load_schedules, recent_deliveries, run_due
from tests.notify.receivers import SmtpServer
from tests.reports.conftest import DAY, JST

SCHED = ScheduleDef(
    id="kita-daily", tenant="kita", channel="mail", to=["gesuido@kita.example.jp"], at="06:00"
)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    s = SmtpServer()
    s.start()
    yield s
    s.stop()


def _channels(smtp: SmtpServer) -> dict:
    return {
        "mail": EmailChannel.model_validate(
            {"type": "email", "host": "127.0.0.1", "port": smtp.port, "from": "pumpwatch@kita.example.jp"}
        )
    }


def test_due_periods() -> None:
    at = lambda *a: datetime(*a, tzinfo=JST)  # noqa: E731
    assert due_period(SCHED, "Asia/Tokyo", at(2026, 11, 4, 6, 0))[0].name == "2026-11-03"
    assert due_period(SCHED, "Asia/Tokyo", at(2026, 11, 4, 5, 59))[0].name == "2026-11-02"  # before 06:00
    monthly = SCHED.model_copy(update={"period": "month"})
    assert due_period(monthly, "Asia/Tokyo", at(2026, 12, 1, 6, 0))[0].name == "2026-11"
    assert due_period(monthly, "Asia/Tokyo", at(2026, 12, 1, 5, 0))[0].name == "2026-10"
    assert due_period(monthly, "Asia/Tokyo", at(2026, 12, 17, 12, 0))[0].name == "2026-11"


async def test_daily_report_by_mail(day, defs: Definitions, smtp: SmtpServer) -> None:
    eng, fleet, _ = day
    now = datetime.combine(DAY + timedelta(days=1), datetime.min.time(), tzinfo=JST) + timedelta(
        hours=6, minutes=1
    )
    done = await run_due(eng, fleet, defs, [SCHED], _channels(smtp), now)
    assert [d.result for d in done] == ["ok"], done
    [mail] = smtp.to("gesuido@kita.example.jp")
    assert "運転日報" in mail["Subject"] and "2026-11-03" in mail["Subject"]
    assert "北1丁目 (KITA-MP-01)" in mail.get_body().get_content()
    [att] = list(mail.iter_attachments())
    assert att.get_filename() == "kita_2026-11-03.xlsx"
    wb = load_workbook(io.BytesIO(att.get_content()))
    assert "KITA-MP-01" in wb.sheetnames
    # the next run (a restart, another minute) reads the delivery back from the audit log
    again = await run_due(eng, fleet, defs, [SCHED], _channels(smtp), now + timedelta(minutes=5))
    assert [d.detail for d in again] == ["already delivered"] and len(smtp.messages) == 1
    with eng.connect() as conn:
        acts = conn.execute(
            select(audit_log.c.action, audit_log.c.username).where(audit_log.c.target.like("%2026-11-03%"))
        ).all()
    assert ("report.generate", "schedule:kita-daily") in acts and (
        "report.deliver",
        "schedule:kita-daily",
    ) in acts


async def test_smtp_outage_is_recorded_and_retried(day, defs: Definitions, smtp: SmtpServer) -> None:
    eng, fleet, _ = day
    sched = SCHED.model_copy(update={"id": "kita-retry"})
    now = datetime(2026, 11, 4, 7, 0, tzinfo=JST)
    smtp.stop()
    [d] = await run_due(eng, fleet, defs, [sched], _channels(smtp), now)
    assert d.result == "error" and "NotifyError" in d.detail
    shown = recent_deliveries(eng, "kita")
    assert shown[0]["result"] == "error" and shown[0]["target"] == "kita-retry:2026-11-03"
    smtp.start()
    [d] = await run_due(eng, fleet, defs, [sched], _channels(smtp), now + timedelta(minutes=1))
    assert d.detail == "waiting to retry" and not smtp.messages
    [d] = await run_due(eng, fleet, defs, [sched], _channels(smtp), now + timedelta(minutes=11))
    assert d.result == "ok" and len(smtp.messages) == 1


def test_schedule_file_errors(day, tmp_path: Path) -> None:
    _, fleet, _ = day
    f = tmp_path / "schedules.yaml"
    f.write_text("schedules:\n  - {id: a, tenant: nowhere, channel: log, to: [x@y.jp]}\n")
    with pytest.raises(
        DefinitionError,
        match=r"schedules.0.tenant: no tenant 'nowhere'.*schedules.0.channel: 'log' is not an e-mail",
    ):
        load_schedules(f, fleet, {"log": object()})
