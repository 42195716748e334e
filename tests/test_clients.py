"""The two client faces: the same methods and results, and misuse as a clear error at once."""

import asyncio
import inspect
import logging
import os
import signal
import threading
import time

import pytest

from shardlog import InvalidArgument, Timeout
from shardlog.client import AsyncClient, AsyncClientGroup, Client, ClientGroup, ClientInUse, NotConnected
from shardlog.errors import TooLarge
from shardlog.server.ratelog import RateLimitedLog

from .service import poll_for


def public(cls):
    return {name for name, _ in inspect.getmembers(cls) if not name.startswith("_")}


def test_blocking_and_async_faces_have_the_same_methods():
    assert public(Client) - {"server", "endpoint", "timeout"} == public(AsyncClient) - {"server", "endpoint",
                                                                                        "timeout"}
    assert public(ClientGroup) == public(AsyncClientGroup)
    for name in public(ClientGroup) - {"gid"}:
        blocking = inspect.signature(getattr(ClientGroup, name))
        asynchronous = inspect.signature(getattr(AsyncClientGroup, name))
        assert blocking == asynchronous, name


def test_async_results_match_blocking_ones(start_server):
    server = start_server()
    with server.client() as client:
        client.group(1).append([((1, 0), b"a"), ((1, 1), b"b")], flush=True)
        blocking_read = client.group(1).read(0, 5)
        called = []
        client.group(1).flush(callback=called.append)
        deadline = time.monotonic() + 10
        while not called and time.monotonic() < deadline:
            client.poll(0.05)
        assert called == [None]

    async def main():
        async with AsyncClient(server.endpoint) as client:
            read = await client.group(1).read(0, 5)
            called = asyncio.Event()
            results = []

            def callback(error):
                results.append(error)
                called.set()

            assert await client.group(1).flush(callback=callback) is None
            await asyncio.wait_for(called.wait(), 10)
            pending = client.submit("state", gid=1)
            return read, results, await pending.result()

    read, results, state = asyncio.run(main())
    assert type(read) is type(blocking_read), "both reads return an iterator"
    assert list(read) == [((1, 0), b"a"), ((1, 1), b"b")]
    assert results == [None]
    assert state[1] == [1, 1]


def test_async_client_used_before_connect_raises_at_once(start_server):
    server = start_server()

    async def main():
        client = AsyncClient(server.endpoint, timeout=30)
        try:
            t0 = time.monotonic()
            with pytest.raises(NotConnected, match="async with"):
                await client.group(1).state()
            return time.monotonic() - t0
        finally:
            await client.close()

    assert asyncio.run(main()) < 1


def test_a_client_used_by_two_threads_at_once_says_so(start_server):
    """Before, 3 of 4 threads sharing a Client got Timeout. Now the second
    thread to call while the first waits gets ClientInUse at once."""
    server = start_server()
    with server.client(timeout=3) as client:
        client.group(1).append([((1, 0), b"a")])
        first = {}

        def waiting_call():
            try:
                client.group(1).state()
            except Exception as exc:  # Timeout: the server is stopped meanwhile
                first["error"] = exc

        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            thread = threading.Thread(target=waiting_call)
            thread.start()
            assert poll_for(lambda: client._unanswered, 5), "the first thread is waiting for its reply"
            t0 = time.monotonic()
            with pytest.raises(ClientInUse, match="one Client per thread|its own Client"):
                client.groups()
            assert time.monotonic() - t0 < 1
            thread.join(10)  # the first call times out while the server is stopped
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
            thread.join(10)
        assert isinstance(first.get("error"), Timeout), first
        # One thread after another is fine: the client goes on after its timeout.
        done = []
        worker = threading.Thread(target=lambda: done.append(client.group(1).state().last))
        worker.start()
        worker.join(10)
        assert done == [(1, 0)]


def test_bad_endpoint_and_gid_are_invalid_arguments():
    with pytest.raises(InvalidArgument, match="tcp://HOST:PORT"):
        Client("127.0.0.1:7700")
    with pytest.raises(InvalidArgument, match="tcp://HOST:PORT"):
        AsyncClient("localhost")


def test_gid_out_of_range_is_refused_before_sending(start_server):
    server = start_server()
    with server.client() as client:
        with pytest.raises(InvalidArgument, match=r"2\*\*64"):
            client.group(2 ** 64)
        with pytest.raises(InvalidArgument):
            client.group(-1)


def test_no_server_timeout_hints_at_starting_one(tmp_path):
    t0 = time.monotonic()
    with pytest.raises(Timeout, match="is a shardlog server running there"):
        Client(f"ipc://{tmp_path}/nobody", timeout=0.3)
    assert time.monotonic() - t0 < 5


def test_oversized_requests_get_too_large(start_server):
    server = start_server(None, "--max-message-size", "4096")
    with server.client() as client:
        t0 = time.monotonic()
        with pytest.raises(TooLarge, match="max_message_size 4096"):
            client.group(1).append([((1, 0), b"x" * 5000)])
        assert time.monotonic() - t0 < 1, "refused at once, not after the timeout"
        client.group(1).append([((1, 0), b"x" * 100)])  # the client goes on
        # A client that does not check gets TooLarge from the server, logged once.
        client._core.max_message_size = None
        for _ in range(3):
            with pytest.raises(TooLarge):
                client.submit("append", gid=2, entries=[[1, 0, b"y" * 100]], filler=b"z" * 5000).result()
    assert server.log().count("TooLarge") == 1


def test_client_caused_log_lines_are_rate_limited(caplog):
    now = [0.0]
    limited = RateLimitedLog(logging.getLogger("t"), interval=60, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="t"):
        for i in range(1000):
            now[0] = i * 0.1  # 100 s of bad requests
            limited("BadRequest", logging.INFO, f"bad request {i}")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("bad request 0 ")
    assert lines[1].startswith("bad request 600 ") and "599 more" in lines[1]


def test_paged_reads_ask_ahead_on_both_faces(start_server):
    """A read asks for its next page before decoding the one it has: the
    entries still come whole and in order, on both clients."""
    server = start_server(None, "--max-read-entries", "100")
    with server.client() as client:
        client.group(1).append([((1 + i // 250, i), b"%d" % i) for i in range(1000)], flush=True)
        expected = [((1 + i // 250, i), b"%d" % i) for i in range(1000)]
        assert list(client.group(1).read(0, 2000)) == expected
        assert list(client.group(1).read(950, 1000)) == expected[950:]

    async def main():
        async with AsyncClient(server.endpoint) as client:
            return list(await client.group(1).read(0, 2000)), list(await client.group(1).read(5, 5))

    read, empty = asyncio.run(main())
    assert read == expected and empty == []
