"""One Raft group's state and the rules of raft-log that guard it.

Checks (``check_*``) raise and change nothing; they run before a byte is
encoded. Applies (``apply_*``) change memory and are shared by the write path
and by recovery, so a replayed stream rebuilds exactly what was acknowledged.
"""

from .errors import (LogIdMismatch, LogIdNonConsecutive, LogIdReversal, LogIndexNotFound,
                     VoteReversal)
from .index import EntryIndex
from .types import LogState, next_index


def _above(a, b):
    """``a > b`` where None is below everything (Option ordering in Rust)."""
    if a is None:
        return False
    return b is None or a > b


class GroupState:
    __slots__ = ("gid", "disk", "vote", "last", "committed", "purged", "user_data",
                 "index", "payloads")

    def __init__(self, gid, disk=None, state=LogState()):
        self.gid = gid
        #: The Disk this group lives on (placement never changes).
        self.disk = disk
        self.vote, self.last, self.committed, self.purged, self.user_data = state
        self.index = EntryIndex()
        #: Cached payloads by log index; see cache.py for when they go.
        self.payloads = {}

    def state(self):
        return LogState(self.vote, self.last, self.committed, self.purged, self.user_data)

    def set_state(self, state):
        self.vote, self.last, self.committed, self.purged, self.user_data = state

    # ------------------------------------------------------------ checks

    def check_vote(self, vote):
        if _above(self.vote, vote):
            raise VoteReversal(self.vote, vote)

    def check_append(self, entries):
        """Check a batch of ``(log_id, payload)`` as if each were appended in turn."""
        last = self.last
        for log_id, _ in entries:
            if last is not None:
                if log_id <= last:
                    raise LogIdReversal(last, log_id, "append")
                if log_id[1] != last[1] + 1:
                    raise LogIdNonConsecutive(last, log_id)
            last = log_id
        expected = self.index.expected_next() if entries else None
        if expected is not None and entries[0][0][1] != expected:
            # Only a state that disagrees with the entries (never written by
            # this API) gets here; refuse rather than misfile entries.
            raise LogIdNonConsecutive(self.last, entries[0][0])

    def truncate_target(self, index):
        """The log id a truncate at ``index`` keeps as the last one (None: keep nothing)."""
        if index == next_index(self.purged):
            return self.purged
        term = self.index.term_at(index - 1) if index > 0 else None
        if term is None:
            raise LogIndexNotFound(index - 1 if index > 0 else index)
        return (term, index - 1)

    def check(self, op, arg):
        """Check write ``op`` without applying it; returns what the check found
        (truncate: the log id kept; purge: whether it is a no-op)."""
        if op == "append":
            return self.check_append(arg)
        if op == "save_vote":
            return self.check_vote(arg)
        if op == "commit":
            return self.check_commit(arg)
        if op == "truncate":
            return self.truncate_target(arg)
        if op == "purge":
            return self.purge_is_noop(arg)
        if op != "save_user_data":
            raise ValueError(f"unknown write op {op!r}")
        return None

    def purge_is_noop(self, upto):
        """True when there is nothing to purge; raises if ``upto`` contradicts the log."""
        if upto[1] < next_index(self.purged):
            return True
        term = self.index.term_at(upto[1])
        if term is not None and term != upto[0]:
            raise LogIdMismatch((term, upto[1]), upto)
        last = self.last
        if last is not None and upto[1] != last[1] and (upto[1] > last[1]) != (upto > last):
            # Log ids must order as their indexes do: below ``last`` a higher
            # term would lift ``last`` above entries the log still holds; beyond
            # ``last`` a lower term would leave ``purged`` above ``last``.
            raise LogIdMismatch(last, upto)
        return False

    def check_commit(self, log_id):
        if _above(self.committed, log_id):
            raise LogIdReversal(self.committed, log_id, "commit")

    # ------------------------------------------------------------ applies

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

    def apply_append(self, log_id, offset, size, chunks):
        self.index.append(log_id[1], log_id[0], offset, size)
        chunks.open.live += 1
        self.last = log_id

    def apply_truncate(self, log_id, chunks, now):
        keep = next_index(log_id)
        index = self.index
        start, end = index.span_after(keep - 1)
        if start < end:
            self._drop_payloads(index.first + start - index.head, index.first + end - index.head)
            chunks.release(index.offsets, start, end, now)
            index.cut_tail(start)
        if _above(self.last, log_id):
            self.last = log_id

    def apply_purge(self, upto, chunks, now):
        index = self.index
        start, end = index.span_upto(upto[1])
        if start < end:
            self._drop_payloads(index.first, index.first + end - start)
            chunks.release(index.offsets, start, end, now)
        index.cut_head(end, upto[1] + 1)
        if _above(upto, self.purged):
            self.purged = upto
        if _above(upto, self.last):
            self.last = upto

    def release_all(self, chunks, now):
        """The group is dropped: every entry it holds is dead."""
        index = self.index
        chunks.release(index.offsets, index.head, len(index.terms), now)
        index.clear()
        self.payloads.clear()


class Shadow:
    """A group as the earlier ops of a batch would leave it, for checking later ones.

    Duck-types the parts of GroupState (and of its index) that the checks
    read, without touching the real group.
    """

    def __init__(self, group):
        self.gid = group.gid
        self.vote, self.last, self.committed, self.purged, self.user_data = group.state()
        self._base = group.index
        self._cut = None  # base entries at and above this index are truncated away
        self._purged_to = -1  # base entries at and below this index are purged
        self._added = {}
        self.index = self

    def term_at(self, index):
        if index in self._added:
            return self._added[index]
        if index <= self._purged_to or (self._cut is not None and index >= self._cut):
            return None
        return self._base.term_at(index)

    def expected_next(self):
        return None  # only the real index can tell; the batch's append checks it there

    check = GroupState.check
    check_vote = GroupState.check_vote
    check_append = GroupState.check_append
    truncate_target = GroupState.truncate_target
    purge_is_noop = GroupState.purge_is_noop
    check_commit = GroupState.check_commit

    def check_and_apply(self, op, arg):
        found = self.check(op, arg)
        if op == "save_vote":
            self.vote = arg
        elif op == "append":
            for log_id, _ in arg:
                self._added[log_id[1]] = log_id[0]
            if arg:
                self.last = arg[-1][0]
        elif op == "truncate":
            keep = found
            first_gone = next_index(keep)
            for i in [i for i in self._added if i >= first_gone]:
                del self._added[i]
            self._cut = first_gone if self._cut is None else min(self._cut, first_gone)
            if _above(self.last, keep):
                self.last = keep
        elif op == "purge" and not found:
            for i in [i for i in self._added if i <= arg[1]]:
                del self._added[i]
            self._purged_to = max(self._purged_to, arg[1])
            if _above(arg, self.purged):
                self.purged = arg
            if _above(arg, self.last):
                self.last = arg
        elif op == "commit":
            self.committed = arg
        elif op == "save_user_data":
            self.user_data = arg
