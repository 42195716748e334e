"""The protocol core of both clients: every client method written once, doing no I/O.

Each method is a generator that yields ``(op, fields)`` requests and receives
their results (so even a paged read is written once); ``Client`` drives them
with a blocking socket, ``AsyncClient`` with ``await``. This package imports
nothing of the engine.
"""

import itertools
import time

from shardlog.batch import wire_form
from shardlog.errors import ServerError
from shardlog.ops import WRITE_OPS

from . import protocol
from .protocol import PROTOCOL_VERSION

DEFAULT_ENDPOINT = "tcp://127.0.0.1:7700"


def write_op(op, gid, arg, flush):
    """A write op; arguments are checked here too, so bad ones never leave the process."""
    yield op, {"gid": gid, WRITE_OPS[op].field: wire_form(op, arg), "flush": bool(flush)}


def read_range(gid, start, end):
    entries = []
    while True:
        page = yield "read", {"gid": gid, "start": start, "end": end}
        entries.extend(((t, i), p) for t, i, p in page["entries"])
        if page["next"] is None:
            return entries
        start = page["next"]


def get_state(gid):
    return protocol.state_in((yield "state", {"gid": gid}))


def flush_op(gid=None):
    yield "flush", {} if gid is None else {"gid": gid}


def batch_op(ops, flush):
    """``ops`` as recorded by a client's Batch: arguments already checked, in wire form."""
    yield "batch", {"ops": [[op, gid, arg] for op, gid, arg in ops], "flush": bool(flush)}


def single(op, **fields):
    return (yield op, fields)


class Core:
    """Request ids and message bytes: the part of a client that does no I/O."""

    def __init__(self):
        self._ids = itertools.count(1)

    def request(self, op, fields):
        request_id = next(self._ids)
        message = {"v": PROTOCOL_VERSION, "id": request_id, "op": op}
        message.update(fields)
        return request_id, protocol.pack(message)

    @staticmethod
    def reply(data):
        reply = protocol.unpack(data)
        return reply.get("id"), reply

    @staticmethod
    def check_hello(result):
        if not isinstance(result, dict) or result.get("protocol") != PROTOCOL_VERSION:
            raise ServerError("VersionMismatch", f"server speaks protocol {result!r}, "
                                                 f"this client {PROTOCOL_VERSION}")
        return result


def timeout_ms(deadline):
    if deadline is None:
        return None
    return max(0, int((deadline - time.monotonic()) * 1000))
