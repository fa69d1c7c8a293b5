from __future__ import annotations

import pytest

from pumpwatch.collector.registers import build_read_plan
from pumpwatch.core.config.models import RegisterMap


def rmap(points, **kw) -> RegisterMap:
    return RegisterMap.model_validate({"name": "m", "points": points, **kw})


def test_contiguous_points_make_one_block_per_table() -> None:
    plan = build_read_plan(
        rmap(
            [
                {"name": "a", "table": "input_register", "address": 0, "type": "int16"},
                {"name": "b", "table": "input_register", "address": 1, "type": "uint32"},
                {"name": "c", "table": "input_register", "address": 3, "type": "float32"},
                {"name": "d", "table": "discrete_input", "address": 0, "type": "bool"},
                {"name": "e", "table": "discrete_input", "address": 7, "type": "bool"},
            ]
        )
    )
    blocks = {(b.table, b.start, b.count) for b in plan.blocks}
    assert blocks == {("input_register", 0, 5), ("discrete_input", 0, 8)}
    ir = next(b for b in plan.blocks if b.table == "input_register")
    assert [(p.name, p.offset) for p in ir.points] == [("a", 0), ("b", 1), ("c", 3)]
    assert ir.function_code == 4


def test_gaps_split_blocks_beyond_max_gap() -> None:
    points = [
        {"name": "a", "table": "holding_register", "address": 0},
        {"name": "b", "table": "holding_register", "address": 5},  # gap 4
        {"name": "c", "table": "holding_register", "address": 20},  # gap 14
    ]
    plan = build_read_plan(rmap(points, max_gap=8))
    assert [(b.start, b.count) for b in plan.blocks] == [(0, 6), (20, 1)]
    plan = build_read_plan(rmap(points, max_gap=0))
    assert [(b.start, b.count) for b in plan.blocks] == [(0, 1), (5, 1), (20, 1)]


def test_blocks_never_exceed_125_registers() -> None:
    points = [
        {"name": f"p{i}", "table": "input_register", "address": i * 2, "type": "float32"} for i in range(200)
    ]
    plan = build_read_plan(rmap(points, max_gap=0))
    assert all(b.count <= 125 for b in plan.blocks)
    assert sum(len(b.points) for b in plan.blocks) == 200
    # a float32 never straddles two blocks
    for b in plan.blocks:
        assert all(p.offset + p.width <= b.count for p in b.points)
    assert sum(b.count for b in plan.blocks) == 400


def test_device_limit_and_one_based_addresses() -> None:
    points = [{"name": f"p{i}", "table": "holding_register", "address": 40001 - 40000 + i} for i in range(30)]
    plan = build_read_plan(rmap(points, address_base=1), max_registers=10)
    assert [(b.start, b.count) for b in plan.blocks] == [(0, 10), (10, 10), (20, 10)]


@pytest.mark.parametrize("table", ["coil", "discrete_input"])
def test_bit_tables_allow_2000_bits(table: str) -> None:
    points = [{"name": f"b{i}", "table": table, "address": i, "type": "bool"} for i in range(2100)]
    plan = build_read_plan(rmap(points))
    assert [b.count for b in plan.blocks] == [2000, 100]
