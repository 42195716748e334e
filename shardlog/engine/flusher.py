"""The flusher of a disk: who turns the stream's write requests into durable bytes.

The engine talks to a flusher through ``submit(request)``, ``close()``,
``stats()``, ``help()`` where a caller may do the work itself, and the
callbacks it was built with: ``on_progress(seq, synced_offset)``,
``on_failure(error)``, ``on_full(message or None)`` and ``on_low(message or
None)`` (the disk runs on its spare: see workers/writer.py). ``ThreadFlusher`` is
the embedded implementation (one thread per data directory); the service runs
the same ``shardlog.workers.writer.ChunkWriter`` under the same ``policy`` in
a worker process per disk, behind the same interface
(``shardlog.server.worker_flusher``).
"""

import collections
import logging
import threading
import time

from shardlog.workers.files import OS_FILES
from shardlog.workers.policy import FlushPolicy
from shardlog.workers.writer import SPARE_BYTES, SPARE_RECHECK, ChunkWriter

log = logging.getLogger(__name__)


class ThreadFlusher:
    """Takes every request already waiting as one batch, writes it, fsyncs once.

    A thread does the work, but a caller about to block on a flush may do it
    instead when the thread is idle: it says so first (``expect_help``), so
    what it submits does not wake the thread, then carries it out (``help``).
    A lone writer then pays for its fsync and no thread hand-off: a wake-up
    and a switch to the thread and back cost about a third of an fsync here
    (issue 12). Batches are taken and carried out under one lock, so they run
    in submission order whoever runs them.
    """

    #: Seconds between attempts while the disk is full.
    retry_interval = 0.2

    def __init__(self, data_dir, on_progress, on_failure, synced=0, on_full=None, on_low=None, fsync=None,
                 files=OS_FILES, spare_bytes=SPARE_BYTES):
        self.writer = ChunkWriter(data_dir, fsync=fsync, files=files, spare_bytes=spare_bytes)
        self.writer.written = self.writer.synced = synced
        self.policy = FlushPolicy(self.writer, on_progress, on_full or (lambda message: None),
                                  self._failed, self.retry_interval, on_low)
        self._on_failure = on_failure
        self._pending = collections.deque()
        # ``with self._guard`` where the condition is not waited on: the same
        # lock, without the Condition's two Python-level calls per use.
        self._guard = threading.Lock()
        self._cond = threading.Condition(self._guard)
        self._work = threading.Lock()
        self._stop = False
        #: Callers between ``expect_help`` and the end of their ``help``.
        self._helpers = 0
        self._thread = threading.Thread(target=self._run, name=f"flusher:{data_dir}", daemon=True)
        self._thread.start()

    @property
    def full(self):
        return self.policy.full

    def submit(self, request):
        with self._guard:
            self._pending.append(request)
            if not self._helpers:
                self._cond.notify()

    def stats(self):
        return self.writer.snapshot()

    def expect_help(self):
        """A caller will ``help`` next (whatever happens meanwhile: the two go in a
        try/finally): until then, submitting does not wake the thread."""
        with self._guard:
            self._helpers += 1

    def help(self):
        """Carry out what waits now, in this thread, unless the flusher is busy;
        then wake the thread if anything is left for it (the busy thread's next
        batch, or what another caller submitted meanwhile)."""
        try:
            if self._pending and self.policy.may_write() and self._work.acquire(blocking=False):
                try:
                    self._work_once()
                finally:
                    self._work.release()
        finally:
            with self._guard:
                self._helpers -= 1
                if self._pending or self.writer.wants_prepare:  # (preparing is the thread's: see _run)
                    self._cond.notify()

    def close(self):
        """Finish what was submitted, then stop."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join()
        with self._work:  # (a caller's help may still be finishing its batch)
            self.writer.close()

    def _failed(self, exc):
        log.error("flusher of %s failed: %s", self.writer.data_dir, exc)
        self._on_failure(exc)

    def _work_once(self):
        with self._guard:
            batch = list(self._pending)
            self._pending.clear()
        kept = self.policy.write(batch)
        if kept:  # the disk is full: nothing is lost, the batch goes back in front
            with self._cond:
                self._pending.extendleft(reversed(kept))
                self._cond.notify()  # the thread retries, whoever ran this batch

    def _run(self):
        """Batches; and when idle, the next chunk's file made ahead, or a look
        at the free space now and then while on the spare."""
        policy, writer = self.policy, self.writer
        while True:
            with self._cond:
                while not self._pending and not self._stop and policy.low is None and not writer.wants_prepare:
                    self._cond.wait()
                idle = not self._pending and not self._stop
                if idle and policy.low is not None:
                    self._cond.wait(SPARE_RECHECK)
                    idle = not self._pending and not self._stop
                if not idle:
                    if self._stop and (not self._pending or policy.failed is not None):
                        return
                    if self._stop and policy.full is not None:
                        log.warning("%s: closing with %d requests not written: %s", self.writer.data_dir,
                                    len(self._pending), policy.full)
                        return
                    if not policy.may_write():  # full: new requests wait for the retry too
                        self._cond.wait(policy.retry_in())
                        continue
            with self._work:
                if not idle:
                    self._work_once()
                elif policy.low is not None:
                    policy.look_at_space(time.monotonic())
                else:
                    policy.prepare()
