"""Records of a disk's stream, in raft-log's framing.

A record is ``u32 BE type``, the body, then the CRC-32 (IEEE, ``crc32`` below)
of type and body stored as a ``u64 BE``. shardlog's stream puts the group id
(u64 BE) right after the type of every per-group record; raft-log's own
directories (``with_gid=False``) have no group id. Bodies use big-endian u64
for numbers, ``u8 0|1`` before an Option and ``u32 BE length + bytes`` for
bytes. docs/format.md is the reference; tests/test_codec.py spells out the
bytes of every type.
"""

import struct
import sys
import zlib
from array import array
from typing import NamedTuple, Optional

# raft-log's record types are those the ops of ops.py write; shardlog's own follow.
from shardlog.ops import APPEND, COMMIT, PURGE_UPTO, SAVE_VOTE, STATE, TRUNCATE_AFTER  # noqa: F401
from shardlog.types import LogState

#: Format 1 only: opened each chunk with the state of every group (still read).
CHECKPOINT = 6
GROUP_CREATE = 7
GROUP_DROP = 8
#: Opens every chunk of format 2: the format version and the chunk's own offset.
CHUNK_HEADER = 9
#: Closes a sealed chunk: what the chunk did to each group it touched (see encode_footer).
FOOTER = 10
#: A live entry copied forward out of an old chunk; the same body as Append.
RELOCATE = 11


def _fastest_crc32():
    """zlib-ng's crc32 where it is installed (a dependency), else zlib's: the
    same CRC-32 (IEEE), but a record's two calls (a 36-byte head, a 100-byte
    payload) take 107 ns against 363 ns with the system's zlib 1.2.13, and
    every record written or recovered is checksummed."""
    try:
        from zlib_ng.zlib_ng import crc32
    except ImportError:  # a platform with no wheel of it: the same sums, slower
        return zlib.crc32
    return crc32


#: The checksum of every record (see _fastest_crc32).
crc32 = _fastest_crc32()


TYPE_NAMES = {
    SAVE_VOTE: "SaveVote", APPEND: "Append", COMMIT: "Commit",
    TRUNCATE_AFTER: "TruncateAfter", PURGE_UPTO: "PurgeUpto", STATE: "State",
    CHECKPOINT: "Checkpoint", GROUP_CREATE: "GroupCreate", GROUP_DROP: "GroupDrop",
    CHUNK_HEADER: "ChunkHeader", FOOTER: "Footer", RELOCATE: "Relocate",
}
RAFT_LOG_TYPES = frozenset((SAVE_VOTE, APPEND, COMMIT, TRUNCATE_AFTER, PURGE_UPTO, STATE))

#: Version of the stream format, carried by every ChunkHeader record.
FORMAT_VERSION = 2
#: Chunks of this version open with a Checkpoint instead (read, never written).
CHECKPOINT_FORMAT_VERSION = 1
STATE_VERSION = 1

U32 = struct.Struct(">I")
U64 = struct.Struct(">Q")
PAIR = struct.Struct(">QQ")
CRC = struct.Struct(">Q")
HEAD = struct.Struct(">I")
HEAD_GID = struct.Struct(">IQ")
CHECKPOINT_HEAD = struct.Struct(">IIQQ")  # type, format version, chunk offset, group count
CHUNK_HEADER_HEAD = struct.Struct(">IIQ")  # type, format version, chunk offset
CHUNK_HEADER_SIZE = CHUNK_HEADER_HEAD.size + 8
FOOTER_HEAD = struct.Struct(">IQQQ")  # type, chunk offset, group count, entry count
#: The last 16 bytes of a sealed chunk: the footer record's length, its checksum.
FOOTER_TAIL = struct.Struct(">QQ")
#: Append in shardlog's stream: type, gid, term, index, payload length.
APPEND_HEAD = struct.Struct(">IQQQI")
APPEND_OVERHEAD = APPEND_HEAD.size + CRC.size
#: Where an Append's payload starts, counted from the record's first byte.
APPEND_PAYLOAD_AT = APPEND_HEAD.size
#: An Append's head read for its type and payload length only (what a read checks).
APPEND_TYPE_AND_SIZE = struct.Struct(">I24xI")

_NONE = b"\x00"
_SOME = b"\x01"


