"""The network map's tile source: a municipality's tile server named in the settings is the one outside
origin the console may load images from (its CSP says so); none named, the console draws a schematic and
the policy stays 'self'. A setting that is no tile URL template is refused with the reason."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from pumpwatch.api.context import ApiContext
from pumpwatch.api.headers import CSP
from pumpwatch.api.main import create_app
from pumpwatch.api.webconfig import web_config
from pumpwatch.core.clock import FakeClock
from pumpwatch.core.config import load_fleet
from pumpwatch.core.db import make_engine, upgrade
from pumpwatch.core.live import LiveSnapshot
from pumpwatch.core.settings import Settings
from tests.auth import LONG_SESSIONS, log_in
from tests.conftest import DEMO_FLEET
from tests.scale.test_overview import NOW

TILES = "https://tiles.city.example/osm/{z}/{x}/{y}.png"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("tiles.city.example/{z}/{x}/{y}.png", "http(s)://host"),
        ("https://tiles.city.example/{z}/{x}.png", "missing {y}"),
        ("ftp://tiles.city.example/{z}/{x}/{y}.png", "http(s)://host"),
    ],
)
def test_a_tile_setting_that_is_no_url_template_is_refused(url: str, why: str) -> None:
    with pytest.raises(ValueError, match="PUMPWATCH_MAP_TILES_URL") as exc:
        web_config(Settings(map_tiles_url=url))
    assert why in str(exc.value)


async def answers(tmp_path: Path, **settings: str) -> tuple[str, dict]:
    fleet = load_fleet(DEMO_FLEET)
    engine = make_engine(f"sqlite:///{tmp_path / 't.db'}")
    upgrade(engine)
    ctx = ApiContext(
        fleet=fleet, engine=engine, clock=FakeClock(NOW), catalog={}, live=LiveSnapshot(),
        auth=LONG_SESSIONS, web=web_config(Settings(**settings)),
    )  # fmt: skip
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        await log_in(c, engine, fleet.tenants, role="viewer")
        r = await c.get("/api/v1/console/map")
        assert r.status_code == 200, r.text
        page = await c.get("/")
    engine.dispose()
    return page.headers["content-security-policy"], r.json()


async def test_the_tile_server_is_the_one_other_image_origin(tmp_path: Path) -> None:
    policy, cfg = await answers(tmp_path, map_tiles_url=TILES, map_tiles_attribution="© Hanamizu City GIS")
    assert cfg == {"tiles": {"url": TILES, "attribution": "© Hanamizu City GIS"}}
    assert "img-src 'self' data: https://tiles.city.example;" in policy
    assert policy.replace(" https://tiles.city.example", "") == CSP  # nothing else loosened


async def test_without_tiles_the_map_is_a_schematic_and_the_policy_unchanged(tmp_path: Path) -> None:
    policy, cfg = await answers(tmp_path)
    assert cfg == {"tiles": None} and policy == CSP


def test_leaflet_is_the_pinned_release_from_our_own_assets() -> None:
    import hashlib

    from tests.conftest import REPO

    folder = REPO / "api" / "static" / "vendor" / "leaflet-1.9.4"
    sums = dict(reversed(line.split()) for line in (folder / "SHA256SUMS").read_text().splitlines())
    assert set(sums) == {"leaflet-src.esm.js", "leaflet.css"}
    for name, digest in sums.items():
        got = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        assert got == digest, f"{name} is not the pinned file"
    page = (REPO / "api" / "static" / "index.html").read_text()
    assert 'href="/static/vendor/leaflet-1.9.4/leaflet.css"' in page
    view = (REPO / "api" / "static" / "js" / "views" / "map.js").read_text()
    assert 'from "../../vendor/leaflet-1.9.4/leaflet-src.esm.js"' in view
    assert "http://" not in view and "https://" not in view  # no CDN, no tile server of its own choosing
