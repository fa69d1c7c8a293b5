"""Stage–storage of a pumping station (docs/domain.md §3.1): how much sewage the wet well and the sewers
upstream hold below a level, and how much of that is already taken by the flow in the pipes. Shared by the
simulators (level from volume) and the alarm engine (time to overflow).

Datum 0 is the wet-well floor. The model is a level pool: at level z the water surface is flat from the wet
well up every upstream pipe until the pipe invert rises above z (back-water).

- Wet well: `A_ww · z`.
- The sewer is a tree of `Pipe`s (branches join at manholes), each cut into segments: a straight pipe at its
  manholes, or its `reaches` (own length, slope and manhole each). A segment (diameter D, length L, slope s,
  invert z₀ at its lower end) has its invert at `z₀ + s·x` a distance x up it; the wetted section at x is the
  circular segment of depth `clamp(z − inv(x), 0, D)`. Substituting u = z − inv(x) turns the integral over x
  into `(F(z − z₀) − F(z − z₀ − s·L)) / s` with F the integral of the segment area over depth, which has a
  closed form (`_segment_area_integral`). So the pipe volume is exact, not sliced.
- A manhole at the upper end of a segment stores `A_mh · max(0, z − floor)`, floor = the segment's invert
  there + `benching_m` (the top of the benching; default the pipe crown, where it used to be counted from).
- Alternatively `upstream.storage_curve` gives the upstream volume (wet well excluded) at levels; it is
  interpolated linearly, 0 below its first level and flat above its last.

Flow already in the pipes (`volume_with_flow`, `FlowTable`). At an inflow q the wet well receives, each
segment carries its share of q (the sewer length upstream of its middle over the whole length: houses
connect along the sewers) at Manning's normal depth y_n (n = `roughness_n`). That water is there before any
back-water: the pool fills only the part of each section above y_n, so the storage a level rise can use is
`∫ max(0, a(u) − a(y_n)) dx` per segment (closed form too), and a manhole stores from
`max(floor, invert + y_n)`. At q = 0 this is S(z) itself. A segment whose share exceeds its full-bore
capacity is full already (it stores nothing more).

The volume is tabulated on a 1 cm grid from 0 to the ground level (or spill + 1 m) and interpolated both
ways, so `volume()` and `level()` are cheap enough for a physics loop that calls them every simulated second.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from pumpwatch.core.config.models import Pipe, StationConfig

__all__ = ["FlowTable", "Segment", "StageStorage", "manning_flow", "normal_depth", "segment_area"]

GRID_M = 0.01
MAX_DEPTH_RATIO = 0.938  # a circular pipe carries its largest flow at 93.8 % of its diameter
FLOW_BUCKET = 1.02  # flow tables are shared between inflows within 2 % of each other


def segment_area(depth: float, diameter: float) -> float:
    """Wetted area (m²) of a circular pipe of `diameter` filled to `depth` (clamped to 0..diameter)."""
    r = diameter / 2
    h = min(max(depth, 0.0), diameter)
    y = r - h  # distance from the centre down to the water surface (negative above the centre)
    return r * r * math.acos(y / r) - y * math.sqrt(max(r * r - y * y, 0.0))


def _segment_area_integral(u: float, diameter: float) -> float:
    """∫₀ᵘ segment_area(clamp(t, 0, D)) dt: exact, for any u (0 for u ≤ 0, linear in u above the crown)."""
    if u <= 0:
        return 0.0
    r = diameter / 2
    if u >= diameter:
        full = math.pi * r * r
        return full * r + full * (u - diameter)  # ∫₀ᴰ = A_full·D/2 by symmetry
    y = r - u
    # Antiderivative of the segment area with respect to y = r − h: G(y) = r²(y·acos(y/r) − √(r²−y²))
    # + (r²−y²)^{3/2}/3, with G(r) = 0; F(h) = G(r) − G(r − h).
    root = math.sqrt(max(r * r - y * y, 0.0))
    g = r * r * (y * math.acos(y / r) - root) + root**3 / 3
    return -g


def manning_flow(depth: float, diameter: float, slope: float, n: float) -> float:
    """Manning's flow (m³/s) of a circular pipe running part full at `depth`: Q = A·R^(2/3)·√s / n."""
    h = min(max(depth, 0.0), diameter)
    if h <= 0:
        return 0.0
    r = diameter / 2
    theta = 2 * math.acos((r - h) / r)  # wetted angle
    area = r * r * (theta - math.sin(theta)) / 2
    perimeter = r * theta
    return float(area * (area / perimeter) ** (2 / 3) * math.sqrt(slope) / n)


