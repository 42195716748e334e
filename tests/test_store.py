"""The behaviours of raft-log's own test suite, on one group of a Store."""

import os
import threading

import pytest

from shardlog import (
    CorruptedLog,
    GroupNotFound,
    InvalidArgument,
    LogIdMismatch,
    LogIdNonConsecutive,
    LogIdReversal,
    LogIndexNotFound,
    LogState,
    StoreClosed,
    VoteReversal,
)
from shardlog.engine.codec import APPEND_OVERHEAD
from shardlog.workers.files import OsFiles
from shardlog.workers.naming import chunk_file_name

from .conftest import chunk_names


def build_sample_data(g):
    """The sequence of raft-log's sample data (and of shared/compat)."""
    g.append([((1, 0), b"hi"), ((1, 1), b"hello"), ((1, 2), b"world"), ((1, 3), b"foo")])
    g.truncate(2)
    g.append([((2, 2), b"world"), ((2, 3), b"foo")])
    g.commit((1, 2))
    g.purge((1, 1))
    g.append([((2, 4), b"world"), ((2, 5), b"foo"), ((2, 6), b"bar"), ((2, 7), b"wow")])


SAMPLE_STATE = LogState(last=(2, 7), committed=(1, 2), purged=(1, 1))
SAMPLE_ENTRIES = [((2, 2), b"world"), ((2, 3), b"foo"), ((2, 4), b"world"),
                  ((2, 5), b"foo"), ((2, 6), b"bar"), ((2, 7), b"wow")]


def test_save_user_data(open_store, data_dir):
    store = open_store()
    g = store.group(1)
    g.save_user_data(b"foo")
    assert g.state().user_data == b"foo"
    g.save_user_data(None)
    assert g.state().user_data is None
    g.save_user_data(bytearray(b"bar"))
    store.close()
    assert open_store().group(1).state() == LogState(user_data=b"bar")


def test_save_vote(open_store):
    g = open_store().group(1)
    g.save_vote((1, 1))
    assert g.state().vote == (1, 1)
    g.save_vote((1, 1))  # equal is allowed
    g.save_vote((2, 0))
    with pytest.raises(VoteReversal):
        g.save_vote((1, 9))
    assert g.state().vote == (2, 0)


def test_append_and_read(open_store):
    g = open_store().group(1)
    assert g.state() == LogState()
    logs = [((1, 0), b"hello"), ((1, 1), b"world")]
    g.append(logs)
    assert g.state() == LogState(last=(1, 1))
    assert list(g.read(0, 2)) == logs
    assert list(g.read(1, 2)) == logs[1:]
    assert list(g.read(2, 9)) == []


def test_read_nonexistent_logs(open_store):
    g = open_store().group(1)
    logs = [((2, 2), b"hello"), ((3, 3), b"world")]
    g.append(logs)  # a first append may start anywhere
    assert list(g.read(0, 5)) == logs
    assert list(g.read(4, 100)) == []


def test_read_of_a_group_never_written(open_store):
    store = open_store()
    assert list(store.group(5).read(0, 10)) == []
    assert store.group(5).state() == LogState()
    store.group(5).flush()  # nothing to wait for
    assert store.groups() == []


def test_truncate(open_store):
    g = open_store().group(1)
    logs = [((1, 0), b"hello"), ((1, 1), b"world"), ((1, 2), b"foo"), ((1, 3), b"bar")]
    g.append(logs)
    g.truncate(2)
    assert g.state() == LogState(last=(1, 1))
    assert list(g.read(0, 5)) == logs[:2]
    g.append([((2, 2), b"new")])
    assert list(g.read(0, 5)) == logs[:2] + [((2, 2), b"new")]


