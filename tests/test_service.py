"""The service with real processes and sockets: front, workers, clients."""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import psutil
import pytest

from shardlog import DiskFailed, LogState, Store
from shardlog.client import Client
from shardlog.server.front import GC_YOUNG_THRESHOLD

from .conftest import snapshot
from .service import ROOT, poll_for
from .test_store import SAMPLE_ENTRIES, SAMPLE_STATE, build_sample_data


def test_compat_sequence_through_the_client(start_server, tmp_path):
    server = start_server()
    with server.client() as client:
        g = client.group(7)
        build_sample_data(g)
        g.flush()
        assert g.state() == SAMPLE_STATE
        assert list(g.read(0, 100)) == SAMPLE_ENTRIES
    with Store.open(tmp_path / "embedded") as store:
        build_sample_data(store.group(7))
        assert store.group(7).state() == SAMPLE_STATE
        assert list(store.group(7).read(0, 100)) == SAMPLE_ENTRIES


def raft_node_storage(log):
    """Group code a Raft node would run; it must not care what ``log`` is."""
    g = log.group(3)
    g.save_vote((1, 1))
    g.append([((1, i), b"e%d" % i) for i in range(5)])
    g.commit((1, 3), flush=True)
    g.truncate(4)
    g.purge((1, 1))
    g.save_user_data(b"meta")
    g.flush()
    return g.state(), list(g.read(0, 10))


def test_same_group_code_on_store_and_client(start_server, tmp_path):
    with Store.open(tmp_path / "embedded") as store:
        embedded = raft_node_storage(store)
    with start_server().client() as client:
        remote = raft_node_storage(client)
    assert remote == embedded
    assert embedded[0] == LogState(vote=(1, 1), last=(1, 3), committed=(1, 3), purged=(1, 1),
                                   user_data=b"meta")


def test_10000_pipelined_requests(start_server):
    server = start_server()
    with server.client() as client:
        pending = [client.submit("append", gid=1, entries=[[1, i, b"p%d" % i]], flush=False)
                   for i in range(10_000)]
        assert [p.result() for p in pending] == [None] * 10_000
        client.group(1).flush()
        got = list(client.group(1).read(0, 20_000))
    assert len(got) == 10_000
    assert got[-1] == ((1, 9999), b"p9999")


def test_1000_groups_by_several_clients(start_server, tmp_path):
    server = start_server([tmp_path / "a", tmp_path / "b"])
    errors = []

    def writer(first):
        try:
            with server.client() as client:
                for r in range(3):
                    for gid in range(first, first + 250):
                        client.group(gid).append([((1, r), b"%d-%d" % (gid, r))])
                    client.flush()
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k * 250,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    with server.client() as client:
        assert client.groups() == list(range(1000))
        for gid in (0, 499, 999):
            assert list(client.group(gid).read(0, 9)) == [((1, r), b"%d-%d" % (gid, r)) for r in range(3)]
        stat = client.stat()
    assert sorted(d["groups"] for d in stat["disks"]) == [500, 500]


def test_flush_is_answered_after_the_workers_fsync(start_server):
    server = start_server()
    with server.client() as client:
        g = client.group(1)
        before = client.stat()["disks"][0]
        g.append([((1, 0), b"x" * 1000)])
        g.flush()
        after = client.stat()["disks"][0]
        assert after["flusher"]["fsyncs"] > before["flusher"]["fsyncs"]
        assert after["synced"] == after["end"] > before["end"]
        g.append([((1, 1), b"y")], flush=True)
        assert client.stat()["disks"][0]["unsynced_bytes"] == 0


