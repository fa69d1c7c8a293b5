"""Configuration is validated at start; every error names the file, the line and the key."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pumpwatch.alarms.rules import load_rules
from pumpwatch.core.config import ConfigError, load_fleet
from tests.conftest import DEMO_FLEET

MAPS = DEMO_FLEET.parent / "maps"
RULES = DEMO_FLEET.parent / "rules"


@pytest.fixture
def fleet_dir(tmp_path: Path) -> Path:
    """A writable copy of the demo fleet with its maps and rules beside it."""
    shutil.copytree(DEMO_FLEET, tmp_path / "demo")
    shutil.copytree(MAPS, tmp_path / "maps")
    shutil.copytree(RULES, tmp_path / "rules")
    return tmp_path / "demo"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def problems_of(fleet_dir: Path) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_fleet(fleet_dir)
    return exc.value.problems


def test_demo_fleet_is_valid() -> None:
    fleet = load_fleet(DEMO_FLEET)
    assert len(fleet.stations) == 12
    assert set(fleet.tenants) == {"kita", "minami", "centre"}
    assert fleet.centre == "centre"  # the shared monitoring centre: owns the system alarms
    # station types fill in geometry; per-station values override them
    assert fleet.stations["KITA-MP-02"].catchment.population == 520
    assert fleet.stations["KITA-MP-01"].catchment.population == 375
    assert fleet.stations["KITA-MP-03"].wet_well.diameter_m == 1.2
    assert fleet.points["MINAMI-MP-03"]["wet_well_level_m"].spec.type == "float32"
    assert fleet.points["MINAMI-MP-03"]["wet_well_level_m"].controller == "minami-gw"
    rules = load_rules(fleet.alarm_rules, fleet).stations
    assert {r.name for r in rules["KITA-MP-01"]} >= {"power_failure", "high_water"}
    assert next(r for r in rules["KITA-MP-03"] if r.name == "high_water").limit == 1.2  # mps-small hwl


def test_unknown_register_type(fleet_dir: Path) -> None:
    m = fleet_dir.parent / "maps" / "mps-canonical.yaml"
    edit(m, "address: 14, type: uint16", "address: 14, type: uint24")
    (p,) = problems_of(fleet_dir)
    assert "mps-canonical.yaml:" in p
    assert "points[26].type" in p
    assert "uint24" in p and "float32" in p  # says what it got and what it accepts
    line = int(p.split("mps-canonical.yaml:")[1].split()[0])
    assert "uint24" in m.read_text().splitlines()[line - 1]


def test_overlapping_addresses(fleet_dir: Path) -> None:
    m = fleet_dir.parent / "maps" / "mps-canonical.yaml"
    edit(
        m,
        "{name: pump2_run_hours_h, table: input_register, address: 6,",
        "{name: pump2_run_hours_h, table: input_register, address: 5,",
    )
    (p,) = problems_of(fleet_dir)
    assert "mps-canonical.yaml" in p
    assert "'pump1_run_hours_h' and 'pump2_run_hours_h' overlap at input_register address 5" in p


def test_missing_station_geometry(fleet_dir: Path) -> None:
    s = fleet_dir / "stations.yaml"
    edit(s, "    wet_well: {diameter_m: 1.2}\n", "")
    probs = problems_of(fleet_dir)
    assert len(probs) == 4  # the four stations of type mps-small
    assert all("stations.yaml:" in p and "missing wet_well" in p and "mps-small" in p for p in probs)
    assert any("stations[2]" in p for p in probs)


def test_bad_levels_order_and_unknown_key(fleet_dir: Path) -> None:
    s = fleet_dir / "stations.yaml"
    edit(s, "catchment: {population: 520}}", "catchment: {population: 520}, levels: {stop_m: 1.1}}")
    edit(s, "name: 北5丁目,", "name: 北5丁目, colour: red,")
    probs = problems_of(fleet_dir)
    assert any("stations[1].levels" in p and "stop_m (1.1) must be below start_m (1.0)" in p for p in probs)
    assert any("stations[4].colour" in p and "Extra inputs are not permitted" in p for p in probs)


def test_cross_references(fleet_dir: Path) -> None:
    c = fleet_dir / "controllers.yaml"
    edit(c, "station: KITA-MP-02, map: mps-canonical}", "station: KITA-MP-99, map: mps-canonical}")
    edit(c, "station: KITA-MP-04, map: mps-canonical}", "station: KITA-MP-04, map: no-such-map}")
    edit(c, "port: 15026", "port: 15025")
    probs = problems_of(fleet_dir)
    assert any("units[0].station" in p and "unknown station 'KITA-MP-99'" in p for p in probs)
    assert any("units[0].map" in p and "unknown register map 'no-such-map'" in p for p in probs)
    assert any("controllers[5].port" in p and "already controller 'kita-05'" in p for p in probs)


def test_yaml_syntax_error_has_a_line(fleet_dir: Path) -> None:
    (fleet_dir / "tenants.yaml").write_text("tenants:\n  - {id: kita, name: [unclosed\n")
    (p,) = problems_of(fleet_dir)
    assert "tenants.yaml:" in p and "not valid YAML" in p


def test_duplicate_key_is_refused(fleet_dir: Path) -> None:
    (fleet_dir / "tenants.yaml").write_text("tenants:\n  - id: kita\n    name: A\n    name: B\n")
    (p,) = problems_of(fleet_dir)
    assert "tenants.yaml:4" in p and "tenants[0].name: duplicate key" in p


def test_invalid_alarm_rule_is_refused_with_location(fleet_dir: Path) -> None:
    r = fleet_dir.parent / "rules" / "alarms.yaml"
    edit(r, "above: hwl_m", "above: hwl_metres")
    fleet = load_fleet(fleet_dir)
    with pytest.raises(ConfigError) as exc:
        load_rules(fleet.alarm_rules, fleet)
    (p,) = exc.value.problems
    assert "alarms.yaml:" in p and "templates.manhole_pump[3].above" in p and "hwl_metres" in p


def test_check_config_command_reports_and_exits_2(fleet_dir: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "pumpwatch.app.cli", "check-config", str(DEMO_FLEET)],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert "12 stations" in ok.stdout and "OK" in ok.stdout
    edit(fleet_dir / "stations.yaml", "tenant: minami, name: 南浜", "tenant: nishi, name: 南浜")
    bad = subprocess.run(
        [sys.executable, "-m", "pumpwatch.app.cli", "check-config", str(fleet_dir)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert "stations[11].tenant: unknown tenant 'nishi'" in bad.stderr


def test_discharges_to_links_the_network_in_both_shipped_fleets() -> None:
    demo = load_fleet(DEMO_FLEET)
    assert demo.stations["KITA-MP-01"].discharges_to == "KITA-MP-02"
    assert demo.stations["KITA-MP-08"].discharges_to is None  # the end of its force main
    city = load_fleet(DEMO_FLEET.parent / "city")
    to = {sid: st.discharges_to for sid, st in city.stations.items()}
    kinds = {sid: st.kind for sid, st in city.stations.items()}
    # manhole pumps → relay station → plant; the stormwater station to the river
    assert to["HNM-MP-001"] == "HNM-RPS-1" and to["HNM-MP-185"] == "HNM-RPS-2"
    assert to["HNM-RPS-1"] == to["HNM-RPS-2"] == "HNM-WWTP-1"
    assert to["YMB-MP-01"] == "YMB-WWTP-5" and to["HNM-SPS-1"] is None
    assert all(to[s] is not None for s, k in kinds.items() if k in ("manhole_pump", "relay_pump"))
    assert all(kinds[t] in ("relay_pump", "treatment_plant") for t in to.values() if t is not None)


def test_discharges_to_must_name_a_station_and_never_loop(fleet_dir: Path) -> None:
    s = fleet_dir / "stations.yaml"
    edit(s, "discharges_to: KITA-MP-02,", "discharges_to: KITA-MP-99,")  # KITA-MP-01
    edit(s, "discharges_to: MINAMI-MP-03,", "discharges_to: MINAMI-MP-04,")  # MINAMI-MP-02 → 04
    edit(s, "discharges_to: MINAMI-MP-03,", "discharges_to: MINAMI-MP-02,")  # MINAMI-MP-04 → 02
    seven = "北7丁目, type: mps-large, discharges_to: KITA-MP-0"
    edit(s, seven + "8", seven + "7")  # KITA-MP-07 to itself
    probs = problems_of(fleet_dir)
    unknown = [p for p in probs if "unknown station 'KITA-MP-99'" in p]
    assert len(unknown) == 1 and "stations.yaml:" in unknown[0] and "stations[0].discharges_to" in unknown[0]
    assert any("KITA-MP-07 discharges to itself" in p for p in probs)
    cycle = [p for p in probs if "makes a cycle" in p]
    assert len(cycle) == 1 and "MINAMI-MP-02 → MINAMI-MP-04 → MINAMI-MP-02" in cycle[0], probs
