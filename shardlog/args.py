"""Checks of argument values: the pieces ops.py builds each op's argument rule from.

Shared by the embedded Store, the front (requests off the wire) and the
clients, so one rule holds for all: log ids and votes become ``(int, int)``
tuples within u64, payloads ``bytes``; anything else is an InvalidArgument
that names what was wrong. They run before any lock is taken.
"""

from .errors import BadRequest, InvalidArgument
from .types import U32_MAX, U64_MAX


def check_u64(value, what):
    if type(value) is not int or not 0 <= value <= U64_MAX:
        raise InvalidArgument(f"{what} must be an integer in [0, 2**64), not {value!r}")
    return value


def check_pair(value, what):
    if not isinstance(value, (tuple, list)):
        raise InvalidArgument(f"{what} must be a pair of integers, not {type(value).__name__}")
    try:
        a, b = value
    except (TypeError, ValueError):
        raise InvalidArgument(f"{what} must be a pair of integers, not {value!r}") from None
    if type(a) is not int or type(b) is not int or not (0 <= a <= U64_MAX and 0 <= b <= U64_MAX):
        raise InvalidArgument(f"{what} must be a pair of integers in [0, 2**64), not {value!r}")
    return (a, b)


def check_bytes(value, what):
    if type(value) is not bytes:
        if not isinstance(value, (bytearray, memoryview)):
            raise InvalidArgument(f"{what} must be bytes, not {type(value).__name__}")
        value = bytes(value)
    if len(value) > U32_MAX:
        raise InvalidArgument(f"{what} is longer than 2**32-1 bytes")
    return value


def check_entries(entries):
    """``[((term, index), bytes), ...]`` from any iterable of entries, or InvalidArgument."""
    out = []
    append = out.append
    try:
        for log_id, payload in entries:
            if type(log_id) is not tuple or len(log_id) != 2:
                log_id = check_pair(log_id, "log id")
            else:
                term, index = log_id
                if type(term) is not int or type(index) is not int or not (
                        0 <= term <= U64_MAX and 0 <= index <= U64_MAX):
                    check_pair(log_id, "log id")
            if type(payload) is not bytes or len(payload) > U32_MAX:
                payload = check_bytes(payload, "payload")
            append((log_id, payload))
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InvalidArgument):
            raise
        raise InvalidArgument(f"entries must be an iterable of (log_id, payload): {exc}") from None
    return out


def check_optional_bytes(value, what):
    return None if value is None else check_bytes(value, what)


def entries_from_wire(wire):
    """``[((term, index), payload)]`` from msgpack's ``[[term, index, payload], ...]``, checked in one pass."""
    if not isinstance(wire, list):
        raise BadRequest("entries must be an array of [term, index, payload]")
    out = []
    append = out.append
    for e in wire:
        if type(e) is not list or len(e) != 3:
            raise BadRequest("each entry must be [term, index, payload]")
        term, index, payload = e
        if (type(term) is not int or type(index) is not int or not 0 <= term <= U64_MAX
                or not 0 <= index <= U64_MAX or type(payload) is not bytes or len(payload) > U32_MAX):
            raise BadRequest(f"an entry must be [u64 term, u64 index, bin payload], not {e!r:.80}")
        append(((term, index), payload))
    return out
