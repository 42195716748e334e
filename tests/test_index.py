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
    assert len(idx.terms) < 20000, "dead head was compacted away"
    assert idx.locate(15000) == (1 + 1500, 1000 + 50 * 15000, 15000 % 7)


def test_memory_per_entry_is_small():
    idx = filled(0, 100000)
    assert idx.nbytes() / len(idx) <= 32


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
    chunks.release(idx.offsets, start, end, now=500)
    assert (a.live, b.live, a.free_at) == (0, 7, 500)
    assert chunks.pinning_chunk() is b
