"""On-call staff's phone numbers and addresses are for operators and admins of their tenant (before, a viewer
read them in /notify/deliveries), and test messages cannot page a person over and over (before: unlimited)."""

from __future__ import annotations

from tests.auth import add_user, bearer, token
from tests.notify.conftest import World


async def test_viewers_do_not_see_contact_details(world: World) -> None:
    world.raise_()
    await world.run(31)
    add_user(world.engine, "kita-viewer", [("kita", "viewer")])
    add_user(world.engine, "kita-operator", [("kita", "operator")])
    viewer = bearer(await token(world.client, "kita-viewer"))
    operator = bearer(await token(world.client, "kita-operator"))
    world.client.cookies.clear()
    for path in ("/api/v1/notify/deliveries", "/api/v1/notify/alarms/1"):
        seen = (await world.client.get(path, headers=viewer)).text
        assert "duty1@kita.example.jp" not in seen and "hidden" in seen, seen
        assert "duty1@kita.example.jp" in (await world.client.get(path, headers=operator)).text


async def test_test_messages_are_rate_limited_per_person(world: World) -> None:
    codes = [
        (
            await world.client.post("/api/v1/notify/test", json={"person": "duty2", "channel": "hook"})
        ).status_code
        for _ in range(5)
    ]
    assert codes == [202, 202, 202, 429, 429]
    r = await world.client.post("/api/v1/notify/test", json={"person": "duty2"})
    assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 600
    assert (await world.client.post("/api/v1/notify/test", json={"person": "duty1"})).status_code == 202
    world.clock.advance(601)
    assert (await world.client.post("/api/v1/notify/test", json={"person": "duty2"})).status_code == 202
