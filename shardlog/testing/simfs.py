"""A simulated file system with power loss, for deterministic crash tests.

In the spirit of FoundationDB's simulated files and Pebble's strict in-memory
FS: ``SimFiles`` implements the engine's file interface (workers/files.py) in
memory and keeps what was made durable apart from what was only written. A
file's bytes are durable up to its last fsync; the writes since are kept in
order. A directory's entries (files created or deleted) are durable as of its
last fsync. ``crash_at=n`` makes the n-th file operation lose power: it and
every operation after it raise ``SimulatedCrash``. ``after_crash(rng)`` is the
disk as a reboot finds it: entries not made durable are undone (a new file
gone, a deleted one back), and of each file's writes since its last fsync a
prefix survives, the last of them possibly torn.

``open_store`` opens a Store on it whose flushers run in the caller's thread
(``InlineFlusher``), so the sequence of file operations, and the point where
a crash lands, is the same on every run.
"""

import os
import random
import threading

from shardlog.engine import codec
from shardlog.engine.store import Store
from shardlog.workers.policy import FlushPolicy
from shardlog.workers.writer import ChunkWriter


class SimulatedCrash(Exception):
    """The simulated machine lost power during or before this file operation."""


class _File:
    __slots__ = ("data", "durable", "pending")

    def __init__(self):
        #: What a read sees now.
        self.data = bytearray()
        #: The bytes as of the last fsync.
        self.durable = b""
        #: ``("w", offset, bytes)`` or ``("t", size)`` since the last fsync, in order.
        self.pending = []


class SimFiles:
    def __init__(self, crash_at=None):
        self.crash_at = crash_at
        #: File operations done so far (the one that crashes included).
        self.ops = 0
        self.crashed = False
        self._files = {}  # path -> _File: the namespace as it is now
        self._durable_names = {}  # path -> _File: the namespace as of the directories' last fsync
        self._dirs = set()
        self._fds = {}
        self._next_fd = 3
        self._lock = threading.RLock()

    # -- the crash

    def _op(self, what):
        if self.crashed:
            raise SimulatedCrash(f"{what}: the machine is down")
        self.ops += 1
        if self.ops == self.crash_at:
            self.crashed = True
            raise SimulatedCrash(f"power lost at file operation {self.ops} ({what})")

    def after_crash(self, rng=None, pages=False):
        """The disk after a reboot (a new SimFiles that does not crash). With
        ``pages``, each 4 KiB page of each write since the last fsync reaches
        the disk or not, in any order (as a page cache writes back a file whose
        size does not change: a preallocated one), instead of a prefix of the
        writes."""
        rng = rng or random.Random(0)
        out = SimFiles()
        out._dirs = set(self._dirs)
        for path, f in self._durable_names.items():
            g = _File()
            data = bytearray(f.durable)
            if pages:
                _pages_reached(data, f.pending, rng)
                g.data, g.durable = data, bytes(data)
                out._files[path] = out._durable_names[path] = g
                continue
            keep = rng.randint(0, len(f.pending))
            for k, change in enumerate(f.pending[:keep]):
                if change[0] == "t":
                    del data[change[1]:]
                    continue
                _, offset, chunk = change
                if k == keep - 1:  # the last write that reached the disk may be torn
                    chunk = chunk[:rng.randint(0, len(chunk))]
                if len(data) < offset:
                    data += bytes(offset - len(data))
                data[offset:offset + len(chunk)] = chunk
            g.data, g.durable = data, bytes(data)
            out._files[path] = out._durable_names[path] = g
        return out

    # -- descriptors

    def open(self, path, mode):
        with self._lock:
            self._op(f"open {path}")
            f = self._file(path) if mode == "r" else self._files.setdefault(path, _File())
            fd = self._next_fd
            self._next_fd += 1
            self._fds[fd] = f
            return fd

    def close(self, fd):
        with self._lock:
            self._fds.pop(fd, None)  # harmless on a dead machine too

    def pread(self, fd, size, offset):
        with self._lock:
            self._op("pread")
            return bytes(self._fds[fd].data[offset:offset + size])

    def pwrite(self, fd, data, offset):
        with self._lock:
            self._op("pwrite")
            f = self._fds[fd]
            data = bytes(data)
            if len(f.data) < offset:
                f.data += bytes(offset - len(f.data))
            f.data[offset:offset + len(data)] = data
            f.pending.append(("w", offset, data))
            return len(data)

    def fsync(self, fd):
        with self._lock:
            self._op("fsync")
            f = self._fds[fd]
            f.durable = bytes(f.data)
            f.pending.clear()

    fdatasync = fsync

    def fsize(self, fd):
        with self._lock:
            self._op("fstat")
            return len(self._fds[fd].data)

    def ftruncate(self, fd, size):
        with self._lock:
            self._op("ftruncate")
            f = self._fds[fd]
            del f.data[size:]
            f.pending.append(("t", size))

    # -- paths

    def listdir(self, path):
        with self._lock:
            self._op(f"listdir {path}")
            prefix = path.rstrip("/") + "/"
            return [p[len(prefix):] for p in self._files if p.startswith(prefix) and "/" not in p[len(prefix):]]

    def exists(self, path):
        with self._lock:
            self._op(f"stat {path}")
            return path in self._files or path in self._dirs

    def _file(self, path):
        f = self._files.get(path)
        if f is None:
            raise FileNotFoundError(2, "No such file or directory", path)
        return f

    def size(self, path):
        with self._lock:
            self._op(f"stat {path}")
            return len(self._file(path).data)

    def read(self, path):
        with self._lock:
            self._op(f"read {path}")
            return bytes(self._file(path).data)

    def unlink(self, path):
        with self._lock:
            self._op(f"unlink {path}")
            if self._files.pop(path, None) is None:
                raise FileNotFoundError(2, "No such file or directory", path)

    def rename(self, source, target):
        with self._lock:
            self._op(f"rename {source}")
            self._files[target] = self._file(source)
            del self._files[source]

    def makedirs(self, path):
        with self._lock:
            self._op(f"mkdir {path}")
            self._dirs.add(path)  # (directories themselves are taken as durable)

    def sync_dir(self, path):
        with self._lock:
            self._op(f"fsync dir {path}")
            prefix = path.rstrip("/") + "/"
            for name in [p for p in self._durable_names if p.startswith(prefix)]:
                if name not in self._files:
                    del self._durable_names[name]
            for name, f in self._files.items():
                if name.startswith(prefix):
                    self._durable_names[name] = f

    def allocate(self, path, size):
        with self._lock:
            self._op(f"allocate {path}")
            f = self._files.setdefault(path, _File())
            f.data[len(f.data):size] = bytes(max(0, size - len(f.data)))
            f.durable = bytes(f.data)  # durably, as OsFiles.allocate (the name waits for sync_dir)
            f.pending.clear()

    def space(self, path):
        return 1 << 40, 1 << 40  # a simulated disk never fills

    def truncate(self, path, size):
        with self._lock:
            self._op(f"truncate {path}")
            f = self._file(path)
            del f.data[size:]
            f.durable = bytes(f.data)  # durably, as OsFiles.truncate
            f.pending.clear()

    def lock(self, path):
        return path  # one simulated process: nothing to keep out

    def unlock(self, lock):
        pass

    # -- looking

    def file_names(self, path):
        """The names in directory ``path`` (no operation counted)."""
        prefix = path.rstrip("/") + "/"
        return sorted(os.path.basename(p) for p in self._files if p.startswith(prefix))