def test_truncate_just_after_purged(open_store):
    g = open_store().group(1)
    g.purge((1, 1))
    g.append([((1, 2), b"foo"), ((1, 3), b"bar")])
    g.truncate(2)  # == the index after purged: keeps nothing, last falls to purged
    assert g.state() == LogState(last=(1, 1), purged=(1, 1))
    assert list(g.read(0, 5)) == []
    g.append([((2, 2), b"again")])
    assert list(g.read(0, 5)) == [((2, 2), b"again")]


def test_truncate_non_existent(open_store):
    g = open_store().group(1)
    g.append([((1, 2), b"world"), ((1, 3), b"foo")])
    g.truncate(4)  # after the last log: fine
    with pytest.raises(LogIndexNotFound):
        g.truncate(5)
    with pytest.raises(LogIndexNotFound):
        g.truncate(1)
    assert g.state() == LogState(last=(1, 3))


def test_purge(open_store):
    g = open_store().group(1)
    g.purge((1, 0))
    logs = [((1, 1), b"hello"), ((1, 2), b"world"), ((1, 3), b"foo")]
    g.append(logs)

    g.purge((1, 0))  # at the current purged: no-op
    g.flush()
    assert g.state() == LogState(last=(1, 3), purged=(1, 0))
    assert list(g.read(0, 5)) == logs

    g.purge((1, 1))
    g.flush()
    assert g.state() == LogState(last=(1, 3), purged=(1, 1))
    assert list(g.read(0, 5)) == logs[1:]

    g.purge((1, 2))
    g.flush()
    assert list(g.read(0, 5)) == logs[2:]

    g.purge((1, 1))  # before the last purged: no-op
    g.flush()
    assert g.state() == LogState(last=(1, 3), purged=(1, 2))
    assert list(g.read(0, 5)) == logs[2:]

    g.purge((2, 4))  # beyond last: last moves up too
    g.flush()
    assert g.state() == LogState(last=(2, 4), purged=(2, 4))
    assert list(g.read(0, 5)) == []
    g.append([((2, 5), b"next")])
    assert list(g.read(0, 9)) == [((2, 5), b"next")]


def test_purge_that_contradicts_the_log_is_refused(open_store):
    """raft-log would accept these and end with ``last`` below entries it holds."""
    g = open_store().group(1)
    g.append([((1, 1), b"a"), ((1, 2), b"b"), ((1, 3), b"c")])
    with pytest.raises(LogIdMismatch):
        g.purge((2, 2))  # index 2 holds term 1
    with pytest.raises(LogIdMismatch):
        g.purge((2, 0))  # below the first entry, but above last: would hide 1..3
    g.purge((1, 2))
    assert list(g.read(0, 9)) == [((1, 3), b"c")]
    g.purge((5, 9))  # beyond last: a snapshot install
    assert g.state() == LogState(last=(5, 9), purged=(5, 9))


def test_purge_reopen(open_store):
    store = open_store(chunk_max_records=5)
    g = store.group(1)
    g.append([((1, i), b"x%d" % i) for i in range(7)])
    g.purge((1, 5))
    g.flush()
    store.close()
    g = open_store(chunk_max_records=5).group(1)
    assert list(g.read(0, 10)) == [((1, 6), b"x6")]
    assert g.state() == LogState(last=(1, 6), purged=(1, 5))


def test_commit(open_store):
    g = open_store().group(1)
    g.append([((1, 2), b"hello"), ((1, 3), b"world"), ((1, 4), b"foo")])
    g.commit((1, 3))
    assert g.state() == LogState(last=(1, 4), committed=(1, 3))
    with pytest.raises(LogIdReversal):
        g.commit((1, 2))
    g.commit((1, 3))  # equal is allowed
    g.commit((1, 4))
    assert g.state().committed == (1, 4)


