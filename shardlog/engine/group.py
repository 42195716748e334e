"""One Raft group's state in the engine, and a batch's copy-on-write shadow of it.

The rules (what a write may do and what it changes) live in ops.py; these
classes are the *group states* those rules run on, each keeping entries its
own way. ``GroupState`` is the real one: an index of where each live entry's
record is, the cached payloads, and the live-entry counts of the chunks the
records are in. ``Shadow`` is what a batch checks its ops against: a group as
the earlier ops of the batch would leave it, without touching the group.
"""

from shardlog.types import LogState

from .codec import APPEND_OVERHEAD
from .index import EntryIndex


class _NoPayloads(dict):
    """The payloads of a group that has none cached: one shared, empty dict
    (writers give the group a dict of its own first). At a million groups, an
    empty dict each is 64 MB, and one that held entries keeps its table.
    Writing to it would give every group the payload: it refuses."""

    def __setitem__(self, key, value):
        raise TypeError("NO_PAYLOADS is shared: give the group a dict of its own")

    setdefault = update = __setitem__


NO_PAYLOADS = _NoPayloads()


class GroupState(EntryIndex):
    """A group's state and, inherited, the index of its entries: one object per
    group rather than two (at a million groups, 88 bytes each)."""

    __slots__ = ("gid", "disk", "vote", "last", "committed", "purged", "user_data",
                 "index", "payloads", "chunk", "base")

    def __init__(self, gid, disk=None, state=LogState(), first=0, terms=0, places=None):
        EntryIndex.__init__(self, first, terms, places)
        #: The index of the group's entries (the group itself: see the class).
        self.index = self
        self.gid = gid
        #: The Disk the group lives on (placement never changes); while the
        #: disk is being read, recovery's replay. Either has ``chunks`` (their
        #: live-entry counts) and ``end`` (the stream offset now).
        self.disk = disk
        self.vote, self.last, self.committed, self.purged, self.user_data = state
        #: Cached payloads by log index (NO_PAYLOADS when none); see cache.py
        #: for when they go.
        self.payloads = NO_PAYLOADS
        #: The last chunk the group wrote into (see ChunkSet.touch).
        self.chunk = None
        #: The newest sealed chunk whose footer holds the group's state, or None
        #: (see ChunkSet.seal): that chunk may not go before the state moves on.
        self.base = None

    def state(self):
        return LogState(self.vote, self.last, self.committed, self.purged, self.user_data)

    def set_state(self, state):
        self.vote, self.last, self.committed, self.purged, self.user_data = state

    def next_held(self, index):
        idx = self.index
        if not len(idx):
            return None
        i = max(index + 1, idx.first)
        term = idx.term_at(i)
        return None if term is None else (term, i)

    # ------------------------------------------------------------ entry primitives (see ops.py)

    def add_entries(self, entries):
        """Nothing to do: an entry's place is known only to whoever placed its record,
        so the disk indexes entries as it encodes them and replay as it reads them."""

    def drop_from(self, index):
        idx = self.index
        start, end = idx.span_after(index - 1)
        if start < end:
            self._drop_payloads(idx.first + start - idx.head, idx.first + end - idx.head)
            self._release(start, end)
        idx.cut_tail(start, index)

    def drop_upto(self, index):
        idx = self.index
        start, end = idx.span_upto(index)
        if start < end:
            self._drop_payloads(idx.first, idx.first + end - start)
            self._release(start, end)
        idx.cut_head(end, index + 1)

    def drop_all(self):
        """The group is dropped: every entry it holds is dead."""
        idx = self.index
        self._release(idx.head, idx.positions())
        idx.clear()
        self.payloads = NO_PAYLOADS

    def _release(self, start, end):
        """Entries at array positions ``[start, end)`` die now."""
        idx = self.index
        chunks = self.disk.chunks
        chunks.release(idx, start, end, self.disk.end)
        chunks.live_bytes -= idx.payload_bytes(start, end) + (end - start) * APPEND_OVERHEAD

    def live_bytes(self):
        """Bytes of the records of the entries the group holds."""
        idx = self.index
        return idx.payload_bytes(idx.head, idx.positions()) + len(idx) * APPEND_OVERHEAD

    def restore(self, kept_end, purged, run_first, terms, offsets, sizes, chunk):
        """Replay of a footer's entries (see codec.FooterGroup): keep the entries
        held before the chunk below ``kept_end`` and above ``purged`` (a log id
        or None), then add the run, whose records are in ``chunk``. False if the
        run does not follow what is kept."""
        idx = self.index
        if kept_end == 0:
            self.drop_all()
        else:
            self.drop_from(kept_end)
        if purged is not None:
            self.drop_upto(purged[1])
        if not len(terms):
            return True
        if len(idx) and run_first != idx.next_index():
            return False
        if not len(idx):
            idx.start_at(run_first)
        idx.extend(terms, offsets, sizes)
        chunk.live += len(terms)
        self.disk.chunks.live_bytes += sum(sizes) + len(sizes) * APPEND_OVERHEAD
        return True

    def _drop_payloads(self, lo, hi):
        """Forget cached payloads of indexes ``[lo, hi)``."""
        payloads = self.payloads
        if not payloads or lo >= hi:
            return
        if hi - lo <= len(payloads):
            for i in range(lo, hi):
                payloads.pop(i, None)
        else:
            for i in [i for i in payloads if lo <= i < hi]:
                del payloads[i]
        if not payloads:
            self.payloads = NO_PAYLOADS


#: The state a group that does not exist yet is checked against.
NEW_GROUP = GroupState(None)


class Shadow:
    """A group as the earlier ops of a batch leave it; the group itself is untouched.

    Copy-on-write: the fields are copied, the entries are the base group's
    seen through what the batch added, truncated and purged, so a shadow of
    a group holding a million entries costs what the batch holds.
    """

    __slots__ = ("vote", "last", "committed", "purged", "user_data", "_base", "_cut", "_purged_to",
                 "_added")

    def __init__(self, group):
        self.vote, self.last, self.committed, self.purged, self.user_data = group.state()
        self._base = group
        self._cut = None  # base entries at and above this index are truncated away
        self._purged_to = -1  # base entries at and below this index are purged
        self._added = {}  # index -> term of the entries the batch appended

    state = GroupState.state
    set_state = GroupState.set_state

    def term_at(self, index):
        term = self._added.get(index)
        if term is not None:
            return term
        if index <= self._purged_to or (self._cut is not None and index >= self._cut):
            return None
        return self._base.term_at(index)

    def next_held(self, index):
        below = self._purged_to if self._purged_to > index else index
        found = self._base.next_held(below)
        if found is not None and self._cut is not None and found[1] >= self._cut:
            found = None
        for i, term in self._added.items():  # the batch's own entries: few
            if i > index and (found is None or i < found[1]):
                found = (term, i)
        return found

    def add_entries(self, entries):
        added = self._added
        for (term, index), _ in entries:
            added[index] = term

    def drop_from(self, index):
        for i in [i for i in self._added if i >= index]:
            del self._added[i]
        self._cut = index if self._cut is None else min(self._cut, index)

    def drop_upto(self, index):
        for i in [i for i in self._added if i <= index]:
            del self._added[i]
        self._purged_to = max(self._purged_to, index)
