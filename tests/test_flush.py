"""Flushes are answered only after the fsync; a failed fsync fails the disk for good."""

import errno
import os
import threading
import time

import pytest

from shardlog import DiskFailed, LogState, Store
from shardlog.engine.flusher import ThreadFlusher
from shardlog.workers.files import OsFiles

from .service import poll_for


class GatedFsync:
    """An fsync that waits for the test to let it through, and can fail."""

    def __init__(self):
        self.gate = threading.Event()
        self.gate.set()
        self.calls = 0
        self.fail = False
        self.entered = threading.Event()

    def __call__(self, fd):
        self.entered.set()
        assert self.gate.wait(10), "test never released the fsync"
        self.calls += 1
        if self.fail:
            raise OSError(errno.EIO, "injected EIO")
        os.fsync(fd)

    def factory(self, path, on_progress, on_failure, synced=0, on_full=None, on_low=None):
        return ThreadFlusher(path, on_progress, on_failure, synced=synced, on_full=on_full, on_low=on_low,
                             fsync=self)


def test_flush_waits_for_the_fsync(data_dir):
    fsync = GatedFsync()
    with Store.open(data_dir, flusher_factory=fsync.factory) as store:
        g = store.group(1)
        g.append([((1, 0), b"x")])
        fsync.gate.clear()
        done = threading.Event()
        g.flush(callback=lambda err: done.set())
        assert fsync.entered.wait(10)
        assert not done.wait(0.2), "answered before the fsync finished"
        calls = fsync.calls
        fsync.gate.set()
        assert done.wait(10)
        assert fsync.calls > calls


def test_flushes_of_many_groups_share_fsyncs(data_dir):
    fsync = GatedFsync()
    with Store.open(data_dir, flusher_factory=fsync.factory) as store:
        store.flush()
        fsync.gate.clear()
        done = []
        lock = threading.Lock()
        for gid in range(100):
            g = store.group(gid)
            g.append([((1, 0), b"x")])
            g.flush(callback=lambda err: (lock.acquire(), done.append(err), lock.release()))
        before = fsync.calls
        fsync.gate.set()
        store.flush()
        assert done == [None] * 100
        assert fsync.calls - before <= 3, "100 flushes took far fewer fsyncs than 100"


def test_fsync_failure_fails_the_disk_and_only_that_disk(tmp_path):
    bad = GatedFsync()
    good = GatedFsync()
    dirs = [tmp_path / "a", tmp_path / "b"]

    def factory(path, on_progress, on_failure, synced=0, on_full=None, on_low=None):
        chosen = bad if path == str(dirs[0]) else good
        return chosen.factory(path, on_progress, on_failure, synced, on_full, on_low)

    store = Store.open(dirs, flusher_factory=factory)
    try:
        a, b = store.group(1), store.group(2)
        a.append([((1, 0), b"x")])
        b.append([((1, 0), b"y")])
        disks = {gid: store._groups[gid].disk.path for gid in (1, 2)}
        assert disks == {1: str(dirs[0]), 2: str(dirs[1])}, "placed on the least loaded disk"
        bad.fail = True
        with pytest.raises(DiskFailed, match="injected EIO"):
            a.flush()
        with pytest.raises(DiskFailed):
            a.append([((1, 1), b"z")])
        bad.fail = False  # a later fsync that works must not make it look fine
        with pytest.raises(DiskFailed):
            a.flush()
        b.append([((1, 1), b"still fine")])
        b.flush()
        store.group(3).save_vote((1, 1))
        assert store._groups[3].disk.path == str(dirs[1]), "new groups avoid the failed disk"
        assert store.stat()["disks"][0]["failed"]
    finally:
        store.close()
    with Store.open(dirs) as store:
        assert list(store.group(2).read(0, 9)) == [((1, 0), b"y"), ((1, 1), b"still fine")]
        assert store.group(3).state() == LogState(vote=(1, 1))


def test_groups_spread_over_disks_and_come_back(tmp_path):
    dirs = [tmp_path / "d0", tmp_path / "d1", tmp_path / "d2"]
    with Store.open(dirs) as store:
        for gid in range(30):
            store.group(gid).append([((1, 0), b"g%d" % gid)])
        placement = {gid: store._groups[gid].disk.path for gid in range(30)}
        assert sorted(d["groups"] for d in store.stat()["disks"]) == [10, 10, 10]
    with Store.open(dirs) as store:
        assert {gid: store._groups[gid].disk.path for gid in range(30)} == placement
        for gid in range(30):
            assert list(store.group(gid).read(0, 5)) == [((1, 0), b"g%d" % gid)]