def test_kill_9_of_a_worker_under_load_loses_nothing(start_server, tmp_path):
    server = start_server([tmp_path / "a", tmp_path / "b"])
    acked = {}
    done = threading.Event()
    errors = []

    def load():
        try:
            with server.client(timeout=30) as client:
                for i in range(400):
                    gid = i % 8
                    n = acked.get(gid, 0)
                    client.group(gid).append([((1, n), b"%d/%d" % (gid, n))], flush=True)
                    acked[gid] = n + 1
        except Exception as exc:
            errors.append(exc)
        finally:
            done.set()

    t = threading.Thread(target=load)
    t.start()
    assert poll_for(lambda: sum(acked.values()) > 50, 30)
    victim = server.workers[0]
    os.kill(victim, signal.SIGKILL)
    t.join(120)
    assert done.is_set() and not errors
    with server.client() as client:
        stat = client.stat()
        assert sum(d["flusher"]["restarts"] for d in stat["disks"]) == 1
        assert all(d["worker"]["pid"] != victim for d in stat["disks"])
    assert server.stop() == 0
    with Store.open([tmp_path / "a", tmp_path / "b"]) as store:
        for gid, n in acked.items():
            assert list(store.group(gid).read(0, 10_000)) == [((1, i), b"%d/%d" % (gid, i)) for i in range(n)]


def test_workers_exit_when_the_front_is_killed(start_server):
    server = start_server()
    workers = server.worker_pids()
    assert workers
    server.proc.kill()
    server.proc.wait(10)
    gone = poll_for(lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
                                    for p in workers), 2.5)
    assert gone, "workers outlived their front by more than 2 s"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_flushes_and_exits_0_and_restart_recovers(start_server, tmp_path, sig):
    server = start_server()
    with server.client() as client:
        g = client.group(5)
        g.save_vote((2, 1))
        g.append([((2, i), b"v%d" % i) for i in range(100)])  # not flushed by the client
        g.commit((2, 50))
        state, entries = g.state(), list(g.read(0, 1000))
    assert server.stop(sig) == 0
    assert "shutting down" in server.log()
    server = start_server()
    with server.client() as client:
        assert client.group(5).state() == state
        assert list(client.group(5).read(0, 1000)) == entries


def test_second_server_on_the_same_directory_fails_clearly(start_server):
    start_server()
    second = start_server(ready=False)
    assert second.proc.wait(30) != 0
    assert "in use by another process" in second.log()


def test_fsync_failure_fails_one_disk_and_the_other_serves(start_server, tmp_path):
    dirs = [tmp_path / "a", tmp_path / "b"]
    server = start_server(dirs, "--fault-injection")
    with server.client() as client:
        client.group(1).append([((1, 0), b"on a")], flush=True)
        client.group(2).append([((1, 0), b"on b")], flush=True)
        placement = {d["path"]: d["groups"] for d in client.stat()["disks"]}
        assert list(placement.values()) == [1, 1]
        (dirs[0] / ".shardlog-fault").write_text("EIO")
        with pytest.raises(DiskFailed):
            client.group(1).append([((1, 1), b"lost")], flush=True)
        (dirs[0] / ".shardlog-fault").unlink()
        with pytest.raises(DiskFailed):
            client.group(1).flush()
        with pytest.raises(DiskFailed):
            client.group(1).append([((1, 2), b"refused")])
        client.group(2).append([((1, 1), b"still fine")], flush=True)
        stat = client.stat()
        assert stat["disks"][0]["failed"] and not stat["disks"][1]["failed"]
    assert server.stop() == 0


def test_disk_full_is_refused_before_the_disk_is_full(start_server):
    server = start_server(None, "--disk-reserve-bytes", str(10 ** 18))
    with server.client() as client:
        from shardlog import DiskFull
        with pytest.raises(DiskFull, match="under the reserve"):
            client.group(1).append([((1, 0), b"x")])
        with pytest.raises(DiskFull):
            with client.batch() as b:
                b.group(2).save_vote((1, 1))
        assert client.groups() == []
        assert client.group(1).state() == LogState()
        stat = client.stat()["disks"][0]
        assert stat["under_reserve"] and stat["reserve_bytes"] == 10 ** 18 and 0 < stat["free_bytes"]
    assert "under the reserve" in server.log()


