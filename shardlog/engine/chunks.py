"""The chunks of one disk's stream and how many live entries each still holds.

A closed chunk can be deleted once no group has a live entry in it and the
records that made it dead are durable; deletion goes oldest first, so the
chunk offsets on disk never have a gap. Counting live entries per chunk (an
int per chunk, updated by ranges with bisect) keeps that decision O(chunks)
instead of a scan of every group.
"""

import os
from bisect import bisect_left, bisect_right

from workers.naming import chunk_path


class Chunk:
    __slots__ = ("start", "end", "records", "live", "dead_at", "closed_at")

    def __init__(self, start):
        self.start = start
        #: Global offset where the chunk ends; None while it is the open chunk.
        self.end = None
        self.records = 0
        self.live = 0
        #: Stream offset that must be durable before the chunk may go: the end
        #: of the stream when its last live entry died.
        self.dead_at = 0
        #: End of the next chunk's checkpoint: the state the chunk held lives
        #: on there, so it may go only once that is durable.
        self.closed_at = None

    @property
    def is_open(self):
        return self.end is None

    def __repr__(self):
        return f"Chunk({self.start}..{self.end}, live={self.live})"


class ChunkSet:
    """Ordered chunks of a disk; the last one is the open chunk."""

    def __init__(self):
        self.chunks = []
        self.starts = []
        #: The newest chunk, the one written to (an attribute: read on every append).
        self.open = None

    def __iter__(self):
        return iter(self.chunks)

    def __len__(self):
        return len(self.chunks)

    def add(self, start):
        chunk = self.open = Chunk(start)
        self.chunks.append(chunk)
        self.starts.append(start)
        return chunk

    def find(self, offset):
        """The chunk holding the byte at global ``offset``."""
        i = bisect_right(self.starts, offset) - 1
        if i < 0:
            raise LookupError(f"offset {offset} is before the oldest chunk")
        return self.chunks[i]

    def release(self, offsets, start, end, now):
        """Entries at array positions ``[start, end)`` of ``offsets`` died at stream offset ``now``."""
        while start < end:
            i = bisect_right(self.starts, offsets[start]) - 1
            chunk = self.chunks[i]
            if chunk.end is None:
                n = end - start
            else:
                n = bisect_left(offsets, chunk.end, start, end) - start
            chunk.live -= n
            if chunk.live == 0:
                chunk.dead_at = now
            start += n

    def removable(self, synced):
        """The oldest closed chunks that are dead and whose death is durable."""
        out = []
        for chunk in self.chunks[:-1]:
            if chunk.live or max(chunk.dead_at, chunk.closed_at or 0) > synced:
                break
            out.append(chunk)
        return out

    def drop_newest(self):
        self.chunks.pop()
        self.starts.pop()
        self.open = self.chunks[-1] if self.chunks else None

    def drop_oldest(self, n):
        del self.chunks[:n], self.starts[:n]

    def pinning_chunk(self):
        """The oldest chunk that still holds live entries, or None."""
        for chunk in self.chunks:
            if chunk.live:
                return chunk
        return None


class Readers:
    """Read-only descriptors of a disk's chunk files: at most ``limit``, the oldest
    opened closed first.

    Reads of payloads no longer cached go to the chunk files. A group that
    lags behind pins every chunk after its oldest entry, and reading it must
    not hold a descriptor per chunk forever: past a few thousand, "Too many
    open files" would break appends, ``stat`` and shutdown too. Oldest-opened
    rather than least-recently-used keeps a hit to one dict lookup; reads
    mostly move forward through the chunks, where the two are the same.
    """

    def __init__(self, data_dir, limit):
        self.data_dir = data_dir
        self.limit = limit
        #: Chunk start -> open descriptor; a reader looks here first (the hot path),
        #: and calls ``open`` on a miss.
        self.fds = {}

    def __len__(self):
        return len(self.fds)

    def open(self, chunk_start):
        fds = self.fds
        while len(fds) >= self.limit:
            os.close(fds.pop(next(iter(fds))))
        fd = fds[chunk_start] = os.open(chunk_path(self.data_dir, chunk_start), os.O_RDONLY)
        return fd

    def forget(self, chunk_start):
        """The chunk file is deleted: close its descriptor, if open."""
        fd = self.fds.pop(chunk_start, None)
        if fd is not None:
            os.close(fd)

    def close(self):
        while self.fds:
            os.close(self.fds.popitem()[1])
