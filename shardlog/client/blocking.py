"""The blocking client: ``Client``, its group handles, and ``submit`` for pipelining.

Timeouts are in seconds and raise ``shardlog.Timeout``. The group handles have
the methods and arguments of the embedded ``Store``'s, so a Raft node's
storage code runs unchanged on either.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Concatenate,
    Dict,
    Iterator,
    List,
    Optional,
    ParamSpec,
    Self,
    Set,
    TypeVar,
    Union,
)

import zmq

from shardlog.args import check_u64
from shardlog.batch import Batch, wire_form
from shardlog.errors import StaleRequest, StoreClosed, Timeout
from shardlog.ops import with_write_ops
from shardlog.types import Entry, FlushCallback, LogState

from . import protocol
from .core import (
    DEFAULT_ENDPOINT,
    Ahead,
    ClientInUse,
    Core,
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
    timeout_ms,
    write_op,
)
from .curve import connect_dealer

if TYPE_CHECKING:
    from shardlog.ops import WriteMethods

    _Writes = WriteMethods[None]
else:
    _Writes = object


_P = ParamSpec("_P")
_T = TypeVar("_T")


def _exclusive(method: Callable[Concatenate[Client, _P], _T]) -> Callable[Concatenate[Client, _P], _T]:
    """One thread at a time: a ZeroMQ socket must not be used by two threads
    at once, and a Client that serialised them would stall each one behind
    the others' timeouts. Use from a second thread at the same time is an
    error at once, not a Timeout later."""
    @functools.wraps(method)
    def guarded(self: Client, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        if not self._busy.acquire(blocking=False):
            raise ClientInUse("a Client is not thread-safe and another thread is using this one: give "
                              "each thread its own Client (they are cheap), or use AsyncClient")
        try:
            return method(self, *args, **kwargs)
        finally:
            self._busy.release()
    return guarded


class Client:
    """A blocking client; ``submit`` lets requests pipeline. Not thread-safe:
    one Client per thread (see ClientInUse).

    A call that times out raises Timeout; its request may have taken effect
    before its deadline, never after (the server refuses it then). The
    client then drops what it had queued, reconnects, and says hello again
    before its next request.
    """

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, timeout: Optional[float] = 10.0,
                 client_key: Optional[Union[str, os.PathLike[str]]] = None,
                 server_key: Optional[Union[str, os.PathLike[str]]] = None) -> None:
        """``client_key`` (this client's ``.key_secret`` file) and ``server_key`` (the
        server's public ``.key`` file) turn on CurveZMQ."""
        self.endpoint = check_endpoint(endpoint)
        self.timeout = timeout
        self._keys = (client_key, server_key)
        self._ctx = zmq.Context()
        self._ctx.linger = 0
        self._busy = threading.RLock()
        self._core = Core()
        self._replies: Dict[int, Dict[str, Any]] = {}
        self._callbacks: Dict[int, FlushCallback] = {}
        #: Ids of the requests sent on this connection and not answered yet.
        self._unanswered: Set[int] = set()
        #: Bumped at each reconnection: requests sent before it get no reply.
        self._connection = 0
        self._closed = False
        self._sock: Any = None
        try:
            self._connect()
            #: The server's ``hello`` result.
            self.server: Dict[str, Any] = self._hello(timeout)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @_exclusive
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._sock is not None:
            self._sock.close()
        self._ctx.term()

    def connect(self) -> Self:
        """The client, connected (it connects when made: for the same code as AsyncClient's)."""
        if self._closed:
            raise StoreClosed("the client is closed")
        return self

    # -- plumbing

    def _connect(self):
        self._sock = connect_dealer(self._ctx, self.endpoint, *self._keys)
        # Made once per connection: ``Socket.poll`` makes a Poller at every call.
        self._poller = zmq.Poller()
        self._poller.register(self._sock, zmq.POLLIN)

    def _reconnect(self, error):
        """After a Timeout: what is queued is dropped (LINGER 0), never to be
        sent; requests in flight get no reply and their callbacks ``error``."""
        callbacks, self._callbacks = self._callbacks, {}
        self._unanswered.clear()
        self._sock.close()
        self._sock = None
        self._connection += 1
        self._core.forget_hello()
        self._connect()
        for callback in callbacks.values():
            run_callback(callback, error)

    def _hello(self, timeout):
        request_id, data = self._core.request("hello", {})
        self._sock.send(data)
        reply = self._receive(request_id, None if timeout is None else time.monotonic() + timeout, timeout)
        return self._core.took_hello(protocol.raise_for(reply), time.monotonic())

    @_exclusive
    def submit(self, op: str, timeout: Optional[float] = None, **fields: Any) -> _Pending:
        """Send a request now; ``.result()`` of the returned object waits for
        its reply until its deadline (``timeout`` seconds from now, default
        the client's)."""
        return self._submit(op, timeout, fields)

    def _submit(self, op, timeout, fields):
        """``submit``, for a caller that holds the client (``_drive``)."""
        if self._closed:
            raise StoreClosed("the client is closed")
        timeout = self.timeout if timeout is None else timeout
        now = time.monotonic()
        if self._core.needs_hello(now, busy=len(self._unanswered) > 0):
            self._hello(timeout)
            now = time.monotonic()
        deadline = None if timeout is None else now + timeout
        request_id, data = self._core.request(op, fields, deadline)
        sock = self._sock
        sock.send(data)
        unanswered = self._unanswered
        unanswered.add(request_id)
        if len(unanswered) % 256 == 0:
            # A client that pipelines thousands of requests takes the replies
            # that came meanwhile: left in the server's socket they reach its
            # high-water mark, and the server drops the next ones.
            while sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                self._take(sock.recv())
        return _Pending(self, request_id, deadline, timeout)

    def request(self, op: str, timeout: Optional[float] = None, **fields: Any) -> Any:
        """Send one request and wait for its result (as ``AsyncClient.request``)."""
        return self.submit(op, timeout, **fields).result()

    def _receive(self, request_id, deadline, timeout):
        while request_id not in self._replies:
            if not self._poller.poll(timeout_ms(deadline)):
                error = Timeout(timeout_message(timeout, self.endpoint))
                self._reconnect(error)
                raise error
            self._take(self._sock.recv())
        reply = self._replies.pop(request_id)
        if reply.get("code") == StaleRequest.code:
            self._core.took_stale(reply)
        return reply

    @_exclusive
    def _result(self, pending):
        return self._result_held(pending)

    def _result_held(self, pending):
        """``_result``, for a caller that holds the client (``_drive``)."""
        if pending.request_id not in self._replies and pending._connection != self._connection:
            # The client reconnected after another request's timeout. This one
            # may still be in the server's buffers: it may take effect until
            # its own deadline, so Timeout is said only once that has passed.
            if pending._deadline is None:
                raise Timeout(f"dropped when the client reconnected, with no deadline: it may still take "
                              f"effect on {self.endpoint}")
            time.sleep(max(0.0, pending._deadline - time.monotonic()))
            raise Timeout(f"dropped when the client reconnected after a timeout; no reply within "
                          f"{pending._timeout} s from {self.endpoint}")
        return protocol.raise_for(self._receive(pending.request_id, pending._deadline, pending._timeout))

    def _take(self, data):
        reply_id, reply = self._core.reply(data)
        self._unanswered.discard(reply_id)
        callback = self._callbacks.pop(reply_id, None)
        if callback is None:
            self._replies[reply_id] = reply
            return
        reply_to_callback(callback, reply)

    @_exclusive
    def poll(self, timeout: float = 0) -> None:
        """Receive what has arrived, running the callbacks of ``flush(callback=...)``."""
        while self._sock.poll(int(timeout * 1000)):
            self._take(self._sock.recv())
            timeout = 0

    @_exclusive
    def _drive(self, gen, timeout=None):
        try:
            item = next(gen)
            while True:
                if type(item) is Ahead:
                    value = self._submit(item.op, timeout, item.fields)
                elif type(item) is Wait:
                    value = self._result_held(item.handle)
                else:
                    op, fields = item
                    value = self._result_held(self._submit(op, timeout, fields))
                item = gen.send(value)
        except StopIteration as stop:
            return stop.value

    # -- the API

    def group(self, gid: int) -> ClientGroup:
        return ClientGroup(self, check_u64(gid, "gid"))

    def groups(self) -> List[int]:
        return self._drive(single("groups"))

    def drop_group(self, gid: int, timeout: Optional[float] = None) -> None:
        self._drive(single("drop_group", gid=check_u64(gid, "gid")), timeout)

    def flush(self, timeout: Optional[float] = None) -> None:
        self._drive(flush_op(), timeout)

    def stat(self, groups: int = 0) -> Dict[str, Any]:
        """The server's figures; ``groups``: per-group figures of that many groups, biggest first."""
        return self._drive(single("stat", groups=groups))

    def events(self, after: int = 0) -> Dict[str, Any]:
        """Events since number ``after`` (a lagging group, a forced relocation):
        ``{"events": [...], "last": n, "missed": k}``; poll with ``after=last``."""
        return self._drive(single("events", after=after))

    def batch(self, flush: bool = False, timeout: Optional[float] = None) -> Batch:
        return Batch(lambda ops, columns, then: self._drive(batch_op(ops, columns, flush, then), timeout),
                     wire_form)


class _Pending:
    """A request sent by ``submit``."""

    __slots__ = ("_client", "request_id", "_deadline", "_timeout", "_connection")

    def __init__(self, client: Client, request_id: int, deadline: Optional[float], timeout: Optional[float]) -> None:
        self._client = client
        self.request_id = request_id
        self._deadline = deadline
        self._timeout = timeout
        self._connection = client._connection

    def result(self) -> Any:
        """The request's result, or its error; Timeout once its deadline passed."""
        return self._client._result(self)


@with_write_ops
class ClientGroup(_Writes):
    """A group on the server; the methods of ``shardlog.Group`` (the write
    methods come from ops.py)."""

    __slots__ = ("_client", "gid")

    def __init__(self, client: Client, gid: int) -> None:
        self._client = client
        self.gid = gid

    def __repr__(self) -> str:
        return f"ClientGroup({self.gid})"

    def _write(self, op: str, arg: Any, flush: bool) -> None:
        self._client._drive(write_op(op, self.gid, arg, flush))

    def flush(self, callback: Optional[FlushCallback] = None, timeout: Optional[float] = None) -> None:
        """Block until durable; with ``callback``, return at once and call it with None or
        the error when the reply is received (by a later call or ``client.poll()``)."""
        if callback is None:
            return self._client._drive(flush_op(self.gid), timeout)
        pending = self._client.submit("flush", timeout, gid=self.gid)
        self._client._callbacks[pending.request_id] = callback

    def read(self, start: int, end: int) -> Iterator[Entry]:
        return iter(self._client._drive(read_range(self.gid, start, end)))

    def state(self) -> LogState:
        return self._client._drive(get_state(self.gid))