def test_under_the_reserve_what_frees_space_is_still_taken(start_server, tmp_path):
    """Before, purge, truncate, commit and save_vote were refused too."""
    server = start_server()
    with server.client() as client:
        client.group(1).append([((1, i), b"x") for i in range(10)], flush=True)
    assert server.stop() == 0
    server = start_server(None, "--disk-reserve-bytes", str(10 ** 18))
    with server.client() as client:
        from shardlog import DiskFull
        group = client.group(1)
        with pytest.raises(DiskFull, match="purge, drop groups or free space"):
            group.append([((1, 10), b"x")])
        group.save_vote((2, 1), flush=True)
        group.commit((1, 5), flush=True)
        group.purge((1, 3), flush=True)
        group.truncate(8, flush=True)
        assert group.state() == LogState((2, 1), (1, 7), (1, 5), (1, 3))
        client.drop_group(1)
        assert client.groups() == []


def test_data_directories_on_one_device_are_reported(start_server, tmp_path):
    server = start_server([tmp_path / "a", tmp_path / "b"])
    assert "are on the same device" in server.log()


def test_async_client(start_server):
    import asyncio

    from shardlog.client import AsyncClient

    server = start_server()

    async def main():
        async with AsyncClient(server.endpoint) as client:
            groups = [client.group(g) for g in range(20)]
            await asyncio.gather(*[g.append([((1, 0), b"a%d" % g.gid)]) for g in groups])
            async with client.batch(flush=True) as b:
                for g in groups:
                    b.group(g.gid).commit((1, 0))
            states = await asyncio.gather(*[g.state() for g in groups])
            reads = await asyncio.gather(*[g.read(0, 5) for g in groups])
            return states, reads, await client.groups()

    states, reads, groups = asyncio.run(main())
    assert states == [LogState(last=(1, 0), committed=(1, 0))] * 20
    assert [list(r) for r in reads] == [[((1, 0), b"a%d" % g)] for g in range(20)]
    assert groups == list(range(20))


def test_reads_are_paged(start_server):
    server = start_server()
    with server.client() as client:
        g = client.group(1)
        for start in range(0, 25_000, 5000):
            g.append([((1, i), b"%d" % i) for i in range(start, start + 5000)])
        page = client.submit("read", gid=1, start=0, end=30_000).result()
        assert len(page["entries"]) == 10_000 and page["next"] == 10_000
        got = list(g.read(0, 30_000))
    assert [i for (_, i), _ in got] == list(range(25_000))


def test_batch_through_the_client(start_server, tmp_path):
    server = start_server()
    with server.client() as client:
        with client.batch(flush=True) as b:
            for gid in range(100):
                b.group(gid).save_vote((1, 1)).append([((1, 0), b"x")])
        before = snapshot(tmp_path / "data")
        with pytest.raises(Exception) as err:
            with client.batch(flush=True) as b:
                b.group(500).append([((1, 0), b"new")])
                b.group(5).append([((1, 5), b"gap")])
        assert type(err.value).__name__ == "LogIdNonConsecutive"
        client.flush()
        assert snapshot(tmp_path / "data") == before
        assert 500 not in client.groups()


