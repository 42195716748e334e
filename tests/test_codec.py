"""Every record type, byte by byte (as raft-log's codec tests do)."""

import sys
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shardlog.engine import codec
from shardlog.types import LogState


def crc(b):
    """The stored checksum: CRC-32 of type+body as a u64 BE."""
    return zlib.crc32(b).to_bytes(8, "big")


def u64(n):
    return n.to_bytes(8, "big")


def roundtrip(encoded, rtype, gid, value, with_gid=True):
    rec, end = codec.decode(encoded, 0, with_gid=with_gid)
    assert end == len(encoded)
    assert rec == codec.Record(rtype, gid, value)


def test_save_vote():
    body = b"".join([
        b"\x00\x00\x00\x00",  # type SaveVote
        u64(7),  # group id
        u64(3),  # vote.term
        u64(2),  # vote.voted_for
    ])
    got = codec.encode(codec.SAVE_VOTE, 7, (3, 2))
    assert got == body + crc(body)
    roundtrip(got, codec.SAVE_VOTE, 7, (3, 2))


def test_append():
    body = b"".join([
        b"\x00\x00\x00\x01",  # type Append
        u64(7),  # group id
        u64(1),  # log_id.term
        u64(5),  # log_id.index
        b"\x00\x00\x00\x05",  # payload length
        b"hello",  # payload
    ])
    got = codec.encode(codec.APPEND, 7, ((1, 5), b"hello"))
    assert got == body + crc(body)
    assert codec.encode_append(7, (1, 5), b"hello") == got
    assert len(got) == codec.APPEND_OVERHEAD + 5
    assert got[codec.APPEND_PAYLOAD_AT:codec.APPEND_PAYLOAD_AT + 5] == b"hello"
    roundtrip(got, codec.APPEND, 7, ((1, 5), b"hello"))


def test_commit():
    body = b"".join([
        b"\x00\x00\x00\x02",  # type Commit
        u64(7),  # group id
        u64(1),  # log_id.term
        u64(4),  # log_id.index
    ])
    got = codec.encode(codec.COMMIT, 7, (1, 4))
    assert got == body + crc(body)
    roundtrip(got, codec.COMMIT, 7, (1, 4))


@pytest.mark.parametrize("log_id, tail", [
    ((1, 1), b"\x01" + u64(1) + u64(1)),  # Some, term, index
    (None, b"\x00"),  # None
])
def test_truncate_after(log_id, tail):
    body = b"".join([
        b"\x00\x00\x00\x03",  # type TruncateAfter
        u64(7),  # group id
        tail,
    ])
    got = codec.encode(codec.TRUNCATE_AFTER, 7, log_id)
    assert got == body + crc(body)
    roundtrip(got, codec.TRUNCATE_AFTER, 7, log_id)


def test_purge_upto():
    body = b"".join([
        b"\x00\x00\x00\x04",  # type PurgeUpto
        u64(7),  # group id
        u64(2),  # log_id.term
        u64(9),  # log_id.index
    ])
    got = codec.encode(codec.PURGE_UPTO, 7, (2, 9))
    assert got == body + crc(body)
    roundtrip(got, codec.PURGE_UPTO, 7, (2, 9))


FULL_STATE = LogState(vote=(1, 2), last=(2, 3), committed=(4, 5), purged=(6, 7), user_data=b"hello")
FULL_STATE_BYTES = b"".join([
    b"\x01",  # LogState version
    b"\x01", u64(1), u64(2),  # vote: Some, term, voted_for
    b"\x01", u64(2), u64(3),  # last: Some, term, index
    b"\x01", u64(4), u64(5),  # committed
    b"\x01", u64(6), u64(7),  # purged
    b"\x01", b"\x00\x00\x00\x05", b"hello",  # user_data: Some, length, bytes
])


def test_state():
    body = b"".join([
        b"\x00\x00\x00\x05",  # type State
        u64(7),  # group id
        FULL_STATE_BYTES,
    ])
    got = codec.encode(codec.STATE, 7, FULL_STATE)
    assert got == body + crc(body)
    roundtrip(got, codec.STATE, 7, FULL_STATE)


def test_empty_state_is_raft_logs_first_record():
    # The first 18 bytes of every fresh raft-log directory.
    want = bytes.fromhex("00000005" "01" "0000000000" "000000007aee9474")
    assert codec.encode_raft_log(codec.STATE, LogState()) == want
    roundtrip(want, codec.STATE, None, LogState(), with_gid=False)


