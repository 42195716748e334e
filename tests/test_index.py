from array import array

from shardlog.engine.chunks import ChunkSet
from shardlog.engine.index import EntryIndex


def filled(first, n):
    idx = EntryIndex()
    for i in range(first, first + n):
        idx.append(i, 1 + i // 10, 1000 + 50 * i, i % 7)
    return idx


def test_append_locate_and_bounds():
    idx = filled(5, 10)
    assert (len(idx), idx.first, idx.last_index, idx.next_index()) == (10, 5, 14, 15)
    assert idx.locate(7) == (1, 1000 + 350, 0)
    assert idx.term_at(4) is None and idx.term_at(15) is None
    try:
        idx.append(20, 1, 0, 0)
    except ValueError:
        pass
    else:
        raise AssertionError("a gap must be refused")


def test_truncate_and_purge_keep_positions_right():
    idx = filled(0, 100)
    start, end = idx.span_after(49)
    assert (start, end) == (50, 100)
    idx.cut_tail(start, 50)
    assert idx.last_index == 49
    start, end = idx.span_upto(9)
    idx.cut_head(end, 10)
    assert (idx.first, len(idx), idx.offset_at(10)) == (10, 40, 1000 + 500)
    start, end = idx.span_upto(1000)
    idx.cut_head(end, 1001)
    assert len(idx) == 0 and idx.first == 1001
    idx.append(1001, 9, 5, 5)
    assert idx.locate(1001) == (9, 5, 5)
    idx.cut_tail(idx.span_after(900)[0], 901)
    assert len(idx) == 0 and idx.next_index() == 901, "an emptied index waits where the log goes on"


def test_purge_compacts_the_dead_head():
    idx = filled(0, 20000)
    for upto in range(0, 15000, 100):
        idx.cut_head(idx.span_upto(upto)[1], upto + 1)
    assert idx.positions() < 20000, "dead head was compacted away"
    assert idx.locate(15000) == (1 + 1500, 1000 + 50 * 15000, 15000 % 7)


def test_memory_per_entry_is_small():
    idx = filled(0, 100000)  # a term change every 10 entries
    assert idx.nbytes() / len(idx) <= 20


def test_chunk_live_counts():
    chunks = ChunkSet()
    a = chunks.add(0)
    idx = EntryIndex()
    for i in range(10):
        idx.append(i, 1, i * 10, 1)
        a.live += 1
    a.end = 100
    b = chunks.add(100)
    for i in range(10, 20):
        idx.append(i, 1, i * 10, 1)
        b.live += 1
    start, end = idx.span_upto(12)
    chunks.release(idx, start, end, now=500)
    assert (a.live, b.live, a.free_at) == (0, 7, 500)
    assert chunks.pinning_chunk() is b


def test_terms_are_one_number_until_they_differ():
    idx = filled(0, 5)  # every term is 1
    assert idx.terms == 1, "a run of one term holds no terms array"
    idx.append(5, 2, 9000, 3)
    assert [idx.term_at(i) for i in range(6)] == [1, 1, 1, 1, 1, 2]
    assert idx.locate(5) == (2, 9000, 3) and idx.last_term() == 2
    assert list(idx.term_column(4, 6)) == [1, 2]
    idx.cut_tail(idx.span_after(4)[0], 5)  # the term-2 entry truncated away
    assert idx.terms == 1 and idx.last_term() == 1
    idx.append(5, 3, 9000, 3)
    idx.append(6, 3, 9100, 3)
    idx.cut_head(idx.span_upto(4)[1], 5)  # purged past the last term-1 entry
    assert idx.terms == 3 and [idx.term_at(i) for i in (4, 5, 6)] == [None, 3, 3]
    idx.append(7, 2, 9200, 3)  # raft-log does not make terms go up: still right
    idx.cut_head(idx.span_upto(5)[1], 6)
    assert [idx.term_at(i) for i in (6, 7)] == [3, 2] and idx.terms.__class__ is not int


def test_extend_keeps_or_spreads_the_terms():
    idx = EntryIndex()
    idx.start_at(10)
    idx.extend(array("Q", [4, 4]), array("Q", [1, 2]), array("I", [5, 5]))
    assert idx.terms == 4 and idx.nbytes() <= 2 * 16 + 64
    idx.extend(array("Q", [4, 5]), array("Q", [3, 4]), array("I", [5, 5]))
    assert [idx.term_at(i) for i in range(10, 14)] == [4, 4, 4, 5]
    assert list(idx.term_column(idx.head, 4)) == [4, 4, 4, 5]


def test_term_runs_follow_cuts_and_compaction():
    """Terms kept as runs: every position keeps its term through truncation,
    purge and the compaction of a long dead head."""
    terms = [1] * 5000 + [2] * 3 + [3] * 4000 + [5] * 2
    idx = EntryIndex()
    for i, term in enumerate(terms):
        idx.append(100 + i, term, 10 * i, i % 9)
    assert list(idx.term_column(0, len(terms))) == terms
    assert idx.nbytes() <= 16 * len(terms) + 256, "runs cost nothing per entry"
    idx.cut_tail(idx.span_after(100 + 9002)[0], 100 + 9003)  # the term-5 entries go
    assert idx.last_term() == 3 and idx.term_at(100 + 5001) == 2
    idx.cut_head(idx.span_upto(100 + 5001)[1], 100 + 5002)  # head past 4096: compacted
    assert idx.head < 5000 and idx.positions() == len(idx)
    assert [idx.term_at(100 + i) for i in (5001, 5002, 5003, 9002, 9003)] == [None, 2, 3, 3, None]
    assert idx.locate(100 + 5003) == (3, 10 * 5003, 5003 % 9)
    idx.cut_head(idx.span_upto(100 + 5002)[1], 100 + 5003)
    assert idx.terms == 3, "one term left: one number again"
    assert idx.find_offset(10 * 6000 + 1, idx.head, idx.positions()) == idx.position(100 + 6001)
