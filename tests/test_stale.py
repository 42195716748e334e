"""A request takes effect only while its client still waits for it (real servers).

Timeout means: the request may have taken effect before its deadline, never
after. Requests carry the server run they were meant for and their deadline
on the server's clock; the client drops what it queued when it times out.
"""

import os
import signal
import tempfile
import time

import pytest
import zmq

from shardlog import StaleRequest, Timeout
from shardlog.client import Client
from shardlog.client.protocol import BASE_VERSION, pack, unpack
from shardlog.testing.process import ServerProcess

from .service import poll_for


@pytest.fixture
def fixed_endpoint(tmp_path):
    """A server factory on one ipc endpoint, so a restarted server is where the client connected."""
    sock_dir = tempfile.mkdtemp(prefix="sl-")
    endpoint = f"ipc://{sock_dir}/front"
    servers = []

    def run():
        server = ServerProcess([tmp_path / "data"], endpoint, str(tmp_path / "serve.log"),
                               ["--disk-reserve-bytes", "0"])
        servers.append(server)
        server.wait_ready()
        return server

    yield endpoint, run
    for server in servers:
        if server.proc.poll() is None:
            os.kill(server.proc.pid, signal.SIGCONT)
        server.stop(signal.SIGKILL)
    os.rmdir(sock_dir) if os.path.isdir(sock_dir) and not os.listdir(sock_dir) else None


def entries_of(endpoint, gid):
    with Client(endpoint, timeout=10) as client:
        return client.group(gid).state(), [log_id for log_id, _ in client.group(gid).read(0, 1000)]


def ten_durable_entries(endpoint):
    """Group 1 with entries 0..9, durable; ``entries_of`` it."""
    with Client(endpoint, timeout=10) as client:
        client.group(1).append([((1, i), b"e%d" % i) for i in range(10)], flush=True)
    return entries_of(endpoint, 1)


def test_requests_that_timed_out_never_run_after_a_restart(fixed_endpoint):
    """The issue's case: the server stops, truncate(0) and an append time out,
    the server starts again. Before, ZeroMQ delivered them then and they ran,
    wiping the group's durable entries."""
    endpoint, run = fixed_endpoint
    server = run()
    with Client(endpoint, timeout=1) as client:
        group = client.group(1)
        group.append([((1, i), b"e%d" % i) for i in range(10)], flush=True)
        before = entries_of(endpoint, 1)
        assert server.stop() == 0
        with pytest.raises(Timeout):
            group.truncate(0, flush=True)
        with pytest.raises(Timeout):
            group.append([((1, 10), b"late")])
        run()
        with pytest.raises(StaleRequest, match="restarted"):
            group.state()  # the client hears of the restart once: unflushed writes may be gone
        assert group.state().last == (1, 9), "a client goes on working after the new hello"
        group.append([((1, 10), b"after")], flush=True)
    assert entries_of(endpoint, 1)[1] == before[1] + [(1, 10)]


def test_a_request_held_up_past_its_deadline_is_refused(fixed_endpoint):
    """The server is stopped (SIGSTOP) while a truncate waits in its socket;
    the client times out; once the server runs again, the truncate is late."""
    endpoint, run = fixed_endpoint
    server = run()
    before = ten_durable_entries(endpoint)
    with Client(endpoint, timeout=0.5) as client:
        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            with pytest.raises(Timeout):
                client.group(1).truncate(0, flush=True)
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        assert entries_of(endpoint, 1) == before
        with Client(endpoint, timeout=10) as other:
            assert poll_for(lambda: other.stat()["stale_requests"] >= 1, 5), "the truncate reached the server"


def raw_request(sock, **fields):
    sock.send(pack({"v": 1, "id": 1, **fields}))
    assert sock.poll(10_000), "no reply"
    return unpack(sock.recv())


def test_the_server_refuses_another_run_or_a_passed_deadline(fixed_endpoint):
    endpoint, run = fixed_endpoint
    run()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    try:
        sock.connect(endpoint)
        hello = raw_request(sock, op="hello")["result"]
        entry = [[1, 0, b"x"]]
        reply = raw_request(sock, op="append", gid=1, entries=entry, inc=hello["incarnation"] + 1)
        assert (reply["status"], reply["code"]) == ("error", "StaleRequest")
        reply = raw_request(sock, op="append", gid=1, entries=entry, dl=hello["clock"] - 1)
        assert (reply["status"], reply["code"]) == ("error", "StaleRequest")
        assert raw_request(sock, op="groups")["result"] == [], "neither took effect"
        reply = raw_request(sock, op="append", gid=1, entries=entry, inc=hello["incarnation"],
                            dl=hello["clock"] + 60)
        assert reply["status"] == "ok"
    finally:
        sock.close()
        ctx.term()


def test_the_deadline_sent_is_never_later_than_the_clients():
    """Whenever in the hello's round trip the server read its clock, the
    deadline sent falls, on the server's clock, at or before the client's."""
    from shardlog.client.core import Core

    skew = 5000.0  # the server's clock = the client's + skew
    sent, received = 10.0, 12.5  # a slow hello
    for read_at in (sent, 11.0, received):  # when, in client time, the server read its clock
        core = Core()
        core.took_hello({"protocol": BASE_VERSION, "incarnation": 5, "clock": read_at + skew},
                        received_at=received)
        deadline = received + 2
        message = unpack(core.request("append", {}, deadline=deadline)[1])
        assert message["inc"] == 5
        assert message["dl"] <= deadline + skew, read_at


def test_a_pipelined_request_dropped_at_a_reconnection_times_out_only_after_its_deadline(fixed_endpoint):
    """Another request's timeout reconnects the client; this one may still sit in
    the server's buffers, so its Timeout waits for its own deadline (before, it
    came at once, and the truncate ran seconds later)."""
    endpoint, run = fixed_endpoint
    server = run()
    before = ten_durable_entries(endpoint)
    with Client(endpoint, timeout=10) as client:
        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            first = client.submit("state", timeout=0.5, gid=1)
            truncate = client.submit("truncate", timeout=2.5, gid=1, index=0, flush=True)
            sent = time.monotonic()
            with pytest.raises(Timeout):
                first.result()
            with pytest.raises(Timeout, match="dropped"):
                truncate.result()
            assert time.monotonic() - sent >= 2.4, "Timeout said before the request's own deadline"
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
    assert entries_of(endpoint, 1) == before
    with Client(endpoint, timeout=10) as other:
        assert poll_for(lambda: other.stat()["stale_requests"] >= 1, 5)


def test_an_old_clock_reading_is_renewed_only_between_requests():
    """A pipelining client never waits behind its own requests for a hello;
    the drift margin grows with the reading's age meanwhile."""
    from shardlog.client.core import CLOCK_SYNC_MAX_AGE, Core

    core = Core()
    assert core.needs_hello(0.0, busy=True), "never said hello: it must"
    core.took_hello({"protocol": BASE_VERSION, "incarnation": 5, "clock": 1000.0}, received_at=0.0)
    later = CLOCK_SYNC_MAX_AGE + 1
    assert core.needs_hello(later) and not core.needs_hello(later, busy=True)
    near = unpack(core.request("append", {}, deadline=1.0)[1])["dl"]
    far = unpack(core.request("append", {}, deadline=101.0)[1])["dl"]
    assert (1000.0 + 101.0) - far > (1000.0 + 1.0) - near, "older readings leave a wider margin"