def normal_depth(q_m3_s: float, diameter: float, slope: float, n: float) -> float:
    """Normal depth (m) of a flow in a circular pipe; the diameter when it exceeds the pipe's capacity."""
    if q_m3_s <= 0:
        return 0.0
    top = MAX_DEPTH_RATIO * diameter
    if q_m3_s >= manning_flow(top, diameter, slope, n):
        return diameter
    lo, hi = 0.0, top
    for _ in range(50):
        mid = (lo + hi) / 2
        if manning_flow(mid, diameter, slope, n) < q_m3_s:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-6:
            break
    return (lo + hi) / 2


@dataclass(frozen=True, slots=True)
class Segment:
    """One straight stretch of a sewer (between manholes, or up to a change of slope)."""

    invert_m: float  # at its lower end, station datum
    slope: float
    length_m: float
    diameter_m: float
    roughness_n: float
    share: float  # of the station's inflow it carries (sewer length upstream of its middle ÷ the whole)
    manhole_area_m2: float | None  # the manhole at its upper end (None: no manhole there)
    manhole_floor_m: float  # that manhole's floor, station datum

    @property
    def top_invert_m(self) -> float:
        return self.invert_m + self.slope * self.length_m

    def volume(self, z: float, y_n: float = 0.0) -> float:
        """Water a level pool at z holds in this segment above the flow depth y_n (0: all of it)."""
        u_near = z - self.invert_m
        if u_near <= y_n:
            return 0.0
        d, s = self.diameter_m, self.slope
        u_far = max(u_near - s * self.length_m, y_n)
        vol = (_segment_area_integral(u_near, d) - _segment_area_integral(u_far, d)) / s
        if y_n > 0:
            vol -= segment_area(y_n, d) * (u_near - u_far) / s
        return max(vol, 0.0)

    def manhole_volume(self, z: float, y_n: float = 0.0) -> float:
        if self.manhole_area_m2 is None:
            return 0.0
        floor = max(self.manhole_floor_m, self.top_invert_m + y_n)
        return self.manhole_area_m2 * max(0.0, z - floor)


def _segments(pipes: Sequence[Pipe]) -> list[Segment]:
    """The tree of pipes as segments, each with its share of the flow."""
    raw: list[tuple[Pipe, float, float, float, float, float | None, float]] = []  # + upstream length at mid

    def subtree_length(p: Pipe) -> float:
        return p.total_length + sum(subtree_length(b) for b in p.branches)

    def walk(p: Pipe, invert: float) -> None:
        d = p.diameter_m
        manholes = p.manhole_positions()
        branch_len = [(b.at_m, subtree_length(b)) for b in p.branches]
        total = p.total_length
        # the stretches, cut at the manholes of a straight pipe
        pieces: list[tuple[float, float, float | None, float | None]] = []  # length, slope, area, benching
        if p.reaches is not None:
            for r in p.reaches:
                pieces.append(
                    (
                        r.length_m,
                        r.slope,
                        (r.manhole_area_m2 or p.manhole_area_m2) if r.manhole else None,
                        r.benching_m if r.benching_m is not None else p.benching_m,
                    )
                )
        else:
            assert p.length_m is not None and p.slope is not None
            x = 0.0
            for m in manholes:
                pieces.append((m - x, p.slope, p.manhole_area_m2, p.benching_m))
                x = m
            if x < p.length_m - 1e-9:
                pieces.append((p.length_m - x, p.slope, None, p.benching_m))
        x, z = 0.0, invert
        for length, slope, area, bench in pieces:
            x_top = x + length
            upstream = (total - (x + x_top) / 2) + sum(n for at, n in branch_len if at >= x_top - 0.01)
            floor = z + slope * length + (bench if bench is not None else d)
            raw.append((p, z, slope, length, upstream, area, floor))
            x, z = x_top, z + slope * length
        for b in p.branches:
            walk(b, b.invert_m if b.invert_m is not None else p.invert_at(b.at_m))

    for p in pipes:
        walk(p, p.invert_m)
    whole = sum(subtree_length(p) for p in pipes)
    return [
        Segment(
            invert_m=z,
            slope=s,
            length_m=length,
            diameter_m=p.diameter_m,
            roughness_n=p.roughness_n,
            share=upstream / whole if whole > 0 else 0.0,
            manhole_area_m2=area,
            manhole_floor_m=floor,
        )
        for p, z, s, length, upstream, area, floor in raw
    ]


