"""`pumpwatch report`: a file per report, audited; precise errors with exit status 2."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select

from pumpwatch.app.cli import main
from pumpwatch.core.db import make_engine, upgrade
from pumpwatch.core.db.schema_security import audit_log
from tests.conftest import DEMO_FLEET


def test_report_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    upgrade(url)
    args = ["report", "--fleet", str(DEMO_FLEET), "--db", url, "--tenant", "kita", "--period", "2026-11-03"]
    r = CliRunner().invoke(main, [*args, "--format", "csv", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    out = tmp_path / "kita_2026-11-03.csv"
    assert out.read_text().startswith("tenant,period,station_id") and "8 stations" in r.output
    r = CliRunner().invoke(main, [*args, "--station", "MINAMI-MP-01"])
    assert r.exit_code == 2 and "unknown station 'MINAMI-MP-01'" in r.output
    r = CliRunner().invoke(main, [*args[:-1], "2026-11-31"])
    assert r.exit_code == 2 and "expected a day YYYY-MM-DD or a month YYYY-MM" in r.output
    eng = make_engine(url)
    with eng.connect() as conn:
        who = conn.execute(
            select(audit_log.c.username, audit_log.c.target).where(audit_log.c.action == "report.generate")
        ).all()
    eng.dispose()
    assert len(who) == 1 and who[0].username.startswith("cli:") and who[0].target == "2026-11-03"
