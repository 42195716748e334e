"""Hostile requests: every one is answered with an error, nothing is written, the server stays up."""

import msgpack
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardlog.client.protocol import OPS
from shardlog.ops import WRITE_OPS

from .conftest import snapshot

WRITE_FIELDS = {name: op.field for name, op in WRITE_OPS.items()}

# msgpack carries integers in [-2**63, 2**64): above that nothing can be sent.
I64_MIN, U64 = -2 ** 63, 2 ** 64
BAD_INTS = st.one_of(st.integers(I64_MIN, -1), st.floats(allow_nan=True), st.text(max_size=5), st.none(),
                     st.booleans(), st.binary(max_size=5))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(I64_MIN, U64 - 1), st.floats(), st.text(max_size=10),
                    st.binary(max_size=10))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=5), inner, max_size=4)),
                      max_leaves=10)
BAD_PAIRS = st.one_of(BAD_INTS, st.lists(SCALARS, max_size=1), st.lists(SCALARS, min_size=3, max_size=4),
                      st.tuples(BAD_INTS, st.integers(0, 5)).map(list),
                      st.tuples(st.integers(0, 5), BAD_INTS).map(list))
BAD_ARGS = {
    "save_vote": BAD_PAIRS,
    "purge": BAD_PAIRS,
    "commit": BAD_PAIRS,
    "truncate": BAD_INTS,
    "save_user_data": st.one_of(st.integers(I64_MIN, U64 - 1), st.text(min_size=1), st.lists(SCALARS, max_size=3)),
    "append": st.one_of(SCALARS, st.lists(st.one_of(SCALARS, st.lists(SCALARS, max_size=2)), min_size=1, max_size=3),
                        st.tuples(BAD_INTS, st.integers(0, 5), st.binary()).map(lambda t: [list(t)]),
                        st.tuples(st.integers(0, 5), st.integers(0, 5), st.text(max_size=3)).map(lambda t: [list(t)])),
}


def base(op):
    return {"v": 1, "id": 1, "op": op}


@st.composite
def bad_write(draw):
    op = draw(st.sampled_from(sorted(WRITE_FIELDS)))
    msg = base(op)
    if draw(st.booleans()):
        msg["gid"] = draw(BAD_INTS)
        msg[WRITE_FIELDS[op]] = draw(VALUES)
    else:
        msg["gid"] = draw(st.integers(0, 3))
        if draw(st.integers(0, 5)):
            msg[WRITE_FIELDS[op]] = draw(BAD_ARGS[op])
        # else: the argument is missing
    return msg


@st.composite
def bad_batch(draw):
    msg = base("batch")
    msg["flush"] = draw(st.booleans())
    kind = draw(st.integers(0, 3))
    if kind == 3:
        msg["v"] = draw(st.sampled_from([1, 2]))  # columns in version 1 are refused too
        msg["columns"] = draw(bad_columns())
    elif kind == 0:
        msg["ops"] = draw(SCALARS)
    elif kind == 1:
        msg["ops"] = draw(st.lists(st.one_of(SCALARS, st.lists(SCALARS, max_size=4)), min_size=1, max_size=3))
    else:
        op = draw(st.sampled_from(sorted(WRITE_FIELDS)))
        if draw(st.booleans()):
            item = [op, draw(BAD_INTS), draw(VALUES)]
        else:
            item = [op, draw(st.integers(0, 3)), draw(BAD_ARGS[op])]
        msg["ops"] = [item]
    return msg


@st.composite
def bad_columns(draw):
    """Append columns that cannot be one batch's: not a map, a column missing or
    not binary, rows of different lengths, sizes that do not add up to the data."""
    def column(itemsize):
        return st.integers(1, 3).map(lambda n: bytes(itemsize * n))

    if draw(st.integers(0, 4)) == 0:
        return draw(SCALARS)
    columns = {"gids": draw(column(8)), "terms": draw(column(8)), "indexes": draw(column(8)),
               "sizes": draw(column(4)), "data": draw(st.binary(max_size=4))}
    rows = {len(columns[name]) // size for name, size in (("gids", 8), ("terms", 8), ("indexes", 8),
                                                            ("sizes", 4))}
    if len(rows) == 1 and not columns["data"] and draw(st.booleans()):
        columns["data"] = b"x"  # zero sizes against one byte
    elif len(rows) == 1 and not columns["data"]:
        del columns[draw(st.sampled_from(sorted(columns)))]
    if draw(st.integers(0, 3)) == 0:
        columns[draw(st.sampled_from(sorted(columns)))] = draw(st.one_of(SCALARS, st.binary(min_size=1, max_size=3)
                                                                         .filter(lambda b: len(b) % 4)))
    return columns


