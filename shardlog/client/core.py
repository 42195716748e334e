"""The protocol core of both clients: every client method written once, doing no I/O.

Each method is a generator that yields ``(op, fields)`` requests (or ``Ahead``
and ``Wait``, to have a request in flight meanwhile) and receives their
results (so even a paged read is written once); ``Client`` drives them with a
blocking socket, ``AsyncClient`` with ``await``. This package imports nothing
of the engine.
"""

import itertools
import logging
import time
from typing import NamedTuple

from shardlog.args import check_u64
from shardlog.batch import wire_form
from shardlog.columns import AppendColumns
from shardlog.errors import InvalidArgument, ServerError, StaleRequest, TooLarge
from shardlog.ops import WRITE_OPS

from . import protocol
from .protocol import BASE_VERSION, PROTOCOL_VERSION

DEFAULT_ENDPOINT = "tcp://127.0.0.1:7700"

log = logging.getLogger("shardlog.client")


#: Appends of at least this many entries travel in columns (a batch of one
#: append): no msgpack object per entry to build, send or decode.
COLUMNS_FROM = 32


def write_op(op, gid, arg, flush):
    """A write op; arguments are checked here too, so bad ones never leave the process."""
    if op == "append":
        arg = list(arg)
        if len(arg) >= COLUMNS_FROM:
            columns = AppendColumns()
            columns.add(gid, arg)
            return (yield from batch_op((), columns, flush))
    yield op, {"gid": gid, WRITE_OPS[op].field: wire_form(op, arg), "flush": bool(flush)}


class Ahead(NamedTuple):
    """Yielded by a method instead of ``(op, fields)``: send the request now and
    get back a handle, to yield in a ``Wait`` later (so a read asks for its
    next page before it decodes the one it has)."""

    op: str
    fields: dict


class Wait(NamedTuple):
    """Yielded with a handle from ``Ahead``: the request's result."""

    handle: object


def read_range(gid, start, end):
    """Pages in columns (a server before them answers in rows: both are read),
    the next one asked for while the last one is decoded. The range is checked
    here, as the engine checks it, rather than failing in the encoder."""
    check_u64(start, "start")
    check_u64(end, "end")
    entries = []
    handle = yield Ahead("read", {"gid": gid, "start": start, "end": end, "columns": True})
    while True:
        page = yield Wait(handle)
        start = page["next"]
        if start is not None:
            handle = yield Ahead("read", {"gid": gid, "start": start, "end": end, "columns": True})
        if "data" in page:
            entries.extend(protocol.columns_in(page))
        else:
            entries.extend(((t, i), p) for t, i, p in page["entries"])
        if start is None:
            return entries


def get_state(gid):
    return protocol.state_in((yield "state", {"gid": gid}))


def flush_op(gid=None):
    yield "flush", {} if gid is None else {"gid": gid}


def batch_op(ops, columns, flush, then=()):
    """``ops``, ``columns`` (AppendColumns or None) and ``then`` as recorded by a
    client's Batch: arguments already checked, ops in wire form."""
    fields = {"ops": [[op, gid, arg] for op, gid, arg in ops], "flush": bool(flush)}
    if columns is not None:
        fields["columns"] = columns  # in wire form once the server's version is known (Core.request)
        if then:
            fields["then"] = [[op, gid, arg] for op, gid, arg in then]
    yield "batch", fields


def single(op, **fields):
    return (yield op, fields)


class ClientMisuse(RuntimeError):
    """A client used in a way it cannot serve: raised at once, never a Timeout later."""


class ClientInUse(ClientMisuse):
    """A Client called from a second thread while a first one uses it."""


class NotConnected(ClientMisuse):
    """An AsyncClient used before ``connect()`` (or outside ``async with``)."""


#: Seconds a clock reading from ``hello`` is trusted; then the next request says hello first.
CLOCK_SYNC_MAX_AGE = 10.0
#: How fast two hosts' monotonic clocks may drift apart (NTP slews them at most 500 ppm).
CLOCK_DRIFT = 500e-6
#: Taken off every deadline sent, on top of the drift.
DEADLINE_MARGIN = 0.002


