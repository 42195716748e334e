"""docs/semantics.md, statement by statement, against the embedded Store.

A refused op is checked to change nothing: the files of the data directory
byte for byte, and every group's state, entries and index in memory.
"""

import os
import re
from contextlib import contextmanager

import pytest

from shardlog import (
    InvalidArgument,
    LogIdMismatch,
    LogIdNonConsecutive,
    LogIdReversal,
    LogIndexNotFound,
    LogState,
    VoteReversal,
)
from shardlog.client.protocol import error, raise_for, unpack
from shardlog.ops import WRITE_OPS

from .conftest import snapshot
from .test_atomicity import memory
from .test_store import SAMPLE_ENTRIES, SAMPLE_STATE, build_sample_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@contextmanager
def refused(store, data_dir, error_class, **fields):
    """The block raises ``error_class`` (its code, and ``fields`` if given) and
    leaves the files and the memory of ``store`` as they were."""
    store.flush()
    files, mem = snapshot(data_dir), memory(store)
    with pytest.raises(error_class) as caught:
        yield caught
    exc = caught.value
    assert type(exc) is error_class and exc.code == error_class.__name__
    for name, value in fields.items():
        assert getattr(exc, name) == value, name
    store.flush()
    assert memory(store) == mem
    assert snapshot(data_dir) == files


@contextmanager
def writes_nothing(store, data_dir):
    """The block is accepted and changes nothing at all (a no-op)."""
    store.flush()
    files, mem = snapshot(data_dir), memory(store)
    yield
    store.flush()
    assert memory(store) == mem
    assert snapshot(data_dir) == files


def entries(term, indexes):
    return [((term, i), b"e%d" % i) for i in indexes]


def purged_log(store, gid=1):
    """Entries 0..7 appended at term 1, purged up to (1, 3): it holds [4, 7]."""
    g = store.group(gid)
    g.append(entries(1, range(8)))
    g.purge((1, 3))
    return g


# ------------------------------------------------------------ reads of purged or missing ranges


def test_read_partly_below_the_purge_point_returns_the_entries_above_it(open_store):
    store = open_store()
    g = purged_log(store)
    assert list(g.read(0, 6)) == entries(1, [4, 5])
    assert list(g.read(3, 100)) == entries(1, range(4, 8))
    assert store.read_page(1, 0, 6) == (entries(1, [4, 5]), None)
    # Pages (the server's read): the first one starts above purged, ``next`` continues.
    assert store.read_page(1, 0, 8, max_entries=2) == (entries(1, [4, 5]), 6)
    assert store.read_page(1, 6, 8, max_entries=2) == (entries(1, [6, 7]), None)


def test_read_wholly_at_or_below_the_purge_point_is_empty(open_store):
    store = open_store()
    g = purged_log(store)
    assert list(g.read(0, 4)) == []
    assert list(g.read(3, 4)) == []
    assert store.read_page(1, 0, 4) == ([], None)
    g.purge((3, 20))  # beyond last: nothing is held
    assert list(g.read(0, 100)) == []
    assert g.state() == LogState(last=(3, 20), purged=(3, 20))


def test_read_of_a_purged_range_is_the_same_after_reopen(open_store, data_dir):
    store = open_store(chunk_max_records=3)
    purged_log(store).flush()
    store.close()
    store = open_store(chunk_max_records=3)
    assert list(store.group(1).read(0, 6)) == entries(1, [4, 5])
    assert list(store.group(1).read(0, 4)) == []


def test_read_beyond_last_or_truncated_returns_what_is_held(open_store):
    store = open_store()
    g = purged_log(store)
    assert list(g.read(6, 100)) == entries(1, [6, 7])
    assert list(g.read(8, 100)) == []
    g.truncate(6)
    assert list(g.read(0, 100)) == entries(1, [4, 5])


def test_read_below_the_first_entry_of_a_log_started_above_zero(open_store):
    g = open_store().group(1)
    g.append(entries(2, [10, 11]))
    assert g.state() == LogState(last=(2, 11))
    assert list(g.read(0, 11)) == entries(2, [10])
    assert list(g.read(0, 10)) == []


