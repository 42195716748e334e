"""The value types of the Raft log: log ids, votes, and the per-group LogState.

Log ids and votes are plain ``(int, int)`` tuples so they compare the way
raft-log's do (as tuples) and cost nothing to build.
"""

from typing import Callable, NamedTuple, Optional, Tuple

LogId = Tuple[int, int]  # (term, index)
Vote = Tuple[int, int]  # (term, voted_for)
#: One log entry: ``((term, index), payload)``.
Entry = Tuple[LogId, bytes]
#: What ``flush(callback=...)`` calls once the writes are durable: with None, or the error.
FlushCallback = Callable[[Optional[Exception]], object]

U64_MAX = (1 << 64) - 1
U32_MAX = (1 << 32) - 1


class LogState(NamedTuple):
    """What a Raft node must persist besides its entries; every field may be None."""

    vote: Optional[Vote] = None
    last: Optional[LogId] = None
    committed: Optional[LogId] = None
    purged: Optional[LogId] = None
    user_data: Optional[bytes] = None


def next_index(log_id: Optional[LogId]) -> int:
    """Index right after ``log_id`` (0 when there is none), as raft-log's next_log_index."""
    return 0 if log_id is None else log_id[1] + 1
