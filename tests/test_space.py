"""Space comes back: state carried forward, lagging groups relocated, chunks that
must exist are known (format 2's footers and the data directory's marks)."""

import os
import subprocess
import sys

import pytest

from shardlog import ChunkMissing, CorruptedLog, LogState, Store
from shardlog.compat import export_raft_log, read_raft_log
from shardlog.engine import codec
from shardlog.workers.marks import MARKS_FILE

from .conftest import chunk_names, forget_sync, kill_after_flush
from .service import ROOT

SMALL = dict(chunk_max_size=4096, cache_max_items=10, cache_max_bytes=4096)


def churn(store, gid, rounds, start=0, size=100):
    """A busy group: appends and purges behind itself, so its chunks die."""
    g = store.group(gid)
    for i in range(start, start + rounds):
        g.append([((1, i), bytes([i % 256]) * size)])
        if i >= 3:
            g.purge((1, i - 3))
        if i % 10 == 0:
            g.flush()
    g.flush()
    g.flush()  # (which waits for the chunk deletions the one before asked for)
    return start + rounds


def settle(store):
    """Let the store finish freeing chunks (each flush waits for one more round)."""
    for _ in range(20):
        store.flush()


def disk_bytes(path):
    return sum(os.path.getsize(os.path.join(path, n)) for n in chunk_names(path))


def test_an_idle_groups_state_is_carried_forward_and_its_chunk_goes(data_dir):
    """A group that wrote its vote once and nothing else does not pin old chunks;
    only its state is copied (one State record), and it survives reopen."""
    with Store.open(data_dir, **SMALL) as store:
        store.group(7).save_vote((3, 1))
        store.group(7).commit((0, 0))
        store.group(7).flush()
        churn(store, 1, 400)
    # Read once the store is closed: its flusher deletes chunks after a flush
    # returns, and a chunk listed here could go before it was read.
    names = chunk_names(data_dir)
    assert len(names) <= 6, names
    states = [rec.value for n in names for _, rec, _ in codec.iter_records((data_dir / n).read_bytes(), room=True)
              if rec.type == codec.STATE and rec.gid == 7]
    assert states, "the vote lives on in a State record"
    for read_footers in (True, False):
        with Store.open(data_dir, read_footers=read_footers, **SMALL) as store:
            assert store.group(7).state() == LogState(vote=(3, 1), committed=(0, 0))


def test_a_group_holding_few_entries_is_relocated(data_dir):
    """One entry of an idle group pins the oldest chunk; it is copied forward, the
    disk stays within twice its live records plus four chunks, and the entry
    reads back (before and after reopen, by footers and by full replay)."""
    with Store.open(data_dir, **SMALL) as store:
        idle = store.group(9)
        idle.append([((2, 5), b"still here"), ((2, 6), b"me too")])
        idle.commit((2, 6))
        churn(store, 1, 800)
        settle(store)
        disk = store._disks[0]
        bound = 2 * disk.live_size() + 4 * SMALL["chunk_max_size"]
        assert disk_bytes(data_dir) <= bound + SMALL["chunk_max_size"]
        relocated = [rec for n in chunk_names(data_dir)
                     for _, rec, _ in codec.iter_records((data_dir / n).read_bytes(), room=True)
                     if rec.type == codec.RELOCATE]
        assert relocated and {rec.gid for rec in relocated} == {9}
        assert store.events()["events"] == [], "a small group is moved without notice"
        assert list(idle.read(0, 10)) == [((2, 5), b"still here"), ((2, 6), b"me too")]
    for read_footers in (True, False):
        with Store.open(data_dir, read_footers=read_footers, **SMALL) as store:
            assert list(store.group(9).read(0, 10)) == [((2, 5), b"still here"), ((2, 6), b"me too")]
            assert store.group(9).state() == LogState(last=(2, 6), committed=(2, 6))
            assert store.group(1).state().last == (1, 799)


