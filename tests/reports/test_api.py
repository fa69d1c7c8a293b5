"""GET /api/v1/reports: tenant-scoped (another tenant's station or tenant: 404), each format, precise
errors (422) for a bad period or format, every generation in the audit log."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from pumpwatch.core import historian
from pumpwatch.core.db.schema_security import audit_log
from tests.auth import bearer
from tests.security.conftest import T0, Api, make_api

DAY = (T0 - timedelta(days=2)).date().isoformat()  # T0 is 2026-09-01 00:00 UTC = 09:00 JST


@pytest.fixture
async def api(sqlite_url: str) -> AsyncIterator[Api]:
    a, _ = await make_api(sqlite_url)
    async with a.client:
        yield a
    a.engine.dispose()


def _fill(api: Api) -> None:
    """00:00–03:00 JST of DAY, every 2 s (the demo fleet's poll): the counter rises once an hour."""
    ids = historian.sync_catalog(api.engine, api.fleet)
    start = T0 - timedelta(days=2, hours=9)  # 2026-08-30 00:00 JST
    rows = []
    for i in range(0, 3 * 3600, 2):
        t = start + timedelta(seconds=i)
        rows.append((ids[("KITA-MP-01", "pump1_starts")], t, float(i // 3600), 0))
        rows.append((ids[("KITA-MP-01", "wet_well_level_m")], t, 0.8, 0))
    historian.write_samples(api.engine, rows)


async def test_report_formats_and_audit(api: Api) -> None:
    _fill(api)
    tok = await api.token("kita-view")
    r = await api.client.get(
        f"/api/v1/reports/kita?period={DAY}&format=json&station=KITA-MP-01", headers=bearer(tok)
    )
    assert r.status_code == 200, r.text
    body = r.json()
    st = body["stations"][0]
    assert body["period"] == DAY and body["timezone"] == "Asia/Tokyo" and not body["provisional"]
    assert st["total"]["values"]["pump1_starts"] == 2.0  # 0 → 2 over three hours
    assert st["rows"][3]["status"] == "no_data" and st["rows"][3]["values"]["pump1_starts"] is None
    assert st["total"]["completeness"] == pytest.approx(100 * 3 / 24)
    assert st["rows"][0]["values"]["pump1_starts"] == 0.0 and st["rows"][1]["values"]["pump1_starts"] == 1.0
    r = await api.client.get(f"/api/v1/reports/kita?period={DAY}&format=xlsx", headers=bearer(tok))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert f'filename="kita_{DAY}.xlsx"' in r.headers["content-disposition"]
    wb = load_workbook(io.BytesIO(r.content))
    assert "KITA-MP-01" in wb.sheetnames and "MINAMI-MP-01" not in wb.sheetnames
    r = await api.client.get(f"/api/v1/reports/kita?period={DAY}&format=csv&locale=en", headers=bearer(tok))
    assert r.status_code == 200 and r.text.startswith("tenant,period,station_id")
    with api.engine.connect() as conn:
        rows = conn.execute(
            select(
                audit_log.c.username,
                audit_log.c.action,
                audit_log.c.tenant_id,
                audit_log.c.target,
                audit_log.c.detail,
            )
            .where(audit_log.c.action == "report.generate")
            .order_by(audit_log.c.id)
        ).all()
    assert [(u, t) for u, _, t, _, _ in rows] == [("kita-view", "kita")] * 3
    assert rows[0].target == f"{DAY}:KITA-MP-01" and "format=csv" in rows[2].detail


async def test_month_pdf(api: Api) -> None:
    tok = await api.token("kita-view")
    r = await api.client.get(
        f"/api/v1/reports/kita?period={DAY[:7]}&format=pdf&station=KITA-MP-01", headers=bearer(tok)
    )
    assert r.status_code == 200 and r.content[:5] == b"%PDF-"


async def test_tenant_scoping(api: Api) -> None:
    tok = await api.token("kita-view")
    for url in (
        f"/api/v1/reports/kita?period={DAY}&station=MINAMI-MP-01",  # another tenant's station
        f"/api/v1/reports/kita?period={DAY}&station=NOWHERE",
        f"/api/v1/reports/minami?period={DAY}",  # another tenant
        f"/api/v1/reports/nowhere?period={DAY}",
    ):
        r = await api.client.get(url, headers=bearer(tok))
        assert r.status_code == 404, (url, r.text)
        assert r.json()["detail"] == "not found"
    r = await api.client.get(f"/api/v1/reports/kita?period={DAY}")
    assert r.status_code == 401
    r = await api.client.get("/api/v1/reports", headers=bearer(tok))
    assert r.status_code == 200
    kinds = {k for t in r.json()["templates"] for k in t["kinds"]}
    assert kinds == {"manhole_pump", "relay_pump", "stormwater_pump", "treatment_plant"}


async def test_bad_input_is_precise(api: Api) -> None:
    tok = await api.token("kita-view")
    for query, needle in (
        ("period=2026-13", "expected a day"),
        ("period=2026-02-30", "expected a day"),
        ("period=2099-01-01", "has not begun"),
    ):
        r = await api.client.get(f"/api/v1/reports/kita?{query}", headers=bearer(tok))
        assert r.status_code == 422 and needle in r.text, (query, r.text)
    for query in (
        "period=yesterday",
        f"period={DAY}&format=docx",
        f"period={DAY}&locale=fr",
        f"period={DAY}&station=a;b",
    ):
        r = await api.client.get(f"/api/v1/reports/kita?{query}", headers=bearer(tok))
        assert r.status_code == 422, (query, r.text)
