"""What row-level security costs on `sample` (PostgreSQL): history reads as the owner vs as the app role.

    .venv/bin/python -m tests.security.rls_cost [samples_per_point]

Writes 12 stations × 4 points × N samples (1 s apart), then times, best of 5, the API's history query
(raw one hour; 500 buckets over the whole range) and the latest-value read, as the owner (no RLS) and as
`pumpwatch_app` with one tenant in scope (policy: point_id IN (tenant's points), a hashed subplan).
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta

from pumpwatch.api.context import ApiContext  # noqa: F401  (imports the schema the same way the API does)
from pumpwatch.core import historian
from pumpwatch.core.config import load_fleet
from pumpwatch.core.db import rls
from pumpwatch.core.db.engine import make_engine
from pumpwatch.core.db.migrate import upgrade
from tests.conftest import DEMO_FLEET
from tests.services import create_database, drop_database

T0 = datetime(2026, 9, 1, tzinfo=UTC)


def best(fn, n: int = 5) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times) * 1000


def main(per_point: int) -> None:
    name, url = create_database()
    try:
        owner = make_engine(url)
        upgrade(owner)
        fleet = load_fleet(DEMO_FLEET)
        catalog = historian.sync_catalog(owner, fleet)
        pids = [
            pid
            for (sid, p), pid in catalog.items()
            if p in ("wet_well_level_m", "pump1_current_a", "pump2_current_a", "mains_failed")
        ]
        for pid in pids:
            for lo in range(0, per_point, 50_000):
                rows = [
                    (pid, T0 + timedelta(seconds=s), float(s % 100), 0)
                    for s in range(lo, min(per_point, lo + 50_000))
                ]
                historian.write_samples(owner, rows)
        with owner.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        app = rls.app_engine(url + "?options=-c%20role%3D" + rls.APP_ROLE)
        pid = catalog[("KITA-MP-01", "wet_well_level_m")]
        end = T0 + timedelta(seconds=per_point)
        print(f"{len(pids)} points × {per_point} samples = {len(pids) * per_point} rows in sample")
        for label, start, maxp in (
            ("raw 1 h", end - timedelta(hours=1), 10_000),
            ("500 buckets, whole range", T0, 500),
        ):
            o = best(lambda s=start, m=maxp: historian.read_history(owner, pid, s, end, m))
            rls.set_scope({"kita"})
            a = best(lambda s=start, m=maxp: historian.read_history(app, pid, s, end, m))
            n = len(historian.read_history(app, pid, start, end, maxp))
            print(f"history {label}: owner {o:.1f} ms, app role {a:.1f} ms ({n} rows)")
        o = best(lambda: historian.read_latest(owner))
        a = best(lambda: historian.read_latest(app))
        print(
            f"latest values: owner {o:.1f} ms, app role {a:.1f} ms ({len(historian.read_latest(app))} of "
            f"{len(historian.read_latest(owner))} points visible)"
        )
        app.dispose()
        owner.dispose()
    finally:
        drop_database(name)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
