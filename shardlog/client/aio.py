"""The asyncio client: ``async with AsyncClient(endpoint) as c:``; methods are coroutines.

The same protocol core as ``Client`` (see core.py), driven with ``await``.
"""

import asyncio

import zmq
import zmq.asyncio

from shardlog.batch import Batch, wire_form
from shardlog.errors import StoreClosed, Timeout
from shardlog.ops import with_write_ops

from . import protocol
from .core import DEFAULT_ENDPOINT, Core, batch_op, flush_op, get_state, read_range, single, write_op
from .curve import client_curve


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
        self._core = Core()
        self._waiting = {}
        self._reader = None
        self._closed = False
        self.server = None

    async def connect(self):
        self._reader = asyncio.get_running_loop().create_task(self._read_replies())
        self.server = Core.check_hello(await self._drive(single("hello")))
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
        return await self._drive(single("groups"))

    async def drop_group(self, gid, timeout=None):
        await self._drive(single("drop_group", gid=gid), timeout)

    async def flush(self, timeout=None):
        await self._drive(flush_op(), timeout)

    async def stat(self, groups=0):
        return await self._drive(single("stat", groups=groups))

    async def events(self, after=0):
        """As ``Client.events``."""
        return await self._drive(single("events", after=after))

    def batch(self, flush=False, timeout=None):
        return Batch(lambda ops: self._drive(batch_op(ops, flush), timeout), wire_form)


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
        await self._client._drive(write_op(op, self.gid, arg, flush))

    async def flush(self, timeout=None):
        await self._client._drive(flush_op(self.gid), timeout)

    async def read(self, start, end):
        return await self._client._drive(read_range(self.gid, start, end))

    async def state(self):
        return await self._client._drive(get_state(self.gid))