def _curve_volume(z: float, curve: Sequence[tuple[float, float]]) -> float:
    if z < curve[0][0]:
        return 0.0
    if z >= curve[-1][0]:
        return curve[-1][1]
    for (z0, v0), (z1, v1) in zip(curve, curve[1:], strict=False):
        if z0 <= z <= z1:
            return v0 + (v1 - v0) * (z - z0) / (z1 - z0)
    return curve[-1][1]  # unreachable: levels rise strictly


class _Table:
    """Volume on a level grid, interpolated both ways (strictly increasing: the wet well grows with z)."""

    __slots__ = ("_v", "_z", "grid_m")

    def __init__(self, zs: list[float], vs: list[float], grid_m: float) -> None:
        self._z, self._v, self.grid_m = zs, vs, grid_m

    def volume(self, z: float) -> float:
        if z <= 0:
            return 0.0
        zs, vs = self._z, self._v
        if z >= zs[-1]:
            return vs[-1] + (z - zs[-1]) * (vs[-1] - vs[-2]) / (zs[-1] - zs[-2])
        i = min(int(z / self.grid_m), len(zs) - 2)
        return vs[i] + (vs[i + 1] - vs[i]) * (z - zs[i]) / (zs[i + 1] - zs[i])

    def level(self, volume: float) -> float:
        if volume <= 0:
            return 0.0
        zs, vs = self._z, self._v
        if volume >= vs[-1]:
            return zs[-1] + (volume - vs[-1]) * (zs[-1] - zs[-2]) / (vs[-1] - vs[-2])
        i = bisect.bisect_right(vs, volume) - 1
        return zs[i] + (zs[i + 1] - zs[i]) * (volume - vs[i]) / (vs[i + 1] - vs[i])


class FlowTable(_Table):
    """Stage–storage at one inflow: the volume (m³) a level rise from the floor to z fills, the flow already
    in the pipes excluded (see the module docstring). Made by `StageStorage.with_flow`."""

    __slots__ = ("q_m3_min",)

    def __init__(self, zs: list[float], vs: list[float], grid_m: float, q_m3_min: float) -> None:
        super().__init__(zs, vs, grid_m)
        self.q_m3_min = q_m3_min