def test_cli_stat_dump_export_import(start_server, tmp_path):
    server = start_server()
    with server.client() as client:
        build_sample_data(client.group(7))
        client.flush()
    env = dict(os.environ, PYTHONPATH=ROOT)

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "shardlog", *args], capture_output=True, text=True,
                              env=env, timeout=60)

    out = cli("stat", "--endpoint", server.endpoint)
    assert out.returncode == 0 and "1 groups" in out.stdout and "worker pid" in out.stdout
    assert re.search(r"\n +7 +6 +2 +2/7 +1/2 +1/1 ", out.stdout), out.stdout
    out = cli("stat", "--endpoint", server.endpoint, "--json")
    assert '"groups": 1' in out.stdout
    out = cli("top", "--endpoint", server.endpoint, "--count", "2", "--interval", "0.1")
    assert out.returncode == 0 and out.stdout.count("server ipc://") == 2
    assert "appending" in out.stdout and "entries/s" in out.stdout
    out = cli("dump", str(tmp_path / "data"), "--group", "7")
    assert out.returncode == 0 and "Append(g=7 (2, 7), b'wow')" in out.stdout
    out = cli("export", "--data-dir", str(tmp_path / "data"), "--group", "7", str(tmp_path / "out"))
    assert out.returncode != 0 and "in use by another process" in out.stderr
    assert server.stop() == 0
    out = cli("export", "--data-dir", str(tmp_path / "data"), "--group", "7", str(tmp_path / "out"),
              "--chunk-max-records", "5")
    assert out.returncode == 0, out.stderr
    from .test_compat import REFERENCE
    for name in os.listdir(REFERENCE / "raft-log"):
        assert (tmp_path / "out" / name).read_bytes() == (REFERENCE / "raft-log" / name).read_bytes()
    out = cli("import", "--data-dir", str(tmp_path / "data2"), "--group", "9", str(tmp_path / "out"))
    assert out.returncode == 0, out.stderr
    with Store.open(tmp_path / "data2") as store:
        assert store.group(9).state() == SAMPLE_STATE


def test_client_times_out_without_a_server(tmp_path):
    from shardlog import Timeout
    start = time.monotonic()
    with pytest.raises(Timeout):
        Client(f"ipc://{tmp_path}/nobody", timeout=0.3)
    assert time.monotonic() - start < 5


def test_disk_full_then_space_back_loses_nothing(start_server, tmp_path):
    dirs = [tmp_path / "a", tmp_path / "b"]
    server = start_server(dirs, "--fault-injection")
    from shardlog import DiskFull
    with server.client() as client:
        client.group(1).append([((1, 0), b"before")], flush=True)
        client.group(2).append([((1, 0), b"other disk")], flush=True)
        (dirs[0] / ".shardlog-fault").write_text("ENOSPC")
        with pytest.raises(DiskFull):
            client.group(1).append([((1, 1), b"accepted, not durable")], flush=True)
        with pytest.raises(DiskFull, match="is full"):
            client.group(1).append([((1, 2), b"refused")])
        client.group(2).append([((1, 1), b"still served")], flush=True)
        assert server.proc.poll() is None
        (dirs[0] / ".shardlog-fault").unlink()

        def writable():
            try:
                client.group(1).flush()
                return True
            except DiskFull:
                return False

        assert poll_for(writable, 10), "writes never resumed once space was back"
        client.group(1).append([((1, 2), b"after")], flush=True)
        assert list(client.group(1).read(0, 9)) == [
            ((1, 0), b"before"), ((1, 1), b"accepted, not durable"), ((1, 2), b"after")]
    assert server.stop() == 0
    with Store.open(dirs) as store:
        assert [p for _, p in store.group(1).read(0, 9)] == [b"before", b"accepted, not durable", b"after"]
        assert [p for _, p in store.group(2).read(0, 9)] == [b"other disk", b"still served"]


def test_file_size_limit_makes_a_disk_full_not_failed(start_server, tmp_path):
    dirs = [tmp_path / "a", tmp_path / "b"]
    server = start_server(dirs, "--worker-file-size-limit", "20000")
    from shardlog import DiskFull
    with server.client() as client:
        client.group(1).save_vote((1, 1), flush=True)  # group 1 on the first disk
        client.group(2).save_vote((1, 1), flush=True)  # group 2 on the second
        g = client.group(1)
        with pytest.raises(DiskFull):
            for i in range(1000):
                g.append([((1, i), b"z" * 100)], flush=True)
        assert i > 10
        client.group(2).append([((1, 0), b"served")], flush=True)  # its files stay small
        stat = client.stat()
        assert stat["disks"][0]["full"] and not stat["disks"][0]["failed"]
        assert not stat["disks"][1]["full"]
    assert server.proc.poll() is None


