"""The chunks of one disk's stream, and what keeps each of them on disk.

A sealed chunk can be deleted once it holds no live entry and is no group's
latest state, and once the records that made it so are durable; deletion goes
oldest first, so the chunk offsets on disk never have a gap. Live entries are
counted per chunk (an int per chunk, updated by ranges with bisect). A sealed
chunk's footer holds the state of every group it touched; a group's *base* is
the newest such chunk, and ``holders`` counts the groups whose base a chunk
is. Both make the decision O(chunks), never a scan of every group.
"""

from bisect import bisect_right

from shardlog.workers.naming import chunk_path


class Chunk:
    __slots__ = ("start", "end", "records", "live", "free_at", "touched", "holders", "relocate_cursor",
                 "carry_cursor")

    def __init__(self, start):
        self.start = start
        #: Global offset where the chunk ends; None while it is the open chunk.
        self.end = None
        self.records = 0
        self.live = 0
        #: Stream offset that must be durable before the chunk may go: where the
        #: stream ended when its last live entry died, when the state it held
        #: was carried forward, or when a later footer took that state over.
        self.free_at = 0
        #: Groups that wrote into the chunk while it was open, each once (a
        #: group dropped and created again counts twice): its footer's groups.
        self.touched = []
        #: Groups whose latest state is this chunk's footer (see ChunkSet.seal).
        self.holders = 0
        #: How far the scans of ``touched`` for entries to relocate and for
        #: state to carry forward have gone (each is bounded per call).
        self.relocate_cursor = 0
        self.carry_cursor = 0

    @property
    def is_open(self):
        return self.end is None

    def __repr__(self):
        return f"Chunk({self.start}..{self.end}, live={self.live}, holders={self.holders})"


class ChunkSet:
    """Ordered chunks of a disk; the last one is the open chunk."""

    def __init__(self):
        self.chunks = []
        self.starts = []
        #: The newest chunk, the one written to (an attribute: read on every append).
        self.open = None
        #: Bytes of the live entries' records, all chunks together.
        self.live_bytes = 0

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

    def release(self, index, start, end, now):
        """Entries at positions ``[start, end)`` of ``index`` (an EntryIndex) died at stream offset ``now``."""
        while start < end:
            i = bisect_right(self.starts, index.offset(start)) - 1
            chunk = self.chunks[i]
            if chunk.end is None:
                n = end - start
            else:
                n = index.find_offset(chunk.end, start, end) - start
            chunk.live -= n
            if chunk.live == 0 and chunk.free_at < now:
                chunk.free_at = now
            start += n

    def touch(self, group):
        """``group`` writes into the open chunk (the disk inlines this on appends)."""
        chunk = self.open
        if group.chunk is not chunk:
            group.chunk = chunk
            chunk.touched.append(group)

    def seal(self, chunk, groups):
        """``chunk``'s footer is written: it is the base of every group it touched
        that still exists (``groups``: gid -> group), and the chunks they left
        may go once that footer is durable."""
        for group in chunk.touched:
            self.leave_base(group, chunk.end)
            if groups.get(group.gid) is group:
                group.base = chunk
                chunk.holders += 1

    def leave_base(self, group, now):
        """The group's whole state (or its drop) was written again, in a record
        ending at stream offset ``now``: its base may go once that is durable."""
        base = group.base
        if base is not None:
            base.holders -= 1
            if base.free_at < now:
                base.free_at = now
            group.base = None

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

    def __init__(self, data_dir, limit, files):
        self.data_dir = data_dir
        self.limit = limit
        self.files = files
        #: Chunk start -> open descriptor; a reader looks here first (the hot path),
        #: and calls ``open`` on a miss.
        self.fds = {}

    def __len__(self):
        return len(self.fds)

    def open(self, chunk_start):
        fds = self.fds
        while len(fds) >= self.limit:
            self.files.close(fds.pop(next(iter(fds))))
        fd = fds[chunk_start] = self.files.open(chunk_path(self.data_dir, chunk_start), "r")
        return fd

    def forget(self, chunk_start):
        """The chunk file is deleted: close its descriptor, if open."""
        fd = self.fds.pop(chunk_start, None)
        if fd is not None:
            self.files.close(fd)

    def close(self):
        while self.fds:
            self.files.close(self.fds.popitem()[1])
