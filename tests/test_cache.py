"""The payload cache: bounded, evicting in batches, and never what is not durable."""

from shardlog.engine.cache import PayloadCache
from shardlog.engine.group import GroupState


def filled(n, max_items=16):
    cache = PayloadCache(max_items, 10 ** 9)
    group = GroupState(1)
    group.payloads = {}
    for i in range(n):
        group.index.append(i, 1, 100 * i, 1)
        group.payloads[i] = b"p"
        cache.added(group, i, i, 100 * (i + 1), 1)
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
        cache.added(group, i, i, 100 * (i + 1), 1)
        assert not cache.evictable(synced=10 ** 9)


def test_evicting_a_write_keeps_what_a_newer_write_put_at_its_indexes():
    """After a truncate, indexes 5..9 hold a newer write, maybe not durable yet:
    evicting the old write of 0..9 drops 0..4 and the indexes it held beyond
    the log, never the newer payloads (the only copy until the fsync)."""
    cache = PayloadCache(4, 10 ** 9)
    group = GroupState(1)
    group.payloads = {}
    for i in range(12):  # the old write: 0..11, records at 100 * i, ending at 1200
        group.index.append(i, 1, 100 * i, 1)
        group.payloads[i] = b"old"
    cache.added(group, 0, 11, 1200, 12)
    group.index.cut_tail(group.index.span_after(4)[0], 5)  # truncate(5)
    for i in range(5, 10):  # the newer write, after the old one's end
        group.index.append(i, 2, 1200 + 100 * i, 1)
        group.payloads[i] = b"new"
    cache.added(group, 5, 9, 2200, 5)
    cache.evict(synced=1200)  # the old write is durable, the newer one is not
    assert group.payloads == {i: b"new" for i in range(5, 10)}


def test_evicting_one_entry_writes_keeps_what_newer_writes_put_at_their_indexes():
    """The same rule for writes of one entry each (a round of many groups),
    which eviction handles without the search: index 3 is rewritten by a
    write not durable yet, index 4 is truncated away, 0..2 are plain."""
    cache = PayloadCache(2, 10 ** 9)
    group = GroupState(1)
    group.payloads = {}
    for i in range(5):  # one write per entry: 0..4, records at 100 * i
        group.index.append(i, 1, 100 * i, 1)
        group.payloads[i] = b"old"
        cache.added(group, i, i, 100 * (i + 1), 1)
    group.index.cut_tail(group.index.span_after(2)[0], 3)  # truncate(3): 3 and 4 go
    group.index.append(3, 2, 1000, 1)
    group.payloads[3] = b"new"
    del group.payloads[4]
    cache.added(group, 3, 3, 1100, 1)
    cache.evict(synced=500)  # the five old writes are durable, the newer one is not
    assert group.payloads == {3: b"new"}