def test_request_and_group_limits(start_server):
    from shardlog import TooManyGroups
    from shardlog.errors import TooLarge

    server = start_server(None, "--max-request-entries", "10", "--max-request-bytes", "1000",
                          "--max-groups", "3")
    with server.client() as client:
        with pytest.raises(TooLarge, match="max_request_entries 10"):
            client.group(1).append([((1, i), b"") for i in range(11)])
        with pytest.raises(TooLarge, match="max_request_bytes 1000"):
            with client.batch() as b:
                b.group(1).append([((1, 0), b"x" * 600)])
                b.group(2).append([((1, 0), b"y" * 600)])
        for gid in (1, 2, 3):
            client.group(gid).save_vote((1, 1))
        with pytest.raises(TooManyGroups, match="max_groups = 3"):
            client.group(4).save_vote((1, 1))
        client.group(3).append([((1, i), b"z") for i in range(10)], flush=True)
        assert client.groups() == [1, 2, 3]


def test_curve_admits_known_keys_only(start_server, tmp_path):
    from shardlog import Timeout
    from shardlog.cli.main import main

    keys, allowed, others = tmp_path / "keys", tmp_path / "allowed", tmp_path / "others"
    assert main(["keygen", str(keys), "--name", "server"]) == 0
    assert main(["keygen", str(allowed), "--name", "raft-host-1"]) == 0
    assert main(["keygen", str(others), "--name", "stranger"]) == 0
    assert main(["keygen", str(keys), "--name", "server"]) == 2, "never overwrites a key"
    assert oct((keys / "server.key_secret").stat().st_mode & 0o777) == "0o600"
    server = start_server(None, "--curve-secret-key", str(keys / "server.key_secret"),
                          "--curve-authorized-keys", str(allowed), ready=False)
    with Client(server.endpoint, timeout=20, client_key=allowed / "raft-host-1.key_secret",
                server_key=keys / "server.key") as client:
        client.group(1).append([((1, 0), b"over curve")], flush=True)
        assert list(client.group(1).read(0, 5)) == [((1, 0), b"over curve")]
        # The server is up and serving; others get nothing.
        with pytest.raises(Timeout):
            Client(server.endpoint, timeout=1.5)  # no key
        with pytest.raises(Timeout):
            Client(server.endpoint, timeout=1.5, client_key=others / "stranger.key_secret",
                   server_key=keys / "server.key")
        assert client.groups() == [1]
    assert "CurveZMQ on" in server.log()


def test_prometheus_metrics(start_server):
    import urllib.error
    import urllib.request

    server = start_server(None, "--metrics-bind", "127.0.0.1:0")
    with server.client() as client:
        client.group(1).append([((1, i), b"m" * 10) for i in range(7)], flush=True)
        list(client.group(1).read(0, 7))
    port = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", server.log()).group(1)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    assert "# TYPE shardlog_fsync_seconds histogram" in text
    assert re.search(r'shardlog_fsync_seconds_bucket\{disk="[^"]+",le="\+Inf"\} [1-9]', text)
    assert re.search(r'shardlog_appended_entries_total\{disk="[^"]+"\} 7\n', text)
    assert re.search(r'shardlog_appended_bytes_total\{disk="[^"]+"\} 70\n', text)
    assert re.search(r'shardlog_unsynced_bytes\{disk="[^"]+"\} \d+', text)
    assert re.search(r'shardlog_cache_hits_total\{disk="[^"]+"\} 7\n', text)
    counts = [int(v) for v in re.findall(r'shardlog_fsync_seconds_bucket\{[^}]*\} (\d+)', text)]
    assert counts == sorted(counts), "buckets are cumulative"
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=10)


