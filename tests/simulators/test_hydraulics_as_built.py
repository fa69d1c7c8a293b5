"""Storage as built (issue 17): reaches, manholes from their benching and at the upper end, branches, the
flow already in the pipes (Manning), and the config checks that go with them."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from pumpwatch.core.config.models import Pipe
from pumpwatch.core.hydraulics import StageStorage, manning_flow, normal_depth, segment_area

A_WW = math.pi * 1.5**2 / 4
STRAIGHT = {"diameter_m": 0.2, "invert_m": 1.5, "length_m": 400, "slope": 0.005, "manhole_spacing_m": 30}


def storage(*pipes: dict) -> StageStorage:
    return StageStorage(A_WW, pipes=[Pipe.model_validate(p) for p in pipes], top_m=5.0)


def test_manning_half_full_carries_half_the_full_flow():
    # φ200, 5 ‰, n 0.013: full bore (1/n)·A·(D/4)^(2/3)·√s = 0.02319 m³/s; half full has the same R
    full = (1 / 0.013) * (math.pi * 0.01) * 0.05 ** (2 / 3) * math.sqrt(0.005)
    assert full == pytest.approx(0.02319, abs=1e-5)
    assert manning_flow(0.1, 0.2, 0.005, 0.013) == pytest.approx(full / 2, rel=1e-9)
    assert normal_depth(full / 2, 0.2, 0.005, 0.013) == pytest.approx(0.1, abs=1e-4)
    assert normal_depth(0.0, 0.2, 0.005, 0.013) == 0.0
    assert normal_depth(10 * full, 0.2, 0.005, 0.013) == 0.2  # beyond its capacity: running full
    # rougher pipe, deeper flow
    assert normal_depth(0.005, 0.2, 0.005, 0.015) > normal_depth(0.005, 0.2, 0.005, 0.012)


def test_reaches_equal_to_a_straight_pipe_store_the_same():
    reaches = [{"length_m": 30, "slope": 0.005} for _ in range(13)] + [
        {"length_m": 10, "slope": 0.005, "manhole": False}
    ]
    a = storage(STRAIGHT)
    b = storage({"diameter_m": 0.2, "invert_m": 1.5, "reaches": reaches})
    for z in (1.0, 1.6, 2.2, 3.0, 3.9):
        assert b.volume(z) == pytest.approx(a.volume(z), rel=1e-9)


def test_benching_and_upper_end_manhole_add_storage():
    base = storage(STRAIGHT)
    benched = storage({**STRAIGHT, "benching_m": 0.1})
    # 8 manholes wet at 3.0 m (crowns 1.85 … 2.90 m), each now from the pipe centre: + 0.636 × 0.1 each,
    # and the ninth (x = 270 m, crown 3.05 m, floor 2.95 m) holds 5 cm
    assert benched.upstream_volume(3.0) - base.upstream_volume(3.0) == pytest.approx(
        8 * 0.636 * 0.1 + 0.636 * 0.05
    )
    short = {**STRAIGHT, "length_m": 90}  # manholes at 30 and 60 m; the upper end at 90 m
    with_top = storage({**short, "upper_end_manhole": True})
    floor_top = 1.5 + 0.005 * 90 + 0.2
    assert with_top.upstream_volume(3.0) - storage(short).upstream_volume(3.0) == pytest.approx(
        0.636 * (3.0 - floor_top)
    )


def test_a_branch_adds_its_own_pipe_and_manholes():
    branch = {"at_m": 60, "diameter_m": 0.2, "length_m": 100, "slope": 0.01}
    alone = storage(STRAIGHT)
    tree = storage({**STRAIGHT, "branches": [branch]})
    inv = 1.5 + 0.005 * 60  # the branch starts at the main pipe's invert at its manhole
    lone_branch = StageStorage(
        A_WW,
        pipes=[Pipe(diameter_m=0.2, invert_m=inv, length_m=100, slope=0.01)],
        top_m=5.0,
    )
    for z in (1.9, 2.5, 3.0):
        assert tree.upstream_volume(z) == pytest.approx(
            alone.upstream_volume(z) + lone_branch.upstream_volume(z), rel=1e-9
        )
    # flow shares: the segment at the wet well carries everything, the branch's top almost nothing
    shares = [seg.share for seg in tree.segments]
    assert max(shares) == pytest.approx(1 - 15 / 500)  # middle of the first 30-m reach: 485 of 500 m above
    assert min(shares) > 0


def test_flow_in_the_pipes_is_not_storage():
    s = storage(STRAIGHT)
    assert s.volume_with_flow(3.0, 0.0) == pytest.approx(s.volume(3.0), rel=2e-3)
    q = 0.078  # MPS-REF's average inflow, m³/min
    free = s.volume(3.0) - s.volume(0.8)
    usable = s.volume_with_flow(3.0, q) - s.volume_with_flow(0.8, q)
    assert usable < free
    assert usable == pytest.approx(15.17, abs=0.01)  # docs/domain.md §3.3 (15.86 without the flow)
    # the part taken is about the water the flooded pipe length holds at normal depth
    y = s.flow_depths(q)[0]
    assert 0.02 < y < 0.05
    taken = free - usable
    assert taken == pytest.approx(segment_area(y, 0.2) * 300, rel=0.35)  # ~300 m of back-water at 3.0 m
    # below the inlet nothing changes; more flow, less room
    assert s.volume_with_flow(1.2, q) == pytest.approx(A_WW * 1.2)
    assert s.volume_with_flow(3.0, 2 * q) < s.volume_with_flow(3.0, q)
    table = s.with_flow(q)
    assert table.level(table.volume(2.5)) == pytest.approx(2.5, abs=1e-9)
    assert s.with_flow(q * 1.005) is table  # shared within 2 %


@pytest.mark.parametrize(
    ("pipe", "message"),
    [
        ({**STRAIGHT, "benching_m": 0.25}, "above the pipe crown"),
        (
            {**STRAIGHT, "branches": [{"at_m": 45, "diameter_m": 0.2, "length_m": 50, "slope": 0.01}]},
            "joins at a manhole",
        ),
        (
            {
                **STRAIGHT,
                "branches": [{"at_m": 60, "invert_m": 1.6, "diameter_m": 0.2, "length_m": 50, "slope": 0.01}],
            },
            "below this pipe's invert",
        ),
        (
            {
                "diameter_m": 0.2,
                "invert_m": 1.5,
                "reaches": [{"length_m": 30, "slope": 0.005}],
                "length_m": 30,
            },
            "not both",
        ),
        ({"diameter_m": 0.2, "invert_m": 1.5, "length_m": 30}, "needs `length_m` and `slope`"),
        ({**STRAIGHT, "roughness_n": 0.1}, "less than or equal to 0.03"),
    ],
)
def test_config_checks(pipe: dict, message: str):
    with pytest.raises(ValidationError, match=message):
        Pipe.model_validate(pipe)