def test_checkpoint():
    body = b"".join([
        b"\x00\x00\x00\x06",  # type Checkpoint
        b"\x00\x00\x00\x01",  # format version
        u64(324),  # the chunk's global offset
        u64(2),  # number of groups
        u64(3), b"\x01" + b"\x00" * 5,  # group 3, empty LogState
        u64(9), FULL_STATE_BYTES,  # group 9
    ])
    got = codec.encode_checkpoint(324, [(3, LogState()), (9, FULL_STATE)])
    assert got == body + crc(body)
    roundtrip(got, codec.CHECKPOINT, None, (1, 324, [(3, LogState()), (9, FULL_STATE)]))


@pytest.mark.parametrize("rtype, type_bytes", [
    (codec.GROUP_CREATE, b"\x00\x00\x00\x07"),
    (codec.GROUP_DROP, b"\x00\x00\x00\x08"),
])
def test_group_create_and_drop(rtype, type_bytes):
    body = type_bytes + u64(7)  # type, group id; no body
    got = codec.encode(rtype, 7)
    assert got == body + crc(body)
    roundtrip(got, rtype, 7, None)


def test_raft_log_append_has_no_group_id():
    body = b"".join([
        b"\x00\x00\x00\x01",  # type Append
        u64(1),  # term
        u64(0),  # index
        b"\x00\x00\x00\x02", b"hi",  # payload
    ])
    got = codec.encode_raft_log(codec.APPEND, ((1, 0), b"hi"))
    assert got == body + crc(body)
    assert got.hex() == "000000010000000000000001000000000000000000000002686900000000" "17aa6333"


def test_raft_log_has_no_shardlog_types():
    with pytest.raises(ValueError):
        codec.encode_raft_log(codec.CHECKPOINT, None)
    with pytest.raises(codec.BadRecord, match="unknown record type 7"):
        codec.decode(codec.encode(codec.GROUP_CREATE, 1), 0, with_gid=False)


def test_every_cut_is_incomplete_and_every_flip_is_bad():
    rec = codec.encode(codec.STATE, 7, FULL_STATE)
    for n in range(len(rec)):
        with pytest.raises(codec.Incomplete):
            codec.decode(rec[:n], 0)
    for i in range(len(rec)):
        damaged = bytearray(rec)
        damaged[i] ^= 0x10
        with pytest.raises((codec.BadRecord, codec.Incomplete)):
            codec.decode(bytes(damaged), 0)


def test_unsupported_versions_are_rejected():
    state = codec.encode(codec.STATE, 7, LogState())
    bad = bytearray(state)
    bad[12] = 2  # LogState version
    body = bytes(bad[:-8])
    with pytest.raises(codec.BadRecord, match="LogState version 2"):
        codec.decode(body + crc(body), 0)
    cp = bytearray(codec.encode_checkpoint(0, []))
    cp[7] = 9  # format version
    body = bytes(cp[:-8])
    with pytest.raises(codec.BadRecord, match="format version 9"):
        codec.decode(body + crc(body), 0)


def test_describe():
    assert codec.describe(codec.Record(codec.APPEND, 3, ((1, 2), b"x"))) == "Append(g=3 (1, 2), b'x')"
    assert codec.describe(codec.Record(codec.GROUP_CREATE, 3, None)) == "GroupCreate(g=3)"
    assert codec.describe(codec.Record(codec.CHECKPOINT, None, (1, 0, []))) == \
        "Checkpoint(version=1, chunk=0, groups=0)"


@given(st.binary(max_size=5000), st.integers(0, 2**32 - 1), st.integers(0, 64))
def test_the_record_checksum_is_zlibs_crc32_whichever_library_computes_it(data, start, skip):
    assert codec.crc32(data, start) == zlib.crc32(data, start)
    assert codec.crc32(memoryview(bytearray(data))[skip:]) == zlib.crc32(data[skip:])


def test_zlib_ng_computes_the_checksum_where_it_is_installed_and_zlib_where_not(monkeypatch):
    from zlib_ng import zlib_ng

    assert codec.crc32 is zlib_ng.crc32
    monkeypatch.setitem(sys.modules, "zlib_ng.zlib_ng", None)  # the import fails
    assert codec._fastest_crc32() is zlib.crc32
