"""shardlog: durable log storage for hosts that run many Raft groups."""

from .errors import (ChunkGap, CorruptedLog, DirectoryLocked, DiskFailed, DiskFull,
                     GroupExists, GroupNotFound, InvalidArgument, LogIdMismatch,
                     LogIdNonConsecutive, LogIdReversal, LogIndexNotFound, ShardlogError,
                     StoreClosed, Timeout, TooManyGroups, VoteReversal)
from .store import Group, Store
from .types import LogState

__all__ = [
    "ChunkGap",
    "CorruptedLog",
    "DirectoryLocked",
    "DiskFailed",
    "DiskFull",
    "Group",
    "GroupExists",
    "GroupNotFound",
    "InvalidArgument",
    "LogIdMismatch",
    "LogIdNonConsecutive",
    "LogIdReversal",
    "LogIndexNotFound",
    "LogState",
    "ShardlogError",
    "Store",
    "StoreClosed",
    "Timeout",
    "TooManyGroups",
    "VoteReversal",
]