class Core:
    """Request ids, message bytes and what the client learned at ``hello``:
    the part of a client that does no I/O.

    Every request carries the server's incarnation (``inc``) and its
    deadline on the server's clock (``dl``), so the server refuses one that
    was meant for an earlier run of it or that its client stopped waiting
    for. The server's clock is read at ``hello``: its reading is taken at
    most a round trip before the reply arrives, so ``clock - received_at``
    maps a local deadline to one on the server that is never later than the
    true one; drift since the reading is taken off too.
    """

    def __init__(self):
        self._ids = itertools.count(1)
        #: The server run this client talks to (``hello``'s ``incarnation``).
        self.incarnation = None
        #: The largest message the server takes (``hello``'s ``max_message_size``).
        self.max_message_size = None
        self.protocols = frozenset((BASE_VERSION,))
        self._offset = None
        self._synced_at = None

    def needs_hello(self, now, busy=False):
        """Whether the next request must be preceded by a ``hello``: on first
        use and after a reconnection; when the clock reading has grown old,
        only while no request is in flight (``busy``), so that a pipelining
        client never waits behind its own requests (the drift margin grows
        with the reading's age meanwhile)."""
        if self._synced_at is None:
            return True
        return not busy and now - self._synced_at > CLOCK_SYNC_MAX_AGE

    def forget_hello(self):
        self._synced_at = None

    def took_hello(self, result, received_at):
        """Learn from a ``hello`` result; StaleRequest if the server is not
        the run the client talked to before (it restarted meanwhile)."""
        if not isinstance(result, dict) or result.get("protocol") != BASE_VERSION:
            raise ServerError("VersionMismatch", f"server speaks protocol {result!r}, "
                                                 f"this client {BASE_VERSION} to {PROTOCOL_VERSION}")
        #: What the server speaks (one that does not say speaks version 1 only).
        self.protocols = frozenset(result.get("protocols") or (BASE_VERSION,))
        before, self.incarnation = self.incarnation, result.get("incarnation")
        clock = result.get("clock")
        self._offset = None if clock is None else clock - received_at
        self._synced_at = received_at
        self.max_message_size = result.get("max_message_size")
        if before is not None and before != self.incarnation:
            raise StaleRequest(f"the server restarted (run {before} is now {self.incarnation}): writes "
                               "not flushed before the restart may be lost; read the groups' state again")
        return result

    def took_stale(self, reply):
        """A StaleRequest reply: learn the server's run from it (so the restart
        is reported once, by this error) and read its clock again."""
        fields = reply.get("fields")
        incarnation = fields.get("incarnation") if isinstance(fields, dict) else None
        if incarnation is not None:
            self.incarnation = incarnation
        self.forget_hello()

    def request(self, op, fields, deadline=None):
        """``(request id, bytes)`` of a request; ``deadline`` on the local
        monotonic clock, or None for none."""
        request_id = next(self._ids)
        version = BASE_VERSION
        columns = fields.get("columns") if op == "batch" else None
        if columns is not None:  # (an AppendColumns, from batch_op)
            fields = dict(fields)
            if PROTOCOL_VERSION in self.protocols:
                version, fields["columns"] = PROTOCOL_VERSION, columns.to_wire()
            else:  # a server of version 1: the same appends as ops, after the others, and then ``then``
                del fields["columns"]
                fields["ops"] = fields["ops"] + [[op, gid, wire_form(op, entries)] for op, gid, entries in
                                                 columns.rows()] + fields.pop("then", [])
        message = {"v": version, "id": request_id, "op": op}
        if self.incarnation is not None:
            message["inc"] = self.incarnation
        if deadline is not None and self._offset is not None:
            slack = DEADLINE_MARGIN + CLOCK_DRIFT * max(0.0, deadline - self._synced_at)
            message["dl"] = deadline + self._offset - slack
        message.update(fields)
        data = protocol.pack(message)
        limit = self.max_message_size
        if limit is not None and len(data) > limit:
            raise TooLarge(f"request of {len(data)} bytes is over the server's max_message_size {limit}; split it")
        return request_id, data

    @staticmethod
    def reply(data):
        reply = protocol.unpack(data)
        return reply.get("id"), reply


def timeout_message(timeout, endpoint):
    return (f"no reply within {timeout} s from {endpoint}; is a shardlog server running there? "
            "(start one with: python -m shardlog serve)")


def check_endpoint(endpoint):
    """A ZeroMQ endpoint, or InvalidArgument saying how to write one."""
    if not isinstance(endpoint, str) or "://" not in endpoint:
        raise InvalidArgument(f"endpoint {endpoint!r} has no transport: write it as tcp://HOST:PORT "
                              "or ipc:///PATH")
    return endpoint


def timeout_ms(deadline):
    if deadline is None:
        return None
    return max(0, int((deadline - time.monotonic()) * 1000))


def run_callback(callback, error):
    """Call a user's flush callback; what it raises is logged, never raised into the client."""
    try:
        callback(error)
    except Exception:
        log.exception("flush callback raised")


def reply_to_callback(callback, reply):
    """Hand a flush callback what its reply says: None, or the error it names."""
    try:
        protocol.raise_for(reply)
    except Exception as exc:
        run_callback(callback, exc)
    else:
        run_callback(callback, None)
