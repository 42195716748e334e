"""Every error class travels under its own code, its name, and comes back whole."""

import pytest

from shardlog import errors
from shardlog.client.protocol import error, raise_for, unpack
from shardlog.errors import error_classes

#: One instance of every error class, with fields as the engine fills them.
EXAMPLES = [
    errors.ShardlogError("something"),
    errors.VoteReversal((2, 1), (1, 9)),
    errors.LogIdReversal((3, 4), (2, 4), "append"),
    errors.LogIdNonConsecutive((1, 4), (1, 6)),
    errors.LogIndexNotFound(4),
    errors.LogIdMismatch((2, 5), (1, 5)),
    errors.InvalidArgument("vote must be a pair of integers"),
    errors.GroupNotFound(12),
    errors.GroupExists("group 3 already exists"),
    errors.CorruptedLog("/d/r-00.wal", 120, "crc32 checksum mismatch"),
    errors.ChunkGap("/d/r-01.wal", 400, 380),
    errors.ChunkMissing("/d/r-01.wal", 400, "the oldest chunk r-01.wal is missing"),
    errors.TooManyGroups("cannot create group 9"),
    errors.DirectoryLocked("/d is in use"),
    errors.DiskFailed("disk /d failed"),
    errors.DiskFull("disk /d is full"),
    errors.StoreClosed("the server is shutting down"),
    errors.Timeout("no reply within 1 s"),
    errors.StaleRequest("request came 3.0 ms after its deadline; not applied"),
    errors.BadRequest("not a msgpack message"),
    errors.UnknownOp("unknown op 'x'"),
    errors.TooLarge("request of 10 bytes is over max_message_size"),
    errors.VersionMismatch("protocol version 9 is not supported"),
    errors.ServerError("Internal", "a bug"),
]


def test_every_error_class_has_an_example():
    assert {type(e) for e in EXAMPLES} == set(error_classes().values())


@pytest.mark.parametrize("exc", EXAMPLES, ids=[type(e).__name__ for e in EXAMPLES])
def test_error_crosses_the_wire_and_comes_back(exc):
    reply = unpack(error(7, exc))
    assert reply["id"] == 7 and reply["status"] == "error"
    # A ServerError carries the code of the reply it came from (Internal: a bug).
    assert reply["code"] == (exc.code if type(exc) is errors.ServerError else type(exc).__name__)
    with pytest.raises(type(exc)) as caught:
        raise_for(reply)
    back = caught.value
    assert type(back) is type(exc)
    assert str(back) == str(exc)
    for name in type(exc).fields:
        assert getattr(back, name) == getattr(exc, name), name


def test_an_unknown_code_or_a_bug_arrives_as_server_error():
    with pytest.raises(errors.ServerError) as caught:
        raise_for(unpack(error(1, ZeroDivisionError("oops"))))
    assert caught.value.code == "Internal" and "oops" in str(caught.value)
    with pytest.raises(errors.ServerError) as caught:
        raise_for({"status": "error", "code": "SomethingNew", "message": "m"})
    assert caught.value.code == "SomethingNew"


def test_fields_survive_a_real_server(start_server):
    server = start_server()
    with server.client() as client:
        g = client.group(1)
        g.save_vote((2, 2))
        with pytest.raises(errors.VoteReversal) as caught:
            g.save_vote((1, 1))
        assert (caught.value.current, caught.value.given) == ((2, 2), (1, 1))
        with pytest.raises(errors.InvalidArgument) as caught:
            client.submit("purge", gid=1, upto="not a log id").result()
        assert type(caught.value) is errors.InvalidArgument
        with pytest.raises(errors.LogIndexNotFound) as caught:
            g.truncate(5)
        assert caught.value.index == 4


def test_the_old_shutting_down_code_still_reads_as_store_closed():
    with pytest.raises(errors.StoreClosed):
        raise_for({"status": "error", "code": "ShuttingDown", "message": "the server is shutting down"})
