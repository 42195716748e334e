"""The asyncio client: ``async with AsyncClient(endpoint) as c:``; methods are coroutines.

The same protocol core as ``Client`` (see core.py), driven with ``await``,
with the same methods and results: what differs is ``await``.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Any, Coroutine, Dict, Iterator, List, Optional, Self, Union

import zmq
import zmq.asyncio

from shardlog.args import check_u64
from shardlog.batch import Batch, wire_form
from shardlog.errors import StaleRequest, StoreClosed, Timeout
from shardlog.ops import with_write_ops
from shardlog.types import Entry, FlushCallback, LogState

from . import protocol
from .core import (
    DEFAULT_ENDPOINT,
    Ahead,
    Core,
    NotConnected,
    Wait,
    batch_op,
    check_endpoint,
    flush_op,
    get_state,
    read_range,
    reply_to_callback,
    run_callback,
    single,
    timeout_message,
    write_op,
)
from .curve import connect_dealer

if TYPE_CHECKING:
    from shardlog.ops import WriteMethods

    # The write methods return the coroutine of ``_write`` (they are not
    # ``async def`` themselves: one call, no coroutine of their own).
    _Writes = WriteMethods[Coroutine[Any, Any, None]]
else:
    _Writes = object



class AsyncClient:
    """The asyncio client: ``async with AsyncClient(endpoint) as c:``; methods are coroutines.

    Timeouts behave as ``Client``'s: the request may have taken effect before
    its deadline, never after; the client then drops what it had queued,
    reconnects and says hello again before its next request.
    """

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, timeout: Optional[float] = 10.0,
                 client_key: Optional[Union[str, os.PathLike[str]]] = None,
                 server_key: Optional[Union[str, os.PathLike[str]]] = None) -> None:
        self.endpoint = check_endpoint(endpoint)
        self.timeout = timeout
        self._keys = (client_key, server_key)
        self._ctx = zmq.asyncio.Context()
        self._ctx.linger = 0
        self._core = Core()
        self._waiting: Dict[int, asyncio.Future[Dict[str, Any]]] = {}
        self._callbacks: Dict[int, FlushCallback] = {}
        self._sock: Any = None
        self._reader: Optional[asyncio.Task[None]] = None
        self._closed = False
        #: The server's ``hello`` result, once connected.
        self.server: Optional[Dict[str, Any]] = None

    async def connect(self) -> Self:
        """Connect and say hello; ``async with`` does it."""
        if self._closed:
            raise StoreClosed("the client is closed")
        if self._sock is None:
            self._open()
        self.server = await self._hello(self.timeout)
        return self

    async def __aenter__(self) -> Self:
        try:
            return await self.connect()
        except BaseException:
            await self.close()
            raise

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._shut(StoreClosed("the client is closed"))
        self._ctx.term()

    # -- plumbing

    def _open(self):
        self._sock = sock = connect_dealer(self._ctx, self.endpoint, *self._keys)
        self._reader = asyncio.get_running_loop().create_task(self._read_replies(sock))

    async def _shut(self, error):
        """Close the socket (what is queued is dropped: LINGER 0) and fail
        every request in flight and callback with ``error``."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            try:
                await reader
            except asyncio.CancelledError:
                pass
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        waiting, self._waiting = self._waiting, {}
        callbacks, self._callbacks = self._callbacks, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(error)
        for callback in callbacks.values():
            run_callback(callback, error)

    async def _reconnect(self, error):
        await self._shut(error)
        self._core.forget_hello()
        self._open()

    async def _read_replies(self, sock):
        while True:
            data = await sock.recv()
            reply_id, reply = self._core.reply(data)
            callback = self._callbacks.pop(reply_id, None)
            if callback is not None:
                reply_to_callback(callback, reply)
                continue
            future = self._waiting.pop(reply_id, None)
            if future is not None and not future.done():
                future.set_result(reply)

    async def _hello(self, timeout):
        reply = await self._send("hello", {}, timeout, hello=True)
        return self._core.took_hello(protocol.raise_for(reply), time.monotonic())

    def _check_usable(self):
        if self._closed:
            raise StoreClosed("the client is closed")
        if self._sock is None:
            raise NotConnected("the AsyncClient is not connected: use `async with AsyncClient(...) as c:` "
                               "or `await client.connect()` first")

    async def _send(self, op, fields, timeout, hello=False, callback=None):
        """Send a request; its reply (a map), or, with ``callback``, None at once."""
        self._check_usable()
        timeout = self.timeout if timeout is None else timeout
        if not hello and self._core.needs_hello(time.monotonic(), busy=bool(self._waiting or self._callbacks)):
            await self._hello(timeout)
        deadline = None if timeout is None or hello else time.monotonic() + timeout
        request_id, data = self._core.request(op, fields, deadline)
        if callback is not None:
            self._callbacks[request_id] = callback
            await self._sock.send(data)
            return None
        future = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        sock = self._sock
        await sock.send(data)
        try:
            reply = await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            self._waiting.pop(request_id, None)
            error = Timeout(timeout_message(timeout, self.endpoint))
            if self._sock is sock:  # (not already reconnected by another request's timeout)
                await self._reconnect(error)
            raise error from None
        except Timeout:
            # Dropped when another request's timeout reconnected the client:
            # this one may still take effect until its own deadline.
            if deadline is not None:
                await asyncio.sleep(max(0.0, deadline - time.monotonic()))
            raise
        if reply.get("code") == StaleRequest.code:
            self._core.took_stale(reply)
        return reply

    async def request(self, op: str, timeout: Optional[float] = None, **fields: Any) -> Any:
        """Send one request and wait for its result (``Client.submit(...).result()``)."""
        return protocol.raise_for(await self._send(op, fields, timeout))

    def submit(self, op: str, timeout: Optional[float] = None, **fields: Any) -> _Pending:
        """Send a request; ``await pending.result()`` waits for it (pipelining, as ``Client.submit``)."""
        self._check_usable()
        return _Pending(asyncio.get_running_loop().create_task(self.request(op, timeout, **fields)))

    async def poll(self, timeout: float = 0) -> None:
        """Callbacks run as replies arrive; this only yields to them (for the same code as ``Client``'s)."""
        self._check_usable()
        await asyncio.sleep(timeout)

    async def _drive(self, gen, timeout=None):
        try:
            item = next(gen)
            while True:
                if type(item) is Ahead:
                    value = self.submit(item.op, timeout, **item.fields)
                elif type(item) is Wait:
                    value = await item.handle.result()
                else:
                    op, fields = item
                    value = await self.request(op, timeout, **fields)
                item = gen.send(value)
        except StopIteration as stop:
            return stop.value

    # -- the API

    def group(self, gid: int) -> AsyncClientGroup:
        return AsyncClientGroup(self, check_u64(gid, "gid"))

    async def groups(self) -> List[int]:
        return await self._drive(single("groups"))

    async def drop_group(self, gid: int, timeout: Optional[float] = None) -> None:
        await self._drive(single("drop_group", gid=check_u64(gid, "gid")), timeout)

    async def flush(self, timeout: Optional[float] = None) -> None:
        await self._drive(flush_op(), timeout)

    async def stat(self, groups: int = 0) -> Dict[str, Any]:
        return await self._drive(single("stat", groups=groups))

    async def events(self, after: int = 0) -> Dict[str, Any]:
        """As ``Client.events``."""
        return await self._drive(single("events", after=after))

    def batch(self, flush: bool = False, timeout: Optional[float] = None) -> Batch:
        return Batch(lambda ops, columns, then: self._drive(batch_op(ops, columns, flush, then), timeout),
                     wire_form)