def test_a_silent_worker_is_reported_and_the_service_carries_on(start_server):
    server = start_server(None, "--heartbeat", "0.1")
    worker = server.workers[0]
    with server.client() as client:
        client.group(1).append([((1, 0), b"x")], flush=True)
        os.kill(worker, signal.SIGSTOP)  # a worker stuck (as in an fsync that never returns)
        try:
            assert poll_for(lambda: "silent for" in server.log(), 15), server.log()
            assert client.stat()["disks"][0]["flusher"]["heartbeat_age"] > 5
        finally:
            os.kill(worker, signal.SIGCONT)
        client.group(1).append([((1, 1), b"y")], flush=True)
        assert [p for _, p in client.group(1).read(0, 5)] == [b"x", b"y"]


def test_run_directories_of_dead_fronts_are_removed(start_server):
    import tempfile

    stale = os.path.join(tempfile.gettempdir(), "shardlog-run-999999999-stale")
    os.makedirs(stale, exist_ok=True)
    server = start_server()
    assert not os.path.exists(stale)
    mine = [n for n in os.listdir(tempfile.gettempdir()) if n.startswith(f"shardlog-run-{server.proc.pid}-")]
    assert len(mine) == 1, "the running front's own directory stays"
    assert server.stop() == 0
    assert not os.path.exists(os.path.join(tempfile.gettempdir(), mine[0])), "removed on a clean stop"


def test_stat_cpu_percent_waits_for_an_interval():
    """A process seen for the first time has no interval to measure CPU over: None, not a
    number divided by almost nothing (stat printed "cpu 7352%" on a fresh server)."""
    import types

    from shardlog.server.front import Front

    front = types.SimpleNamespace(_processes={})
    first = Front._process_stat(front, os.getpid())
    assert first["cpu_percent"] is None and first["rss"] > 0
    sum(range(10 ** 6))
    second = Front._process_stat(front, os.getpid())
    assert 0 <= second["cpu_percent"] <= 100 * os.cpu_count()


def test_a_lagging_group_is_an_event_a_client_polls_and_a_metric(start_server):
    """Against a real server: a group holding more than relocate_max_bytes pins the
    oldest chunk while another churns; the client polls the event, stat and the
    metrics show it, and the forced relocation follows after lagging_rounds."""
    import urllib.request

    server = start_server(None, "--chunk-max-size", "4096", "--relocate-max-bytes", "1000",
                          "--lagging-rounds", "3", "--metrics-bind", "127.0.0.1:0")
    port = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", server.log()).group(1)
    with server.client() as client:
        assert client.events() == {"events": [], "last": 0, "missed": 0}
        client.group(5).append([((1, i), b"x" * 100) for i in range(20)], flush=True)
        busy = client.group(1)
        seen, lagging = [], None
        for i in range(600):
            busy.append([((1, i), b"b" * 100)])
            if i >= 3:
                busy.purge((1, i - 3))
            busy.flush()
            polled = client.events(after=seen[-1]["seq"] if seen else 0)
            seen += polled["events"]
            if [e["kind"] for e in seen] == ["lagging"] and lagging is None:  # while it lags
                lagging = client.stat()["disks"][0]["lagging_groups"]
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
                    text = response.read().decode()
            if any(e["kind"] == "relocated" for e in seen):
                break
        assert [e["kind"] for e in seen] == ["lagging", "relocated"]
        assert seen[0]["gid"] == 5 and seen[0]["entries"] == 20 and seen[1]["forced"]
        assert [g["gid"] for g in lagging] == [5]
        assert re.search(r'shardlog_lagging_groups\{disk="[^"]+"\} 1\n', text)
        assert list(client.group(5).read(0, 20)) == [((1, i), b"x" * 100) for i in range(20)]


