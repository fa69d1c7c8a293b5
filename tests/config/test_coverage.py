"""Alarm coverage as a checked property (issue 12): `check-config` prints which safety functions each station
has armed, and by what; it exits 1 when one is neither armed nor waived, and `pumpwatch run` refuses to start.
Fleets are edited as a user would edit them (the YAML files), and the command runs as a subprocess."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from pumpwatch.api.main import create_app
from pumpwatch.app.system import System
from pumpwatch.core.clock import FakeClock
from pumpwatch.core.config import load_fleet
from tests.auth import log_in
from tests.config.test_fleet_config import edit
from tests.conftest import DEMO_FLEET, REPO

CITY_FLEET = REPO / "deploy" / "config" / "city"
MAPS = DEMO_FLEET.parent / "maps"
RULES = DEMO_FLEET.parent / "rules"
NO_CT_REASON = (
    "Panel of 1998 has no current transformers; CTs come with the 2027 renewal (K. Sato, 2026-06-01)"
)


@pytest.fixture
def fleet_dir(tmp_path: Path) -> Path:
    shutil.copytree(DEMO_FLEET, tmp_path / "demo")
    shutil.copytree(MAPS, tmp_path / "maps")
    shutil.copytree(RULES, tmp_path / "rules")
    return tmp_path / "demo"


def pumpwatch(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pumpwatch.app.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def row(out: str, group: str, function: str) -> str:
    """The summary row of `function` in the block of station type `group`."""
    block = out.split(f"\n{group} · ", 1)[1].split("\n\n", 1)[0]
    (line,) = [ln for ln in block.splitlines() if re.match(rf"\s+{re.escape(function)}\s{{2,}}", ln)]
    return line


def line_of(problem: str, path: Path) -> str:
    """The text of the file line a `file:line ...` problem points at."""
    n = int(problem.split(f"{path.resolve()}:", 1)[1].split()[0].rstrip(":"))
    return path.read_text().splitlines()[n - 1]


@pytest.mark.parametrize("fleet", [DEMO_FLEET, CITY_FLEET], ids=["demo", "city"])
def test_shipped_fleets_arm_every_safety_function_without_waivers(fleet: Path) -> None:
    r = pumpwatch("check-config", fleet)
    assert r.returncode == 0, r.stderr
    head = r.stdout.splitlines()[0]
    assert "0 waived, 0 unarmed" in head, head
    assert r.stdout.rstrip().endswith(": OK")
    assert re.search(r"power_failure\s+armed\s+power_failure ← mains_failed", r.stdout)
    assert re.search(
        r"fails_to_run \(pump 2\)\s+armed\s+pump2_fails_to_run ← derived from pump2_running, pump2_current_a",
        r.stdout,
    )
    if fleet == CITY_FLEET:  # every kind: relay (two gauges), stormwater (river), plants (inflow)
        assert re.search(
            r"high_water_level\s+armed\s+high_water ← well_level_1_m; high_water_gauge2", r.stdout
        )
        assert re.search(r"river_level\s+armed\s+curtailment ← curtailment_active", r.stdout)
        assert re.search(r"inflow_high\s+armed\s+inflow_high ← influent_flow_m3_h", r.stdout)


def test_a_map_without_mains_failed_is_unarmed_and_run_refuses(fleet_dir: Path, tmp_path: Path) -> None:
    m = fleet_dir.parent / "maps" / "mps-canonical.yaml"
    edit(
        m,
        "  - {name: mains_failed, table: discrete_input, address: 0, type: bool,",
        "  # - {name: mains_failed, table: discrete_input, address: 0, type: bool,",
    )
    r = pumpwatch("check-config", fleet_dir)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "NOT SAFE TO RUN" in r.stdout
    # KITA-MP-01 (mps-ref) reads mps-canonical; KITA-MP-05 (mps-ref) the float map, which has the point
    mps_ref = row(r.stdout, "mps-ref", "power_failure")
    assert "UNARMED" in mps_ref and "no point 'mains_failed' in the station's maps" in mps_ref
    assert "exceptions:" in r.stdout and re.search(r"KITA-MP-05 power_failure\s+armed", r.stdout)
    # the rules dropped for want of the point are listed, with how many stations of the type lack them
    assert re.search(
        r"rule not applied: power_failure: no point 'mains_failed' .* \(4 of 6 stations\)", r.stdout
    )
    # every station, function and why, at the station's line
    probs = [p for p in r.stderr.splitlines() if "is not armed" in p]
    kita1 = next(p for p in probs if "station KITA-MP-01:" in p)
    assert (
        "safety function power_failure" in kita1
        and "mains_failed" in kita1
        and "mps-canonical via kita-01" in kita1
    )
    assert "KITA-MP-01" in line_of(kita1, fleet_dir / "stations.yaml")
    # the analyzer needing it is unarmed too: pumps_not_restarted reads mains_failed
    assert any("station KITA-MP-01: safety function no_restart_after_power" in p for p in probs)
    assert not any("KITA-MP-05" in p for p in probs)

    run = pumpwatch(
        "run", "--fleet", fleet_dir, "--db", f"sqlite:///{tmp_path / 'x.db'}", "--no-api", timeout=60
    )
    assert run.returncode == 2
    assert "refusing to start" in run.stderr
    assert "station KITA-MP-01: safety function power_failure" in run.stderr
    assert not (tmp_path / "x.db").exists(), "refused before touching the database"


def test_a_misspelt_override_point_is_an_error_with_its_line(fleet_dir: Path) -> None:
    rules = fleet_dir.parent / "rules" / "alarms.yaml"
    edit(
        rules,
        "overrides: {}",
        "overrides:\n  KITA-MP-01:\n    power_failure: {point: mains_okay, on_delay_s: 5}",
    )
    r = pumpwatch("check-config", fleet_dir)
    assert r.returncode == 2
    (p,) = [ln.strip() for ln in r.stderr.splitlines() if "mains_okay" in ln]
    assert "overrides.KITA-MP-01.power_failure.point" in p
    assert "no point 'mains_okay'" in p and "did you mean 'mains_failed'?" in p
    assert "mains_okay" in line_of(p, rules)


def test_an_override_of_a_rule_the_station_cannot_apply_is_an_error(fleet_dir: Path) -> None:
    """An engineer tuned a rule at a station whose map lacks its point: it must not silently do nothing."""
    edit(
        fleet_dir / "controllers.yaml",
        "station: KITA-MP-02, map: mps-canonical}",
        "station: KITA-MP-02, map: mps-nomains}",
    )
    nomains = (
        (fleet_dir.parent / "maps" / "mps-canonical.yaml")
        .read_text()
        .replace("name: mps-canonical", "name: mps-nomains")
    )
    (fleet_dir.parent / "maps" / "mps-nomains.yaml").write_text(
        nomains.replace("  - {name: mains_failed,", "  # - {name: mains_failed,")
    )
    edit(
        fleet_dir.parent / "rules" / "alarms.yaml",
        "overrides: {}",
        "overrides:\n  KITA-MP-02:\n    power_failure: {on_delay_s: 5}",
    )
    r = pumpwatch("check-config", fleet_dir)
    assert r.returncode == 2
    assert (
        "overrides.KITA-MP-02.power_failure: station KITA-MP-02: rule power_failure is overridden here, "
        "but no point 'mains_failed'" in r.stderr
    )


def no_ct_map(fleet_dir: Path) -> None:
    """KITA-MP-01's panel reports no pump currents (a map without them)."""
    text = (fleet_dir.parent / "maps" / "mps-canonical.yaml").read_text()
    text = text.replace("name: mps-canonical\n", "name: mps-no-ct\n")
    text = "\n".join(ln for ln in text.splitlines() if "_current_a" not in ln) + "\n"
    (fleet_dir.parent / "maps" / "mps-no-ct.yaml").write_text(text)
    edit(
        fleet_dir / "controllers.yaml",
        "station: KITA-MP-01, map: mps-canonical}",
        "station: KITA-MP-01, map: mps-no-ct}",
    )


