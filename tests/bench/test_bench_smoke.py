"""`make bench` cannot rot unnoticed: every one of its sections runs here at a tiny size (`bench.run.SMOKE`,
seconds) and must complete and write its results. Nothing is timed: the figures of so small a run mean
nothing, and the machine is shared."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from bench import run
from tests.services import ADMIN_DSN, _admin_connect, free_port

# what each section needs besides Python: the database servers it writes into
NEEDS = {
    "collector": (),
    "ingest": ("postgres",),
    "alarms": ("postgres",),
    "trend": ("postgres",),
    "timescale": ("postgres", "timescale"),
    "api": (),
    "reports": ("postgres",),
}


def test_every_section_is_smoke_tested() -> None:
    assert set(NEEDS) == set(run.SECTIONS)


@pytest.mark.parametrize("section", run.SECTIONS)
async def test_bench_section_completes_and_writes_its_results(
    section: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for kind in NEEDS[section]:
        _admin_connect(kind).close()  # skips (fails under CI) with how to get the server
    monkeypatch.setattr(run, "PG_ADMIN", ADMIN_DSN["postgres"])
    monkeypatch.setattr(run, "TS_ADMIN", ADMIN_DSN["timescale"])
    sizes = dataclasses.replace(run.SMOKE, sim_base_port=free_port())  # the simulator's 4 ports from there up
    res = await run.main({section}, sizes, tmp_path, echo=False)
    written = json.loads((tmp_path / f"latest-{section}.json").read_text())
    assert written == json.loads(json.dumps(res))
    got = written[section]
    assert got, f"{section} wrote nothing"
    text = json.dumps(got)
    assert '"error"' not in text, text[:2000]
    md = (tmp_path / f"latest-{section}.md").read_text()
    assert md.startswith("# pumpwatch bench") and "\n## " in md, md
    if section == "collector":
        (row,) = got
        assert row["pumpwatch"]["stations_answered_first_cycle"] == row["stations"] == 4
        assert row["floor"]["polls_per_s"] > 0 and row["pumpwatch"]["polls_per_s"] > 0
    if section == "api":
        for key, _path in run.API_LISTS:
            assert got[key]["req_per_s_one_worker"] > 0, key
        assert got["stations_all_pages"]["stations"] == run.SMOKE.api_stations
        assert got["stream"]["snapshot_bytes"] > 0
