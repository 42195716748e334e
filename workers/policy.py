"""What a flusher does with a disk's requests: the one rule for the flush thread and the worker process.

Every request already waiting is written as one batch with one fsync round.
A disk that is full (ENOSPC, EFBIG, EDQUOT on a write) is not a failure: the
bytes were not written, so the batch is kept and written again, at the same
offsets, after ``retry_interval``. Any other error fails the disk for good:
after a failed fsync the page cache may have dropped the data, so nothing is
retried as if it had not happened, and nothing more is written.
"""

import time

from .writer import is_full


class FlushPolicy:
    def __init__(self, writer, on_done, on_full, on_failed, retry_interval=0.2, on_low=None):
        self.writer = writer
        #: ``on_done(seq, synced)`` after a batch; ``on_full(message or None)`` when
        #: the disk fills up or has room again; ``on_failed(error)`` once;
        #: ``on_low(message or None)`` when the disk begins or stops running on
        #: its spare (see ChunkWriter.write_batch).
        self._on_done = on_done
        self._on_full = on_full
        self._on_failed = on_failed
        self._on_low = on_low or (lambda message: None)
        self.retry_interval = retry_interval
        #: Why the disk takes no bytes for now (None: it does).
        self.full = None
        #: Why the disk takes only records that free space (None: it takes any).
        self.low = writer.low
        if self.low is not None:
            self._on_low(self.low)
        #: Why the disk takes no bytes ever again (None: it is healthy).
        self.failed = None
        self._retry_at = 0.0

    def may_write(self, now=None):
        """False while the disk failed, or is full and the retry is not due."""
        if self.failed is not None:
            return False
        return self.full is None or (time.monotonic() if now is None else now) >= self._retry_at

    def retry_in(self):
        """Seconds until a full disk is tried again (0 when it may be now)."""
        return max(0.0, self._retry_at - time.monotonic()) if self.full is not None else 0.0

    def write(self, batch):
        """Carry out ``batch`` (requests in order); returns the requests to keep for a
        retry (the whole batch when the disk is full), else ``()``."""
        if self.failed is not None or not batch:
            return ()
        try:
            synced = self.writer.write_batch(batch)
        except Exception as exc:
            self.note_low()
            if is_full(exc):
                self._retry_at = time.monotonic() + self.retry_interval
                if self.full is None:
                    self.full = f"{self.writer.data_dir}: {exc.strerror or exc}"
                    self._on_full(self.full)
                return batch
            self._fail(exc)
            return ()
        if self.writer.low != self.low:
            self.note_low()
        if self.full is not None:
            self.full = None
            self._on_full(None)
        removals = self.writer.take_removals()
        if removals:
            # What is durable is answered before the chunks go: deleting them
            # (the marks' fsync, the unlinks) delays no flush.
            self._on_done(removals[0].seq - 1, synced)
            try:
                self.writer.remove_all(removals)
            except Exception as exc:
                self._fail(exc)
                return ()
        self._on_done(batch[-1].seq, synced)
        self.writer.record_synced()
        return ()

    def prepare(self):
        """While idle: the next chunk's file, made ahead (ChunkWriter.prepare).
        Its directory fsync failing fails the disk, as a batch's would."""
        if self.failed is not None:
            return
        try:
            self.writer.prepare()
        except Exception as exc:
            self._fail(exc)

    def _fail(self, exc):
        self.failed = f"{self.writer.data_dir}: {exc}"
        self._on_failed(exc)

    def look_at_space(self, now):
        """While idle on the spare: hold it again if space was freed meanwhile
        (by someone else), and report it (at most once per SPARE_RECHECK)."""
        self.writer.restore_spare(now)
        self.note_low()

    def note_low(self):
        """Report a change of the writer's ``low`` (after writing, or looking at the space)."""
        low = self.writer.low
        if low != self.low:
            self.low = low
            self._on_low(low)