def test_export_follows_relocated_entries(data_dir, tmp_path):
    with Store.open(data_dir, **SMALL) as store:
        store.group(9).append([((2, 5), b"a"), ((2, 6), b"b")])
        churn(store, 1, 800)
        export_raft_log(store, 9, tmp_path / "out")
    state, entries = read_raft_log(tmp_path / "out")
    assert state.last == (2, 6)
    assert entries == [((2, 5), b"a"), ((2, 6), b"b")]


def test_a_lagging_group_is_reported_then_relocated(data_dir):
    settings = dict(SMALL, relocate_max_bytes=1000, lagging_rounds=3)
    with Store.open(data_dir, **settings) as store:
        lagging = store.group(5)
        lagging.append([((1, i), b"x" * 100) for i in range(20)])  # 2.8 KB: more than 1000 B
        churn(store, 1, 200)
        first = store.events()
        kinds = [e["kind"] for e in first["events"]]
        assert kinds[0] == "lagging" and first["events"][0]["gid"] == 5
        assert store.stat()["disks"][0]["lagging_groups"] or "relocated" in kinds
        churn(store, 1, 600, start=200)
        events = store.events()["events"]
        relocated = [e for e in events if e["kind"] == "relocated"]
        assert relocated and relocated[0]["gid"] == 5 and relocated[0]["forced"]
        assert store.events(after=events[-1]["seq"])["events"] == [], "a poller sees each event once"
        assert list(lagging.read(0, 20)) == [((1, i), b"x" * 100) for i in range(20)]
        settle(store)
        bound = 2 * store._disks[0].live_size() + 4 * settings["chunk_max_size"]
        assert disk_bytes(data_dir) <= bound + settings["chunk_max_size"]


def test_a_dropped_lagging_group_is_no_longer_reported(data_dir):
    """Its notice goes with it: a group created again under its gid (on any
    disk) inherited it until the next rotation."""
    settings = dict(SMALL, relocate_max_bytes=1000, lagging_rounds=50)
    with Store.open(data_dir, **settings) as store:
        store.group(5).append([((1, i), b"x" * 100) for i in range(20)])
        churn(store, 1, 200)
        assert [g["gid"] for g in store.stat()["disks"][0]["lagging_groups"]] == [5]
        store.drop_group(5)
        assert store.stat()["disks"][0]["lagging_groups"] == []
        store.group(5).append([((1, 0), b"x")])  # the gid again: a new group, in the newest chunk
        assert store.stat()["disks"][0]["lagging_groups"] == []


def test_restarts_leave_no_chunk_behind(data_dir):
    """Opening goes on writing the newest chunk: five restarts add no chunk that
    outlives the next purge."""
    with Store.open(data_dir, **SMALL) as store:
        churn(store, 1, 10)
    for i in range(5):
        with Store.open(data_dir, **SMALL) as store:
            churn(store, 1, 3, start=10 + 3 * i)
    with Store.open(data_dir, **SMALL) as store:
        churn(store, 1, 100, start=25)
        store.group(1).purge((1, 124))
        store.flush()
        churn(store, 1, 1, start=125)
    assert len(chunk_names(data_dir)) <= 2


@pytest.fixture
def sealed(data_dir):
    """A data directory of several chunks, all records durable, left as a process
    killed after its last flush leaves it (its newest chunk unsealed, its last
    bytes the last record's: not preallocated, the tests cut them)."""
    store = Store.open(data_dir, chunk_max_records=6, chunk_preallocate=False)
    g = store.group(1)
    g.append([((1, i), b"e%d" % i) for i in range(20)])
    g.commit((1, 19))
    kill_after_flush(store)
    return data_dir


def test_a_clean_close_seals_the_newest_chunk(data_dir):
    """So that the next open reads footers only."""
    with Store.open(data_dir, chunk_max_records=6) as store:
        store.group(1).append([((1, i), b"e%d" % i) for i in range(8)])
    with Store.open(data_dir) as store:
        assert store._disks[0].chunks.chunks[-2].end is not None
    from shardlog.engine.recovery import replay
    assert replay(str(data_dir)).records <= 2, "all but a new chunk's header came from footers"


