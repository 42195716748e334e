"""Positional writes of a batch into chunk files, one fsync round per batch.

The writer is told nothing but offsets: every request says which chunk file
and which global offset its bytes belong at. It keeps the files it wrote since
their last fsync and, when any request of a batch asks for durability, fsyncs
them oldest first, then the directory if it created a file. Before the first
byte of a new chunk it makes the older chunks durable, so a crash can leave a
torn tail only in the newest chunk. Removals wait for
that fsync, so a chunk is never deleted before the records that made it dead
are on stable storage. Errors propagate: the caller must treat the disk as
failed, never retry an fsync as if nothing happened.

Preallocated chunk files. A write request may carry ``reserve``: the size
its chunk's file gets when the writer creates it, zero-filled
(``posix_fallocate``). Records then land inside the file, its size does not
change, and an fdatasync has no metadata to write: 0.67-0.76x the time of
one that grows the file (issue 12). The next chunk's file is made ahead
(``prepare``, PREPARED_FILE, its name made durable), by the writer's owner
while it is idle, and renamed into place when the chunk begins, without a
directory fsync: after a power loss recovery gives a prepared file that
opens with a chunk header that chunk's name. A prepared file left by an
earlier run is never used for a new chunk. Before a chunk begins, the one
before it is cut to its last record and made durable. What recovery tells
apart (shardlog.engine.recovery): zeros after the newest chunk's last record
are room not used yet; a record cut short then zeros is a torn write; zeros
after a footer are a cut the writer did not get to make.
"""

import bisect
import collections
import errno
import logging
import os
import time

from .files import OS_FILES
from .marks import MarksWriter, read_marks
from .messages import RemoveRequest
from .naming import PREPARED_FILE, SPARE_FILE, chunk_path, list_chunks

log = logging.getLogger(__name__)

#: Errors of a write that say the disk (or the process's file size limit) is
#: full: the bytes were not written, and writing them again later is safe.
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


#: The spare file (SPARE_FILE) is disk space held back so that, once the disk
#: fills up, the records that free space (purge, truncate, drop_group) can
#: still be written. Its size: this much, or a 64th of a smaller file system.
SPARE_BYTES = 8 << 20
#: Seconds between looks at the free space while the disk runs on its spare.
SPARE_RECHECK = 1.0

#: Upper bounds (seconds) of the sync-round latency histogram; one more bucket holds the rest.
SYNC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class SyncFailed(OSError):
    """An fsync failed: the page cache may have dropped the data; never retry it."""


def is_full(exc):
    return isinstance(exc, OSError) and not isinstance(exc, SyncFailed) and exc.errno in FULL_ERRNOS


def fsync_dir(path, files=OS_FILES):
    files.sync_dir(path)


