"""Register-map options that cannot act on their point are errors at the option's line, never ignored, and
addresses that look like Modicon notation under a base that would read them literally are refused with
what to write instead (issue 12)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pumpwatch.core.config import ConfigError, load_fleet
from tests.config.test_coverage import line_of
from tests.config.test_fleet_config import edit
from tests.conftest import DEMO_FLEET

MAP_DIR = DEMO_FLEET.parent / "maps"


@pytest.fixture
def fleet_dir(tmp_path: Path) -> Path:
    shutil.copytree(DEMO_FLEET, tmp_path / "demo")
    shutil.copytree(MAP_DIR, tmp_path / "maps")
    shutil.copytree(DEMO_FLEET.parent / "rules", tmp_path / "rules")
    return tmp_path / "demo"


def problems(fleet_dir: Path) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_fleet(fleet_dir)
    return exc.value.problems


MAINS = "{name: mains_failed, table: discrete_input, address: 0, type: bool,"
LEVEL = "{name: wet_well_level_m, table: input_register, address: 0, type: int16,"
STOP = "{name: stop_level_m, table: holding_register, address: 0, type: int16,"


@pytest.mark.parametrize(
    ("old", "new", "key", "says"),
    [
        (MAINS, MAINS + " scale: -1, offset: 1,", "points[0].scale", "write `invert: true`"),
        (MAINS, MAINS + " valid_max: 1,", "points[0].valid_max", "no effect on a bool point"),
        (MAINS, MAINS + " not_available: 1,", "points[0].not_available", "no meaning in a discrete_input"),
        (LEVEL, LEVEL + " word_order: CDAB,", "points[16].word_order", "int16 is one register"),
        (LEVEL, LEVEL + " invert: true,", "points[16].invert", "applies to bool points only"),
        (LEVEL, LEVEL + " not_available: 0x1FFFF,", "points[16].not_available", "does not fit one 16-bit"),
        (
            STOP,
            "{name: stop_level_m, table: holding_register, address: 0, type: uint16, bit: 3,",
            "points[27].type",
            "write type: bool, not uint16",
        ),
    ],
    ids=[
        "scale-on-bool",
        "valid-on-bool",
        "na-on-bit",
        "word-order-16",
        "invert-number",
        "na-too-wide",
        "bit",
    ],
)
def test_an_option_without_effect_is_an_error_at_its_line(
    fleet_dir: Path, old: str, new: str, key: str, says: str
) -> None:
    m = fleet_dir.parent / "maps" / "mps-canonical.yaml"
    edit(m, old, new)
    (p,) = [p for p in problems(fleet_dir) if f" {key}: " in p]
    assert "mps-canonical.yaml:" in p and says in p, p
    assert old.split("name: ")[1].split(",")[0] in line_of(p, m)  # the point's own line


def test_invert_on_bits_and_the_modicon_base_are_accepted(fleet_dir: Path) -> None:
    m = fleet_dir.parent / "maps" / "mps-canonical.yaml"
    edit(m, MAINS, MAINS + " invert: true,")
    fleet = load_fleet(fleet_dir)
    assert fleet.points["KITA-MP-01"]["mains_failed"].spec.invert


@pytest.mark.parametrize("base", [0, 1])
def test_modicon_looking_addresses_under_a_literal_base_say_what_to_write(fleet_dir: Path, base: int) -> None:
    m = fleet_dir.parent / "maps" / "mps-canonical.yaml"
    edit(m, "address_base: 0", f"address_base: {base}")
    if base == 1:  # base 1 has no address 0: move those points out of the way
        text = m.read_text()
        for table in ("discrete_input", "input_register", "holding_register"):
            text = text.replace(f"table: {table}, address: 0,", f"table: {table}, address: 99,")
        m.write_text(text)
    edit(m, "table: holding_register, address: 3,", "table: holding_register, address: 40004,")
    probs = problems(fleet_dir)
    (p,) = [p for p in probs if "40004" in p]
    assert "points[30].address" in p and "looks like Modicon notation (4xxxx)" in p
    assert f"address_base {base} reads it literally, at wire address {40004 - base}" in p
    assert "write `address_base: modicon` for the whole map (then 40004 is wire address 3)" in p
    assert f"or the address in base {base} ({3 + base})" in p and "literal_high_addresses: true" in p
    assert "40004" in line_of(p, m)


def test_six_digit_modicon_and_literal_high_addresses(fleet_dir: Path) -> None:
    m = fleet_dir.parent / "maps" / "mps-canonical.yaml"
    edit(m, "table: input_register, address: 14,", "table: input_register, address: 300015,")
    (p,) = problems(fleet_dir)
    assert "input_register address 300015 looks like Modicon notation (3xxxxx)" in p
    assert "then 300015 is wire address 14" in p and "there is no wire address 300015" in p
    # a device that really numbers its registers from 30001 on the wire (some vendors do): say so
    edit(m, "table: input_register, address: 300015,", "table: input_register, address: 30015,")
    edit(m, "address_base: 0", "address_base: 0\nliteral_high_addresses: true")
    fleet = load_fleet(fleet_dir)
    sp = fleet.points["KITA-MP-01"]["battery_voltage_v"]
    assert sp.register_map.wire_address(sp.spec) == 30015


def test_under_the_modicon_base_the_number_must_match_the_table(fleet_dir: Path) -> None:
    m = fleet_dir.parent / "maps" / "rtu-status.yaml"
    text = m.read_text().replace("address_base: 0", "address_base: modicon")
    text = text.replace("table: discrete_input, address: 0,", "table: discrete_input, address: 10001,")
    text = text.replace("table: discrete_input, address: 1,", "table: discrete_input, address: 10002,")
    text = text.replace("table: input_register, address: 0,", "table: input_register, address: 30001,")
    text = text.replace("table: input_register, address: 1,", "table: input_register, address: 30002,")
    text = text.replace("table: input_register, address: 3,", "table: input_register, address: 40004,")
    m.write_text(text)
    (p,) = problems(fleet_dir)
    assert "rtu-status.yaml:" in p and "points[4].address" in p
    assert "address 40004 is not a Modicon input register number" in p
    assert "(40004 is the Modicon number of holding register 3)" in p
    edit(m, "table: input_register, address: 40004,", "table: input_register, address: 30004,")
    rm = load_fleet(fleet_dir).register_maps["rtu-status"]
    assert [rm.wire_address(p) for p in rm.points] == [0, 1, 0, 1, 3]
