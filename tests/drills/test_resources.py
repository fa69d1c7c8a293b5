"""The mobile resources register: validated against the fleet with file:line errors, travel estimates
from configured drives or distance over speed, and the assignment journal's state order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pumpwatch.core import resources
from pumpwatch.core.config import ConfigError, load_fleet
from pumpwatch.core.db.engine import make_engine
from pumpwatch.core.db.migrate import upgrade
from tests.drills import FULL_DEMO

T0 = datetime(2026, 8, 1, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def fleet():
    return load_fleet(FULL_DEMO)


@pytest.fixture(scope="module")
def reg(fleet):
    assert fleet.resources is not None
    return resources.load_register(fleet.resources, fleet)


def test_the_demo_register(reg):
    assert {r.id for r in reg.resources.values()} >= {"kita-gen-1", "kita-vac-1", "minami-gen-1"}
    assert [r.id for r in reg.of_tenants({"minami"})] == ["minami-gen-1", "minami-vac-1"]


def test_travel_configured_drive_then_distance(reg, fleet):
    gen1, gen2 = reg.resources["kita-gen-1"], reg.resources["kita-gen-2"]
    s, how = resources.travel_s(reg, gen1, fleet.stations["KITA-MP-03"])
    assert s == 12 * 60 and "configured drive" in how
    s, how = resources.travel_s(reg, gen2, fleet.stations["KITA-MP-03"])
    # contractor yard 35.7300,139.7600 → 35.7125,139.7340: about 3.0 km at 25 km/h ≈ 7 min
    assert 6 * 60 < s < 9 * 60 and "km from kita-contractor at 25 km/h" in how
    no_loc = fleet.stations["KITA-TP-01"].model_copy(update={"location": None})
    assert resources.travel_s(reg, gen2, no_loc) == (None, "no location to measure from")


def test_mistakes_name_file_line_and_key(tmp_path: Path, fleet):
    f = tmp_path / "r.yaml"
    f.write_text(
        "bases:\n"
        "  - {id: b1, tenant: kita, name: B, travel_min: {KITA-MP-01: 5, MINAMI-MP-01: 3, NOPE: 2}}\n"
        "  - {id: b2, tenant: nowhere, name: C}\n"
        "resources:\n"
        "  - {id: g1, tenant: kita, kind: generator, name: G, base: b1}\n"
        "  - {id: v1, tenant: kita, kind: vacuum_truck, name: V, m3: 3, base: b9}\n"
        "  - {id: v2, tenant: minami, kind: vacuum_truck, name: V, m3: 3, base: b1}\n"
    )
    with pytest.raises(ConfigError) as err:
        resources.load_register(f, fleet)
    assert any(p.startswith(f"{f}:5 resources[0]: a generator gives its kva") for p in err.value.problems)
    f.write_text(f.read_text().replace("name: G, base", "name: G, kva: 20, base"))
    with pytest.raises(ConfigError) as err:
        resources.load_register(f, fleet)
    got = err.value.problems
    for want in [
        f"{f}:2 bases[0].travel_min.MINAMI-MP-01: station MINAMI-MP-01 is tenant 'minami'",
        f"{f}:2 bases[0].travel_min.NOPE: unknown station 'NOPE'",
        f"{f}:3 bases[1].tenant: unknown tenant 'nowhere'",
        f"{f}:6 resources[1].base: unknown base 'b9'",
        f"{f}:7 resources[2].base: base b1 is tenant 'kita'",
    ]:
        assert any(p.startswith(want) for p in got), (want, got)


def test_assignments_journal_and_order(tmp_path: Path, reg, fleet):
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    upgrade(engine)
    got = resources.assign(engine, reg, fleet, "kita-gen-1", "KITA-MP-03", actor="op", now=T0)
    assert got["eta_at"] == T0 + timedelta(minutes=12)
    with pytest.raises(resources.AssignError) as err:
        resources.assign(engine, reg, fleet, "kita-gen-1", "KITA-MP-01", actor="op", now=T0)
    assert err.value.status == 409 and "already assigned" in str(err.value)
    with pytest.raises(resources.AssignError) as err:
        resources.assign(engine, reg, fleet, "kita-gen-1", "MINAMI-MP-01", actor="op", now=T0)
    assert err.value.status == 404
    with pytest.raises(resources.AssignError) as err:
        resources.advance(engine, got["id"], "running", actor="op", now=T0, tenants={"kita"})
    assert err.value.status == 409 and "the next state is on_site" in str(err.value)
    with pytest.raises(resources.AssignError) as err:
        resources.advance(engine, got["id"], "on_site", actor="x", now=T0, tenants={"minami"})
    assert err.value.status == 404
    later = T0 + timedelta(minutes=11)
    resources.advance(engine, got["id"], "on_site", actor="op2", now=later, tenants={"kita"})
    resources.advance(engine, got["id"], "running", actor="op2", now=later, tenants={"kita"})
    (row,) = resources.open_assignments(engine, {"kita"})
    assert row["state"] == "running" and row["states"]["on_site"] == {"at": later, "by": "op2"}
    assert row["states"]["dispatched"]["by"] == "op"
    resources.advance(engine, got["id"], "returned", actor="op2", now=later, tenants={"kita"})
    assert resources.open_assignments(engine, {"kita"}) == []
    again = resources.assign(engine, reg, fleet, "kita-gen-1", "KITA-MP-01", actor="op", now=later)
    assert again["eta_at"] == later + timedelta(minutes=8)
