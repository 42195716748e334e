"""Multi-group batches: checked as a whole, applied together, durable in one flush."""

import pytest

from shardlog import (
    InvalidArgument,
    LogIdMismatch,
    LogIdNonConsecutive,
    LogIdReversal,
    LogIndexNotFound,
    LogState,
    TooManyGroups,
)

from .conftest import snapshot
from .test_atomicity import memory


def test_batch_applies_every_write(open_store):
    store = open_store()
    with store.batch(flush=True) as b:
        for gid in range(50):
            g = b.group(gid)
            g.save_vote((1, gid))
            g.append([((1, 0), b"a%d" % gid), ((1, 1), b"b")])
            g.commit((1, 1))
    for gid in range(50):
        assert store.group(gid).state() == LogState(vote=(1, gid), last=(1, 1), committed=(1, 1))
    assert store._disks[0].synced == store._disks[0].end, "flush=True: durable on return"


def test_later_ops_are_checked_against_earlier_ones(open_store):
    store = open_store()
    with store.batch() as b:
        g = b.group(1)
        g.append([((1, 0), b"a"), ((1, 1), b"b"), ((1, 2), b"c")])
        g.truncate(2)  # the entry at 1 exists only inside the batch
        g.append([((2, 2), b"C")])
        g.purge((1, 0))
        g.commit((2, 2))
        g.save_user_data(b"u")
    g = store.group(1)
    assert g.state() == LogState(last=(2, 2), committed=(2, 2), purged=(1, 0), user_data=b"u")
    assert list(g.read(0, 9)) == [((1, 1), b"b"), ((2, 2), b"C")]


@pytest.mark.parametrize("error, fill", [
    (LogIdNonConsecutive, lambda b: b.group(2).append([((1, 5), b"gap")])),
    (LogIdReversal, lambda b: b.group(1).commit((0, 0))),
    (LogIndexNotFound, lambda b: (b.group(1).truncate(1), b.group(1).truncate(3))),
    (LogIdReversal, lambda b: (b.group(3).append([((2, 0), b"x")]), b.group(3).append([((1, 1), b"y")]))),
])
def test_a_bad_op_anywhere_rejects_the_whole_batch(open_store, data_dir, error, fill):
    store = open_store()
    store.group(1).append([((1, 0), b"x"), ((1, 1), b"y")])
    store.group(1).commit((1, 1))
    store.group(2).append([((1, 0), b"z")])
    store.flush()
    files, mem = snapshot(data_dir), memory(store)
    with pytest.raises(error):
        with store.batch(flush=True) as b:
            for gid in range(10, 20):
                b.group(gid).append([((1, 0), b"fine")])
            fill(b)
    store.flush()
    assert memory(store) == mem
    assert snapshot(data_dir) == files


def test_bad_argument_raises_while_recording(open_store):
    store = open_store()
    with pytest.raises(InvalidArgument):
        with store.batch() as b:
            b.group(1).append([((1, 0), b"ok")])
            b.group(1).commit("nope")
    assert store.groups() == []


def test_purge_beyond_last_at_a_lower_term_is_refused(open_store):
    """The state this purge would make (entries below ``purged``, ``last`` below ``purged``) must not exist."""
    store = open_store()
    g = store.group(1)
    g.append([((2, 0), b"a")])
    with pytest.raises(LogIdMismatch):
        g.purge((1, 3))
    assert g.state() == LogState(last=(2, 0))
    g.purge((2, 3))  # the same index at the last entry's term is fine
    assert g.state() == LogState(last=(2, 3), purged=(2, 3))


def test_the_issue_repro_raises_and_changes_nothing(open_store, data_dir):
    """Issue 8's repro: the purge beyond ``last`` at a lower term is refused, and the batch
    after it fails whole, leaving files and memory as they were."""
    store = open_store()
    g = store.group(1)
    g.append([((2, 0), b"a")])
    with pytest.raises(LogIdMismatch):
        g.purge((1, 3))
    g.append([((2, 1), b"b")])
    store.flush()
    files, mem = snapshot(data_dir), memory(store)
    with pytest.raises(LogIndexNotFound):
        with store.batch() as b:
            b.group(1).truncate(4)
            b.group(2).save_vote((5, 5))
            b.group(1).append([((3, 4), b"c")])
    store.flush()
    assert memory(store) == mem
    assert snapshot(data_dir) == files
    assert g.state() == LogState(last=(2, 1)) and store.group(2).state() == LogState()


def test_purge_below_the_first_entry_of_a_log_with_a_gap_keeps_ids_ordered(open_store):
    """Found by the long model run: a log that starts at index 4 (its first append
    chose it) must not take a purge point at index 0 with a term above its first entry's."""
    store = open_store()
    g = store.group(1)
    g.append([((0, 4), b"a")])
    g.append([((3, 5), b"b")])
    with pytest.raises(LogIdMismatch):
        g.purge((3, 0))
    with pytest.raises(LogIdMismatch):
        with store.batch() as b:
            b.group(1).truncate(5)
            b.group(1).purge((3, 0))  # the shadow sees the same first entry
    g.purge((0, 0))  # at or below the first entry's term is fine
    g.truncate(5)
    assert g.state() == LogState(last=(0, 4), purged=(0, 0))


def test_store_write_checks_every_argument_before_anything(open_store, data_dir):
    store = open_store()
    store.write([("append", 1, [((1, 0), b"a")])], flush=True)
    files, mem = snapshot(data_dir), memory(store)
    for ops in ([("append", 1, [((1, 1), b"b")]), ("append", 2, [((1, 0), "not bytes")])],
                [("commit", 1, (1, 0)), ("save_vote", -1, (1, 1))],
                [("commit", 1, (1, 0)), ("rename", 1, None)],
                [("commit", 1, (1, 0)), ("commit", 1)]):
        with pytest.raises(InvalidArgument):
            store.write(ops)
    store.flush()
    assert memory(store) == mem and snapshot(data_dir) == files
    store.write([("append", 1, [([1, 1], bytearray(b"b"))]), ("commit", 2, [1, 0])], flush=True)
    assert list(store.group(1).read(0, 5)) == [((1, 0), b"a"), ((1, 1), b"b")]
    assert store.group(2).state() == LogState(committed=(1, 0))


def test_failing_op_last_in_a_batch_leaves_no_trace(open_store, data_dir):
    store = open_store(max_groups=3)
    store.group(1).append([((1, 0), b"a"), ((1, 1), b"b")], flush=True)
    files, mem = snapshot(data_dir), memory(store)
    for error, last_op in [(LogIndexNotFound, lambda b: b.group(1).truncate(9)),
                           (TooManyGroups, lambda b: b.group(7).save_vote((1, 1)))]:
        with pytest.raises(error):
            with store.batch() as b:
                b.group(2).save_vote((5, 5))
                b.group(3).append([((1, 0), b"new group")])
                b.group(1).append([((2, 2), b"c")])
                b.group(1).purge((1, 0))
                last_op(b)
        store.flush()
        assert memory(store) == mem and snapshot(data_dir) == files