def test_sigterm_to_the_whole_process_group_is_a_clean_stop(tmp_path):
    """systemd's default stop signals the whole group: the workers are not
    "dead, restarting" then; the front flushes and stops them."""
    from shardlog.testing.process import reap

    sock_dir = tempfile.mkdtemp(prefix="sl-")
    endpoint = f"ipc://{sock_dir}/front"
    log_path = tmp_path / "serve.log"
    env = dict(os.environ, PYTHONPATH=ROOT)
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "shardlog", "serve", "--bind", endpoint, "--data-dir",
                                 str(tmp_path / "data"), "--disk-reserve-bytes", "0"], stdout=log_file,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
    workers = []
    try:
        assert poll_for(lambda: b"serving on" in log_path.read_bytes(), 30)
        with Client(endpoint, timeout=10) as client:
            client.group(1).append([((1, 0), b"a")])  # not flushed by the client
            workers = [d["worker"]["pid"] for d in client.stat()["disks"]]
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        reap(workers)
        shutil.rmtree(sock_dir, ignore_errors=True)
    log = log_path.read_text()
    assert "died" not in log and "restarting" not in log, log
    assert "stopped" in log
    with Store.open(tmp_path / "data") as store:
        assert [e for e in store.group(1).read(0, 5)] == [((1, 0), b"a")]


def test_a_stalled_worker_is_reported_and_so_is_its_return(start_server):
    server = start_server(None, "--heartbeat", "0.05")
    worker = server.workers[0]
    os.kill(worker, signal.SIGSTOP)
    try:
        assert poll_for(lambda: "silent for" in server.log(), 15)
    finally:
        os.kill(worker, signal.SIGCONT)
    assert poll_for(lambda: "is heard again" in server.log(), 10)
    with server.client() as client:
        client.group(1).append([((1, 0), b"a")], flush=True)


def test_semantics_through_a_real_server(start_server):
    """docs/semantics.md, as a client sees it: a read over a purged range
    returns the entries held, commit beyond last is taken (as raft-log), and
    a refused truncate says what it met and what it accepts."""
    from shardlog import LogIndexNotFound

    server = start_server()
    with server.client() as client:
        group = client.group(1)
        group.append([((1, i), b"%d" % i) for i in range(10)])
        group.purge((1, 4))
        assert [i for (_, i), _ in group.read(0, 8)] == [5, 6, 7]
        group.commit((1, 20))
        assert group.state().committed == (1, 20)
        with pytest.raises(LogIndexNotFound, match="truncate at 3: it would cut into the purged entries") as info:
            group.truncate(3)
        assert info.value.index == 2
        assert group.state().last == (1, 9), "the refused truncate changed nothing"


def test_reads_in_columns_match_reads_in_rows(start_server):
    from shardlog.client.protocol import columns_in

    server = start_server(None, "--max-read-bytes", "2000")
    with server.client() as client:
        g = client.group(1)
        g.append([((1 + i // 7, i), b"p" * (i % 50)) for i in range(300)])
        g.purge((2, 9))
        rows = client.request("read", gid=1, start=0, end=1000)
        columns = client.request("read", gid=1, start=0, end=1000, columns=True)
        assert columns["next"] == rows["next"] is not None, "both forms page at the same entry"
        assert columns_in(columns) == [((t, i), p) for t, i, p in rows["entries"]]
        assert [i for (_, i), _ in g.read(0, 1000)] == list(range(10, 300))


def test_what_the_open_built_is_out_of_the_collectors_sight(start_server):
    """A full collection walked every group's objects: ~0.5 s at 1M groups, a
    pause of the front's loop (scripts/bench_open.py measures it). And the
    youngest generation is collected far less often than Python's default
    (every 700 allocations walked a round's rows, which die with it)."""
    server = start_server()
    with server.client() as client:
        front = client.stat()["front"]
        assert front["gc_frozen_objects"] > 1000
        assert front["gc_thresholds"][0] == GC_YOUNG_THRESHOLD > 700
        assert len(front["gc_collections"]) == 3