class ChunkWriter:
    def __init__(self, data_dir, fsync=None, sync_trace=None, files=OS_FILES, spare_bytes=0):
        self.data_dir = os.fspath(data_dir)
        self.files = files
        self._fsync = fsync or files.fdatasync
        #: Testing only: before each fsync round, the offset it will make
        #: durable is written here, so a crash test knows which bytes a
        #: simulated power loss may damage (only those past it).
        self._trace_fd = None if sync_trace is None else os.open(sync_trace, os.O_WRONLY | os.O_CREAT, 0o644)
        #: Open file descriptors by chunk start offset.
        self._fds = {}
        #: Chunks written since their last fsync.
        self._dirty = set()
        #: RemoveRequests of the batch just written, carried out by ``remove_all``.
        self._removals = []
        self._dir_dirty = False
        #: Where the last fsync round left the stream durable (0: none yet).
        self._round_synced = 0
        #: End of the last byte written; everything below is durable once synced.
        self.written = 0
        self.synced = 0
        self.stats = {"batches": 0, "writes": 0, "bytes": 0, "fsyncs": 0, "sync_rounds": 0,
                      "fsync_seconds": 0.0, "removed": 0, "sync_buckets": [0] * (len(SYNC_BUCKETS) + 1)}
        #: Seconds of the latest sync rounds, for percentiles.
        self._latencies = collections.deque(maxlen=1024)
        self._rate_mark = (time.monotonic(), 0)
        marks = read_marks(self.data_dir, files)
        if marks is None:
            chunks = list_chunks(self.data_dir, files)[0]
            marks = (chunks[0][0] if chunks else 0, 0)
        self.marks = MarksWriter(self.data_dir, *marks, files=files)
        self._spare_wanted = spare_bytes
        self._spare_path = os.path.join(self.data_dir, SPARE_FILE)
        #: Why the disk runs on its spare (None: the spare is held, or none is wanted).
        self.low = None
        self._spare_checked = 0.0
        self.restore_spare()
        self._prepared_path = os.path.join(self.data_dir, PREPARED_FILE)
        #: Size of the chunk files to make ahead: the latest request's reserve.
        self._reserve = 0
        #: Size of the prepared file this writer made (0: none).
        self._prepared = 0
        #: ``prepare`` tried since the last chunk began (a disk without room is not asked again).
        self._prepare_tried = False
        self._discard_prepared()

    def _begin(self, chunk, reserve):
        """Open ``chunk``'s file for the first time in this writer. The chunk
        before it is cut to its end and made durable first: after a crash,
        only the newest chunk can have a torn tail or room not used yet."""
        self._reserve = reserve
        older = [c for c in self._fds if c < chunk]
        if older:
            before = max(older)
            if self.files.fsize(self._fds[before]) > chunk - before:
                self.files.ftruncate(self._fds[before], chunk - before)
                self._dirty.add(before)
        else:
            # A writer started after the chunk before was sealed (a worker
            # restarted): that chunk may still have its room after the footer.
            # Cut it too, durably, so that every chunk but the newest is its
            # size in the stream (the next open reads its footer).
            before = max((c for c, _ in list_chunks(self.data_dir, self.files)[0] if c < chunk), default=None)
            path = None if before is None else chunk_path(self.data_dir, before)
            if path is not None and self.files.size(path) > chunk - before:
                self.files.truncate(path, chunk - before)
        if self._dirty and min(self._dirty) < chunk:
            self.sync()
        if not self._fds and self.marks.create():
            self.files.sync_dir(self.data_dir)
        path = chunk_path(self.data_dir, chunk)
        renamed = False
        if reserve and self.low is None and not self.files.exists(path):
            if not self._prepared:  # (one made for another reserve is used as it is: no fallocate here)
                self._prepare_tried = False
                self.prepare()
            if self._prepared:
                # Not made durable: recovery finds the chunk under the prepared
                # name if the rename did not reach the disk, and the prepared
                # file's own name is durable (``prepare``). One directory fsync
                # fewer in every rotation (issue 12).
                self.files.rename(self._prepared_path, path)
                self._prepared = 0
                renamed = True
        self._prepare_tried = False
        fd = self.files.open(path, "w")
        self._fds[chunk] = fd
        if not renamed:
            # The file may be new, or created by a worker that died before
            # fsyncing the directory: make its entry durable either way.
            self._dir_dirty = True
        return fd

    # ------------------------------------------------------------ preallocated chunk files

    @property
    def wants_prepare(self):
        """Whether ``prepare`` has work: its owner calls it when idle (and, when
        this is true, it does change it: an owner may loop on it)."""
        return (bool(self._reserve) and self._prepared != self._reserve and not self._prepare_tried
                and self.low is None)

    def prepare(self):
        """Make the next chunk's file: ``reserve`` zero bytes, allocated and durable.
        Without room for it (or on the spare), chunks grow as they are written."""
        if not self.wants_prepare:
            return
        self._prepare_tried = True
        self._discard_prepared()
        try:
            self.files.allocate(self._prepared_path, self._reserve)
        except OSError as exc:
            log.warning("%s: chunk files are not preallocated for now: %s", self.data_dir, exc)
            self._discard_prepared()
            return
        # Its name durable before records go into it: the rename that puts it
        # in place is not (``_begin``). This also makes the last such rename
        # durable, so at most the newest chunk has its old name. A failure is
        # an fsync's, and fails the disk (FlushPolicy.prepare).
        try:
            self.files.sync_dir(self.data_dir)
        except OSError as exc:
            raise SyncFailed(exc.errno, f"fsync of the directory failed: {exc.strerror}") from exc
        self._prepared = self._reserve

    def _discard_prepared(self):
        self._prepared = 0
        try:
            self.files.unlink(self._prepared_path)
        except FileNotFoundError:
            pass

    # ------------------------------------------------------------ the spare

    def restore_spare(self, now=None):
        """Hold the spare (again) when there is room for it and as much again;
        while there is not, ``low`` says why. At most once per SPARE_RECHECK
        seconds when ``now`` is given."""
        if not self._spare_wanted:
            return
        if now is not None:
            if now - self._spare_checked < SPARE_RECHECK:
                return
            self._spare_checked = now
        free, total = self.files.space(self.data_dir)
        size = min(self._spare_wanted, total // 64)
        if size <= 0:  # a file system that reports no size (some FUSE, NFS): no spare
            self.low = None
            return
        if self.files.exists(self._spare_path) and self.files.size(self._spare_path) >= size:
            self.low = None
            return
        if free < 2 * size:
            self.low = (f"{self.data_dir}: {free} bytes free, too few to hold back the spare of {size} bytes "
                        "for purge, truncate and drop_group")
            return
        try:
            self.files.allocate(self._spare_path, size)
            self.files.sync_dir(self.data_dir)
        except OSError as exc:
            if not is_full(exc):
                raise
            self._drop_spare()
            if exc.errno == errno.EFBIG:  # a file size limit, not the disk: no spare then
                self._spare_wanted = 0
                self.low = None
                return
            self.low = f"{self.data_dir}: no room to hold back the spare of {size} bytes: {exc.strerror}"
            return
        self.low = None

    def _drop_spare(self):
        try:
            self.files.unlink(self._spare_path)
        except FileNotFoundError:
            return False
        self.files.sync_dir(self.data_dir)
        return True

    # ------------------------------------------------------------ writing

    def write_batch(self, requests):
        """Carry out ``requests`` in order; returns the durable offset afterwards.

        The first time the disk is found full, the spare goes and the batch
        is written again (positional writes: the same bytes at the same
        offsets); the disk then runs on its spare (``low``) until space is
        freed."""
        if self.low is not None:
            self.restore_spare(time.monotonic())
        try:
            return self._write_batch(requests)
        except OSError as exc:
            # Only a write found the disk full (a failed fsync is never
            # retried: see SyncFailed), and not a file size limit (EFBIG),
            # which the spare would not help.
            if not (is_full(exc) and exc.errno != errno.EFBIG and self._spare_wanted and self._drop_spare()):
                raise
            self.low = (f"{self.data_dir}: the disk filled up ({exc.strerror}); running on the spare: "
                        "only records that free space are taken until space is freed")
        return self._write_batch(requests)

    def _write_batch(self, requests):
        """Write and sync; the removals wait for ``remove_all``, after the batch is reported."""
        stats = self.stats
        stats["batches"] += 1
        removals = self._removals = []
        sync = False
        for req in requests:
            if isinstance(req, RemoveRequest):
                removals.append(req)
                continue
            if req.data:
                fd = self._fds.get(req.chunk)
                if fd is None:
                    fd = self._begin(req.chunk, req.reserve)
                elif self._dirty and min(self._dirty) < req.chunk:
                    # A new chunk is begun only once the older ones are durable:
                    # then after a crash only the newest chunk can have a torn
                    # tail, and damage anywhere else is real damage.
                    self.sync()
                data = req.data
                size = len(data)
                pos = req.at - req.chunk
                n = self.files.pwrite(fd, data, pos)
                if n < size:  # (a short write: the rest, in as many calls as it takes)
                    view = memoryview(data)[n:]
                    pos += n
                    while view:
                        if n == 0:  # (no progress: a file system that takes nothing and says nothing)
                            raise OSError(errno.EIO, f"a write to chunk {req.chunk} took no bytes")
                        n = self.files.pwrite(fd, view, pos)
                        view = view[n:]
                        pos += n
                self._dirty.add(req.chunk)
                if req.at + size > self.written:
                    self.written = req.at + size
                stats["writes"] += 1
                stats["bytes"] += size
            sync = sync or req.sync
        if sync or removals:
            self.sync()
        return self.synced

    def take_removals(self):
        """The removals of the batch just written (its fsync made them safe)."""
        removals, self._removals = self._removals, []
        return removals

    def remove_all(self, removals):
        for req in removals:
            self.remove(req.chunks, req.end)

    def sync(self):
        if self._trace_fd is not None:
            os.pwrite(self._trace_fd, b"%020d\n" % self.written, 0)
        t0 = time.perf_counter()
        try:
            dirty = self._dirty
            for chunk in (dirty if len(dirty) == 1 else sorted(dirty)):
                self._fsync(self._fds[chunk])
            self.stats["fsyncs"] += len(dirty)
            if self._dir_dirty:
                self.files.sync_dir(self.data_dir)
                self._dir_dirty = False
        except OSError as exc:
            raise SyncFailed(exc.errno, f"fsync failed: {exc.strerror}") from exc
        elapsed = time.perf_counter() - t0
        self.stats["fsync_seconds"] += elapsed
        self.stats["sync_rounds"] += 1
        self.stats["sync_buckets"][bisect.bisect_left(SYNC_BUCKETS, elapsed)] += 1
        self._latencies.append(elapsed)
        self._dirty.clear()
        self.synced = self._round_synced = self.written
        # Only the newest file is still being written; keep its descriptor.
        if len(self._fds) > 1:
            newest = max(self._fds)
            for chunk in [c for c in self._fds if c != newest]:
                self.files.close(self._fds.pop(chunk))

    def record_synced(self):
        """Write to the marks how far this writer's fsync rounds made the stream
        durable. Its owner calls it after reporting a batch, not inside
        ``sync``: the mark need not be durable and may lag, and its write then
        delays no reply (issue 12). Not ``synced``, which starts where recovery
        ended: the newest chunk's name may not be durable until a round has
        fsynced the directory (a review found the marks then ran ahead of the
        chunks on disk, and the next open refused them). After every batch,
        though it costs a write call per durable append (3.5 us of 30 in a hot
        embedded loop): past the mark, damage to acknowledged records would be
        cut as a torn tail after a crash (a review found it of a mark written
        once per 4 KiB)."""
        self.marks.set_synced(self._round_synced)

    def snapshot(self):
        """The counters, with sync-round latency percentiles and the rate since the last snapshot."""
        out = dict(self.stats)
        out["sync_buckets"] = list(self.stats["sync_buckets"])
        lat = sorted(self._latencies)
        if lat:
            out["sync_p50_us"] = round(lat[len(lat) // 2] * 1e6)
            out["sync_p99_us"] = round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e6)
        now = time.monotonic()
        then, rounds = self._rate_mark
        if now - then >= 0.5:
            out["sync_rounds_per_s"] = round((self.stats["sync_rounds"] - rounds) / (now - then), 1)
            self._rate_mark = (now, self.stats["sync_rounds"])
            self._last_rate = out["sync_rounds_per_s"]
        else:
            out["sync_rounds_per_s"] = getattr(self, "_last_rate", 0.0)
        return out

    def remove(self, chunks, end):
        """Delete the chunk files starting at ``chunks``, the last of which ends at ``end``.

        The marks say first where the stream begins now (``end``, not the
        file's size, which may count room after the footer: the next open
        deletes every chunk below the marks' oldest). A crash among the
        unlinks leaves files below it, which the next open deletes; for the
        same reason the unlinks need not be durable: the directory is not
        fsynced for them, which keeps a deletion to one fsync (issue 12)."""
        if end > self.marks.oldest:  # (else a removal sent twice: done before)
            self.marks.set_oldest(end)
        for chunk in chunks:
            fd = self._fds.pop(chunk, None)
            if fd is not None:
                self.files.close(fd)
            try:
                self.files.unlink(chunk_path(self.data_dir, chunk))
            except FileNotFoundError:
                pass  # a removal sent twice
            self.stats["removed"] += 1
        if self.low is not None:
            self.restore_spare()

    def close(self):
        for fd in self._fds.values():
            self.files.close(fd)
        self._fds.clear()
        if self._prepared:  # a stopped disk keeps no chunk's worth of zeros (the next run would not use it)
            try:
                self._discard_prepared()
            except OSError as exc:
                log.warning("%s: could not delete %s: %s", self.data_dir, PREPARED_FILE, exc)
        self.marks.close()
        if self._trace_fd is not None:
            os.close(self._trace_fd)
            self._trace_fd = None
