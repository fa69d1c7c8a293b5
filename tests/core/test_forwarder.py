"""The one store-and-forward queue (pumpwatch.core.spool.Forwarder) the historian writer and the alarm
service share: in order, nothing removed before it is delivered, durable across a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from pumpwatch.core.spool import Forwarder, Spool


class Db:
    def __init__(self) -> None:
        self.rows: list[str] = []
        self.down = False

    def write(self, item: str) -> None:
        if self.down:
            raise ConnectionError("database away")
        self.rows.append(item)


def forwarder(folder: Path, db: Db) -> Forwarder[str]:
    spool = Spool(folder, capacity_bytes=1 << 20, segment_bytes=4096, fsync=False)
    return Forwarder(spool, lambda s: (s.encode(), 1), bytes.decode, db.write)


async def test_items_come_out_in_the_order_they_were_parked(tmp_path: Path) -> None:
    db = Db()
    fw = forwarder(tmp_path, db)
    assert fw.empty and await fw.forward_one() is None
    for i in range(5):
        assert await fw.park(f"event-{i}")
    assert not fw.empty
    while await fw.forward_one() is not None:
        pass
    assert db.rows == [f"event-{i}" for i in range(5)] and fw.empty


async def test_a_failed_delivery_keeps_the_item_first_in_line(tmp_path: Path) -> None:
    db = Db()
    fw = forwarder(tmp_path, db)
    await fw.park("a")
    await fw.park("b")
    db.down = True
    with pytest.raises(ConnectionError):
        await fw.forward_one()
    with pytest.raises(ConnectionError):
        await fw.forward_one()  # tried again: still "a", nothing skipped
    db.down = False
    assert await fw.forward_one() == "a"
    assert await fw.forward_one() == "b"
    assert db.rows == ["a", "b"]


async def test_what_was_parked_survives_a_restart(tmp_path: Path) -> None:
    db = Db()
    fw = forwarder(tmp_path, db)
    await fw.park("before the restart")
    fw.spool.close()
    again = forwarder(tmp_path, db)  # a new process on the same folder
    assert await again.forward_one() == "before the restart"
    assert again.empty
    again.spool.close()
