"""Synthetic fleets of N stations for the benchmark, written as YAML and loaded like any fleet."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from pumpwatch.core.config import Fleet, load_fleet

HERE = Path(__file__).resolve().parent

STATION_TYPE = {
    "kind": "manhole_pump",
    "wet_well": {"diameter_m": 1.5},
    "levels": {
        "lwl_m": 0.35,
        "stop_m": 0.5,
        "start_m": 1.0,
        "lag_m": 1.2,
        "hwl_m": 1.4,
        "inlet_invert_m": 1.5,
        "spill_m": 3.0,
        "ground_m": 4.5,
    },
    "pumps": [
        {
            "name": "pump1",
            "rated_flow_m3_min": 0.5,
            "rated_current_a": 10,
            "power_kw": 2.2,
            "install_year": 2011,
        }
    ],
}


def write_fleet(
    folder: Path, n: int, ports: list[int], *, interval_s: float = 5.0, rules: bool = False
) -> Path:
    """N stations, each its own Modbus controller at 127.0.0.1:`ports[i]` (one light server answers all)."""
    folder.mkdir(parents=True, exist_ok=True)
    maps = folder / "maps"
    maps.mkdir(exist_ok=True)
    shutil.copy(HERE / "config" / "bench-20.yaml", maps / "bench-20.yaml")
    ids = [f"B{i:05d}" for i in range(n)]
    (folder / "tenants.yaml").write_text(yaml.safe_dump({"tenants": [{"id": "bench", "name": "Bench"}]}))
    (folder / "stations.yaml").write_text(
        yaml.safe_dump(
            {
                "station_types": {"mps": STATION_TYPE},
                "stations": [{"id": s, "tenant": "bench", "name": s, "type": "mps"} for s in ids],
            },
            default_flow_style=None,
        )
    )
    (folder / "controllers.yaml").write_text(
        yaml.safe_dump(
            {
                "controllers": [
                    {
                        "id": f"c{s}",
                        "host": "127.0.0.1",
                        "port": ports[i],
                        "poll_interval_s": interval_s,
                        "timeout_s": min(2.0, interval_s / 2),
                        "units": [{"unit_id": 1, "station": s, "map": "bench-20"}],
                    }
                    for i, s in enumerate(ids)
                ]
            },
            default_flow_style=None,
        )
    )
    fleet = {
        "name": f"bench-{n}",
        "tenants": "tenants.yaml",
        "stations": "stations.yaml",
        "controllers": "controllers.yaml",
        "register_maps": "maps",
    }
    if rules:
        shutil.copy(HERE / "config" / "rules.yaml", folder / "rules.yaml")
        fleet["alarm_rules"] = "rules.yaml"
    (folder / "fleet.yaml").write_text(yaml.safe_dump(fleet))
    return folder


def bench_fleet(folder: Path, n: int, ports: list[int] | None = None, **kw) -> Fleet:
    """`ports` None: stations on made-up ports (for parts that poll nothing: alarms, API)."""
    return load_fleet(write_fleet(folder, n, ports or list(range(10_000, 10_000 + n)), **kw))