def test_missing_oldest_chunk_is_named(sealed):
    oldest = chunk_names(sealed)[0]
    os.unlink(sealed / oldest)
    with pytest.raises(ChunkMissing, match=f"the oldest chunk {oldest} is missing"):
        Store.open(sealed)


def test_missing_newest_chunk_is_named(sealed):
    os.unlink(sealed / chunk_names(sealed)[-1])
    with pytest.raises(ChunkMissing, match="the newest chunk is missing or was cut"):
        Store.open(sealed)


def test_newest_chunk_cut_below_what_was_synced(sealed):
    newest = sealed / chunk_names(sealed)[-1]
    os.truncate(newest, newest.stat().st_size - 5)
    with pytest.raises(ChunkMissing, match="were durable") as err:
        Store.open(sealed)
    assert err.value.path == str(newest)
    forget_sync(sealed)  # had it not been synced, it would be a torn tail
    with Store.open(sealed) as store:
        assert store.group(1).state().committed is None


def test_damage_to_acknowledged_records_after_a_kill_is_refused_not_cut(tmp_path):
    """A process killed right after its durable appends (``os._exit``: nothing
    closes): the marks already say how far they were durable, so damage to the
    last acknowledged record reads as lost records, not as a torn tail cut off
    in silence. (A change that wrote the marks once per 4 KiB let the open cut
    it; a review found it, and the change went.)"""
    data_dir = tmp_path / "data"
    child = (f"import os, sys\nsys.path.insert(0, {ROOT!r})\nfrom shardlog import Store\n"
             f"g = Store.open({str(data_dir)!r}).group(1)\n"
             "for i in range(5):\n    g.append([((1, i), b'p' * 100)], flush=True)\n"
             "print(g._store._disks[0].end, flush=True)\nos._exit(0)\n")
    end = int(subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True,
                             timeout=60).stdout)
    newest = data_dir / chunk_names(data_dir)[-1]
    start = int(newest.name[2:-4].replace("_", ""))
    with open(newest, "r+b") as f:  # the last acknowledged record's last bytes read as zeros
        f.seek(end - start - 50)
        f.write(bytes(50))
    with pytest.raises((ChunkMissing, CorruptedLog)):
        Store.open(data_dir)


def test_deleted_marks_are_refused(sealed):
    os.unlink(sealed / MARKS_FILE)
    with pytest.raises(ChunkMissing, match="no marks file"):
        Store.open(sealed)


def test_damage_followed_by_valid_records_is_not_a_torn_tail(sealed):
    """Damage in the newest chunk that a valid record follows is corruption, not a
    crash mid-write: refused, naming the file and offset, even past the synced mark."""
    newest = sealed / chunk_names(sealed)[-1]
    data = bytearray(newest.read_bytes())
    records = list(codec.iter_records(bytes(data)))
    at = records[1][0]
    data[at + 20] ^= 0xFF
    newest.write_bytes(bytes(data))
    forget_sync(sealed)
    with pytest.raises(CorruptedLog, match="valid records follow") as err:
        Store.open(sealed)
    assert (err.value.path, err.value.offset) == (str(newest), at)
    with Store.open(sealed, recovery_mode="salvage") as store:
        kept = list(store.group(1).read(0, 30))
    assert kept and all(payload == b"e%d" % i for (_, i), payload in kept)


def test_leftovers_of_an_interrupted_deletion_are_removed(sealed):
    """The marks move first; chunks found below them were being deleted."""
    with Store.open(sealed, chunk_max_records=6) as store:
        store.group(1).purge((1, 14))
        store.flush()
        store.group(1).append([((1, 20), b"x")])
        store.flush()
        oldest = chunk_names(sealed)[0]
    stale = sealed / "r-00_000_000_000_000_000_000.wal"
    assert oldest != stale.name
    stale.write_bytes(b"left behind")
    with Store.open(sealed) as store:
        assert not stale.exists()
        assert [i for (_, i), _ in store.group(1).read(0, 30)] == list(range(15, 21))

