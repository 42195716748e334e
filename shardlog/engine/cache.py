"""Bounds on the payloads kept in memory, and the rule that keeps them safe.

Payloads live in each group's ``payloads`` dict; this class only remembers, per
disk, the order they were written in (one entry per write, not per payload)
and how much they weigh. Because a disk's stream is written in order, the
oldest write is the first to become durable: eviction pops from the front while
over a limit *and* the front is durable. A payload that is not durable is never
evicted, whatever the limits say: it is the only copy until the fsync.

A write is remembered by its group's id, not the group: a tuple of ints only is
one the garbage collector stops tracking, and a full cache holds one per entry
of a round. Holding the groups, 91,500 tuples made each full collection take
16 ms, and those collections were the slowest rounds of 1000 groups (issue 12).
"""

from collections import deque

from .group import NO_PAYLOADS


class PayloadCache:
    __slots__ = ("max_items", "max_bytes", "disk", "writes", "items", "bytes", "hits", "misses")

    def __init__(self, max_items, max_bytes, disk):
        self.max_items = max_items
        self.max_bytes = max_bytes
        #: Whose payloads these are. Its ``groups`` is the store's dict of every
        #: group by id, those of its other disks too: a write's gid may name a
        #: group dropped since, or one created again under it, on this disk or
        #: another (whose offsets are another stream's).
        self.disk = disk
        #: ``(gid, first index, last index, stream end offset, payload bytes)`` per write.
        self.writes = deque()
        self.items = 0
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def added(self, gid, first, last, end_offset, nbytes):
        self.writes.append((gid, first, last, end_offset, nbytes))
        self.items += last - first + 1
        self.bytes += nbytes

    def evictable(self, synced):
        """Over a limit, with the oldest write durable: only then is ``evict`` worth a call."""
        return (self.items > self.max_items or self.bytes > self.max_bytes) and self.writes[0][3] <= synced

    def evict(self, synced):
        """Drop the oldest durable payloads until 1/8 under both limits, so that
        appends to a full cache evict in batches, not one write per append."""
        writes, disk = self.writes, self.disk
        groups = disk.groups
        low_items = self.max_items - self.max_items // 8
        low_bytes = self.max_bytes - self.max_bytes // 8
        while (self.items > low_items or self.bytes > low_bytes) and writes:
            gid, first, last, end, nbytes = writes[0]
            if end > synced:
                break
            writes.popleft()
            self.items -= last - first + 1
            self.bytes -= nbytes
            group = groups.get(gid)
            if group is None or group.disk is not disk:  # dropped (and maybe created on another disk)
                continue
            payloads = group.payloads
            if not payloads:
                continue
            # The write's indexes go but for those held now by a newer write
            # (after a truncate, or by the group created again after a drop):
            # live, with records at ``end`` or after. The offsets grow along
            # the index, so those are one run, found by a search rather than
            # an offset looked up per entry.
            index, stop = group.index, last + 1
            if first == last:  # one entry (a round of many groups): the same rule, without the search
                at = index.offset_at(first)
                if at is None or at < end:
                    payloads.pop(first, None)
                    if not payloads:
                        group.payloads = NO_PAYLOADS
                continue
            lo, hi = max(first, index.first), min(stop, index.next_index())
            if lo < hi:
                base = index.head - index.first
                kept = index.find_offset(end, lo + base, hi + base) - base
            else:
                kept = hi = stop
            pop = payloads.pop
            for i in range(first, kept):
                pop(i, None)
            for i in range(hi, stop):
                pop(i, None)
            if not payloads:
                group.payloads = NO_PAYLOADS  # frees the dict's table

    def stat(self):
        return {"items": self.items, "bytes": self.bytes, "max_items": self.max_items,
                "max_bytes": self.max_bytes, "hits": self.hits, "misses": self.misses}