def test_a_group_on_two_disks_is_refused(tmp_path):
    from shardlog.engine.membership import STORE_FILE

    for d in ("a", "b"):
        with Store.open(tmp_path / d) as store:
            store.group(1).save_vote((1, 1))
        (tmp_path / d / STORE_FILE).unlink()  # as older versions left them: no store named
    with pytest.raises(ValueError, match="group 1 is in both"):
        Store.open([tmp_path / "a", tmp_path / "b"])
    # Nothing stays locked after the refusal.
    Store.open(tmp_path / "a").close()


def test_write_buffer_is_handed_over_before_a_flush(data_dir):
    with Store.open(data_dir, write_buffer_size=4096) as store:
        g = store.group(1)
        for i in range(100):
            g.append([((1, i), b"x" * 100)])
        disk = store._disks[0]
        assert len(disk.pending) < 4096 + 200
        assert disk.seq > 1, "full buffers went to the flusher without a flush"
        g.flush()
        assert disk.synced == disk.end


def test_backpressure_holds_writers_while_the_disk_is_behind(data_dir):
    fsync = GatedFsync()
    with Store.open(data_dir, flusher_factory=fsync.factory, max_unsynced_bytes=20_000,
                    write_buffer_size=1000) as store:
        store.flush()
        fsync.gate.clear()
        written = []

        def writer():
            g = store.group(1)
            for i in range(400):
                g.append([((1, i), b"x" * 100)])
                written.append(i)

        t = threading.Thread(target=writer)
        t.start()
        time.sleep(0.5)
        disk = store._disks[0]
        held = len(written)
        assert held < 400, "the writer went on although nothing became durable"
        assert disk.end - disk.synced <= 20_000 + 200, "unsynced bytes stay near the bound"
        fsync.gate.set()
        t.join(30)
        assert written == list(range(400))