def test_append_checks(open_store):
    g = open_store().group(1)
    g.append([((1, 0), b"a"), ((1, 1), b"b")])
    with pytest.raises(LogIdReversal):
        g.append([((1, 1), b"again")])
    with pytest.raises(LogIdReversal):
        g.append([((0, 2), b"older term")])
    with pytest.raises(LogIdNonConsecutive):
        g.append([((1, 3), b"gap")])
    with pytest.raises(LogIdNonConsecutive):
        g.append([((1, 2), b"ok"), ((1, 4), b"gap in the batch")])
    assert g.state() == LogState(last=(1, 1))
    assert list(g.read(0, 9)) == [((1, 0), b"a"), ((1, 1), b"b")]


def test_purge_removes_chunks(open_store, data_dir):
    store = open_store(chunk_max_records=5)
    g = store.group(1)
    build_sample_data(g)
    g.flush()
    before = chunk_names(data_dir)
    disk = store._disks[0]
    oldest_live = chunk_file_name(disk.chunks.find(store._groups[1].index.offset_at(4)).start)
    assert before.index(oldest_live) > 0, "the sample spans chunks that (2, 4) is not in"
    g.purge((2, 3))
    # Not yet durable: nothing may be removed.
    assert chunk_names(data_dir) == before
    g.flush()
    store.flush()  # the removal request rides behind the flush
    after = chunk_names(data_dir)
    assert after[0] == oldest_live, "every chunk older than the one holding (2, 4) is gone"
    assert after == before[before.index(oldest_live):]
    assert list(g.read(0, 100)) == SAMPLE_ENTRIES[2:]
    store.close()
    g = open_store(chunk_max_records=5).group(1)
    assert list(g.read(0, 100)) == SAMPLE_ENTRIES[2:]
    assert g.state() == SAMPLE_STATE._replace(purged=(2, 3))


def test_purge_free_cache(open_store):
    store = open_store(chunk_max_records=5)
    g = store.group(1)
    build_sample_data(g)
    assert store.stat()["disks"][0]["cache"]["bytes"] > 0
    assert sorted(store._groups[1].payloads) == [2, 3, 4, 5, 6, 7]
    g.purge((2, 5))
    assert store._groups[1].payloads == {6: b"bar", 7: b"wow"}
    assert list(g.read(0, 100)) == SAMPLE_ENTRIES[4:]


def test_read_with_cache(open_store):
    store = open_store(chunk_max_records=5, cache_max_items=3)
    g = store.group(1)
    build_sample_data(g)
    list(g.read(4, 8))
    cache = store.stat()["disks"][0]["cache"]
    assert (cache["hits"], cache["misses"]) == (4, 0), "nothing durable yet: all still cached"
    g.flush()
    g.append([((2, 8), b"biubiu")])  # durable payloads beyond the bound go
    list(g.read(2, 9))
    cache = store.stat()["disks"][0]["cache"]
    assert cache["misses"] > 0
    assert cache["items"] <= 3 + 1  # the bound, plus the one not yet durable
    assert list(g.read(2, 9)) == SAMPLE_ENTRIES + [((2, 8), b"biubiu")]
    store.close()
    store = open_store(chunk_max_records=5, cache_max_items=3)
    g = store.group(1)
    assert list(g.read(2, 9)) == SAMPLE_ENTRIES + [((2, 8), b"biubiu")]
    cache = store.stat()["disks"][0]["cache"]
    assert (cache["hits"], cache["misses"]) == (0, 7), "after reopen reads come from the files"


def test_read_without_cache(open_store):
    store = open_store(chunk_max_records=5, cache_max_bytes=0, cache_max_items=0)
    g = store.group(1)
    build_sample_data(g)
    g.append([((2, 8), b"world")])
    want = SAMPLE_ENTRIES + [((2, 8), b"world")]
    assert list(g.read(0, 1000)) == want
    assert store.stat()["disks"][0]["cache"]["misses"] == 0, "not durable: never evicted"
    g.flush()
    assert store.stat()["disks"][0]["cache"]["items"] == 0, "durable: all evicted"
    assert list(g.read(0, 1000)) == want
    assert store.stat()["disks"][0]["cache"]["misses"] == len(want)


