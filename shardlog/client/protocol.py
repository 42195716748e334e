"""The client protocol: msgpack maps over ROUTER/DEALER (docs/protocol.md is the reference).

Shared by the front and the clients; it knows nothing of the engine. Log ids
and votes travel as 2-element arrays, entries as ``[term, index, payload]``,
a LogState as a 5-element array ``[vote, last, committed, purged, user_data]``.
"""

import sys
from array import array

import msgpack

from shardlog.columns import cut_payloads, little_endian
from shardlog.errors import BadRequest, ServerError, ShardlogError, error_classes
from shardlog.ops import WRITE_OPS
from shardlog.types import LogState

#: The newest version of the protocol (2: batches may carry appends in columns).
PROTOCOL_VERSION = 2
#: The version a client says hello in and sends every request in but a batch
#: with columns, so that it talks to servers of either version.
BASE_VERSION = 1
#: The versions a server takes; a request carrying another one is refused.
PROTOCOL_VERSIONS = (1, 2)

#: Every op of the protocol: the write ops of ops.py (each takes ``gid`` and the
#: field its entry names) and the rest.
OPS = sorted(list(WRITE_OPS) + ["hello", "flush", "read", "state", "groups", "drop_group", "batch", "stat", "events"])

_ERRORS = error_classes()
#: Codes that servers before errors travelled under their class names sent.
_OLD_CODES = {"ShuttingDown": "StoreClosed"}


def pack(message):
    # (Not one shared Packer, though packb makes one at every call: a Packer is
    # not thread-safe, and keeps the buffer of the largest message it packed.)
    return msgpack.packb(message, use_bin_type=True)


def unpack(data):
    """A request or reply map; BadRequest if the bytes are not one."""
    try:
        message = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:
        raise BadRequest(f"not a msgpack message: {exc}") from None
    if not isinstance(message, dict):
        raise BadRequest(f"a message must be a map, not {type(message).__name__}")
    return message


def peek_id(data):
    """The ``id`` of a message too large to decode whole (skips every other value), or None."""
    try:
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=len(data) + 1)
        unpacker.feed(data)
        for _ in range(unpacker.read_map_header()):
            if unpacker.unpack() == "id":
                return unpacker.unpack()
            unpacker.skip()
    except Exception:
        return None
    return None


# ------------------------------------------------------------ values on the wire


def log_id_out(log_id):
    return None if log_id is None else list(log_id)


def state_out(state):
    return [log_id_out(state.vote), log_id_out(state.last), log_id_out(state.committed),
            log_id_out(state.purged), state.user_data]


def state_in(fields):
    def pair(v):
        return None if v is None else (v[0], v[1])

    vote, last, committed, purged, user_data = fields
    return LogState(pair(vote), pair(last), pair(committed), pair(purged), user_data)


def entries_out(entries):
    return [[t, i, p] for (t, i), p in entries]


def columns_out(first, terms, sizes, payloads, nxt):
    """A read reply in columns: no msgpack object per entry (docs/protocol.md, ``read``)."""
    return {"first": first, "terms": little_endian(terms).tobytes(), "sizes": little_endian(sizes).tobytes(),
            "data": b"".join(payloads), "next": nxt}


def columns_in(page):
    """``[((term, index), payload), ...]`` of a read reply in columns."""
    terms, sizes = array("Q"), array("I")
    terms.frombytes(page["terms"])
    sizes.frombytes(page["sizes"])
    if sys.byteorder != "little":
        terms.byteswap()
        sizes.byteswap()
    data, first = page["data"], page["first"]
    if len(terms) != len(sizes) or sum(sizes) != len(data):
        raise BadRequest("a read reply whose columns disagree")
    return list(zip(zip(terms, range(first, first + len(terms))), cut_payloads(data, sizes)))


# ------------------------------------------------------------ replies


def ok(request_id, result=None):
    return pack({"id": request_id, "status": "ok", "result": result})


def error(request_id, exc):
    """An error reply: the error's code (its class name), message and fields;
    anything not a ShardlogError is a bug, and travels as ``Internal``."""
    if isinstance(exc, ShardlogError):
        code, message, fields = exc.code, exc.message, exc.to_fields()
    else:
        code, message, fields = "Internal", f"{type(exc).__name__}: {exc}", {}
    return pack({"id": request_id, "status": "error", "code": code, "message": message, "fields": fields})


def raise_for(reply):
    """The result of a reply, or the exception its error code names."""
    if reply.get("status") == "ok":
        return reply.get("result")
    code, message = reply.get("code", "Internal"), reply.get("message", "")
    cls = _ERRORS.get(_OLD_CODES.get(code, code))
    if cls is None or cls is ServerError:
        raise ServerError(code, message)
    raise cls.from_fields(message, reply.get("fields"))