def make_full(disk):
    """The disk's writes fail with ENOSPC from now on (until the returned switch is flipped)."""
    writer = disk.flusher.writer
    real = writer.write_batch
    full = [True]

    def write_batch(requests):
        if full[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(requests)

    writer.write_batch = write_batch
    return full


def test_embedded_disk_full_holds_writes_until_space_is_back(data_dir):
    from shardlog import DiskFull

    with Store.open(data_dir) as store:
        g = store.group(1)
        g.append([((1, 0), b"a")], flush=True)
        full = make_full(store._disks[0])
        with pytest.raises(DiskFull):
            g.append([((1, 1), b"b")], flush=True)
        with pytest.raises(DiskFull):
            g.append([((1, 2), b"refused")])
        full[0] = False
        assert poll_for(lambda: store._disks[0].full is None, 10)
        g.append([((1, 2), b"c")], flush=True)
    with Store.open(data_dir) as store:
        assert [p for _, p in store.group(1).read(0, 9)] == [b"a", b"b", b"c"]


def test_a_full_disk_found_by_a_helping_caller_is_retried_by_the_thread(tmp_path):
    """A caller that helps (does the flusher's work itself) and finds the disk full hands
    the batch back; the thread, asleep with nothing to do, must wake and retry it."""
    from shardlog.workers.messages import WriteRequest

    progress, full = [], []
    flusher = ThreadFlusher(str(tmp_path), lambda seq, synced: progress.append(seq), lambda exc: None,
                            on_full=full.append)
    try:
        real = flusher.writer.write_batch
        no_space = [True]

        def write_batch(requests):
            if no_space[0]:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(requests)

        flusher.writer.write_batch = write_batch
        with flusher._cond:  # queued without waking the thread: the caller gets to it first
            flusher._pending.append(WriteRequest(1, 0, 0, b"x" * 10, True))
        flusher.help()
        assert full and full[0] is not None and not progress
        no_space[0] = False
        assert poll_for(lambda: progress == [1], 5), "the thread never retried the batch"
        assert full[-1] is None
    finally:
        flusher.close()


def test_flushes_on_a_full_disk_get_disk_full_at_once_and_close_does_not_hang(data_dir, caplog):
    from shardlog import DiskFull

    store = Store.open(data_dir)
    g = store.group(1)
    g.append([((1, 0), b"a")], flush=True)
    make_full(store._disks[0])
    with pytest.raises(DiskFull):
        g.append([((1, 1), b"b")], flush=True)  # the flush that finds the disk full
    for _ in range(3):  # later flushes are told at once, not left waiting
        t0 = time.monotonic()
        with pytest.raises(DiskFull):
            g.flush(timeout=5)
        with pytest.raises(DiskFull):
            store.flush(timeout=5)
        assert time.monotonic() - t0 < 1
    t0 = time.monotonic()
    store.close()
    assert time.monotonic() - t0 < 5
    assert any("not written" in r.getMessage() for r in caplog.records)


def test_new_groups_are_placed_on_a_disk_that_is_not_full(tmp_path):
    from shardlog import DiskFull

    with Store.open([tmp_path / "a", tmp_path / "b"]) as store:
        full_disk = store.group(0)
        full_disk.append([((1, 0), b"x")])
        disk = store._groups[0].disk
        switch = make_full(disk)
        with pytest.raises(DiskFull):
            full_disk.flush()
        for gid in range(1, 11):
            store.group(gid).append([((1, 0), b"y")], flush=True)
        assert {store._groups[gid].disk.path for gid in range(1, 11)} == {d.path for d in store._disks} - {disk.path}
        switch[0] = False
        assert poll_for(lambda: disk.full is None, 10)


class CountedWakeUps:
    """The flusher's condition, counting the wake-ups of its thread."""

    def __init__(self, cond):
        self.cond = cond
        self.notified = 0

    def notify(self):
        self.notified += 1
        self.cond.notify()

    def wait(self, timeout=None):
        return self.cond.wait(timeout)

    def __enter__(self):
        return self.cond.__enter__()

    def __exit__(self, *exc):
        return self.cond.__exit__(*exc)


class ThreadsOfFsync(GatedFsync):
    """Remembers which thread ran each fsync, and how often the flusher's thread was woken."""

    def __init__(self):
        super().__init__()
        self.threads = []
        self.wake_ups = None

    def __call__(self, fd):
        self.threads.append(threading.current_thread())
        super().__call__(fd)

    def factory(self, *args, **kwargs):
        flusher = super().factory(*args, **kwargs)
        flusher._cond = self.wake_ups = CountedWakeUps(flusher._cond)
        self.flusher = flusher
        return flusher


def test_a_lone_durable_writer_does_its_fsyncs_itself_and_the_thread_stays_asleep(data_dir):
    """No hand-off: the caller that will wait carries out its flush in its own
    thread, and the flusher's thread is not even woken (a wake-up costs a
    switch to it and back). A flush with a callback, whose caller does not
    wait, is the thread's."""
    fsync = ThreadsOfFsync()
    with Store.open(data_dir, flusher_factory=fsync.factory) as store:
        g = store.group(1)
        g.append([((1, 0), b"x")], flush=True)
        assert poll_for(lambda: not fsync.flusher.writer.wants_prepare, 10)  # the thread made the next chunk's file
        woken = fsync.wake_ups.notified
        for i in range(1, 50):
            g.append([((1, i), b"x")], flush=True)
        assert fsync.wake_ups.notified == woken
        assert fsync.threads and set(fsync.threads) == {threading.current_thread()}
        del fsync.threads[:]
        done = threading.Event()
        g.append([((1, 50), b"x")])
        g.flush(callback=lambda err: done.set())
        assert done.wait(10)
        assert fsync.threads and threading.current_thread() not in fsync.threads


class HeldUnlinks(OsFiles):
    """Chunk deletions that wait for the test to let them through."""

    def __init__(self):
        self.gate = threading.Event()
        self.entered = threading.Event()

    def unlink(self, path):
        if path.endswith(".wal"):
            self.entered.set()
            assert self.gate.wait(10), "test never released the deletion"
        super().unlink(path)


def test_no_flush_waits_for_the_deletion_of_chunks(data_dir):
    """Deleting the chunks a purge freed is the flusher's work after the fsync:
    the flush that made them free is answered first."""
    held = HeldUnlinks()

    def factory(path, on_progress, on_failure, synced=0, on_full=None, on_low=None):
        return ThreadFlusher(path, on_progress, on_failure, synced=synced, on_full=on_full, on_low=on_low,
                             files=held)

    with Store.open(data_dir, flusher_factory=factory, chunk_max_records=5) as store:
        g = store.group(1)
        g.append([((1, i), b"x") for i in range(30)], flush=True)
        done = threading.Event()
        g.purge((1, 29))
        g.flush(callback=lambda err: done.set())
        assert done.wait(5), "the flush waited for the deletion"
        assert held.entered.wait(10), "the purge freed chunks, and their deletion began"
        held.gate.set()


def test_every_flusher_that_expects_help_gets_it_even_when_one_raises():
    """A flusher left expecting help would never wake its thread again."""
    from shardlog.engine.store import _help_each

    helped = []

    class Flusher:
        def __init__(self, name, fails):
            self.name, self.fails = name, fails

        def help(self):
            helped.append(self.name)
            if self.fails:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _help_each([Flusher("a", True), Flusher("b", False)])
    assert helped == ["a", "b"]