class CountingPreads(OsFiles):
    def __init__(self):
        self.preads = 0

    def pread(self, fd, size, offset):
        self.preads += 1
        return super().pread(fd, size, offset)


def uncached_store(open_store, files):
    """Small chunks, no cache: every durable entry is read from the chunk files."""
    return open_store(files=files, chunk_max_records=400, cache_max_items=0, cache_max_bytes=0)


def test_uncached_reads_take_a_pread_per_run_of_adjacent_records_not_one_per_entry(open_store):
    files = CountingPreads()
    store = uncached_store(open_store, files)
    run = [((1, i), b"p%d" % i * (i % 7)) for i in range(1, 1001)]  # (some empty)
    store.group(1).append(run)  # one group's run: adjacent records, over three chunks
    rows = []
    for i in range(1001, 1101):  # then each record of group 1 lies between two of group 2
        with store.batch() as batch:
            batch.group(1).append([((2, i), b"a%d" % i)])
            batch.group(2).append([((2, i), b"b%d" % i)])
        rows.append(((2, i), b"a%d" % i))
    store.flush()
    before = files.preads
    assert list(store.group(1).read(0, 2000)) == run + rows
    assert store.stat()["disks"][0]["cache"]["misses"] == 1100
    # A pread for each chunk of the run (records do not span chunks), one for
    # each row: 1100 when every entry took its own.
    assert files.preads - before <= 4 + 100


def numbered(lo, hi):
    """Entries ``[lo, hi)`` of term 1 whose payloads name their index."""
    return [((1, i), b"payload %d" % i) for i in range(lo, hi)]


def entry_250_on_disk(store):
    """Entries 1..1000 of group 1, durable; where entry 250's record lies:
    ``(its chunk's start, its offset, its payload size)``."""
    store.group(1).append(numbered(1, 1001))
    store.flush()
    _, offset, size = store._groups[1].index.locate(250)
    chunk = store._disks[0].chunks.find(offset)
    assert chunk.end is not None, "in a sealed chunk: opening reads its footer, not its records"
    return chunk.start, offset, size


def test_a_damaged_record_is_refused_on_reading_it_and_names_its_place(open_store, data_dir):
    store = uncached_store(open_store, OsFiles())
    chunk, offset, _ = entry_250_on_disk(store)
    store.close()
    path = data_dir / chunk_file_name(chunk)
    data = bytearray(path.read_bytes())
    data[offset - chunk + 40] ^= 1  # a payload byte
    path.write_bytes(bytes(data))
    store = uncached_store(open_store, OsFiles())
    g = store.group(1)
    assert list(g.read(1, 250)) == numbered(1, 250)
    with pytest.raises(CorruptedLog) as err:
        list(g.read(1, 1001))
    assert (err.value.path, err.value.offset) == (str(path), offset - chunk)
    assert "damaged" in str(err.value)


def test_a_chunk_file_cut_short_under_a_read_is_refused_at_the_first_record_not_whole(open_store, data_dir):
    store = uncached_store(open_store, OsFiles())
    chunk, offset, size = entry_250_on_disk(store)
    os.truncate(data_dir / chunk_file_name(chunk), offset - chunk + 10)  # 10 bytes into entry 250's record
    assert list(store.group(1).read(1, 250)) == numbered(1, 250)
    with pytest.raises(CorruptedLog) as err:
        list(store.group(1).read(1, 1001))
    assert err.value.offset == offset - chunk
    assert err.value.reason == f"short read: 10 of {APPEND_OVERHEAD + size} bytes"


