"""Many groups sharing one stream: interleaved writes, rotations, removals, reopen, readers."""

import random
import threading

from shardlog import Store
from shardlog.workers.naming import chunk_file_name

from .conftest import chunk_names


def payload(gid, term, index):
    return b"g%d-t%d-i%d-" % (gid, term, index) + bytes([gid % 251]) * (index % 17)


def test_many_groups_interleaved_across_rotations_and_reopen(tmp_path):
    dirs = [tmp_path / "a", tmp_path / "b"]
    rng = random.Random(7)
    settings = dict(chunk_max_records=40, cache_max_items=50)
    groups = 200
    with Store.open(dirs, **settings) as store:
        last = {}
        for step in range(3000):
            gid = rng.randrange(groups)
            g = store.group(gid)
            nxt = last.get(gid, -1) + 1
            n = rng.randrange(1, 4)
            g.append([((1, i), payload(gid, 1, i)) for i in range(nxt, nxt + n)])
            last[gid] = nxt + n - 1
            if rng.random() < 0.1 and last[gid] > 3:
                g.purge((1, last[gid] - 3))
            if rng.random() < 0.05:
                g.truncate(last[gid])  # drop the newest entry
                last[gid] -= 1
            if rng.random() < 0.02:
                g.flush()
        store.flush()
        states = {gid: store.group(gid).state() for gid in store.groups()}
        reads = {gid: list(store.group(gid).read(0, 10 ** 6)) for gid in store.groups()}
        stat = store.stat()
        assert all(d["chunks"] > 5 for d in stat["disks"])
        store.flush()  # the removals ride behind the first flush after the purges
        for disk in store._disks:
            pinning = disk.chunks.pinning_chunk()
            assert chunk_names(disk.path)[0] == chunk_file_name(pinning.start), \
                "every chunk older than the oldest live entry is removed, no other"
            pins = disk.pinning_groups(limit=groups)
            assert pins and all(disk.chunks.find(store._groups[gid].index.first_offset()) is pinning
                                for gid in pins)
    with Store.open(dirs, **settings) as store:
        assert store.groups() == sorted(states)
        for gid, state in states.items():
            assert store.group(gid).state() == state
            got = list(store.group(gid).read(0, 10 ** 6))
            assert got == reads[gid]
            assert all(p == payload(gid, t, i) for (t, i), p in got)


def test_concurrent_read_race_condition(tmp_path):
    """Readers race a writer that appends, purges and flushes with a tiny cache."""
    errors = []
    stop = threading.Event()
    with Store.open(tmp_path / "d", chunk_max_records=20, cache_max_items=5, cache_max_bytes=100) as store:
        g = store.group(1)
        purged = [0]

        def writer():
            try:
                for i in range(3000):
                    g.append([((1, i), payload(1, 1, i))])
                    if i % 50 == 49:
                        g.flush()
                    if i % 200 == 199:
                        g.purge((1, i - 100))
                        purged[0] = i - 100
            except Exception as exc:
                errors.append(exc)
            finally:
                stop.set()

        def reader(seed):
            rng = random.Random(seed)
            try:
                while not stop.is_set():
                    start = rng.randrange(0, 3000)
                    for (t, i), p in g.read(start, start + 30):
                        assert p == payload(1, t, i), (i, p)
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=writer)] + [
            threading.Thread(target=reader, args=(s,)) for s in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
        assert errors == []
        assert store.stat()["disks"][0]["cache"]["misses"] > 0, "reads did go to the files"