def _pages_reached(data, pending, rng):
    """Apply to ``data`` the pages of ``pending`` writes that reached the disk (each by a coin)."""
    for change in pending:
        if change[0] == "t":
            if rng.randint(0, 1):
                del data[change[1]:]
            continue
        _, offset, chunk = change
        pos = 0
        while pos < len(chunk):
            at = offset + pos
            piece = chunk[pos:(at // codec.PAGE_SIZE + 1) * codec.PAGE_SIZE - offset]
            if rng.randint(0, 1):
                if len(data) < at:
                    data += bytes(at - len(data))
                data[at:at + len(piece)] = piece
            pos += len(piece)


class InlineFlusher:
    """A flusher without a thread: requests wait until the store pumps, then run
    in the pumping thread, in order (see ``open_store``)."""

    def __init__(self, data_dir, on_progress, on_failure, synced=0, on_full=None, on_low=None, files=None):
        self.writer = ChunkWriter(data_dir, files=files)
        self.writer.written = self.writer.synced = synced
        self.policy = FlushPolicy(self.writer, on_progress, on_full or (lambda message: None), on_failure,
                                  on_low=on_low)
        self._pending = []

    @property
    def full(self):
        return self.policy.full

    def submit(self, request):
        self._pending.append(request)

    def pump(self):
        while self._pending and self.policy.failed is None:
            batch, self._pending = self._pending, []
            self.policy.write(batch)  # its callbacks may submit more: the loop runs them too
        if self.policy.failed is None:
            self.policy.prepare()  # what the thread does when idle

    def stats(self):
        return self.writer.snapshot()

    def close(self):
        self.pump()
        try:
            self.writer.close()
        except SimulatedCrash:
            pass


def open_store(fs, path, **settings):
    """A Store on ``fs`` at ``path`` whose flushers run when it waits (deterministic)."""
    flushers = []

    def factory(data_dir, on_progress, on_failure, synced=0, on_full=None, on_low=None):
        flusher = InlineFlusher(data_dir, on_progress, on_failure, synced, on_full, on_low, files=fs)
        flushers.append(flusher)
        return flusher

    store = Store.open(path, flusher_factory=factory, files=fs, **settings)

    def pump(timeout):
        for flusher in flushers:
            flusher.pump()

    store.pump = pump
    return store
