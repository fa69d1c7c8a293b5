from __future__ import annotations

import math

import pytest

from pumpwatch.core.config.models import StationConfig
from pumpwatch.core.hydraulics import StageStorage, segment_area
from tests.simulators import station_config

A_WW = math.pi * 1.5**2 / 4  # 3号 φ1500
A_PIPE = math.pi * 0.2**2 / 4  # φ200


@pytest.fixture(scope="module")
def ref() -> StageStorage:
    return StageStorage.from_station(station_config("KITA-MP-01"))


def sliced_pipe_volume(z: float, *, d=0.2, length=400.0, slope=0.005, invert=1.5, n=400) -> float:
    """The straightforward numerical integral over x the closed form replaces."""
    dx = length / n
    return sum(segment_area(z - (invert + slope * (i + 0.5) * dx), d) * dx for i in range(n))


def test_segment_area_limits():
    assert segment_area(0, 0.2) == 0
    assert segment_area(-1, 0.2) == 0
    assert segment_area(0.1, 0.2) == pytest.approx(A_PIPE / 2)
    assert segment_area(0.2, 0.2) == pytest.approx(A_PIPE)
    assert segment_area(5, 0.2) == pytest.approx(A_PIPE)


def test_wet_well_of_worked_example(ref: StageStorage):
    # docs/domain.md §3.3: 1.767 m² × (3.00 − 0.80) = 3.89 m³
    assert ref.wet_well_area_m2 == pytest.approx(1.767, abs=1e-3)
    assert ref.wet_well_volume(3.0) - ref.wet_well_volume(0.8) == pytest.approx(3.89, abs=0.01)


def test_below_the_inlet_only_the_wet_well_stores(ref: StageStorage):
    for z in (0.2, 0.8, 1.2, 1.5):
        assert ref.volume(z) == pytest.approx(A_WW * z, rel=1e-9)
        assert ref.surface_area(z - 0.05) == pytest.approx(A_WW, rel=1e-6)


def test_pipe_volume_matches_closed_form_approximation():
    # §3.3: L_b = 1.50/0.005 = 300 m; V ≈ A_p·(L_b − D/(2s)) = 0.0314 × 280 = 8.80 m³ between 0.80 and 3.00 m
    cfg = station_config("KITA-MP-01")
    pipe = cfg.upstream.pipes[0].model_copy(update={"manhole_spacing_m": None})
    s = StageStorage(cfg.wet_well.area, pipes=[pipe], top_m=4.5)
    v = s.upstream_volume(3.0) - s.upstream_volume(0.8)
    approx = A_PIPE * (1.5 / 0.005 - 0.2 / (2 * 0.005))
    assert approx == pytest.approx(8.80, abs=0.01)
    assert v == pytest.approx(approx, rel=0.10)
    assert v == pytest.approx(approx, rel=0.005)  # exact here: the back-water stops short of the pipe's end


@pytest.mark.parametrize("z", [1.52, 1.6, 1.7, 1.85, 2.2, 3.0, 3.6, 4.5])
def test_pipe_volume_matches_sliced_integral(z: float):
    cfg = station_config("KITA-MP-01")
    pipe = cfg.upstream.pipes[0].model_copy(update={"manhole_spacing_m": None})
    s = StageStorage(cfg.wet_well.area, pipes=[pipe], top_m=4.5)
    assert s.upstream_volume(z) == pytest.approx(sliced_pipe_volume(z), rel=0.01, abs=1e-6)


def test_full_pipe_caps_at_its_length():
    # 400 m at 5 ‰ rises 2 m: above 1.5 + 2 + 0.2 m the whole pipe is full
    cfg = station_config("KITA-MP-01")
    pipe = cfg.upstream.pipes[0].model_copy(update={"manhole_spacing_m": None})
    s = StageStorage(cfg.wet_well.area, pipes=[pipe], top_m=5)
    assert s.upstream_volume(3.8) == pytest.approx(A_PIPE * 400)
    assert s.upstream_volume(4.5) == pytest.approx(A_PIPE * 400)


