"""The client protocol: msgpack maps over ROUTER/DEALER (docs/protocol.md is the reference).

Shared by the front and the clients; it knows nothing of the engine. Log ids
and votes travel as 2-element arrays, entries as ``[term, index, payload]``,
a LogState as a 5-element array ``[vote, last, committed, purged, user_data]``.
"""

import msgpack

from .args import check_entries, normalize_arg
from .errors import BadRequest, ServerError, ShardlogError, error_classes
from .types import U64_MAX, LogState

#: Major version of the protocol; a request carrying another one is refused.
PROTOCOL_VERSION = 1

#: Operations that change a group; each takes ``gid`` and one argument field.
WRITE_FIELDS = {
    "save_vote": "vote",
    "append": "entries",
    "truncate": "index",
    "purge": "upto",
    "commit": "log_id",
    "save_user_data": "user_data",
}
OPS = sorted(list(WRITE_FIELDS) + ["hello", "flush", "read", "state", "groups", "drop_group",
                                   "batch", "stat"])

_ERRORS = error_classes()


def pack(message):
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


def entries_in(wire):
    """``[((term, index), payload)]`` from ``[[term, index, payload], ...]``, checked in the same pass."""
    if not isinstance(wire, list):
        raise BadRequest("entries must be an array of [term, index, payload]")
    out = []
    append = out.append
    for e in wire:
        if type(e) is not list or len(e) != 3:
            raise BadRequest("each entry must be [term, index, payload]")
        term, index, payload = e
        if (type(term) is not int or type(index) is not int or not 0 <= term <= U64_MAX
                or not 0 <= index <= U64_MAX or type(payload) is not bytes):
            raise BadRequest(f"an entry must be [u64 term, u64 index, bin payload], not {e!r:.80}")
        append(((term, index), payload))
    return out


def write_arg_in(op, value):
    """The argument of a write op off the wire, checked and normalized as the engine takes it."""
    if op == "append":
        return entries_in(value)
    if op in ("save_vote", "purge", "commit") and isinstance(value, list):
        value = tuple(value)
    return normalize_arg(op, value)


def write_arg_to_wire(op, value):
    """A write op's argument, checked, in its wire form (what a client sends)."""
    if op != "append":
        return write_arg_out(op, normalize_arg(op, value))
    return [[log_id[0], log_id[1], payload] for log_id, payload in check_entries(value)]


def write_arg_out(op, value):
    if op == "append":
        return entries_out(value)
    if op in ("save_vote", "purge", "commit"):
        return list(value)
    return value


# ------------------------------------------------------------ replies


def ok(request_id, result=None):
    return pack({"id": request_id, "status": "ok", "result": result})


def error(request_id, exc):
    code = getattr(exc, "code", "Internal")
    return pack({"id": request_id, "status": "error", "code": code, "message": str(exc)})


def raise_for(reply):
    """The result of a reply, or the exception its error code names."""
    if reply.get("status") == "ok":
        return reply.get("result")
    code, message = reply.get("code", "Internal"), reply.get("message", "")
    cls = _ERRORS.get(code)
    if cls is None or cls is ServerError:
        raise ServerError(code, message)
    exc = cls.__new__(cls)
    ShardlogError.__init__(exc, message)
    raise exc
