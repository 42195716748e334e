"""shardlog: durable log storage for hosts that run many Raft groups.

Names are loaded on first use (PEP 562), so a process that needs only a leaf
module (a flush worker needs ``shardlog.wire`` and ``shardlog.naming``) does
not load the engine.
"""

import importlib

_WHERE = {
    "ChunkGap": "errors",
    "CorruptedLog": "errors",
    "DirectoryLocked": "errors",
    "DiskFailed": "errors",
    "DiskFull": "errors",
    "Group": "store",
    "GroupExists": "errors",
    "GroupNotFound": "errors",
    "InvalidArgument": "errors",
    "LogIdMismatch": "errors",
    "LogIdNonConsecutive": "errors",
    "LogIdReversal": "errors",
    "LogIndexNotFound": "errors",
    "LogState": "types",
    "ShardlogError": "errors",
    "Store": "store",
    "StoreClosed": "errors",
    "Timeout": "errors",
    "TooManyGroups": "errors",
    "VoteReversal": "errors",
}

__all__ = sorted(_WHERE)


def __getattr__(name):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'shardlog' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
