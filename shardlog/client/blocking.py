"""The blocking client: ``Client``, its group handles, and ``submit`` for pipelining.

Timeouts are in seconds and raise ``shardlog.Timeout``. The group handles have
the methods and arguments of the embedded ``Store``'s, so a Raft node's
storage code runs unchanged on either.
"""

import time

import zmq

from shardlog.batch import Batch, wire_form
from shardlog.errors import StoreClosed, Timeout
from shardlog.ops import with_write_ops

from . import protocol
from .core import DEFAULT_ENDPOINT, Core, batch_op, flush_op, get_state, read_range, single, timeout_ms, write_op
from .curve import client_curve


class Client:
    """A blocking client; ``submit`` lets requests pipeline."""

    def __init__(self, endpoint=DEFAULT_ENDPOINT, timeout=10.0, client_key=None, server_key=None):
        """``client_key`` (this client's ``.key_secret`` file) and ``server_key`` (the
        server's public ``.key`` file) turn on CurveZMQ."""
        self.endpoint = endpoint
        self.timeout = timeout
        self._ctx = zmq.Context()
        self._ctx.linger = 0
        self._sock = self._ctx.socket(zmq.DEALER)
        if client_key or server_key:
            client_curve(self._sock, client_key, server_key)
        self._sock.connect(endpoint)
        self._core = Core()
        self._replies = {}
        self._callbacks = {}
        self._closed = False
        try:
            self.server = Core.check_hello(self._drive(single("hello")))
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self._closed:
            return
        self._closed = True
        self._sock.close()
        self._ctx.term()

    # -- plumbing

    def submit(self, op, **fields):
        """Send a request now; ``.result(timeout)`` of the returned object waits for it."""
        if self._closed:
            raise StoreClosed("the client is closed")
        request_id, data = self._core.request(op, fields)
        self._sock.send(data)
        return _Pending(self, request_id)

    def _receive(self, request_id, timeout):
        deadline = None if timeout is None else time.monotonic() + timeout
        while request_id not in self._replies:
            if not self._sock.poll(timeout_ms(deadline)):
                raise Timeout(f"no reply within {timeout} s from {self.endpoint}")
            self._take(self._sock.recv())
        return self._replies.pop(request_id)

    def _take(self, data):
        reply_id, reply = self._core.reply(data)
        callback = self._callbacks.pop(reply_id, None)
        if callback is not None:
            try:
                protocol.raise_for(reply)
            except Exception as exc:
                callback(exc)
            else:
                callback(None)
        else:
            self._replies[reply_id] = reply

    def poll(self, timeout=0):
        """Receive what has arrived, running the callbacks of ``flush(callback=...)``."""
        while self._sock.poll(int(timeout * 1000)):
            self._take(self._sock.recv())
            timeout = 0

    def _drive(self, gen, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        try:
            op, fields = next(gen)
            while True:
                result = self.submit(op, **fields).result(timeout)
                op, fields = gen.send(result)
        except StopIteration as stop:
            return stop.value

    # -- the API

    def group(self, gid):
        return ClientGroup(self, gid)

    def groups(self):
        return self._drive(single("groups"))

    def drop_group(self, gid, timeout=None):
        self._drive(single("drop_group", gid=gid), timeout)

    def flush(self, timeout=None):
        self._drive(flush_op(), timeout)

    def stat(self, groups=0):
        """The server's figures; ``groups``: per-group figures of that many groups, biggest first."""
        return self._drive(single("stat", groups=groups))

    def events(self, after=0):
        """Events since number ``after`` (a lagging group, a forced relocation):
        ``{"events": [...], "last": n, "missed": k}``; poll with ``after=last``."""
        return self._drive(single("events", after=after))

    def batch(self, flush=False, timeout=None):
        return Batch(lambda ops: self._drive(batch_op(ops, flush), timeout), wire_form)


class _Pending:
    __slots__ = ("_client", "request_id")

    def __init__(self, client, request_id):
        self._client = client
        self.request_id = request_id

    def result(self, timeout=None):
        timeout = self._client.timeout if timeout is None else timeout
        return protocol.raise_for(self._client._receive(self.request_id, timeout))


@with_write_ops
class ClientGroup:
    """A group on the server; the methods of ``shardlog.Group`` (the write
    methods come from ops.py)."""

    __slots__ = ("_client", "gid")

    def __init__(self, client, gid):
        self._client = client
        self.gid = gid

    def __repr__(self):
        return f"ClientGroup({self.gid})"

    def _write(self, op, arg, flush):
        self._client._drive(write_op(op, self.gid, arg, flush))

    def flush(self, callback=None, timeout=None):
        """Block until durable; with ``callback``, return at once and call it with None or
        the error when the reply is received (by a later call or ``client.poll()``)."""
        if callback is None:
            return self._client._drive(flush_op(self.gid), timeout)
        pending = self._client.submit("flush", gid=self.gid)
        self._client._callbacks[pending.request_id] = callback

    def read(self, start, end):
        return iter(self._client._drive(read_range(self.gid, start, end)))

    def state(self):
        return self._client._drive(get_state(self.gid))
