"""A plain in-memory model of one group's Raft log (DESIGN.md section 1).

Dicts and tuples, no index, no files: the reference the store is checked
against by the property tests and the crash-torture harness. It raises the
same errors as the store for the same requests.
"""

from shardlog.errors import LogIdMismatch, LogIdNonConsecutive, LogIdReversal, LogIndexNotFound, VoteReversal
from shardlog.types import LogState, next_index


class ModelGroup:
    def __init__(self, state=LogState(), entries=()):
        self.vote, self.last, self.committed, self.purged, self.user_data = state
        self.entries = {log_id[1]: (log_id, payload) for log_id, payload in entries}

    def copy(self):
        return ModelGroup(self.state(), self.read())

    def state(self):
        return LogState(self.vote, self.last, self.committed, self.purged, self.user_data)

    def read(self):
        return [self.entries[i] for i in sorted(self.entries)]

    def save_vote(self, vote):
        if self.vote is not None and vote < self.vote:
            raise VoteReversal(self.vote, vote)
        self.vote = vote

    def append(self, entries):
        last = self.last
        for log_id, _ in entries:
            if last is not None and log_id <= last:
                raise LogIdReversal(last, log_id, "append")
            if last is not None and log_id[1] != last[1] + 1:
                raise LogIdNonConsecutive(last, log_id)
            last = log_id
        for log_id, payload in entries:
            self.entries[log_id[1]] = (log_id, payload)
        self.last = last

    def truncate(self, index):
        if index == next_index(self.purged):
            keep = self.purged
        elif index > 0 and index - 1 in self.entries:
            keep = self.entries[index - 1][0]
        else:
            raise LogIndexNotFound(index - 1 if index > 0 else index)
        for i in [i for i in self.entries if i >= next_index(keep)]:
            del self.entries[i]
        if self.last is not None and (keep is None or self.last > keep):
            self.last = keep

    def purge(self, upto):
        if upto[1] < next_index(self.purged):
            return
        if upto[1] in self.entries and self.entries[upto[1]][0] != upto:
            raise LogIdMismatch(self.entries[upto[1]][0], upto)
        above = sorted(i for i in self.entries if i > upto[1])
        if above and self.entries[above[0]][0][0] < upto[0]:
            raise LogIdMismatch(self.entries[above[0]][0], upto)  # a kept entry would sort below purged
        if not above and self.last is not None and upto < self.last:
            raise LogIdMismatch(self.last, upto)  # purged would end up above last
        for i in [i for i in self.entries if i <= upto[1]]:
            del self.entries[i]
        if self.purged is None or upto > self.purged:
            self.purged = upto
        if self.last is None or upto > self.last:
            self.last = upto

    def commit(self, log_id):
        if self.committed is not None and log_id < self.committed:
            raise LogIdReversal(self.committed, log_id, "commit")
        self.committed = log_id

    def save_user_data(self, user_data):
        self.user_data = user_data

    def flush(self, _=None):
        """Durability changes no state."""

    def apply(self, op, arg):
        getattr(self, op)(arg)


def records_of(op, arg):
    """The steps a crash can separate: an append is one record per entry."""
    if op == "append":
        return [("append", [entry]) for entry in arg]
    if op == "flush":
        return []
    return [(op, arg)]
