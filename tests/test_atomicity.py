"""A rejected request leaves the files byte-identical and the memory unchanged."""

import pytest

from shardlog import InvalidArgument, LogIdMismatch, LogIdNonConsecutive, LogIdReversal, LogIndexNotFound, VoteReversal

from .conftest import settle, snapshot
from .test_store import build_sample_data


def memory(store):
    """Everything the store holds in memory that a request could change."""
    out = {}
    for gid in store.groups():
        group = store._groups[gid]
        out[gid] = (group.state(), list(store.group(gid).read(0, 1000)), len(group.index),
                    group.index.first, sorted(group.payloads))
    for disk in store._disks:
        out[disk.path] = (disk.end, len(disk.pending), disk.seq,
                          [(c.start, c.records, c.live) for c in disk.chunks],
                          disk.cache.items, disk.cache.bytes)
    return out


REJECTED = [
    ("vote reversal", VoteReversal, lambda s: s.group(2).save_vote((1, 9))),
    ("append reversal", LogIdReversal, lambda s: s.group(1).append([((2, 7), b"x")])),
    ("append older term", LogIdReversal, lambda s: s.group(1).append([((1, 8), b"x")])),
    ("append gap", LogIdNonConsecutive, lambda s: s.group(1).append([((2, 9), b"x")])),
    ("gap late in a batch", LogIdNonConsecutive,
     lambda s: s.group(1).append([((2, 8), b"ok"), ((2, 9), b"ok"), ((2, 11), b"gap")])),
    ("reversal late in a batch", LogIdReversal,
     lambda s: s.group(1).append([((2, 8), b"ok"), ((1, 9), b"older")])),
    ("bad payload late in a batch", InvalidArgument,
     lambda s: s.group(1).append([((2, 8), b"ok"), ((2, 9), "not bytes")])),
    ("commit reversal", LogIdReversal, lambda s: s.group(1).commit((1, 1))),
    ("truncate beyond last", LogIndexNotFound, lambda s: s.group(1).truncate(9)),
    ("truncate into purged", LogIndexNotFound, lambda s: s.group(1).truncate(1)),
    ("truncate of a new group", LogIndexNotFound, lambda s: s.group(5).truncate(3)),
    ("purge at another term", LogIdMismatch, lambda s: s.group(1).purge((1, 5))),
    ("purge at a higher term", LogIdMismatch, lambda s: s.group(1).purge((3, 3))),
    ("bad vote", InvalidArgument, lambda s: s.group(2).save_vote((1, -1))),
    ("bad commit", InvalidArgument, lambda s: s.group(1).commit((1,))),
    ("bad purge", InvalidArgument, lambda s: s.group(1).purge(None)),
    ("bad user data", InvalidArgument, lambda s: s.group(1).save_user_data(42)),
    ("bad group id", InvalidArgument, lambda s: s.group(-5)),
    ("new group, bad batch", LogIdNonConsecutive,
     lambda s: s.group(6).append([((1, 0), b"a"), ((1, 2), b"b")])),
]


@pytest.mark.parametrize("name, error, call", REJECTED, ids=[r[0] for r in REJECTED])
def test_rejected_request_changes_nothing(open_store, data_dir, name, error, call):
    store = open_store(chunk_max_records=5)
    build_sample_data(store.group(1))
    store.group(2).save_vote((2, 2))
    settle(store)
    files, mem = snapshot(data_dir), memory(store)
    with pytest.raises(error):
        call(store)
    store.flush()
    assert memory(store) == mem
    assert snapshot(data_dir) == files


def test_noop_purge_writes_nothing(open_store, data_dir):
    store = open_store()
    g = store.group(1)
    g.append([((1, 0), b"a"), ((1, 1), b"b")])
    g.purge((1, 1))
    store.flush()
    files, mem = snapshot(data_dir), memory(store)
    g.purge((1, 0))
    g.purge((0, 0))
    store.flush()
    assert memory(store) == mem
    assert snapshot(data_dir) == files