async def test_a_waived_function_is_shown_with_its_reason_in_the_table_and_the_api(
    fleet_dir: Path, sqlite_url: str
) -> None:
    no_ct_map(fleet_dir)
    unwaived = pumpwatch("check-config", fleet_dir)
    assert unwaived.returncode == 1
    assert "station KITA-MP-01: safety function fails_to_run (pump 1)" in unwaived.stderr
    assert (
        "pump1_fails_to_run is computed from pump1_current_a, not in the station's maps "
        "(mps-no-ct via kita-01)" in unwaived.stderr
    )

    edit(
        fleet_dir / "stations.yaml",
        "{id: KITA-MP-01, tenant: kita, name: 北1丁目, type: mps-ref,",
        "{id: KITA-MP-01, tenant: kita, name: 北1丁目, type: mps-ref, "
        f'waivers: [{{function: fails_to_run, reason: "{NO_CT_REASON}"}}],',
    )
    r = pumpwatch("check-config", fleet_dir)
    assert r.returncode == 0, r.stderr
    assert "2 waived, 0 unarmed" in r.stdout.splitlines()[0]
    waived = [ln for ln in r.stdout.splitlines() if ln.strip().startswith("KITA-MP-01 fails_to_run")]
    assert len(waived) == 2 and all("waived" in ln and NO_CT_REASON in ln for ln in waived), waived
    per_station = pumpwatch("check-config", "--per-station", fleet_dir)
    assert per_station.returncode == 0
    kita1 = per_station.stdout.split("\nKITA-MP-01 · ", 1)[1].split("\n\n", 1)[0]
    assert re.search(rf"fails_to_run \(pump 2\)\s+waived\s+\"{re.escape(NO_CT_REASON)}\"", kita1)
    assert re.search(r"power_failure\s+armed\s+power_failure ← mains_failed", kita1)
    assert "rule not applied: pump1_fails_to_run" in kita1

    # the API: the station's coverage, with the waiver and its reason; `run` would start (coverage is met)
    fleet = load_fleet(fleet_dir)
    system = await System.prepare(fleet, sqlite_url, FakeClock(), require_coverage=True)
    app = create_app(system.api_context())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        await log_in(client, system.engine, fleet.tenants)
        body = (await client.get("/api/v1/stations/KITA-MP-01")).json()
        rows = {(f["function"], f["pump"]): f for f in body["coverage"]["functions"]}
        for pump in (1, 2):
            f = rows[("fails_to_run", pump)]
            assert f["state"] == "waived" and f["waiver_reason"] == NO_CT_REASON
            assert f"pump{pump}_current_a" in f["why"]
        pf = rows[("power_failure", None)]
        assert pf["state"] == "armed" and pf["rules"] == [
            {
                "rule": "power_failure",
                "armed": True,
                "points": ["mains_failed"],
                "via": None,
                "sources": [],
                "why": None,
            }
        ]
        assert rows[("comm_loss", None)]["rules"][0]["sources"] == ["kita-01"]
        assert {d["rule"] for d in body["coverage"]["rules_not_applied"]} >= {
            "pump1_fails_to_run",
            "pump2_fails_to_run",
        }
        other = (await client.get("/api/v1/stations/KITA-MP-02")).json()["coverage"]
        assert {f["state"] for f in other["functions"]} == {"armed"}
        detail = (await client.get("/api/v1/console/stations/KITA-MP-01")).json()  # the console's source
        assert detail["station"]["coverage"]["functions"] == body["coverage"]["functions"]
        listing = (await client.get("/api/v1/stations")).json()["data"]
        assert all(s["coverage"] is None for s in listing)  # the list stays light
    system.engine.dispose()