class _Pending:
    __slots__ = ("_task",)

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self._task = task

    @property
    def request_id(self) -> None:
        return None

    async def result(self) -> Any:
        return await self._task


@with_write_ops
class AsyncClientGroup(_Writes):
    """A group on the server; the methods of ``ClientGroup`` as coroutines."""

    __slots__ = ("_client", "gid")

    def __init__(self, client: AsyncClient, gid: int) -> None:
        self._client = client
        self.gid = gid

    def __repr__(self) -> str:
        return f"AsyncClientGroup({self.gid})"

    async def _write(self, op: str, arg: Any, flush: bool) -> None:
        await self._client._drive(write_op(op, self.gid, arg, flush))

    async def flush(self, callback: Optional[FlushCallback] = None, timeout: Optional[float] = None) -> None:
        """Wait until durable; with ``callback``, return once the request is
        sent and call it with None or the error when the reply comes."""
        if callback is None:
            return await self._client._drive(flush_op(self.gid), timeout)
        await self._client._send("flush", {"gid": self.gid}, timeout, callback=callback)

    async def read(self, start: int, end: int) -> Iterator[Entry]:
        """An iterator over the entries, as ``ClientGroup.read``."""
        return iter(await self._client._drive(read_range(self.gid, start, end)))

    async def state(self) -> LogState:
        return await self._client._drive(get_state(self.gid))