def test_read_of_an_empty_range_or_a_group_never_written(open_store):
    store = open_store()
    g = purged_log(store)
    assert list(g.read(5, 5)) == []
    assert list(g.read(7, 5)) == []  # raft-log panics here; shardlog answers nothing
    assert store.read_page(1, 7, 5) == ([], None)
    assert list(store.group(99).read(0, 10)) == []
    assert store.group(99).state() == LogState()
    assert 99 not in store.groups()  # reading creates nothing


def test_read_shows_accepted_writes_before_they_are_durable(open_store):
    g = open_store().group(1)
    g.append(entries(1, [0, 1]))
    assert list(g.read(0, 2)) == entries(1, [0, 1])


def test_read_of_a_range_out_of_u64_is_invalid(open_store):
    store = open_store()
    purged_log(store)
    with pytest.raises(InvalidArgument):
        store.group(1).read(-1, 5)
    with pytest.raises(InvalidArgument):
        store.read_page(1, 0, 2**64)


# ------------------------------------------------------------ commit


def test_commit_beyond_last_is_accepted_and_kept(open_store):
    store = open_store()
    g = store.group(1)
    g.append(entries(1, range(3)))
    g.commit((1, 9))
    assert g.state() == LogState(last=(1, 2), committed=(1, 9))
    assert list(g.read(0, 10)) == entries(1, range(3))
    g.append(entries(1, [3]))  # neither append nor truncate moves committed
    g.truncate(1)
    assert g.state() == LogState(last=(1, 0), committed=(1, 9))
    store.close()
    assert open_store().group(1).state() == LogState(last=(1, 0), committed=(1, 9))


def test_commit_is_not_checked_against_the_entries(open_store):
    store = open_store()
    store.group(1).commit((3, 5))  # a group without entries: created by it
    assert store.group(1).state() == LogState(committed=(3, 5)) and 1 in store.groups()
    g = store.group(2)
    g.append(entries(1, [0, 1]))
    g.commit((2, 1))  # the entry at index 1 is (1, 1)
    assert g.state() == LogState(last=(1, 1), committed=(2, 1))
    g = store.group(3)
    build_sample_data(g)  # raft-log's sample commits (1, 2) where the log holds (2, 2)
    assert g.state() == SAMPLE_STATE and list(g.read(0, 10)) == SAMPLE_ENTRIES


def test_commit_beyond_last_in_a_batch_then_the_entries(open_store):
    store = open_store()
    with store.batch() as b:
        b.group(1).commit((1, 5)).append(entries(1, range(3)))
    assert store.group(1).state() == LogState(last=(1, 2), committed=(1, 5))


def test_commit_equal_is_accepted_lower_is_refused(open_store, data_dir):
    store = open_store()
    g = store.group(1)
    g.append(entries(2, range(3)))
    g.commit((2, 5))
    g.commit((2, 5))
    assert g.state().committed == (2, 5)
    with refused(store, data_dir, LogIdReversal, current=(2, 5), given=(2, 4), when="commit"):
        g.commit((2, 4))
    with refused(store, data_dir, LogIdReversal, current=(2, 5), given=(1, 9), when="commit"):
        g.commit((1, 9))  # a higher index at a lower term is lower
    g.commit((3, 0))  # a higher term at a lower index is higher
    assert g.state().committed == (3, 0)


# ------------------------------------------------------------ truncate


