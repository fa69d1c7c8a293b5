"""The disk spool: order, durability across reopen, torn tails, a full spool counting exactly, no space."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pumpwatch.core.spool import Spool, SpoolLocked
from pumpwatch.core.writer import decode_rows, encode_rows


def _drain(sp: Spool) -> list[bytes]:
    out = []
    while (data := sp.peek()) is not None:
        out.append(data)
        sp.commit()
    return out


def test_fifo_across_segments_and_reopen(tmp_path: Path) -> None:
    sp = Spool(tmp_path, capacity_bytes=1 << 20, segment_bytes=4096)
    recs = [f"record-{i:04d}".encode() * 20 for i in range(100)]
    for r in recs:
        assert sp.append(r, rows=3)
    assert len(list(tmp_path.glob("*.seg"))) > 5
    st = sp.status()
    assert (st.pending_records, st.pending_rows) == (100, 300)
    first = [_take(sp) for _ in range(30)]
    sp.close()
    sp = Spool(tmp_path, capacity_bytes=1 << 20, segment_bytes=4096)  # a restart
    assert sp.status().pending_rows == 210
    assert first + _drain(sp) == recs
    assert sp.empty and sp.status().bytes == 0
    assert not list(tmp_path.glob("*.seg"))  # delivered segments are deleted
    sp.close()


def _take(sp: Spool) -> bytes:
    data = sp.peek()
    assert data is not None
    sp.commit()
    return data


def test_torn_tail_is_cut_and_the_rest_kept(tmp_path: Path) -> None:
    sp = Spool(tmp_path, capacity_bytes=1 << 20)
    for i in range(5):
        sp.append(b"x%d" % i)
    sp.close()
    seg = sorted(tmp_path.glob("*.seg"))[-1]
    with open(seg, "ab") as f:
        f.write(b"\x40\x00\x00\x00garbage")  # a record header whose payload never made it to disk
    sp = Spool(tmp_path, capacity_bytes=1 << 20)
    assert _drain(sp) == [b"x%d" % i for i in range(5)]
    sp.append(b"after")
    assert _drain(sp) == [b"after"]
    sp.close()


def test_full_spool_drops_oldest_first_and_counts_exactly(tmp_path: Path) -> None:
    sp = Spool(tmp_path, capacity_bytes=8192, segment_bytes=1024)
    payload = b"p" * 200  # 212 bytes on disk per record: 4 per 1 KiB segment
    for i in range(100):
        sp.append(payload + i.to_bytes(2, "big"), rows=7)
    st = sp.status()
    assert st.bytes <= 8192
    kept = _drain(sp)
    # nothing lost but what was counted, and what is kept is the newest, in order
    assert len(kept) + sp.dropped_records == 100
    assert sp.dropped_rows == 7 * sp.dropped_records
    idx = [int.from_bytes(k[-2:], "big") for k in kept]
    assert idx == list(range(100 - len(kept), 100))
    assert len(kept) >= 28
    sp.close()


def test_delivered_records_are_not_counted_as_dropped(tmp_path: Path) -> None:
    sp = Spool(tmp_path, capacity_bytes=8192, segment_bytes=1024)
    for i in range(8):
        sp.append(b"q" * 200 + bytes([i]), rows=1)
    for _ in range(3):
        _take(sp)
    for i in range(8, 60):
        sp.append(b"q" * 200 + bytes([i]), rows=1)
    kept = _drain(sp)
    assert 3 + len(kept) + sp.dropped_rows == 60
    sp.close()


def test_no_space_left_never_raises_and_counts(tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("/dev/full is needed to make the kernel answer ENOSPC")
    sp = Spool(tmp_path, capacity_bytes=1 << 20, fsync=False)
    assert sp.append(b"kept", rows=2)
    # The next two segment files are the kernel's always-full device: every write there fails with ENOSPC.
    for seq in (1, 2):
        os.symlink("/dev/full", tmp_path / f"{seq:016d}.seg")
    sp.segment_bytes = 8  # the next record needs a new segment
    assert sp.append(b"lost", rows=5) is False
    st = sp.status()
    assert st.write_errors == 2 and "No space" in (st.last_error or "")
    # to make room the oldest segment went (2 rows), then the record itself (5 rows): all counted
    assert (st.dropped_rows, st.pending_rows) == (7, 0)
    assert sp.append(b"later", rows=1)  # the disk has room again (a regular file): the spool goes on
    assert _drain(sp) == [b"later"]
    sp.close()


def test_one_process_per_spool(tmp_path: Path) -> None:
    sp = Spool(tmp_path)
    with pytest.raises(SpoolLocked):
        Spool(tmp_path)
    sp.close()


def test_row_codec_round_trip() -> None:
    t0 = datetime(2026, 7, 1, 0, 0, tzinfo=UTC)
    rows = [
        (i, t0 + timedelta(microseconds=i * 1_000_001), None if i % 7 == 0 else i * 0.5, i % 3)
        for i in range(500)
    ]
    assert decode_rows(encode_rows(rows)) == rows


async def test_writer_raises_the_spool_fill_alarm_at_80_percent_and_counts_drops(tmp_path: Path) -> None:
    from pumpwatch.core.writer import HistorianWriter

    def refuse(engine, rows):
        raise ConnectionError("database unreachable")

    sp = Spool(tmp_path, capacity_bytes=64 * 1024, segment_bytes=4096)
    w = HistorianWriter(None, {}, spool=sp, write=refuse, batch_rows=200)  # type: ignore[arg-type]
    t0 = datetime(2026, 7, 1, tzinfo=UTC)
    n = 0
    while not w.spool_fill_high:
        w._pending.extend((i, t0 + timedelta(seconds=n), float(n * 7919 % 1000), 0) for i in range(200))
        n += 1
        await w.step()
        w._retry_at = 0.0  # next step tries the database again (and fails)
        assert n < 10_000
    assert sp.status().fill_pct >= 80 and w.status()["spool_fill_high"] and w.delayed
    while sp.status().dropped_rows == 0:  # keep going until the spool is full and drops the oldest
        w._pending.extend((i, t0 + timedelta(seconds=n), float(n * 7919 % 1000), 0) for i in range(200))
        n += 1
        await w.step()
    st = sp.status()
    assert st.dropped_rows % 200 == 0  # whole batches, counted exactly
    assert st.pending_rows + st.dropped_rows == 200 * n  # every row is either waiting or counted
    sp.close()
