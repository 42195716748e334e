"""Appends in columns (shardlog/columns.py): recorded, sent, checked and applied
as the same appends in rows would be."""

from array import array

import msgpack
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from shardlog import InvalidArgument, LogIdNonConsecutive, LogIdReversal, LogState, ShardlogError
from shardlog.batch import Batch
from shardlog.client.core import Core, batch_op
from shardlog.client.protocol import unpack
from shardlog.columns import AppendColumns
from shardlog.errors import BadRequest
from shardlog.ops import check_log_id_columns, check_log_ids
from shardlog.types import U64_MAX

from .conftest import snapshot


def test_a_bad_entry_records_nothing_of_its_append():
    columns = AppendColumns()
    columns.add(1, [((1, 0), b"a")])
    for bad in ([((1, 1), b"b"), ((1, -2), b"c")], [((1, 1), b"b"), ((1, 2), "text")],
                [((1, 1), b"b"), ((1.5, 2), b"c")], [((1, 1), b"b"), (1, 2)], [((1, 1), b"b"), ((2 ** 64, 2), b"")]):
        with pytest.raises(InvalidArgument):
            columns.add(2, bad)
        assert (list(columns.gids), bytes(columns.data)) == ([1], b"a"), bad
    columns.add(2, [((1, 5), bytearray(b"xy")), ((1, 6), memoryview(b"z"))])
    assert columns.rows() == [("append", 1, [((1, 0), b"a")]),
                              ("append", 2, [((1, 5), b"xy"), ((1, 6), b"z")])]


def test_columns_cross_the_wire_unchanged():
    columns = AppendColumns()
    for gid in (7, 7, 3, 7):
        columns.add(gid, [((2, gid * 10 + len(columns)), b"p%d" % len(columns))])
    back = AppendColumns.from_wire(msgpack.unpackb(msgpack.packb(columns.to_wire())))
    assert back.rows() == columns.rows()
    assert [run[0] for run in back.runs()] == [7, 3, 7], "a group in two runs stays two runs, in order"


@pytest.mark.parametrize("change, message", [
    (lambda w: w.update(sizes=w["sizes"][:4]), "different lengths"),
    (lambda w: w.update(data=w["data"] + b"!"), "add up to"),
    (lambda w: w.update(terms=w["terms"][:-1]), "8 bytes per row"),
    (lambda w: w.pop("indexes"), "columns.indexes"),
    (lambda w: w.update(data="text"), "columns.data"),
])
def test_columns_that_cannot_be_one_batch_are_refused(change, message):
    columns = AppendColumns()
    columns.add(1, [((1, 0), b"ab"), ((1, 1), b"c")])
    wire = columns.to_wire()
    change(wire)
    with pytest.raises(BadRequest, match=message):
        AppendColumns.from_wire(wire)


def test_a_row_op_after_an_append_of_its_group_keeps_the_order():
    """Rows are applied before columns: a truncate recorded after an append of
    the same group turns the appends so far into rows, or it would run first."""
    submitted = []
    with Batch(lambda ops, columns, then: submitted.append((ops + then, columns))) as b:
        b.group(1).append([((1, 0), b"a"), ((1, 1), b"b")])
        b.group(2).append([((1, 0), b"x")])
        b.group(3).commit((1, 0))  # another group: the columns stay
        b.group(1).truncate(1)
        b.group(1).append([((2, 1), b"B")])
    [(ops, columns)] = submitted
    assert [(op, gid) for op, gid, _ in ops] == [("commit", 3), ("append", 1), ("append", 2), ("truncate", 1)]
    assert columns.rows() == [("append", 1, [((2, 1), b"B")])]


def test_a_raft_round_stays_in_columns_with_its_commits_after_them():
    """Vote, entries, commit per group: the votes go before the columns, the
    commits after them (``then``); an append after a group's commit turns
    everything into rows, in order."""
    submitted = []
    with Batch(lambda ops, columns, then: submitted.append((ops, columns, then))) as b:
        for gid in (1, 2):
            b.group(gid).save_vote((3, 1)).append([((3, 5), b"e")]).commit((3, 5))
    [(ops, columns, then)] = submitted
    assert [(op, gid) for op, gid, _ in ops] == [("save_vote", 1), ("save_vote", 2)]
    assert [run[0] for run in columns.runs()] == [1, 2]
    assert [(op, gid) for op, gid, _ in then] == [("commit", 1), ("commit", 2)]
    submitted.clear()
    with Batch(lambda ops, columns, then: submitted.append((ops, columns, then))) as b:
        b.group(1).append([((3, 5), b"e")]).commit((3, 5)).append([((3, 6), b"f")])
    [(ops, columns, then)] = submitted
    assert [(op, gid) for op, gid, _ in ops] == [("append", 1), ("commit", 1)] and then == []
    assert columns.rows() == [("append", 1, [((3, 6), b"f")])]


