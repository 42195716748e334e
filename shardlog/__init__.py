"""shardlog: durable log storage for hosts that run many Raft groups.

The errors and value types are imported here. ``Store`` and ``Group`` (the
engine) are loaded on first use (PEP 562), so a process that only talks to a
server (``shardlog.client``) never loads the engine, while one that embeds
the engine never loads ZeroMQ; tests/test_layers.py checks both.
"""

from shardlog.errors import (
    ChunkGap,
    ChunkMissing,
    CorruptedLog,
    DirectoryLocked,
    DiskFailed,
    DiskFull,
    GroupExists,
    GroupNotFound,
    InvalidArgument,
    LogIdMismatch,
    LogIdNonConsecutive,
    LogIdReversal,
    LogIndexNotFound,
    ShardlogError,
    StaleRequest,
    StoreClosed,
    Timeout,
    TooManyGroups,
    VoteReversal,
)
from shardlog.types import LogState

_ENGINE = ("Group", "Store")

__all__ = [
    "ChunkGap", "ChunkMissing", "CorruptedLog", "DirectoryLocked", "DiskFailed", "DiskFull", "Group", "GroupExists",
    "GroupNotFound", "InvalidArgument", "LogIdMismatch", "LogIdNonConsecutive", "LogIdReversal", "LogIndexNotFound",
    "LogState", "ShardlogError", "StaleRequest", "Store", "StoreClosed", "Timeout", "TooManyGroups", "VoteReversal",
]


def __getattr__(name):
    if name not in _ENGINE:
        raise AttributeError(f"module 'shardlog' has no attribute {name!r}")
    from shardlog.engine import store

    value = getattr(store, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