TRUNCATE_REFUSED = [
    ("beyond last", lambda s: s.group(1).append(entries(1, [2, 3])), 5, 4,
     "truncate at 5: no entry at index 4 to keep; the log holds entries [2, 3], nothing purged; "
     "truncate accepts 0 (keeps nothing) or 3..4"),
    ("below the first entry", lambda s: s.group(1).append(entries(1, [2, 3])), 1, 0,
     "truncate at 1: no entry at index 0 to keep; the log holds entries [2, 3], nothing purged; "
     "truncate accepts 0 (keeps nothing) or 3..4"),
    ("into the purged entries", lambda s: purged_log(s).truncate(7), 2, 1,
     "truncate at 2: it would cut into the purged entries; the log holds entries [4, 6], "
     "purged up to (1, 3); truncate accepts 4..7"),
    ("at 0 on a purged log", lambda s: purged_log(s), 0, 0,
     "truncate at 0: it would cut into the purged entries; the log holds entries [4, 7], "
     "purged up to (1, 3); truncate accepts 4..8"),
    ("after a purge beyond last", lambda s: s.group(1).append(entries(1, range(3))) or s.group(1).purge((2, 5)),
     9, 8,
     "truncate at 9: no entry at index 8 to keep; the log holds no entries, purged up to (2, 5); "
     "truncate accepts only 6"),
    ("a group never written", lambda s: None, 3, 2,
     "truncate at 3: no entry at index 2 to keep; the log holds no entries, nothing purged; "
     "truncate accepts only 0"),
]


@pytest.mark.parametrize("name, setup, at, index, message", TRUNCATE_REFUSED, ids=[c[0] for c in TRUNCATE_REFUSED])
def test_refused_truncate_says_what_was_wrong_and_what_is_allowed(open_store, data_dir, name, setup, at, index,
                                                                   message):
    store = open_store()
    setup(store)
    with refused(store, data_dir, LogIndexNotFound, index=index) as caught:
        store.group(1).truncate(at)
    assert str(caught.value) == message
    assert caught.value.message == message


def test_refused_truncate_in_a_batch_names_the_log_the_batch_left(open_store, data_dir):
    store = open_store()
    g = store.group(1)
    g.append(entries(1, range(3)))
    with refused(store, data_dir, LogIndexNotFound, index=8) as caught:
        with store.batch() as b:
            b.group(1).purge((2, 5)).append(entries(2, [6, 7])).truncate(9)
    assert str(caught.value) == ("truncate at 9: no entry at index 8 to keep; the log holds entries [6, 7], "
                                 "purged up to (2, 5); truncate accepts 6..8")


def test_the_truncate_message_travels_with_its_code_and_index(open_store):
    store = open_store()
    store.group(1).append(entries(1, [2, 3]))
    with pytest.raises(LogIndexNotFound) as caught:
        store.group(1).truncate(5)
    reply = unpack(error(3, caught.value))
    assert reply["code"] == "LogIndexNotFound" and reply["fields"] == {"index": 4}
    with pytest.raises(LogIndexNotFound) as back:
        raise_for(reply)
    assert str(back.value) == str(caught.value) and back.value.index == 4


def test_accepted_truncates(open_store, data_dir):
    store = open_store()
    g = purged_log(store)
    g.truncate(8)  # last + 1: keeps everything
    assert g.state() == LogState(last=(1, 7), purged=(1, 3))
    assert list(g.read(0, 10)) == entries(1, range(4, 8))
    g.commit((1, 6))
    g.truncate(6)  # below committed: accepted, committed stays
    assert g.state() == LogState(last=(1, 5), committed=(1, 6), purged=(1, 3))
    g.truncate(4)  # the index after purged: keeps nothing, last falls to purged
    assert g.state() == LogState(last=(1, 3), committed=(1, 6), purged=(1, 3))
    assert list(g.read(0, 10)) == []
    h = store.group(2)
    h.append(entries(1, [2, 3]))
    h.truncate(0)  # nothing purged: 0 keeps nothing
    assert h.state() == LogState() and list(h.read(0, 10)) == []


# ------------------------------------------------------------ vote


def test_vote_never_goes_down(open_store, data_dir):
    store = open_store()
    g = store.group(1)
    g.save_vote((2, 3))
    g.save_vote((2, 3))  # equal: accepted
    g.save_vote((2, 5))  # tuple order: a higher node id in the same term is higher
    with refused(store, data_dir, VoteReversal, current=(2, 5), given=(2, 3)):
        g.save_vote((2, 3))
    with refused(store, data_dir, VoteReversal, current=(2, 5), given=(1, 9)):
        g.save_vote((1, 9))
    g.save_vote((3, 0))
    assert g.state() == LogState(vote=(3, 0))


