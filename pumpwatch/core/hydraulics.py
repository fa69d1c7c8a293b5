"""Stage–storage of a pumping station (docs/domain.md §3.1): how much sewage the wet well and the sewers
upstream hold below a level. Shared by the simulators (level from volume) and the alarm engine (time to
overflow).

Datum 0 is the wet-well floor. The model is a level pool: at level z the water surface is flat from the wet
well up every upstream pipe until the pipe invert rises above z (back-water).

- Wet well: `A_ww · z`.
- Each straight `Pipe` (diameter D, length L, slope s, invert z_inv at the wet well) has its invert at
  `z_inv + s·x` a distance x upstream. The wetted section at x is the circular segment of depth
  `clamp(z − inv(x), 0, D)`. The volume is the integral over x; substituting u = z − inv(x) turns it into
  `(F(z − z_inv) − F(z − z_inv − s·L)) / s` with F the integral of the segment area over depth, which has a
  closed form (`_segment_area_integral`). So the pipe volume is exact, not sliced.
- Manholes on a pipe at x = spacing, 2·spacing, … < L each store `A_mh · max(0, z − (inv(x_j) + D))`
  (only the part above the pipe crown; the pipe volume already covers the rest).
- Alternatively `upstream.storage_curve` gives the upstream volume (wet well excluded) at levels; it is
  interpolated linearly, 0 below its first level and flat above its last.

The volume is tabulated on a 1 cm grid from 0 to the ground level (or spill + 1 m) and interpolated both
ways, so `volume()` and `level()` are cheap enough for a physics loop that calls them every simulated second.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

from pumpwatch.core.config.models import Pipe, StationConfig

__all__ = ["StageStorage", "segment_area"]

GRID_M = 0.01


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


def _pipe_volume(z: float, pipe: Pipe) -> float:
    """Water held in one upstream pipe and its manholes under a level pool at z."""
    d, s, length = pipe.diameter_m, pipe.slope, pipe.length_m
    u_near = z - pipe.invert_m  # depth at the wet well end (may exceed D: surcharged)
    u_far = u_near - s * length
    vol = (_segment_area_integral(u_near, d) - _segment_area_integral(u_far, d)) / s
    if pipe.manhole_spacing_m:
        j = 1
        while (x := j * pipe.manhole_spacing_m) < length:
            crown = pipe.invert_m + s * x + d
            if z <= crown:
                break  # crowns only rise further up the pipe
            vol += pipe.manhole_area_m2 * (z - crown)
            j += 1
    return vol


def _curve_volume(z: float, curve: Sequence[tuple[float, float]]) -> float:
    if z < curve[0][0]:
        return 0.0
    if z >= curve[-1][0]:
        return curve[-1][1]
    for (z0, v0), (z1, v1) in zip(curve, curve[1:], strict=False):
        if z0 <= z <= z1:
            return v0 + (v1 - v0) * (z - z0) / (z1 - z0)
    return curve[-1][1]  # unreachable: levels rise strictly


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
        self.storage_curve = tuple(storage_curve) if storage_curve is not None else None
        self.usable_fraction = usable_fraction
        n = math.ceil(top_m / grid_m - 1e-9)
        self.grid_m = grid_m
        self.top_m = n * grid_m
        self._z = [i * grid_m for i in range(n + 1)]
        self._v = [self._exact_volume(z) for z in self._z]
        # Strictly increasing (the wet well alone grows with z), so the inverse is a table look-up too.

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
        return sum(_pipe_volume(z, p) for p in self.pipes)

    def _exact_volume(self, z: float) -> float:
        return self.wet_well_volume(z) + self.upstream_volume(z)

    # --- the table --------------------------------------------------------------------------------------

    def volume(self, z: float) -> float:
        """Stored volume (m³) from the floor up to level z. 0 below the floor; linear beyond the table."""
        if z <= 0:
            return 0.0
        zs, vs = self._z, self._v
        if z >= zs[-1]:
            return vs[-1] + (z - zs[-1]) * (vs[-1] - vs[-2]) / (zs[-1] - zs[-2])
        i = min(int(z / self.grid_m), len(zs) - 2)
        return vs[i] + (vs[i + 1] - vs[i]) * (z - zs[i]) / (zs[i + 1] - zs[i])

    def level(self, volume: float) -> float:
        """Level (m) at which `volume` m³ is stored: the inverse of `volume()`."""
        if volume <= 0:
            return 0.0
        zs, vs = self._z, self._v
        if volume >= vs[-1]:
            return zs[-1] + (volume - vs[-1]) * (zs[-1] - zs[-2]) / (vs[-1] - vs[-2])
        i = bisect.bisect_right(vs, volume) - 1
        return zs[i] + (zs[i + 1] - zs[i]) * (volume - vs[i]) / (vs[i + 1] - vs[i])

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