class Record(NamedTuple):
    """A decoded record. ``value`` depends on ``type``:

    SaveVote: vote; Append: (log_id, payload); Commit, PurgeUpto: log_id;
    TruncateAfter: log_id or None; State: LogState; Checkpoint:
    (format_version, chunk_offset, [(gid, LogState), ...]); GroupCreate,
    GroupDrop: None; ChunkHeader: (format_version, chunk_offset); Footer:
    Footer; Relocate: as Append.
    """

    type: int
    gid: Optional[int]
    value: object


class Incomplete(Exception):
    """The record runs past the end of the data: a torn write, if at the tail."""


class BadRecord(Exception):
    """The bytes are not a valid record (checksum, type, version)."""


# ---------------------------------------------------------------- encoding


def _opt_pair(v):
    return _NONE if v is None else _SOME + PAIR.pack(v[0], v[1])


def _opt_bytes(v):
    return _NONE if v is None else _SOME + U32.pack(len(v)) + v


def encode_state(state: LogState) -> bytes:
    return b"".join((
        bytes((STATE_VERSION,)),
        _opt_pair(state.vote), _opt_pair(state.last), _opt_pair(state.committed),
        _opt_pair(state.purged), _opt_bytes(state.user_data),
    ))


def encode_body(rtype, value) -> bytes:
    """Body of a per-group record, without its type, group id or checksum."""
    if rtype in (SAVE_VOTE, COMMIT, PURGE_UPTO):
        return PAIR.pack(value[0], value[1])
    if rtype in (APPEND, RELOCATE):
        (term, index), payload = value
        return PAIR.pack(term, index) + U32.pack(len(payload)) + payload
    if rtype == TRUNCATE_AFTER:
        return _opt_pair(value)
    if rtype == STATE:
        return encode_state(value)
    if rtype in (GROUP_CREATE, GROUP_DROP):
        return b""
    raise ValueError(f"no body encoding for record type {rtype}")


def _frame(head: bytes, body: bytes) -> bytes:
    return head + body + CRC.pack(crc32(body, crc32(head)))


def encode(rtype, gid, value=None) -> bytes:
    """A per-group record of shardlog's stream."""
    return _frame(HEAD_GID.pack(rtype, gid), encode_body(rtype, value))


def encode_raft_log(rtype, value) -> bytes:
    """A record in raft-log's own framing (types 0..5, no group id)."""
    if rtype not in RAFT_LOG_TYPES:
        raise ValueError(f"record type {rtype} does not exist in raft-log")
    return _frame(HEAD.pack(rtype), encode_body(rtype, value))


def encode_checkpoint(chunk_offset, states) -> bytes:
    """The record that opened every chunk of format 1: the state of every group
    on the disk. Only read now (and written by tests of that reading).

    ``states`` is an iterable of ``(gid, LogState)``.
    """
    states = list(states)
    parts = [U64.pack(gid) + encode_state(st) for gid, st in states]
    head = CHECKPOINT_HEAD.pack(CHECKPOINT, CHECKPOINT_FORMAT_VERSION, chunk_offset, len(states))
    # The checksum covers the type too, so frame as if the type were the head.
    return _frame(head[:4], head[4:] + b"".join(parts))


def encode_append(gid, log_id, payload, rtype=APPEND) -> bytes:
    head = APPEND_HEAD.pack(rtype, gid, log_id[0], log_id[1], len(payload))
    return head + payload + CRC.pack(crc32(payload, crc32(head)))


def encode_chunk_header(chunk_offset) -> bytes:
    """The record every chunk of format 2 opens with. Naming its own offset
    catches a renamed file; the version lets a reader refuse what it cannot read."""
    head = CHUNK_HEADER_HEAD.pack(CHUNK_HEADER, FORMAT_VERSION, chunk_offset)
    return head + CRC.pack(crc32(head))


def chunk_header_offset(data) -> Optional[int]:
    """The offset a whole, valid ChunkHeader at the start of ``data`` names, or None."""
    if len(data) < CHUNK_HEADER_SIZE:
        return None
    rtype, _, offset = CHUNK_HEADER_HEAD.unpack_from(data)
    if rtype != CHUNK_HEADER or CRC.unpack_from(data, CHUNK_HEADER_HEAD.size)[0] != crc32(
            bytes(data[:CHUNK_HEADER_HEAD.size])):
        return None
    return offset


