"""Errors of shardlog, one class per rule they protect, under one base class.

Each class's ``code`` is its name: what a client sees over the wire (see
docs/protocol.md), so an exception and an error reply say the same thing.
The attributes named in ``fields`` travel with it, so a client gets back the
same exception, ``current`` and ``given`` included.
"""


class ShardlogError(Exception):
    """Base class of every error shardlog raises on purpose."""

    code = "ShardlogError"
    #: Attributes that travel with the error over the wire, besides its message.
    fields = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.code = cls.__name__

    @property
    def message(self):
        """What the error says, without a prefix of its own (what travels)."""
        return self.args[0] if self.args else ""

    def to_fields(self):
        return {name: getattr(self, name) for name in self.fields}

    @classmethod
    def from_fields(cls, message, fields):
        """The error as raised on the other side of the wire (tuples arrive as lists)."""
        exc = cls.__new__(cls)
        Exception.__init__(exc, message)
        for name in cls.fields:
            value = fields.get(name) if isinstance(fields, dict) else None
            setattr(exc, name, tuple(value) if isinstance(value, list) else value)
        return exc


class VoteReversal(ShardlogError):
    """A vote lower than the one already saved."""

    fields = ("current", "given")

    def __init__(self, current, given):
        super().__init__(f"vote reversal: current {current}, given {given}")
        self.current = current
        self.given = given


class LogIdReversal(ShardlogError):
    """A log id not greater than the last (append) or lower than committed."""

    fields = ("current", "given", "when")

    def __init__(self, current, given, when):
        super().__init__(f"log id reversal while {when}: current {current}, given {given}")
        self.current = current
        self.given = given
        self.when = when


class LogIdNonConsecutive(ShardlogError):
    """An append whose index is not the one right after the last."""

    fields = ("last", "given")

    def __init__(self, last, given):
        super().__init__(f"non-consecutive log id: last {last}, given {given}")
        self.last = last
        self.given = given


class LogIndexNotFound(ShardlogError):
    """A truncate at an index whose predecessor is not in the log.

    ``index`` is the index whose entry was missing (the one a truncate at
    ``index + 1`` would keep as the last). Given the truncate's index and the
    log it met (``first`` and ``last`` index held, or None when none is held;
    ``purged``), the message says what was wrong and which indexes a truncate
    accepts (docs/semantics.md); only ``index`` travels as a field.
    """

    fields = ("index",)

    def __init__(self, index, truncate_at=None, first=None, last=None, purged=None):
        if truncate_at is None:
            message = f"log index not found: {index}"
        else:
            message = _truncate_refused(truncate_at, first, last, purged)
        super().__init__(message)
        self.index = index


def _truncate_refused(at, first, last, purged):
    after_purged = 0 if purged is None else purged[1] + 1
    if at < after_purged:
        reason = "it would cut into the purged entries"
    else:
        reason = f"no entry at index {at - 1} to keep"
    held = "no entries" if first is None else f"entries [{first}, {last}]"
    purge_point = "nothing purged" if purged is None else f"purged up to {purged}"
    if first is None:
        accepts = f"only {after_purged}"
    elif first == after_purged:
        accepts = f"{after_purged}..{last + 1}"
    else:
        accepts = f"{after_purged} (keeps nothing) or {first + 1}..{last + 1}"
    return f"truncate at {at}: {reason}; the log holds {held}, {purge_point}; truncate accepts {accepts}"


class LogIdMismatch(ShardlogError):
    """A purge at a log id that contradicts the log: its index holds an entry of
    another term, or it lies beyond ``last`` at a lower term than ``last``'s.

    raft-log accepts both and ends up with ``last`` disagreeing with the
    entries it holds or with ``purged``; shardlog refuses them, since no
    correct Raft node asks for them.
    """

    fields = ("stored", "given")

    def __init__(self, stored, given):
        super().__init__(f"log id mismatch: the log holds {stored}, given {given}")
        self.stored = stored
        self.given = given


class InvalidArgument(ShardlogError, ValueError):
    """A request whose arguments have the wrong type or range."""


class GroupNotFound(ShardlogError, KeyError):
    """An operation that needs an existing group named one that does not exist."""

    fields = ("gid",)

    def __init__(self, gid):
        super().__init__(f"group {gid} does not exist")
        self.gid = gid

    def __str__(self):
        return self.args[0]


class GroupExists(ShardlogError):
    """An import into a group id that already holds data."""



class CorruptedLog(ShardlogError):
    """Data on disk that cannot be trusted: names the file and the byte offset."""

    fields = ("path", "offset", "reason")

    def __init__(self, path, offset, reason):
        super().__init__(f"{path}: offset {offset}: {reason}")
        self.path = str(path)
        self.offset = offset
        self.reason = reason


class ChunkGap(CorruptedLog):
    """Two chunk files whose offsets do not meet: a chunk is missing or was cut."""

    fields = ("path", "offset", "reason", "expected")

    def __init__(self, path, offset, expected):
        super().__init__(
            path, offset,
            f"gap between chunks: previous chunk ends at {expected}, this one starts at {offset}",
        )
        self.expected = expected


class ChunkMissing(CorruptedLog):
    """A chunk the data directory's marks say must exist is gone, or the stream
    ends below what was durable: acknowledged records would be lost."""


class TooManyGroups(ShardlogError):
    """Creating one more group would pass the ``max_groups`` setting."""



class DirectoryLocked(ShardlogError):
    """Another process holds the data directory."""



class DiskFailed(ShardlogError):
    """A write or fsync failed on this disk; it takes no more writes until restart."""



class DiskFull(ShardlogError):
    """Free space on the disk fell under the reserve."""



class StoreClosed(ShardlogError):
    """The store (or the server, or the client) is closed or shutting down."""


class Timeout(ShardlogError, TimeoutError):
    """A call did not complete within its timeout. The request may have taken
    effect before its deadline, never after it (docs/protocol.md)."""


class StaleRequest(ShardlogError):
    """A request refused without effect because its client can no longer be
    waiting for it: it came after its deadline, or was meant for an earlier
    run of the server (whose unflushed writes a restart may have lost).
    ``incarnation`` is the server's run now, when the server says so."""

    fields = ("incarnation",)

    def __init__(self, message, incarnation=None):
        super().__init__(message)
        self.incarnation = incarnation



class BadRequest(InvalidArgument):
    """A request that is not a well-formed message of the protocol."""


class UnknownOp(BadRequest):
    """A request naming an op the server does not have."""


class TooLarge(BadRequest):
    """A request over the server's size limits."""


class VersionMismatch(BadRequest):
    """A request (or a server) speaking another protocol version."""


class ServerError(ShardlogError):
    """An error reply whose code this client does not know, or an internal error
    (code ``Internal``); ``code`` is the code the reply carried."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code

    def __str__(self):
        return f"{self.code}: {self.message}"


def error_classes():
    """Error code -> exception class, for turning error replies back into exceptions."""
    out = {}
    stack = [ShardlogError]
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.code in out:
            raise TypeError(f"two error classes have the code {cls.code}")
        out[cls.code] = cls
    return out