@st.composite
def other_bad(draw):
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return base(draw(st.text(max_size=12).filter(lambda s: s not in OPS)))
    if kind == 1:
        msg = base(draw(st.sampled_from(OPS)))
        msg["v"] = draw(st.one_of(st.integers(I64_MIN, U64 - 1).filter(lambda v: v not in (1, 2)), st.text(),
                                  st.none()))
        return msg
    if kind == 2:
        msg = base(draw(st.sampled_from(["read", "state", "drop_group"])))
        msg.update(gid=draw(BAD_INTS), start=draw(SCALARS), end=draw(SCALARS))
        return msg
    if kind == 3:
        msg = base("read")
        msg.update(gid=0, start=draw(BAD_INTS), end=draw(st.one_of(BAD_INTS, st.integers(0, 9))))
        return msg
    return draw(st.dictionaries(st.text(max_size=4), VALUES, max_size=4).filter(lambda d: d.get("v") not in (1, 2)))


def encoded(message):
    return msgpack.packb(message, use_bin_type=True)


RAW = st.one_of(st.binary(max_size=64), VALUES.filter(lambda v: not isinstance(v, dict)).map(encoded))
HOSTILE = st.one_of(RAW, st.one_of(bad_write(), bad_batch(), other_bad()).map(encoded))


def test_hostile_requests(start_server, tmp_path):
    server = start_server()
    with server.client() as client:
        client.group(1).append([((1, 0), b"kept")], flush=True)
    data = tmp_path / "data"
    before = snapshot(data)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(server.endpoint)
    sent = [0]

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(HOSTILE, min_size=1, max_size=8))
    def attack(messages):
        for m in messages:
            sock.send(m)
        for m in messages:
            assert sock.poll(10_000), f"no reply to {m[:80]!r}"
            reply = msgpack.unpackb(sock.recv(), raw=False)
            assert reply["status"] == "error", (messages, reply)
            assert reply["code"] in {"BadRequest", "InvalidArgument", "UnknownOp", "VersionMismatch", "TooLarge",
                                     "GroupNotFound"}, reply
        sent[0] += len(messages)

    try:
        attack()
    finally:
        sock.close()
        ctx.term()
    assert sent[0] >= 300
    with server.client() as client:
        client.flush()
        assert list(client.group(1).read(0, 5)) == [((1, 0), b"kept")]
        assert client.groups() == [1]
    assert snapshot(data) == before, "not one byte written for a hostile request"
    assert server.proc.poll() is None


def test_oversized_and_multipart_messages(start_server):
    server = start_server(None, "--max-message-size", "1000")
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(server.endpoint)
    try:
        sock.send(encoded({"v": 1, "id": 5, "op": "append", "gid": 1, "entries": [[1, 0, b"x" * 2000]]}))
        assert sock.poll(10_000)
        reply = msgpack.unpackb(sock.recv(), raw=False)
        assert (reply["id"], reply["code"]) == (5, "TooLarge")
        sock.send_multipart([b"a", b"b"])  # not answerable: logged and dropped
        sock.send(encoded({"v": 1, "id": 6, "op": "groups"}))
        assert sock.poll(10_000)
        assert msgpack.unpackb(sock.recv(), raw=False) == {"id": 6, "status": "ok", "result": []}
    finally:
        sock.close()
        ctx.term()
    assert "dropping a message of 3 frames" in server.log()


