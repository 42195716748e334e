"""shardlog: durable log storage for hosts that run many Raft groups.

The errors and value types are imported here. ``Store`` and ``Group`` (the
engine), ``Client`` and ``AsyncClient`` (ZeroMQ) are loaded on first use
(PEP 562), so a process that only talks to a server never loads the engine,
while one that embeds the engine never loads ZeroMQ; tests/test_layers.py
checks both.
"""

from typing import TYPE_CHECKING

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

if TYPE_CHECKING:  # what __getattr__ gives, as type checkers should see it
    from shardlog.client.aio import AsyncClient
    from shardlog.client.blocking import Client
    from shardlog.engine.store import Group, Store

#: Names loaded on first use, and the module each comes from.
_LAZY = {"Group": "shardlog.engine.store", "Store": "shardlog.engine.store",
         "Client": "shardlog.client.blocking", "AsyncClient": "shardlog.client.aio"}

__all__ = [
    "AsyncClient", "ChunkGap", "ChunkMissing", "Client", "CorruptedLog", "DirectoryLocked", "DiskFailed", "DiskFull",
    "Group", "GroupExists",
    "GroupNotFound", "InvalidArgument", "LogIdMismatch", "LogIdNonConsecutive", "LogIdReversal", "LogIndexNotFound",
    "LogState", "ShardlogError", "StaleRequest", "Store", "StoreClosed", "Timeout", "TooManyGroups", "VoteReversal",
]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'shardlog' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