def test_waivers_must_say_why_and_be_true(fleet_dir: Path) -> None:
    stations = fleet_dir / "stations.yaml"
    # on a station type: no reason
    edit(
        stations,
        "    kind: manhole_pump\n    wet_well: {diameter_m: 1.2}\n",
        "    kind: manhole_pump\n    wet_well: {diameter_m: 1.2}\n    waivers: [{function: fails_to_run}]\n",
    )
    r = pumpwatch("check-config", fleet_dir)
    assert r.returncode == 2
    probs = [ln.strip() for ln in r.stderr.splitlines() if "needs a written reason" in ln]
    (p,) = probs  # once, at the type's waiver, not once per station of the type
    assert "station_types.mps-small.waivers[0].reason" in p and "(station type 'mps-small')" in p
    assert "waivers" in line_of(p, stations)

    # a reason, but the function is armed there (the stations have their currents): stale, exit 1
    edit(
        stations,
        "waivers: [{function: fails_to_run}]",
        'waivers: [{function: fails_to_run, reason: "no CTs in these panels"}]',
    )
    r = pumpwatch("check-config", fleet_dir)
    assert r.returncode == 1
    stale = [ln for ln in r.stderr.splitlines() if "is waived but armed" in ln]
    assert len(stale) == 4 and "remove the waiver" in stale[0]

    # a function the kind does not have
    edit(stations, "{function: fails_to_run,", "{function: fails_to_rnu,")
    r = pumpwatch("check-config", fleet_dir)
    assert r.returncode == 1
    assert "has no safety function 'fails_to_rnu' to waive" in r.stderr