class FooterGroup(NamedTuple):
    """One group a sealed chunk touched, as its footer tells it.

    ``state`` is the group's LogState when the chunk was sealed, or None when
    the group was dropped in the chunk (and not created again after). The
    group's entries are then: those held before the chunk with index below
    ``kept_end`` (0: none of them) and above ``state.purged``, followed by
    ``run_count`` entries from ``run_first`` whose records are in this chunk
    (their term, offset and size are the footer's columns, in group order).
    """

    gid: int
    state: Optional[LogState]
    kept_end: int
    run_first: int
    run_count: int


#: Bits of a footer group's flags: the group exists at the chunk's end, and
#: which of its LogState's options are set.
EXISTS, HAS_VOTE, HAS_LAST, HAS_COMMITTED, HAS_PURGED, HAS_USER_DATA = 1, 2, 4, 8, 16, 32
_PAIR_BITS = (HAS_VOTE, HAS_LAST, HAS_COMMITTED, HAS_PURGED)


def _column(code, values):
    column = array(code, values)
    if sys.byteorder == "little":
        column.byteswap()
    return column.tobytes()


def encode_footer(chunk_offset, groups, terms, offsets, sizes) -> bytes:
    """The record that seals a chunk; opening reads it instead of the chunk's records.

    ``groups`` are FooterGroup; ``terms``, ``offsets`` (global offsets of the
    records) and ``sizes`` (payload lengths) are arrays of every run, in the
    order of ``groups``. Everything is in fixed-width columns (docs/format.md)
    so that a reader's work per group and per entry is mostly in C. The body
    ends with the record's own length, so a reader finds the footer from the
    file's last 16 bytes.
    """
    flags = bytearray()
    pairs, runs, user_data = [], [], []
    for g in groups:
        st = g.state
        if st is None:
            flags.append(0)
            runs += (0, 0, 0)
            continue
        bits = EXISTS
        for bit, value in zip(_PAIR_BITS, st[:4]):
            if value is not None:
                bits |= bit
                pairs += value
        if st.user_data is not None:
            bits |= HAS_USER_DATA
            user_data.append(U32.pack(len(st.user_data)) + st.user_data)
        flags.append(bits)
        runs += (g.kept_end, g.run_first, g.run_count)
    parts = [FOOTER_HEAD.pack(FOOTER, chunk_offset, len(groups), len(terms)),
             _column("Q", [g.gid for g in groups]), bytes(flags), _column("Q", pairs),
             _column("Q", runs), *user_data,
             _column("Q", terms), _column("Q", offsets), _column("I", sizes)]
    length = sum(map(len, parts)) + 16
    parts.append(U64.pack(length))
    record = b"".join(parts)
    return record + CRC.pack(crc32(record))


class Footer(NamedTuple):
    """A decoded footer, in columns: for group ``i``, ``gids[i]``, ``flags[i]``,
    ``runs[3i:3i+3]`` (kept_end, run_first, run_count), ``user_data[i]`` if
    set; ``pairs`` holds the set ones of vote, last, committed, purged (two
    u64 each) of every group in turn; the runs' entries are ``terms``,
    ``offsets``, ``sizes``."""

    chunk_offset: int
    gids: array
    flags: bytes
    pairs: array
    runs: array
    user_data: dict
    terms: array
    offsets: array
    sizes: array

    def groups(self):
        """The groups as FooterGroup (for checks and printing; opening reads the columns)."""
        out = []
        p, r, j = self.pairs, self.runs, 0
        for i, gid in enumerate(self.gids):
            bits = self.flags[i]
            state = None
            if bits & EXISTS:
                ids = []
                for bit in _PAIR_BITS:
                    if bits & bit:
                        ids.append((p[j], p[j + 1]))
                        j += 2
                    else:
                        ids.append(None)
                state = LogState(*ids, self.user_data.get(i))
            out.append(FooterGroup(gid, state, *r[3 * i:3 * i + 3]))
        return out


def footer_start(tail, size):
    """Where the footer of a chunk of ``size`` bytes starts, from its last 16
    bytes (``tail``), or None if the chunk does not end like a sealed one."""
    if size < FOOTER_HEAD.size + 16 or len(tail) != 16:
        return None
    length = FOOTER_TAIL.unpack(tail)[0]
    if not FOOTER_HEAD.size + 16 <= length <= size:
        return None
    return size - length


def _read_column(cur, code, width, count):
    start = cur.take(width * count)
    column = array(code)
    column.frombytes(cur.buf[start:start + width * count])
    if sys.byteorder == "little":
        column.byteswap()
    return column


