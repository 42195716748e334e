"""Clients of a shardlog server: ``Client`` (blocking) and ``AsyncClient`` (asyncio).

Both faces run the same protocol core: every method is written once, as a
generator that yields ``(op, fields)`` requests and receives their results
(so even a paged read is written once), and each face only drives it, with a
blocking socket or with ``await``. The group handles have the methods and
arguments of the embedded ``Store``'s, so a Raft node's storage code runs
unchanged on either. Timeouts are in seconds and raise ``shardlog.Timeout``.

The client imports nothing of the engine.
"""

import asyncio
import itertools
import time

import zmq
import zmq.asyncio

from . import protocol
from .batch import Batch, wire_form
from .errors import ServerError, StoreClosed, Timeout
from .ops import WRITE_OPS, with_write_ops
from .protocol import PROTOCOL_VERSION
from .security import client_curve

DEFAULT_ENDPOINT = "tcp://127.0.0.1:7700"


# ------------------------------------------------------------ the protocol core


def _write(op, gid, arg, flush):
    """A write op; arguments are checked here too, so bad ones never leave the process."""
    yield op, {"gid": gid, WRITE_OPS[op].field: wire_form(op, arg), "flush": bool(flush)}


def _read(gid, start, end):
    entries = []
    while True:
        page = yield "read", {"gid": gid, "start": start, "end": end}
        entries.extend(((t, i), p) for t, i, p in page["entries"])
        if page["next"] is None:
            return entries
        start = page["next"]


def _state(gid):
    return protocol.state_in((yield "state", {"gid": gid}))


def _flush(gid=None):
    yield "flush", {} if gid is None else {"gid": gid}


def _batch(ops, flush):
    """``ops`` as recorded by a client's Batch: arguments already checked, in wire form."""
    yield "batch", {"ops": [[op, gid, arg] for op, gid, arg in ops], "flush": bool(flush)}


def _single(op, **fields):
    return (yield op, fields)


class _Core:
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


def _timeout_ms(deadline):
    if deadline is None:
        return None
    return max(0, int((deadline - time.monotonic()) * 1000))


# ------------------------------------------------------------ blocking face


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
        self._core = _Core()
        self._replies = {}
        self._callbacks = {}
        self._closed = False
        try:
            self.server = _Core.check_hello(self._drive(_single("hello")))
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
            if not self._sock.poll(_timeout_ms(deadline)):
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
        return self._drive(_single("groups"))

    def drop_group(self, gid, timeout=None):
        self._drive(_single("drop_group", gid=gid), timeout)

    def flush(self, timeout=None):
        self._drive(_flush(), timeout)

    def stat(self, groups=0):
        """The server's figures; ``groups``: per-group figures of that many groups, biggest first."""
        return self._drive(_single("stat", groups=groups))

    def batch(self, flush=False, timeout=None):
        return Batch(lambda ops: self._drive(_batch(ops, flush), timeout), wire_form)


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
        self._client._drive(_write(op, self.gid, arg, flush))

    def flush(self, callback=None, timeout=None):
        """Block until durable; with ``callback``, return at once and call it with None or
        the error when the reply is received (by a later call or ``client.poll()``)."""
        if callback is None:
            return self._client._drive(_flush(self.gid), timeout)
        pending = self._client.submit("flush", gid=self.gid)
        self._client._callbacks[pending.request_id] = callback

    def read(self, start, end):
        return iter(self._client._drive(_read(self.gid, start, end)))

    def state(self):
        return self._client._drive(_state(self.gid))


# ------------------------------------------------------------ asyncio face


class AsyncClient:
    """The asyncio client: ``async with AsyncClient(endpoint) as c:``; methods are coroutines."""

    def __init__(self, endpoint=DEFAULT_ENDPOINT, timeout=10.0, client_key=None, server_key=None):
        self.endpoint = endpoint
        self.timeout = timeout
        self._ctx = zmq.asyncio.Context()
        self._ctx.linger = 0
        self._sock = self._ctx.socket(zmq.DEALER)
        if client_key or server_key:
            client_curve(self._sock, client_key, server_key)
        self._sock.connect(endpoint)
        self._core = _Core()
        self._waiting = {}
        self._reader = None
        self._closed = False
        self.server = None

    async def connect(self):
        self._reader = asyncio.get_running_loop().create_task(self._read_replies())
        self.server = _Core.check_hello(await self._drive(_single("hello")))
        return self

    async def __aenter__(self):
        try:
            return await self.connect()
        except BaseException:
            await self.close()
            raise

    async def __aexit__(self, *exc):
        await self.close()

    async def close(self):
        if self._closed:
            return
        self._closed = True
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except asyncio.CancelledError:
                pass
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(StoreClosed("the client is closed"))
        self._sock.close()
        self._ctx.term()

    async def _read_replies(self):
        while True:
            data = await self._sock.recv()
            reply_id, reply = self._core.reply(data)
            future = self._waiting.pop(reply_id, None)
            if future is not None and not future.done():
                future.set_result(reply)

    async def request(self, op, timeout=None, **fields):
        if self._closed:
            raise StoreClosed("the client is closed")
        request_id, data = self._core.request(op, fields)
        future = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        await self._sock.send(data)
        timeout = self.timeout if timeout is None else timeout
        try:
            reply = await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            self._waiting.pop(request_id, None)
            raise Timeout(f"no reply within {timeout} s from {self.endpoint}") from None
        return protocol.raise_for(reply)

    async def _drive(self, gen, timeout=None):
        try:
            op, fields = next(gen)
            while True:
                result = await self.request(op, timeout, **fields)
                op, fields = gen.send(result)
        except StopIteration as stop:
            return stop.value

    def group(self, gid):
        return AsyncClientGroup(self, gid)

    async def groups(self):
        return await self._drive(_single("groups"))

    async def drop_group(self, gid, timeout=None):
        await self._drive(_single("drop_group", gid=gid), timeout)

    async def flush(self, timeout=None):
        await self._drive(_flush(), timeout)

    async def stat(self, groups=0):
        return await self._drive(_single("stat", groups=groups))

    def batch(self, flush=False, timeout=None):
        return Batch(lambda ops: self._drive(_batch(ops, flush), timeout), wire_form)


@with_write_ops
class AsyncClientGroup:
    """A group on the server; the methods of ``ClientGroup`` as coroutines."""

    __slots__ = ("_client", "gid")

    def __init__(self, client, gid):
        self._client = client
        self.gid = gid

    def __repr__(self):
        return f"AsyncClientGroup({self.gid})"

    async def _write(self, op, arg, flush):
        await self._client._drive(_write(op, self.gid, arg, flush))

    async def flush(self, timeout=None):
        await self._client._drive(_flush(self.gid), timeout)

    async def read(self, start, end):
        return await self._client._drive(_read(self.gid, start, end))

    async def state(self):
        return await self._client._drive(_state(self.gid))