def test_ten_thousand_raw_messages_while_a_good_client_works(start_server, tmp_path):
    """Seeded garbage straight on a DEALER socket, with a well-behaved client alongside."""
    import random
    import threading

    server = start_server()
    data = tmp_path / "data"
    with server.client() as client:
        client.group(1).append([((1, 0), b"kept")], flush=True)
    good_errors, good_done = [], []

    def good_client():
        try:
            with server.client() as client:
                g = client.group(2)
                for i in range(300):
                    g.append([((1, i), b"good %d" % i)], flush=(i % 10 == 9))
                    assert list(g.read(i, i + 1)) == [((1, i), b"good %d" % i)]
                good_done.append(True)
        except Exception as exc:
            good_errors.append(exc)

    rng = random.Random(11)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(server.endpoint)
    helper = threading.Thread(target=good_client)
    helper.start()
    answered = 0
    try:
        for i in range(10_000):
            kind = rng.random()
            if kind < 0.4:
                msg = rng.randbytes(rng.randint(0, 200))
            elif kind < 0.7:
                msg = encoded({"v": 1, "id": i, "op": rng.choice(OPS + ["nope"]),
                               "gid": rng.choice([-1, "x", None, 1.5, [1]]), "entries": rng.randbytes(8)})
            else:
                msg = encoded([rng.randint(0, 9), rng.randbytes(4)])
            sock.send(msg)
            if i % 100 == 99:  # read what came back so far, so the replies keep flowing
                while sock.poll(0):
                    sock.recv()
                    answered += 1
        while answered < 10_000 and sock.poll(10_000):
            sock.recv()
            answered += 1
    finally:
        sock.close()
        ctx.term()
        helper.join(120)
    assert answered == 10_000, "every hostile message got an error reply"
    assert good_done and not good_errors, good_errors
    with server.client() as client:
        client.group(1).flush()
        assert client.groups() == [1, 2]
        assert list(client.group(1).read(0, 5)) == [((1, 0), b"kept")]
    assert server.proc.poll() is None
    assert server.stop() == 0
    # Not one record on disk comes from a hostile message.
    from shardlog.engine import codec
    from shardlog.workers.naming import list_chunks
    records = []
    for _, path in list_chunks(data)[0]:
        with open(path, "rb") as f:
            records += [rec for _, rec, _ in codec.iter_records(f.read(), room=True)]
    assert {rec.gid for rec in records if rec.gid is not None} == {1, 2}
    assert [rec.value for rec in records if rec.gid == 1 and rec.type == codec.APPEND] == [((1, 0), b"kept")]
    assert len([rec for rec in records if rec.gid == 2 and rec.type == codec.APPEND]) == 300


def test_clients_that_vanish_or_never_read_do_not_block_others(start_server):
    server = start_server()
    ctx = zmq.Context()
    try:
        silent = ctx.socket(zmq.DEALER)
        silent.linger = 0
        silent.connect(server.endpoint)
        for i in range(3000):  # never reads a reply
            silent.send(encoded({"v": 1, "id": i, "op": "state", "gid": 1}))
        for i in range(20):  # sends a durable write and is gone before the reply
            gone = ctx.socket(zmq.DEALER)
            gone.linger = 0
            gone.connect(server.endpoint)
            gone.send(encoded({"v": 1, "id": 1, "op": "append", "gid": 100 + i,
                               "entries": [[1, 0, b"x" * 1000]], "flush": True}))
            gone.close()
        with server.client(timeout=10) as client:
            client.group(1).append([((1, 0), b"served")], flush=True)
            assert list(client.group(1).read(0, 5)) == [((1, 0), b"served")]
        silent.close()
    finally:
        ctx.term()
    assert server.proc.poll() is None


def test_front_memory_stays_bounded_under_a_fast_writer(start_server):
    """A client writing faster than the disk: the front's RSS stays under a stated bound."""
    import threading

    import psutil

    server = start_server(None, "--max-unsynced-bytes", str(16 << 20), "--cache-max-bytes", str(16 << 20),
                          "--write-buffer-size", str(1 << 20))
    front = psutil.Process(server.proc.pid)
    base = front.memory_info().rss
    peak = [base]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], front.memory_info().rss)
            stop.wait(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    payload = b"p" * 100_000
    try:
        with server.client(timeout=60) as client:
            pending = []
            for i in range(4000):  # 400 MB, never flushed by the client
                pending.append(client.submit("append", gid=1, entries=[[1, i, payload]]))
                if len(pending) >= 200:
                    pending.pop(0).result()
            for p in pending:
                p.result()
            client.group(1).flush()
    finally:
        stop.set()
        watcher.join()
    growth = peak[0] - base
    print(f"front RSS: base {base >> 20} MiB, peak {peak[0] >> 20} MiB, growth {growth >> 20} MiB "
          f"for 400 MB written")
    # Bound: unsynced bytes (16 MiB, held in the front until durable) + cache (16 MiB)
    # + the socket's intake (256 requests of 100 kB) + allocator slack.
    assert growth < 160 << 20, f"front grew by {growth >> 20} MiB"
