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
