"""The payload cache: bounded, evicting in batches, and never what is not durable."""

import gc
from types import SimpleNamespace

from shardlog.engine.cache import PayloadCache
from shardlog.engine.group import GroupState


def cache_of_one_group(max_items, gid=1):
    """A cache, and a group of its disk (a stand-in: the cache reads only ``groups``)."""
    disk = SimpleNamespace(groups={})
    group = disk.groups[gid] = GroupState(gid, disk)
    group.payloads = {}
    return PayloadCache(max_items, 10 ** 9, disk), group


def filled(n, max_items=16):
    cache, group = cache_of_one_group(max_items)
    for i in range(n):
        group.index.append(i, 1, 100 * i, 1)
        group.payloads[i] = b"p"
        cache.added(1, i, i, 100 * (i + 1), 1)
    return cache, group


def test_nothing_unsynced_is_evicted():
    cache, group = filled(20)
    assert not cache.evictable(synced=0), "over the bound, but the oldest write is not durable"
    cache.evict(synced=0)
    assert cache.items == 20 and len(group.payloads) == 20


def test_eviction_goes_an_eighth_under_the_bound_so_it_runs_in_batches():
    cache, group = filled(17)
    assert cache.evictable(synced=10 ** 9)
    cache.evict(synced=10 ** 9)
    assert cache.items == 14 and sorted(group.payloads) == list(range(3, 17))
    for i in range(17, 19):  # the next appends find the cache under its bound: no eviction
        group.index.append(i, 1, 100 * i, 1)
        cache.added(1, i, i, 100 * (i + 1), 1)
        assert not cache.evictable(synced=10 ** 9)


def test_evicting_a_write_keeps_what_a_newer_write_put_at_its_indexes():
    """After a truncate, indexes 5..9 hold a newer write, maybe not durable yet:
    evicting the old write of 0..9 drops 0..4 and the indexes it held beyond
    the log, never the newer payloads (the only copy until the fsync)."""
    cache, group = cache_of_one_group(4)
    for i in range(12):  # the old write: 0..11, records at 100 * i, ending at 1200
        group.index.append(i, 1, 100 * i, 1)
        group.payloads[i] = b"old"
    cache.added(1, 0, 11, 1200, 12)
    group.index.cut_tail(group.index.span_after(4)[0], 5)  # truncate(5)
    for i in range(5, 10):  # the newer write, after the old one's end
        group.index.append(i, 2, 1200 + 100 * i, 1)
        group.payloads[i] = b"new"
    cache.added(1, 5, 9, 2200, 5)
    cache.evict(synced=1200)  # the old write is durable, the newer one is not
    assert group.payloads == {i: b"new" for i in range(5, 10)}


def test_evicting_one_entry_writes_keeps_what_newer_writes_put_at_their_indexes():
    """The same rule for writes of one entry each (a round of many groups),
    which eviction handles without the search: index 3 is rewritten by a
    write not durable yet, index 4 is truncated away, 0..2 are plain."""
    cache, group = cache_of_one_group(2)
    for i in range(5):  # one write per entry: 0..4, records at 100 * i
        group.index.append(i, 1, 100 * i, 1)
        group.payloads[i] = b"old"
        cache.added(1, i, i, 100 * (i + 1), 1)
    group.index.cut_tail(group.index.span_after(2)[0], 3)  # truncate(3): 3 and 4 go
    group.index.append(3, 2, 1000, 1)
    group.payloads[3] = b"new"
    del group.payloads[4]
    cache.added(1, 3, 3, 1100, 1)
    cache.evict(synced=500)  # the five old writes are durable, the newer one is not
    assert group.payloads == {3: b"new"}


def test_a_group_dropped_then_created_on_another_disk_keeps_its_payloads():
    """The old group's writes name its id; the new group of that id has
    offsets in another disk's stream, which this cache's rule cannot compare."""
    cache, group = filled(20, max_items=4)
    other_disk = SimpleNamespace(groups=cache.disk.groups)  # (one dict for the store's disks)
    new = cache.disk.groups[1] = GroupState(1, other_disk)
    new.payloads = {i: b"not durable yet" for i in range(10)}
    for i in range(10):
        new.index.append(i, 1, 0, 1)  # (offsets below the old writes' ends)
    cache.evict(synced=10 ** 9)
    assert cache.items < 20 and len(new.payloads) == 10


def test_a_full_cache_gives_the_garbage_collector_nothing_to_traverse():
    """One write per entry of a round is remembered; none of them may be an
    object the collector tracks (a full collection then took 16 ms, and the
    slowest rounds were those)."""
    cache, group = filled(1000, max_items=10 ** 6)
    gc.collect()
    assert len(cache.writes) == 1000
    assert not any(gc.is_tracked(write) for write in cache.writes)