def test_store_batches_in_columns_equal_their_rows(open_store, tmp_path):
    """The same writes through the recorder (columns) and through Store.write
    (rows, op by op) leave the same states and entries."""
    by_columns, by_rows = open_store(tmp_path / "a"), open_store(tmp_path / "b")
    writes = []
    for gid in range(20):
        writes.append(("save_vote", gid, (1, gid)))
        writes.append(("append", gid, [((1, i), b"%d.%d" % (gid, i)) for i in range(gid % 3 + 1)]))
        if gid % 4 == 0:
            writes.append(("truncate", gid, 1))
            writes.append(("append", gid, [((2, 1), b"again")]))
        writes.append(("commit", gid, (1, 0)))
        if gid % 5 == 0:  # an append after the group's commit and vote
            last = 1 if gid % 4 == 0 else gid % 3
            writes.append(("save_vote", gid, (2, gid)))
            writes.append(("append", gid, [((2, last + 1), b"later")]))
    with by_columns.batch(flush=True) as b:
        for op, gid, arg in writes:
            getattr(b.group(gid), op)(arg)
    for write in writes:
        by_rows.write([write])
    for gid in range(20):
        assert by_columns.group(gid).state() == by_rows.group(gid).state()
        assert list(by_columns.group(gid).read(0, 10)) == list(by_rows.group(gid).read(0, 10))
    assert by_columns.group(4).state().last == (2, 1)


def test_a_refused_append_in_columns_leaves_no_trace(open_store, data_dir):
    store = open_store()
    store.group(5).append([((1, 0), b"a")], flush=True)
    store.flush()
    before = snapshot(data_dir)
    with pytest.raises(LogIdNonConsecutive):
        with store.batch() as b:
            for gid in range(10):
                b.group(gid).append([((1, 2), b"new")])  # group 5 holds index 0: 2 does not follow
    store.flush()
    assert snapshot(data_dir) == before
    assert store.groups() == [5]


def requests_sent(client):
    """The list the requests ``client`` sends from now on go to, decoded."""
    sent = []
    request = client._core.request

    def spy(op, fields, deadline=None):
        message = request(op, fields, deadline)
        sent.append(unpack(message[1]))
        return message

    client._core.request = spy
    return sent


def test_clients_send_columns_and_the_server_applies_them(start_server):
    server = start_server()
    with server.client() as client:
        sent = requests_sent(client)
        with client.batch(flush=True) as b:
            for gid in range(100):
                b.group(gid).save_vote((1, 1))
            for gid in range(100):
                b.group(gid).append([((1, 0), b"a%d" % gid), ((1, 1), b"b")])
        [batch] = [m for m in sent if m["op"] == "batch"]
        assert batch["v"] == 2 and len(batch["ops"]) == 100 and len(batch["columns"]["gids"]) == 200 * 8
        assert client.group(42).state() == LogState(vote=(1, 1), last=(1, 1))
        assert list(client.group(99).read(0, 5)) == [((1, 0), b"a99"), ((1, 1), b"b")]


def test_a_server_of_version_1_gets_the_appends_as_ops():
    columns = AppendColumns()
    columns.add(3, [((1, 0), b"a"), ((1, 1), b"b")])
    core = Core()
    for protocols, version in (([1], 1), (None, 1), ([1, 2], 2)):
        reply = {"protocol": 1, "incarnation": 1, "clock": 0.0}
        if protocols is not None:
            reply["protocols"] = protocols
        core.took_hello(reply, received_at=0.0)
        [(op, fields)] = list(batch_op([("commit", 3, [1, 1])], columns, True, [("commit", 3, [1, 2])]))
        message = unpack(core.request(op, fields)[1])
        assert message["v"] == version
        if version == 1:
            assert "columns" not in message and "then" not in message
            assert message["ops"] == [["commit", 3, [1, 1]], ["append", 3, [[1, 0, b"a"], [1, 1, b"b"]]],
                                      ["commit", 3, [1, 2]]]
        else:
            assert AppendColumns.from_wire(message["columns"]).rows() == columns.rows()
            assert message["then"] == [["commit", 3, [1, 2]]]
    assert unpack(core.request("hello", {})[1])["v"] == 1, "hello in version 1: any server answers it"


