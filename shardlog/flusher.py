"""The flusher of a disk: who turns the stream's write requests into durable bytes.

The engine talks to a flusher through three calls: ``submit(request)``,
``close()`` and the two callbacks it was built with, ``on_progress(seq,
synced_offset)`` and ``on_failure(error)``. ``ThreadFlusher`` is the embedded
implementation (one thread per data directory); the service runs the same
``workers.writer.ChunkWriter`` in a worker process per disk behind the same
interface.
"""

import logging
import queue
import threading

from workers.writer import ChunkWriter

log = logging.getLogger(__name__)

_STOP = object()


class ThreadFlusher:
    """Takes every request already waiting as one batch, writes it, fsyncs once."""

    def __init__(self, data_dir, on_progress, on_failure, synced=0, fsync=None):
        self._queue = queue.SimpleQueue()
        kwargs = {} if fsync is None else {"fsync": fsync}
        self.writer = ChunkWriter(data_dir, **kwargs)
        self.writer.written = self.writer.synced = synced
        self._on_progress = on_progress
        self._on_failure = on_failure
        self._thread = threading.Thread(target=self._run, name=f"flusher:{data_dir}", daemon=True)
        self._thread.start()

    def submit(self, request):
        self._queue.put(request)

    def stats(self):
        return dict(self.writer.stats)

    def close(self):
        """Finish what was submitted, then stop."""
        self._queue.put(_STOP)
        self._thread.join()
        self.writer.close()

    def _run(self):
        q = self._queue
        failed = False
        while True:
            batch = [q.get()]
            while True:
                try:
                    batch.append(q.get_nowait())
                except queue.Empty:
                    break
            stop = batch[-1] is _STOP or _STOP in batch
            batch = [r for r in batch if r is not _STOP]
            if batch and not failed:
                try:
                    synced = self.writer.write_batch(batch)
                except Exception as exc:  # an I/O error: the disk is failed
                    failed = True
                    log.error("flusher of %s failed: %s", self.writer.data_dir, exc)
                    self._on_failure(exc)
                else:
                    self._on_progress(batch[-1].seq, synced)
            if stop:
                return