def test_manholes_store_above_their_pipe_crown(ref: StageStorage):
    # Manholes at x = 30, 60, … 390 m; crown at 1.5 + 0.005·x + 0.2. At z = 3.00 the first 8 are wet,
    # 1.15, 1.00, … 0.10 m deep: 0.636 × 5.0 = 3.18 m³ (docs/domain.md §3.3; not 9 × 0.73 m → 4.2 m³).
    cfg = station_config("KITA-MP-01")
    bare = cfg.upstream.pipes[0].model_copy(update={"manhole_spacing_m": None})
    s_bare = StageStorage(cfg.wet_well.area, pipes=[bare], top_m=4.5)
    manholes = ref.upstream_volume(3.0) - s_bare.upstream_volume(3.0)
    assert manholes == pytest.approx(0.636 * sum(1.3 - 0.15 * j for j in range(1, 9)))
    assert manholes == pytest.approx(3.18)
    assert ref.upstream_volume(1.7) == pytest.approx(s_bare.upstream_volume(1.7))  # below every crown


def test_worked_example_total_and_usable(ref: StageStorage):
    total = ref.storage_between(0.8, 3.0)
    assert total == pytest.approx(3.89 + 8.80 + 3.18, abs=0.02)
    assert ref.usable_fraction == 0.8
    assert ref.usable_volume(0.8, 3.0) == pytest.approx(0.8 * total)
    # most of it is in the sewer, not in the wet well (§3.3 lesson)
    assert ref.upstream_volume(3.0) / total > 0.7
    # table vs exact components
    for z in (0.37, 1.51, 2.345, 3.0, 4.2):
        assert ref.volume(z) == pytest.approx(ref.wet_well_volume(z) + ref.upstream_volume(z), rel=2e-3)


def test_inverse_round_trips_and_is_monotone(ref: StageStorage):
    prev = -1.0
    for i in range(480):
        z = i * 0.0097
        v = ref.volume(z)
        assert v > prev
        prev = v
        assert ref.level(v) == pytest.approx(z, abs=1e-9)
    for v in (0.001, 0.5, 3.0, 10.0, 20.0, 30.0):
        assert ref.volume(ref.level(v)) == pytest.approx(v, rel=1e-9)
    assert ref.level(0) == 0 and ref.level(-1) == 0 and ref.volume(-0.3) == 0
    # beyond the table (ground 4.5 m): extrapolated, still invertible
    assert ref.level(ref.volume(5.0)) == pytest.approx(5.0)


def test_surface_area_grows_above_the_inlet(ref: StageStorage):
    assert ref.surface_area(2.0) > 5 * A_WW  # back-water along the sewer


def test_storage_curve_instead_of_pipes():
    cfg = station_config("KITA-MP-01")
    curve_cfg = cfg.model_copy(
        update={
            "upstream": cfg.upstream.model_copy(
                update={"pipes": [], "storage_curve": [(1.5, 0.0), (3.0, 12.0)]}
            )
        }
    )
    s = StageStorage.from_station(curve_cfg)
    assert s.upstream_volume(1.0) == 0
    assert s.upstream_volume(2.25) == pytest.approx(6.0)
    assert s.upstream_volume(4.0) == pytest.approx(12.0)  # flat above the last point
    assert s.volume(2.25) == pytest.approx(A_WW * 2.25 + 6.0, rel=1e-6)
    assert s.level(s.volume(2.8)) == pytest.approx(2.8)
    # the curve starts above 0 m³: nothing below its first level
    s2 = StageStorage(A_WW, storage_curve=[(1.0, 2.0), (2.0, 4.0)], top_m=3)
    assert s2.upstream_volume(0.99) == 0 and s2.upstream_volume(1.5) == pytest.approx(3.0)


def test_treatment_plant_has_no_stage_storage():
    plant = StationConfig(
        id="WWTP-1", tenant="kita", name="plant", kind="treatment_plant", plant={"design_flow_m3_d": 5000}
    )
    with pytest.raises(ValueError, match="no wet well"):
        StageStorage.from_station(plant)


def test_other_demo_types_build():
    for sid in ("KITA-MP-03", "KITA-MP-04"):  # mps-small, mps-large (two pipes)
        s = StageStorage.from_station(station_config(sid))
        cfg = station_config(sid)
        assert s.top_m == pytest.approx(cfg.levels.ground_m)
        assert s.volume(cfg.levels.spill_m) > s.wet_well_volume(cfg.levels.spill_m)
