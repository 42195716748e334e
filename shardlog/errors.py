"""Errors of shardlog, one class per rule they protect, under one base class.

Each class carries a ``code``: the name a client sees over the wire (see
docs/protocol.md), so that an exception and an error reply say the same thing.
"""


class ShardlogError(Exception):
    """Base class of every error shardlog raises on purpose."""

    code = "Error"


class VoteReversal(ShardlogError):
    """A vote lower than the one already saved."""

    code = "VoteReversal"

    def __init__(self, current, given):
        super().__init__(f"vote reversal: current {current}, given {given}")
        self.current = current
        self.given = given


class LogIdReversal(ShardlogError):
    """A log id not greater than the last (append) or lower than committed."""

    code = "LogIdReversal"

    def __init__(self, current, given, when):
        super().__init__(f"log id reversal while {when}: current {current}, given {given}")
        self.current = current
        self.given = given
        self.when = when


class LogIdNonConsecutive(ShardlogError):
    """An append whose index is not the one right after the last."""

    code = "LogIdNonConsecutive"

    def __init__(self, last, given):
        super().__init__(f"non-consecutive log id: last {last}, given {given}")
        self.last = last
        self.given = given


class LogIndexNotFound(ShardlogError):
    """A truncate at an index whose predecessor is not in the log."""

    code = "LogIndexNotFound"

    def __init__(self, index):
        super().__init__(f"log index not found: {index}")
        self.index = index


class LogIdMismatch(ShardlogError):
    """A purge at a log id that contradicts the log: its index holds an entry of
    another term, or it lies beyond ``last`` at a lower term than ``last``'s.

    raft-log accepts both and ends up with ``last`` disagreeing with the
    entries it holds or with ``purged``; shardlog refuses them, since no
    correct Raft node asks for them.
    """

    code = "LogIdMismatch"

    def __init__(self, stored, given):
        super().__init__(f"log id mismatch: the log holds {stored}, given {given}")
        self.stored = stored
        self.given = given


class InvalidArgument(ShardlogError, ValueError):
    """A request whose arguments have the wrong type or range."""

    code = "BadRequest"


class GroupNotFound(ShardlogError, KeyError):
    """An operation that needs an existing group named one that does not exist."""

    code = "GroupNotFound"

    def __init__(self, gid):
        super().__init__(f"group {gid} does not exist")
        self.gid = gid

    def __str__(self):
        return self.args[0]


class GroupExists(ShardlogError):
    """An import into a group id that already holds data."""

    code = "GroupExists"


class CorruptedLog(ShardlogError):
    """Data on disk that cannot be trusted: names the file and the byte offset."""

    code = "CorruptedLog"

    def __init__(self, path, offset, reason):
        super().__init__(f"{path}: offset {offset}: {reason}")
        self.path = str(path)
        self.offset = offset
        self.reason = reason


class ChunkGap(CorruptedLog):
    """Two chunk files whose offsets do not meet: a chunk is missing or was cut."""

    code = "ChunkGap"

    def __init__(self, path, offset, expected):
        super().__init__(
            path, offset,
            f"gap between chunks: previous chunk ends at {expected}, this one starts at {offset}",
        )
        self.expected = expected


class TooManyGroups(ShardlogError):
    """Creating one more group would pass the ``max_groups`` setting."""

    code = "TooManyGroups"


class DirectoryLocked(ShardlogError):
    """Another process holds the data directory."""

    code = "DirectoryLocked"


class DiskFailed(ShardlogError):
    """A write or fsync failed on this disk; it takes no more writes until restart."""

    code = "DiskFailed"


class DiskFull(ShardlogError):
    """Free space on the disk fell under the reserve."""

    code = "DiskFull"


class StoreClosed(ShardlogError):
    """The store was closed."""

    code = "ShuttingDown"


class Timeout(ShardlogError, TimeoutError):
    """A blocking call did not complete within its timeout."""

    code = "Timeout"


class BadRequest(InvalidArgument):
    """A request that is not a well-formed message of the protocol."""

    code = "BadRequest"


class UnknownOp(BadRequest):
    code = "UnknownOp"


class TooLarge(BadRequest):
    code = "TooLarge"


class VersionMismatch(BadRequest):
    code = "VersionMismatch"


class ServerError(ShardlogError):
    """An error reply whose code this client does not know, or an internal error."""

    code = "Internal"

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code


def error_classes():
    """Error code -> exception class, for turning error replies back into exceptions."""
    out = {}
    stack = [ShardlogError]
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        out.setdefault(cls.code, cls)
    return out