class StageStorage:
    """Volume (m³) between the wet-well floor and a level z (m), and its inverse."""

    def __init__(
        self,
        wet_well_area_m2: float,
        *,
        pipes: Sequence[Pipe] = (),
        storage_curve: Sequence[tuple[float, float]] | None = None,
        usable_fraction: float = 0.8,
        top_m: float = 5.0,
        grid_m: float = GRID_M,
    ) -> None:
        if wet_well_area_m2 <= 0:
            raise ValueError("wet well area must be > 0")
        if not 0 < usable_fraction <= 1:
            raise ValueError("usable_fraction must be in (0, 1]")
        if top_m <= 0 or grid_m <= 0:
            raise ValueError("top_m and grid_m must be > 0")
        self.wet_well_area_m2 = wet_well_area_m2
        self.pipes = tuple(pipes)
        self.segments = tuple(_segments(self.pipes))
        self.storage_curve = tuple(storage_curve) if storage_curve is not None else None
        self.usable_fraction = usable_fraction
        n = math.ceil(top_m / grid_m - 1e-9)
        self.grid_m = grid_m
        self.top_m = n * grid_m
        self._z = [i * grid_m for i in range(n + 1)]
        self._v = [self._exact_volume(z) for z in self._z]
        self._table = _Table(self._z, self._v, grid_m)
        self._flow_tables: dict[int, FlowTable] = {}
        self._depth_cache: tuple[float, tuple[float, ...]] | None = None

    @classmethod
    def from_station(cls, cfg: StationConfig) -> StageStorage:
        if cfg.kind == "treatment_plant" or cfg.wet_well is None or cfg.levels is None:
            raise ValueError(f"station {cfg.id} ({cfg.kind}) has no wet well: no stage–storage")
        lv = cfg.levels
        top = lv.ground_m if lv.ground_m is not None else lv.spill_m + 1.0
        top = max(top, lv.spill_m + GRID_M)
        return cls(
            cfg.wet_well.area,
            pipes=cfg.upstream.pipes,
            storage_curve=cfg.upstream.storage_curve,
            usable_fraction=cfg.upstream.usable_fraction,
            top_m=top,
        )

    # --- components (exact, not tabulated; for tests and reports) ---------------------------------------

    def wet_well_volume(self, z: float) -> float:
        return self.wet_well_area_m2 * max(z, 0.0)

    def upstream_volume(self, z: float) -> float:
        if self.storage_curve is not None:
            return _curve_volume(z, self.storage_curve)
        return sum(seg.volume(z) + seg.manhole_volume(z) for seg in self.segments)

    def _exact_volume(self, z: float) -> float:
        return self.wet_well_volume(z) + self.upstream_volume(z)

    # --- flow already in the pipes -----------------------------------------------------------------------

    def flow_depths(self, q_m3_min: float) -> tuple[float, ...]:
        """Normal depth (m) of each segment's share of an inflow q (m³/min), in `segments` order."""
        cached = self._depth_cache
        if cached is not None and cached[0] == q_m3_min:
            return cached[1]
        q_s = max(q_m3_min, 0.0) / 60.0
        depths = tuple(
            normal_depth(q_s * seg.share, seg.diameter_m, seg.slope, seg.roughness_n) for seg in self.segments
        )
        self._depth_cache = (q_m3_min, depths)
        return depths

    def in_pipe_volume(self, q_m3_min: float) -> float:
        """Water (m³) the sewer holds while it carries an inflow q at normal depth (no back-water)."""
        return sum(
            segment_area(y, seg.diameter_m) * seg.length_m
            for seg, y in zip(self.segments, self.flow_depths(q_m3_min), strict=True)
        )

    def volume_with_flow(self, z: float, q_m3_min: float) -> float:
        """Volume (m³) a rise from the floor to z fills while the pipes carry q (m³/min) at normal depth: the
        flow already in them excluded. Equals `volume(z)` at q = 0 (exact, not tabulated)."""
        if self.storage_curve is not None or not self.segments or q_m3_min <= 0:
            return self._exact_volume(z)
        up = 0.0
        for seg, y in zip(self.segments, self.flow_depths(q_m3_min), strict=True):
            up += seg.volume(z, y) + seg.manhole_volume(z, y)
        return self.wet_well_volume(z) + up

    def with_flow(self, q_m3_min: float) -> FlowTable:
        """The stage–storage table at an inflow q (shared within 2 % of q): for a physics loop."""
        if self.storage_curve is not None or not self.segments or q_m3_min <= 0:
            return FlowTable(self._z, self._v, self.grid_m, 0.0)
        key = round(math.log(q_m3_min) / math.log(FLOW_BUCKET))
        table = self._flow_tables.get(key)
        if table is None:
            q = FLOW_BUCKET**key
            table = FlowTable(self._z, [self.volume_with_flow(z, q) for z in self._z], self.grid_m, q)
            if len(self._flow_tables) > 256:
                self._flow_tables.clear()
            self._flow_tables[key] = table
        return table

    # --- the table --------------------------------------------------------------------------------------

    def volume(self, z: float) -> float:
        """Stored volume (m³) from the floor up to level z. 0 below the floor; linear beyond the table."""
        return self._table.volume(z)

    def level(self, volume: float) -> float:
        """Level (m) at which `volume` m³ is stored: the inverse of `volume()`."""
        return self._table.level(volume)

    def surface_area(self, z: float) -> float:
        """dV/dz (m²) at level z: the effective plan area the inflow fills at that level."""
        h = self.grid_m / 2
        return (self.volume(z + h) - self.volume(max(z - h, 0.0))) / (z + h - max(z - h, 0.0))

    def storage_between(self, z0: float, z1: float) -> float:
        """Raw volume (m³) between two levels (negative if z1 < z0)."""
        return self.volume(z1) - self.volume(z0)

    def usable_volume(self, z0: float, z1: float) -> float:
        """Volume (m³) one can count on between z0 and z1: `usable_fraction` η × raw (docs/domain.md §3.1)."""
        return self.usable_fraction * self.storage_between(z0, z1)
