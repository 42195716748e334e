"""The flusher of a disk: who turns the stream's write requests into durable bytes.

The engine talks to a flusher through ``submit(request)``, ``close()``,
``stats()`` and the two callbacks it was built with, ``on_progress(seq,
synced_offset)`` and ``on_failure(error)``. ``ThreadFlusher`` is the embedded
implementation (one thread per data directory); the service runs the same
``workers.writer.ChunkWriter`` in a worker process per disk behind the same
interface (``shardlog.server.worker_flusher``).
"""

import collections
import logging
import threading

from workers.writer import ChunkWriter, is_full

log = logging.getLogger(__name__)


class ThreadFlusher:
    """Takes every request already waiting as one batch, writes it, fsyncs once.

    A thread does the work, but a caller about to block on a flush may do it
    instead (``help``) when the thread is idle: a lone writer then pays for its
    fsync and no thread hand-offs. Batches are taken and carried out under one
    lock, so they run in submission order whoever runs them.
    """

    #: Seconds between attempts while the disk is full.
    retry_interval = 0.2

    def __init__(self, data_dir, on_progress, on_failure, synced=0, on_full=None, fsync=None):
        kwargs = {} if fsync is None else {"fsync": fsync}
        self.writer = ChunkWriter(data_dir, **kwargs)
        self.writer.written = self.writer.synced = synced
        self._on_progress = on_progress
        self._on_failure = on_failure
        self._on_full = on_full or (lambda message: None)
        self.full = None
        self._pending = collections.deque()
        self._cond = threading.Condition()
        self._work = threading.Lock()
        self._stop = False
        self._failed = False
        self._thread = threading.Thread(target=self._run, name=f"flusher:{data_dir}", daemon=True)
        self._thread.start()

    def submit(self, request):
        with self._cond:
            self._pending.append(request)
            self._cond.notify()

    def stats(self):
        return self.writer.snapshot()

    def help(self):
        """Carry out what waits now, in this thread, unless the flusher is busy."""
        if self._pending and self.full is None and self._work.acquire(blocking=False):
            try:
                self._work_once()
            finally:
                self._work.release()

    def close(self):
        """Finish what was submitted, then stop."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join()
        self.writer.close()

    def _work_once(self):
        with self._cond:
            batch = list(self._pending)
            self._pending.clear()
        if not batch or self._failed:
            return
        try:
            synced = self.writer.write_batch(batch)
        except Exception as exc:
            if is_full(exc):
                # Nothing is lost: the batch goes back in front, to be written
                # again (positionally) once there is space.
                with self._cond:
                    self._pending.extendleft(reversed(batch))
                if self.full is None:
                    self.full = f"{self.writer.data_dir}: {exc.strerror or exc}"
                    self._on_full(self.full)
                return
            self._failed = True  # an I/O error: the disk is failed
            log.error("flusher of %s failed: %s", self.writer.data_dir, exc)
            self._on_failure(exc)
        else:
            if self.full is not None:
                self.full = None
                self._on_full(None)
            self._on_progress(batch[-1].seq, synced)

    def _run(self):
        while True:
            with self._cond:
                while not self._pending and not self._stop:
                    self._cond.wait()
                if self._stop and (not self._pending or self._failed):
                    return
                if self._stop and self.full is not None:
                    log.warning("%s: closing with %d requests not written: %s", self.writer.data_dir,
                                len(self._pending), self.full)
                    return
                if self.full is not None:
                    self._cond.wait(self.retry_interval)
            with self._work:
                self._work_once()