def test_the_safety_catalogue_is_checked_against_the_rules(fleet_dir: Path) -> None:
    safety = fleet_dir.parent / "rules" / "safety.yaml"
    edit(safety, 'rules: ["pump{n}_fault"]}', 'rules: ["pump{n}_fualt"]}')
    r = pumpwatch("check-config", fleet_dir)
    assert r.returncode == 2
    (p,) = [ln.strip() for ln in r.stderr.splitlines() if "pump1_fualt" in ln]
    assert "functions.manhole_pump[5].rules[0]" in p and "manhole_pump has no alarm rule 'pump1_fualt'" in p
    assert "pump{n}_fualt" in line_of(p, safety)


def test_a_template_rule_on_a_point_nobody_produces_is_named(fleet_dir: Path) -> None:
    """A typo in a template's point: the rule applies nowhere, so its function is unarmed everywhere, and
    check-config says which rule no station can apply, with the name it probably meant."""
    rules = fleet_dir.parent / "rules" / "alarms.yaml"
    hwl = "{name: hwl_float, type: state, point: hwl_float,"  # the manhole template's, first in the file
    edit(rules, hwl, hwl.replace("point: hwl_float", "point: hwl_flaot"))
    r = pumpwatch("check-config", fleet_dir)
    assert r.returncode == 1
    (w,) = [ln for ln in r.stderr.splitlines() if "warning:" in ln]
    assert "templates.manhole_pump[5].point: rule hwl_float applies to no station" in w
    assert "(did you mean 'hwl_float'?)" in w and "hwl_flaot" in line_of(w, rules)
    assert "safety function high_water_float (High water from the float (満水)) is not armed" in r.stderr


def test_a_fleet_without_alarm_rules_or_catalogue_is_not_safe(fleet_dir: Path) -> None:
    edit(fleet_dir / "fleet.yaml", "alarm_rules: ../rules/alarms.yaml\n", "")
    r = pumpwatch("check-config", fleet_dir)
    assert r.returncode == 1
    assert "no safety catalogue" in r.stderr
    edit(
        fleet_dir / "fleet.yaml", "stale_factor: 3", "stale_factor: 3\nsafety_functions: ../rules/safety.yaml"
    )
    r = pumpwatch("check-config", fleet_dir)
    assert r.returncode == 1
    assert "no alarm_rules: no station of this fleet can raise any alarm" in r.stderr
