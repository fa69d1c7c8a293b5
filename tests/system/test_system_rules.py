"""System alarm rules as data (the `system:` section) and the centre in the fleet: what check-config
accepts, what it refuses (with file:line), and where it says the system alarms go."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from pumpwatch.alarms.rules import default_system_rules, load_rules
from pumpwatch.app.cli import main
from pumpwatch.core.config import ConfigError, load_fleet
from tests.conftest import DEMO_FLEET, REPO


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    for d in ("demo", "maps", "rules"):
        shutil.copytree(REPO / "deploy" / "config" / d, tmp_path / d)
    return tmp_path / "demo"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def check(fleet: Path):
    return CliRunner().invoke(main, ["check-config", str(fleet)])


def test_the_defaults_and_the_shipped_thresholds() -> None:
    names = {r.name: r for r in default_system_rules()}
    assert set(names) == {
        "historian_setup_incomplete",
        "historian_lagging",
        "spool_high",
        "shard_dead",
        "notifier_stopped",
        "dead_letter_rate",
        "clock_skew",
    }
    spool = names["spool_high"]
    assert (spool.point, spool.limit, spool.deadband, spool.above) == ("spool_fill_pct", 80.0, 10.0, True)
    fleet = load_fleet(DEMO_FLEET)
    shipped = {r.name: r for r in load_rules(fleet.alarm_rules, fleet).system}
    assert set(shipped) == set(names) and shipped["dead_letter_rate"].on_delay_s == 60


def test_a_system_entry_changes_only_what_it_names(demo: Path) -> None:
    rules = demo.parent / "rules" / "alarms.yaml"
    edit(rules, "{name: spool_high, above: 80, deadband: 10}", "{name: spool_high, above: 90, deadband: 5}")
    fleet = load_fleet(demo)
    spool = next(r for r in load_rules(fleet.alarm_rules, fleet).system if r.name == "spool_high")
    assert (spool.limit, spool.deadband, spool.priority) == (90.0, 5.0, "high")  # priority: the default's


def test_leaving_a_rule_out_does_not_turn_it_off_only_enabled_false_does(demo: Path, caplog) -> None:
    rules = demo.parent / "rules" / "alarms.yaml"
    edit(rules, "  - {name: shard_dead, above: 3}", "")
    fleet = load_fleet(demo)
    assert "shard_dead" in {r.name for r in load_rules(fleet.alarm_rules, fleet).system}
    edit(rules, "  - {name: notifier_stopped, above: 120}", "  - {name: notifier_stopped, enabled: false}")
    assert "notifier_stopped" not in {r.name for r in load_rules(fleet.alarm_rules, fleet).system}
    assert "system alarm notifier_stopped is disabled" in caplog.text


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "{name: spool_high, above: 80, deadband: 10}",
            "{name: spool_full, type: limit, point: spool_bytes, above: 1}",
            "system rule spool_full must watch one of historian_setup_problems",
        ),
        (
            "{name: spool_high, above: 80, deadband: 10}",
            "{name: spool_high, above: hwl_m}",
            "a system rule's threshold is a number, not the station level 'hwl_m'",
        ),
        (
            "{name: shard_dead, above: 3}",
            "{name: shard_dead, above: 3, suppressed_by: [historian_lag]}",
            "names unknown system rule 'historian_lag'",
        ),
    ],
)
def test_bad_system_rules_are_refused_with_file_and_line(
    demo: Path, old: str, new: str, message: str
) -> None:
    rules = demo.parent / "rules" / "alarms.yaml"
    edit(rules, old, new)
    fleet = load_fleet(demo)
    with pytest.raises(ConfigError) as exc:
        load_rules(fleet.alarm_rules, fleet)
    (p,) = exc.value.problems
    assert message in p and "alarms.yaml:" in p and "system[" in p
    res = check(demo)
    assert res.exit_code == 2 and message in res.output


def test_check_config_says_where_system_alarms_go(demo: Path) -> None:
    res = check(demo)
    assert res.exit_code == 0, res.output
    assert (
        "system alarms (7:" in res.output and "of centre 'centre': routed to centre-system: OK" in res.output
    )


def test_a_fleet_with_on_call_but_no_centre_is_refused(demo: Path) -> None:
    edit(demo / "tenants.yaml", "timezone: Asia/Tokyo, centre: true}", "timezone: Asia/Tokyo}")
    res = check(demo)
    assert res.exit_code == 2
    assert "no tenant is the monitoring centre (`centre: true` in tenants.yaml)" in res.output


def test_a_centre_without_a_route_is_refused(demo: Path) -> None:
    oncall = demo / "oncall.yaml"
    text = oncall.read_text(encoding="utf-8")
    route = text[text.index("  - tenant: centre ") :]
    assert route.count("\n") == 2  # the centre's route is the file's last entry
    oncall.write_text(text.replace(route, ""), encoding="utf-8")
    res = check(demo)
    assert res.exit_code == 2
    assert "tenant 'centre' has no route: the system alarms would reach nobody" in res.output


def test_two_centres_are_refused(demo: Path) -> None:
    edit(demo / "tenants.yaml", "{id: minami, name: Minami Town (南町), timezone: Asia/Tokyo}",
         "{id: minami, name: Minami Town (南町), timezone: Asia/Tokyo, centre: true}")  # fmt: skip
    res = check(demo)
    assert res.exit_code == 2 and "is already the centre; a fleet has one monitoring centre" in res.output


def test_a_fleet_without_on_call_or_centre_says_so(tmp_path: Path) -> None:
    fleet = REPO / "tests" / "simulators" / "fleets" / "mixed"
    res = check(fleet)
    assert res.exit_code == 0, res.output
    assert "no tenant is the monitoring centre" in res.output and "never journaled or notified" in res.output