def test_a_group_created_again_keeps_its_payloads_when_the_old_groups_writes_are_evicted(open_store):
    """The cache remembers writes by gid: evicting the dropped group's durable
    writes must leave the new group's payloads at the same indexes, not yet
    durable (the only copy until the fsync)."""
    store = open_store(cache_max_items=24, chunk_preallocate=False)
    g = store.group(1)
    for i in range(10):
        g.append([((1, i), b"old%d" % i)])
    g.append([((1, i), b"old%d" % i) for i in range(10, 20)])
    store.flush()
    store.drop_group(1)
    disk = store._disks[0]
    assert sum(1 for write in disk.cache.writes if write[0] == 1) == 11, "the old writes wait to be evicted"
    g.append([((2, i), b"new%d" % i) for i in range(12)])  # the same indexes, not durable
    for i in range(12, 16):
        g.append([((2, i), b"new%d" % i)])
    assert not any(write[0] == 1 and write[3] <= disk.synced for write in disk.cache.writes), "evicted"
    assert sorted(store._groups[1].payloads) == list(range(16))
    assert [p for _, p in g.read(0, 16)] == [b"new%d" % i for i in range(16)]


def test_sync(open_store, data_dir):
    store = open_store(chunk_max_records=5)
    g = store.group(1)
    build_sample_data(g)
    disk = store.stat()["disks"][0]
    assert disk["synced"] < disk["end"]
    fsyncs = disk["flusher"]["fsyncs"]
    g.flush()
    disk = store.stat()["disks"][0]
    assert disk["synced"] == disk["end"]
    assert disk["flusher"]["fsyncs"] > fsyncs
    g.append([((2, 8), b"world")])
    g.flush()
    disk2 = store.stat()["disks"][0]
    assert disk2["synced"] == disk2["end"] > disk["end"]


def test_flush_callback(open_store):
    g = open_store().group(1)
    g.append([((1, 0), b"x")])
    done = threading.Event()
    got = []
    g.flush(callback=lambda err: (got.append(err), done.set()))
    assert done.wait(10)
    assert got == [None]


def test_on_disk_size(open_store, data_dir):
    """bytes_on_disk counts the records: the chunk files, the newest one but
    for the room preallocated beyond its records (chunk_max_size in all)."""
    store = open_store(chunk_max_records=5, chunk_max_size=4096)
    build_sample_data(store.group(1))
    store.flush()
    store.flush()  # (no flush waits for the deletions its progress asks for; the next one does)
    disk = store.stat()["disks"][0]
    *sealed, newest = chunk_names(data_dir)
    used_of_newest = disk["end"] - disk["oldest_chunk"] - sum((data_dir / n).stat().st_size for n in sealed)
    assert (data_dir / newest).stat().st_size == 4096 > used_of_newest > 0
    assert disk["bytes_on_disk"] == sum((data_dir / n).stat().st_size for n in sealed) + used_of_newest


def test_on_disk_size_without_preallocation(open_store, data_dir):
    store = open_store(chunk_max_records=5, chunk_preallocate=False)
    build_sample_data(store.group(1))
    store.flush()
    store.flush()
    disk = store.stat()["disks"][0]
    on_disk = sum((data_dir / n).stat().st_size for n in chunk_names(data_dir))
    assert disk["bytes_on_disk"] == on_disk


def test_update_state(open_store):
    store = open_store(chunk_max_records=5)
    g = store.group(1)
    build_sample_data(g)
    g.save_vote((3, 1))
    g.save_user_data(b"meta")
    state = g.state()
    assert state == SAMPLE_STATE._replace(vote=(3, 1), user_data=b"meta")
    store.close()
    assert open_store(chunk_max_records=5).group(1).state() == state


def test_reopen(open_store, data_dir):
    store = open_store(chunk_max_records=5)
    g = store.group(1)
    build_sample_data(g)
    g.purge((2, 3))
    state, logs = g.state(), list(g.read(0, 1000))
    store.close()
    files = chunk_names(data_dir)
    store = open_store(chunk_max_records=5)
    g = store.group(1)
    assert g.state() == state
    assert list(g.read(0, 1000)) == logs
    g.append([((2, 8), b"more")])
    g.flush()
    assert list(g.read(0, 1000))[-1] == ((2, 8), b"more")
    # A clean close sealed the chunk and began the next, which the reopen writes on.
    assert chunk_names(data_dir) == files
    assert files[-1] == chunk_file_name(store._disks[0].chunks.open.start)