def decode_footer(buf, pos=0):
    """``(Footer, end)`` of the Footer record at ``pos`` of ``buf``; raises
    Incomplete or BadRecord if there is no whole, valid footer there."""
    if len(buf) - pos < FOOTER_HEAD.size + 16:
        raise Incomplete("too short for a footer")
    rtype, chunk_offset, ngroups, nentries = FOOTER_HEAD.unpack_from(buf, pos)
    if rtype != FOOTER:
        raise BadRecord(f"record type {rtype} where a footer should be")
    cur = _Cursor(buf, pos + FOOTER_HEAD.size)
    gids = _read_column(cur, "Q", 8, ngroups)
    start = cur.take(ngroups)
    flags = bytes(buf[start:start + ngroups])
    pair_bits = HAS_VOTE | HAS_LAST | HAS_COMMITTED | HAS_PURGED
    npairs = sum(bin(bits & pair_bits).count("1") * flags.count(bits) for bits in set(flags))
    pairs = _read_column(cur, "Q", 8, 2 * npairs)
    runs = _read_column(cur, "Q", 8, 3 * ngroups)
    user_data = {}
    if flags.count(0) != ngroups:  # (a footer of only dropped groups has none)
        for i, bits in enumerate(flags):
            if bits & HAS_USER_DATA:
                user_data[i] = cur.raw()
    terms = _read_column(cur, "Q", 8, nentries)
    offsets = _read_column(cur, "Q", 8, nentries)
    sizes = _read_column(cur, "I", 4, nentries)
    length = cur.u64()
    body_end = cur.pos
    if length != body_end + 8 - pos:
        raise BadRecord(f"footer says it is {length} bytes long, it is {body_end + 8 - pos}")
    stored = CRC.unpack_from(buf, cur.take(8))[0]
    actual = crc32(memoryview(buf)[pos:body_end])
    if stored != actual:
        raise BadRecord(f"crc32 checksum mismatch in the footer: stored {stored:x}, computed {actual:x}")
    if sum(runs[2::3]) != nentries:
        raise BadRecord("footer runs do not add up to its entry count")
    return Footer(chunk_offset, gids, flags, pairs, runs, user_data, terms, offsets, sizes), cur.pos


# ---------------------------------------------------------------- decoding


class _Cursor:
    __slots__ = ("buf", "pos", "limit")

    def __init__(self, buf, pos):
        self.buf = buf
        self.pos = pos
        self.limit = len(buf)

    def take(self, n):
        start = self.pos
        end = start + n
        if end > self.limit:
            raise Incomplete(f"record needs {end - self.limit} more bytes")
        self.pos = end
        return start

    def u8(self):
        return self.buf[self.take(1)]

    def u32(self):
        return U32.unpack_from(self.buf, self.take(4))[0]

    def u64(self):
        return U64.unpack_from(self.buf, self.take(8))[0]

    def pair(self):
        return PAIR.unpack_from(self.buf, self.take(16))

    def option(self, read):
        flag = self.u8()
        if flag == 0:
            return None
        if flag == 1:
            return read()
        raise BadRecord(f"option flag {flag} is neither 0 nor 1")

    def raw(self):
        n = self.u32()
        start = self.take(n)
        return bytes(self.buf[start:start + n])

    def state(self):
        version = self.u8()
        if version != STATE_VERSION:
            raise BadRecord(f"unsupported LogState version {version}")
        pair = self.pair
        return LogState(self.option(pair), self.option(pair), self.option(pair),
                        self.option(pair), self.option(self.raw))