# ------------------------------------------------------------ append


def test_append_first_entry_anywhere_then_consecutive(open_store, data_dir):
    store = open_store()
    g = store.group(1)
    g.append(entries(1, [5, 6]))
    g.append(entries(2, [7]))  # a higher term at the next index
    assert g.state().last == (2, 7)
    with refused(store, data_dir, LogIdNonConsecutive, last=(2, 7), given=(2, 9)):
        g.append(entries(2, [9]))  # a gap
    with refused(store, data_dir, LogIdNonConsecutive, last=(2, 7), given=(3, 7)):
        g.append(entries(3, [7]))  # the same index at a higher term: truncate first
    with refused(store, data_dir, LogIdReversal, current=(2, 7), given=(2, 7), when="append"):
        g.append(entries(2, [7]))  # the same log id again
    with refused(store, data_dir, LogIdReversal, current=(2, 7), given=(1, 8), when="append"):
        g.append(entries(1, [8]))  # a lower term
    with refused(store, data_dir, LogIdNonConsecutive, last=(2, 9), given=(2, 11)):
        g.append(entries(2, [8, 9, 11]))  # a gap late in the list: none of it
    with writes_nothing(store, data_dir):
        g.append([])
    assert list(g.read(0, 10)) == entries(1, [5, 6]) + entries(2, [7])


def test_append_after_a_purge_beyond_last_starts_after_purged(open_store, data_dir):
    store = open_store()
    g = store.group(1)
    g.append(entries(1, range(3)))
    g.purge((2, 5))
    with refused(store, data_dir, LogIdNonConsecutive, last=(2, 5), given=(2, 7)):
        g.append(entries(2, [7]))
    g.append(entries(2, [6]))
    assert g.state() == LogState(last=(2, 6), purged=(2, 5))


# ------------------------------------------------------------ purge


def test_purge_at_or_below_purged_is_a_noop_whatever_its_term(open_store, data_dir):
    store = open_store()
    g = purged_log(store)
    with writes_nothing(store, data_dir):
        g.purge((1, 3))
        g.purge((9, 3))
        g.purge((0, 1))


def test_purge_must_agree_with_the_log(open_store, data_dir):
    store = open_store()
    g = purged_log(store)
    with refused(store, data_dir, LogIdMismatch, stored=(1, 5), given=(2, 5)):
        g.purge((2, 5))  # the log holds (1, 5)
    with refused(store, data_dir, LogIdMismatch, stored=(1, 7), given=(0, 9)):
        g.purge((0, 9))  # beyond last at a lower term
    h = store.group(2)
    h.append(entries(3, [5, 6]))
    with refused(store, data_dir, LogIdMismatch, stored=(3, 5), given=(4, 2)):
        h.purge((4, 2))  # the first entry kept above it has a lower term
    g.purge((1, 5))
    assert g.state() == LogState(last=(1, 7), purged=(1, 5))
    g.purge((2, 10))  # beyond last: drops everything, lifts last
    assert g.state() == LogState(last=(2, 10), purged=(2, 10)) and list(g.read(0, 20)) == []


# ------------------------------------------------------------ user data


def test_user_data_is_always_accepted(open_store):
    store = open_store()
    g = purged_log(store)
    g.commit((1, 9))
    g.save_user_data(b"u")
    assert g.state() == LogState(last=(1, 7), committed=(1, 9), purged=(1, 3), user_data=b"u")
    g.save_user_data(None)
    assert g.state().user_data is None


# ------------------------------------------------------------ the document


def test_the_doc_names_every_error_of_each_op_on_its_row():
    with open(os.path.join(ROOT, "docs", "semantics.md")) as f:
        rows = {m.group(1): line for line in f for m in [re.match(r"\| `(\w+)\(", line)] if m}
    assert rows.keys() == WRITE_OPS.keys()
    for name, op in WRITE_OPS.items():
        for code in op.errors:
            assert f"`{code}`" in rows[name], (name, code)