def test_closed_store_refuses(open_store):
    store = open_store()
    g = store.group(1)
    store.close()
    store.close()  # twice is fine
    with pytest.raises(StoreClosed):
        g.append([((1, 0), b"x")])
    with pytest.raises(StoreClosed):
        g.state()


def test_drop_group(open_store):
    store = open_store(chunk_max_records=5)
    g = store.group(1)
    build_sample_data(g)
    store.group(2).save_vote((1, 1))
    store.drop_group(1)
    assert store.groups() == [2]
    assert g.state() == LogState()
    assert list(g.read(0, 100)) == []
    with pytest.raises(GroupNotFound):
        store.drop_group(1)
    # The id can start over, at a lower index.
    g.append([((1, 0), b"new life")])
    store.close()
    store = open_store(chunk_max_records=5)
    assert store.groups() == [1, 2]
    assert list(store.group(1).read(0, 100)) == [((1, 0), b"new life")]
    assert store.group(2).state().vote == (1, 1)


@pytest.mark.parametrize("call", [
    lambda s: s.group(-1),
    lambda s: s.group(2 ** 64),
    lambda s: s.group("1"),
    lambda s: s.group(1).append([((1, -1), b"x")]),
    lambda s: s.group(1).append([((1, 0), "text")]),
    lambda s: s.group(1).append([((1, 0), b"x", b"y")]),
    lambda s: s.group(1).append([((1, 0.0), b"x")]),
    lambda s: s.group(1).append([(1, b"x")]),
    lambda s: s.group(1).append(5),
    lambda s: s.group(1).save_vote((1,)),
    lambda s: s.group(1).save_vote(None),
    lambda s: s.group(1).save_vote(b"\x01\x02"),
    lambda s: s.group(1).append([(b"\x01\x02", b"x")]),
    lambda s: s.group(1).commit(("1", 1)),
    lambda s: s.group(1).purge(3),
    lambda s: s.group(1).truncate(-1),
    lambda s: s.group(1).save_user_data("text"),
    lambda s: s.group(1).read(-1, 3),
])
def test_bad_arguments(open_store, call):
    with pytest.raises(InvalidArgument):
        call(open_store())


def test_unknown_setting(open_store):
    with pytest.raises(InvalidArgument, match="chunk_max_recrods"):
        open_store(chunk_max_recrods=5)
    with pytest.raises(InvalidArgument, match="chunk_max_size"):
        open_store(chunk_max_size=-1)


def open_files(path):
    """What this process holds open in ``path`` (a deleted file ends in " (deleted)")."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(path)):
            out.append(target)
    return out


def test_reads_across_many_chunks_keep_few_files_open(open_store, data_dir):
    """A group pinning 200 chunks is read whole: the descriptors stay bounded."""
    store = open_store(chunk_max_records=5, cache_max_items=0, cache_max_bytes=0, max_open_chunk_files=8)
    g = store.group(1)
    for i in range(0, 800, 4):
        g.append([((1, j), b"p%d" % j) for j in range(i, i + 4)])
    g.flush()
    assert len(chunk_names(data_dir)) >= 150
    assert [p for _, p in g.read(0, 800)] == [b"p%d" % j for j in range(800)]
    assert len(open_files(data_dir)) <= 8 + 3, "the readers' bound, the writer's newest file, LOCK and MARKS"
    g.purge((1, 799))
    g.flush()
    g.flush()  # (no flush waits for the deletions its progress asks for; the next one does)
    held = open_files(data_dir)
    assert not [f for f in held if f.endswith("(deleted)")], "descriptors of deleted chunks are closed"
    assert len(held) <= 4, held  # LOCK, MARKS, the newest chunk (writer and reader)