def decode(buf, pos=0, with_gid=True):
    """Decode the record at ``pos``; returns ``(Record, end)``.

    Raises Incomplete when the data ends inside the record, BadRecord when the
    record is complete but wrong (unknown type, checksum mismatch).
    """
    cur = _Cursor(buf, pos)
    rtype = cur.u32()
    if rtype not in TYPE_NAMES or (not with_gid and rtype not in RAFT_LOG_TYPES):
        raise BadRecord(f"unknown record type {rtype}")
    gid = None
    if rtype == CHECKPOINT:
        version = cur.u32()
        if version != CHECKPOINT_FORMAT_VERSION:
            raise BadRecord(f"unsupported format version {version} in a checkpoint")
        chunk_offset = cur.u64()
        count = cur.u64()
        states = [(cur.u64(), cur.state()) for _ in range(count)]
        value = (version, chunk_offset, states)
    elif rtype == CHUNK_HEADER:
        version = cur.u32()
        if version != FORMAT_VERSION:
            raise BadRecord(f"unsupported format version {version}")
        value = (version, cur.u64())
    elif rtype == FOOTER:
        footer, end = decode_footer(buf, pos)
        return Record(rtype, None, footer), end
    else:
        if with_gid:
            gid = cur.u64()
        if rtype in (SAVE_VOTE, COMMIT, PURGE_UPTO):
            value = cur.pair()
        elif rtype in (APPEND, RELOCATE):
            log_id = cur.pair()
            value = (log_id, cur.raw())
        elif rtype == TRUNCATE_AFTER:
            value = cur.option(cur.pair)
        elif rtype == STATE:
            value = cur.state()
        else:
            value = None
    body_end = cur.pos
    stored = CRC.unpack_from(buf, cur.take(8))[0]
    actual = crc32(memoryview(buf)[pos:body_end])
    if stored != actual:
        raise BadRecord(f"crc32 checksum mismatch: stored {stored:x}, computed {actual:x}")
    return Record(rtype, gid, value), cur.pos


def iter_records(data, with_gid=True, room=False):
    """``(offset, Record, end)`` of each record in ``data``, in order.

    Stops with Incomplete or BadRecord at the first record that does not
    decode; ``is_torn_tail(data, offset, error)`` tells whether that is what
    a crash mid-write leaves. With ``room``, stops quietly where the rest is
    room (``room_start``: a preallocated chunk file).
    """
    pos = 0
    stop = room_start(data) if room else len(data)
    while pos < stop:
        record, end = decode(data, pos, with_gid)
        yield pos, record, end
        pos = end


def room_start(data):
    """Where the room at the end of ``data`` begins: nothing but zero bytes
    from there on (room preallocated for records, workers/writer.py, and not
    used yet, or not reached by a write). A record may end with zero bytes
    too: room is what no record begins in."""
    return len(bytes(data).rstrip(b"\x00"))


def is_room(data, offset):
    """Nothing but zero bytes from ``offset`` on (see room_start)."""
    return offset >= room_start(data)


#: Writes not yet fsynced reach the disk a page at a time, and in any order.
PAGE_SIZE = 4096


def page_not_reached(data, offset, stop):
    """A page between ``offset`` and ``stop`` that reads as zeros from
    ``offset`` or its start to its end: in a preallocated file, a page the
    writes since the last fsync did not reach, the record at ``offset``
    running into it or beginning in it, while a later page they wrote (a
    valid record at ``stop``) reached the disk. recovery.py checks that
    ``offset`` is past what was synced. However few the zeros: the writes
    may have begun a byte before a page's end."""
    pos = offset
    while pos < stop:
        end = min((pos // PAGE_SIZE + 1) * PAGE_SIZE, len(data))
        if not bytes(data[pos:end]).strip(b"\x00"):
            return True
        pos = end
    return False


def is_torn_tail(data, offset, error, with_gid=True):
    """A record cut short, or nothing but zero bytes from ``offset`` on. In a
    preallocated file a record cut short reads as its first bytes, then
    zeros: those first bytes alone decode as incomplete."""
    if isinstance(error, Incomplete):
        return True
    written = bytes(data[offset:room_start(data)])
    if not written:  # room
        return True
    try:
        decode(written, 0, with_gid)
    except Incomplete:
        return True
    except BadRecord:
        return False
    return False


def describe(record: Record) -> str:
    """One line for a record, as ``dump`` prints it."""
    name = TYPE_NAMES[record.type]
    if record.type == CHECKPOINT:
        version, offset, states = record.value
        return f"{name}(version={version}, chunk={offset}, groups={len(states)})"
    gid = "" if record.gid is None else f"g={record.gid} "
    if record.type == CHUNK_HEADER:
        version, offset = record.value
        return f"{name}(version={version}, chunk={offset})"
    if record.type == FOOTER:
        footer = record.value
        return f"{name}(chunk={footer.chunk_offset}, groups={len(footer.gids)}, entries={len(footer.terms)})"
    if record.type in (APPEND, RELOCATE):
        log_id, payload = record.value
        return f"{name}({gid}{log_id}, {payload!r})"
    if record.value is None and record.type in (GROUP_CREATE, GROUP_DROP):
        return f"{name}({gid.strip()})"
    return f"{name}({gid}{record.value})"