def test_store_batches_read_back_bytes(open_store):
    store = open_store()
    with store.batch() as b:
        b.group(1).append([((1, 0), b"a"), ((1, 1), bytearray(b"b"))])
    assert [type(p) for _, p in store.group(1).read(0, 5)] == [bytes, bytes]


def test_an_empty_append_in_a_flushed_batch_waits_for_its_group(open_store):
    """As the same empty append in rows always did: the flush covers the group's disk."""
    store = open_store()
    store.group(1).append([((1, 0), b"a")])
    disk = store._disks[0]
    assert disk.synced < disk.end
    with store.batch(flush=True) as b:
        b.group(1).append([])
    assert disk.synced == disk.end


def test_columns_in_a_version_1_request_are_refused(start_server):
    server = start_server()
    columns = AppendColumns()
    columns.add(1, [((1, 0), b"a")])
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    try:
        sock.connect(server.endpoint)
        for version, then, status in ((1, [], "error"), (2, [["truncate", 1, 0]], "error"), (2, [], "ok"),
                                      (2, [["commit", 1, [1, 0]]], "ok")):
            sock.send(msgpack.packb({"v": version, "id": version, "op": "batch", "columns": columns.to_wire(),
                                     "then": then}))
            assert sock.poll(10_000)
            reply = msgpack.unpackb(sock.recv())
            assert reply["status"] == status, reply
            columns = AppendColumns()
            columns.add(1, [((1, 0 if status == "error" else 1), b"a")])
        sock.send(msgpack.packb({"v": 1, "id": 3, "op": "hello"}))
        assert sock.poll(10_000)
        assert msgpack.unpackb(sock.recv())["result"]["protocol"] == 1, "a version-1 client hears its own version"
    finally:
        sock.close()
        ctx.term()


def test_a_long_append_travels_in_columns_and_keeps_its_errors(start_server):
    server = start_server()
    with server.client() as client:
        sent = requests_sent(client)
        g = client.group(8)
        g.append([((1, i), b"%d" % i) for i in range(100)], flush=True)
        g.append([((1, 100), b"short")])
        assert [(m["op"], m["v"]) for m in sent if m["op"] != "hello"] == [("batch", 2), ("append", 1)]
        assert list(g.read(98, 101)) == [((1, 98), b"98"), ((1, 99), b"99"), ((1, 100), b"short")]
        with pytest.raises(LogIdNonConsecutive) as refused:
            g.append([((1, 200 + i), b"gap") for i in range(50)])
        assert (refused.value.last, refused.value.given) == ((1, 100), (1, 200))
        with pytest.raises(InvalidArgument):
            g.append([((1, 101 + i), b"x" if i < 40 else "text") for i in range(50)])
        assert g.state().last == (1, 100)


def test_appends_in_columns_are_checked_after_the_rows_of_their_group(open_store, monkeypatch):
    """A group with row ops before its appends keeps them in columns: they are
    checked against the group as its rows leave it, never turned into rows."""
    store = open_store()
    store.group(1).append([((1, i), b"old") for i in range(3)])
    monkeypatch.setattr(AppendColumns, "rows", lambda self: pytest.fail("the columns were turned into rows"))
    with store.batch(flush=True) as b:
        b.group(1).save_vote((2, 1)).truncate(1)
        b.group(1).append([((2, 1), b"new")])
        b.group(2).save_vote((2, 1))
        b.group(2).append([((2, 7), b"first")])
    assert store.group(1).state() == LogState(vote=(2, 1), last=(2, 1))
    assert list(store.group(1).read(0, 5)) == [((1, 0), b"old"), ((2, 1), b"new")]
    assert store.group(2).state() == LogState(vote=(2, 1), last=(2, 7))
    with pytest.raises(LogIdNonConsecutive):  # checked against the truncate before it
        with store.batch() as b:
            b.group(1).truncate(1)
            b.group(1).append([((2, 2), b"gap")])
    assert store.group(1).state().last == (2, 1)


def test_the_error_of_a_batch_is_that_of_its_first_failing_op_in_order(open_store):
    store = open_store()
    store.group(1).append([((1, 0), b"a")])
    store.group(1).commit((1, 0))
    with pytest.raises(LogIdNonConsecutive):  # not the commit's LogIdReversal, checked after it
        with store.batch() as b:
            b.group(1).append([((1, 5), b"gap")]).commit((0, 0))
    assert store.group(1).state() == LogState(last=(1, 0), committed=(1, 0))


