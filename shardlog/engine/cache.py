"""Bounds on the payloads kept in memory, and the rule that keeps them safe.

Payloads live in each group's ``payloads`` dict; this class only remembers, per
disk, the order they were written in (one entry per write, not per payload)
and how much they weigh. Because a disk's stream is written in order, the
oldest write is the first to become durable: eviction pops from the front while
over a limit *and* the front is durable. A payload that is not durable is never
evicted, whatever the limits say: it is the only copy until the fsync.
"""

from collections import deque

from .group import NO_PAYLOADS


class PayloadCache:
    __slots__ = ("max_items", "max_bytes", "writes", "items", "bytes", "hits", "misses")

    def __init__(self, max_items, max_bytes):
        self.max_items = max_items
        self.max_bytes = max_bytes
        #: ``(group, first index, last index, stream end offset, payload bytes)`` per write.
        self.writes = deque()
        self.items = 0
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def added(self, group, first, last, end_offset, nbytes):
        self.writes.append((group, first, last, end_offset, nbytes))
        self.items += last - first + 1
        self.bytes += nbytes

    def evictable(self, synced):
        """Over a limit, with the oldest write durable: only then is ``evict`` worth a call."""
        return (self.items > self.max_items or self.bytes > self.max_bytes) and self.writes[0][3] <= synced

    def evict(self, synced):
        """Drop the oldest durable payloads until 1/8 under both limits, so that
        appends to a full cache evict in batches, not one write per append."""
        writes = self.writes
        low_items = self.max_items - self.max_items // 8
        low_bytes = self.max_bytes - self.max_bytes // 8
        while (self.items > low_items or self.bytes > low_bytes) and writes:
            group, first, last, end, nbytes = writes[0]
            if end > synced:
                break
            writes.popleft()
            self.items -= last - first + 1
            self.bytes -= nbytes
            payloads = group.payloads
            if not payloads:
                continue
            offset_at = group.index.offset_at
            for i in range(first, last + 1):
                offset = offset_at(i)
                # A newer write at the same index (after a truncate) stays.
                if offset is None or offset < end:
                    payloads.pop(i, None)
            if not payloads:
                group.payloads = NO_PAYLOADS  # frees the dict's table

    def stat(self):
        return {"items": self.items, "bytes": self.bytes, "max_items": self.max_items,
                "max_bytes": self.max_bytes, "hits": self.hits, "misses": self.misses}