def test_then_is_checked_against_the_ops_before_it(open_store):
    """A commit in ``then`` below a commit among the ops, of a group with no appends in the columns, is refused."""
    store = open_store()
    columns = AppendColumns()
    columns.add(2, [((1, 0), b"a")])
    with pytest.raises(LogIdReversal):
        store.write_normalized([("commit", 1, (1, 5))], columns=columns, then=[("commit", 1, (1, 3))])
    assert store.groups() == []
    store.write_normalized([("commit", 1, (1, 5))], columns=columns, then=[("commit", 1, (1, 6))])
    assert store.group(1).state().committed == (1, 6)


def test_read_replies_in_columns_decode_to_rows_and_disagreeing_columns_are_refused():
    from shardlog.client.protocol import columns_in, columns_out

    page = columns_out(7, array("Q", [1, 1, 3]), array("I", [2, 0, 3]), [b"ab", b"", b"xyz"], 10)
    assert columns_in(msgpack.unpackb(msgpack.packb(page))) == [((1, 7), b"ab"), ((1, 8), b""), ((3, 9), b"xyz")]
    for bad in (dict(page, data=b"abxy"), dict(page, data=b"abxyz!"), dict(page, sizes=page["sizes"][:4])):
        with pytest.raises(BadRequest, match="disagree"):
            columns_in(bad)


def _outcome(check, *args):
    try:
        return check(*args)
    except ShardlogError as exc:
        return type(exc), str(exc)


# Runs that are mostly well formed, and some that are not: a term or an index
# out of step, anywhere, near the top of the u64 range too.
_RUNS = st.tuples(st.integers(0, 3), st.integers(0, U64_MAX - 12), st.integers(1, 12),
                  st.lists(st.tuples(st.integers(0, 11), st.sampled_from(["term-", "term+", "index-", "index+"])),
                           max_size=2))
_LASTS = st.one_of(st.none(), st.tuples(st.integers(0, 4), st.integers(0, U64_MAX)))


@settings(max_examples=400, deadline=None)
@given(_RUNS, _LASTS, st.booleans())
def test_the_check_of_a_run_in_columns_is_the_rule_row_by_row(run, last, follow):
    """check_log_id_columns answers as check_log_ids does: the same new last,
    or the same error for the same log id."""
    term, first, n, changes = run
    terms, indexes = array("Q", [term] * n), array("Q", range(first, first + n))
    for k, change in changes:
        k %= n
        if change == "term-":
            terms[k] = max(0, terms[k] - 1)
        elif change == "term+":
            for j in range(k, n):
                terms[j] += 1
        elif change == "index-":
            indexes[k] = max(0, indexes[k] - 1)
        else:
            indexes[k] = min(U64_MAX, indexes[k] + 2)
    if follow:  # a last the run goes on from
        last = (terms[0], indexes[0] - 1) if indexes[0] else None
    expected = _outcome(check_log_ids, last, list(zip(terms, indexes)))
    assert _outcome(check_log_id_columns, last, terms, indexes) == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.binary(max_size=5), st.integers(0, U64_MAX)), max_size=12),
       st.booleans())
def test_runs_cut_and_rows_are_the_rows_one_by_one(rows, recording):
    """runs(), cut() and rows() as a Python loop over the rows finds them."""
    sizes = array("I", [len(p) for _, p, _ in rows])
    data = b"".join(p for _, p, _ in rows)
    columns = AppendColumns(array("Q", [g for g, _, _ in rows]), array("Q", [t for _, _, t in rows]),
                            array("Q", range(len(rows))), sizes, bytearray(data) if recording else data)
    expected, lo = [], 0
    while lo < len(rows):
        hi = lo + 1
        while hi < len(rows) and rows[hi][0] == rows[lo][0]:
            hi += 1
        expected.append((rows[lo][0], lo, hi))
        lo = hi
    assert columns.runs() == expected
    log_ids, payloads = columns.cut()
    assert log_ids == [(t, k) for k, (_, _, t) in enumerate(rows)] and payloads == [p for _, p, _ in rows]
    assert all(type(payload) is bytes for payload in payloads)
    assert columns.rows() == [("append", gid, [((rows[k][2], k), rows[k][1]) for k in range(lo, hi)])
                              for gid, lo, hi in expected]
