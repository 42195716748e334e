"""The write operations of a Raft log, each defined once.

One entry per op says everything about it: its argument (how it is checked
and normalized, how it travels on the wire), the record it writes,
``check(state, arg)`` and ``apply(state, value)``. Every piece of shardlog
that writes or replays a group goes through these two functions, so the
rules cannot drift apart: the engine's write path (single ops are batches of
one), recovery's replay, the check of a batch on a shadow of its groups, and
raft-log import and export. The group handles of the Store and of both
clients, the batch recorder, the front's dispatch and the op list of
docs/protocol.md are generated from the table too. Adding an op is one entry
here plus its record's codec.

``check`` raises the error named after the rule it protects and changes
nothing; it returns the value of the record to write, or ``NO_RECORD`` when
the op is a no-op. ``apply`` is the transition that record makes; it never
raises, because a record on disk has already happened. raft-log writes first
and checks afterwards; shardlog checks everything before a byte is encoded.

Both take a *group state*: an object with the fields of ``LogState``,
``state()``, ``set_state(LogState)``, and three primitives that keep the
entries: ``add_entries(entries)``, ``drop_from(index)`` (entries at and
above) and ``drop_upto(index)`` (entries at and below). ``check`` also reads
``term_at(index)`` (the term of a held entry, or None) and
``next_held(index)`` (the log id of the first held entry above ``index``, or
None). The engine's group, a batch's copy-on-write shadow and raft-log's
replay each implement them for their own storage; the rules stay here.
Where an entry's record lies (the engine's index) is not state: whoever
places the record notes it (the disk when it encodes, recovery when it
reads). This module imports nothing of the engine, so the clients can use it.
"""

from __future__ import annotations

import keyword
import sys
from array import array
from itertools import islice
from operator import le
from typing import TYPE_CHECKING, Any, Callable, Dict, Generic, Iterable, NamedTuple, Optional, Type, TypeVar

from .args import check_entries, check_optional_bytes, check_pair, check_u64, entries_from_wire
from .errors import LogIdMismatch, LogIdNonConsecutive, LogIdReversal, LogIndexNotFound, VoteReversal
from .types import Entry, LogId, Vote, next_index

#: Record types of raft-log's format, which the six ops write (docs/format.md);
#: shardlog's own record types follow them in codec.py.
SAVE_VOTE, APPEND, COMMIT, TRUNCATE_AFTER, PURGE_UPTO, STATE = range(6)

#: Ops whose check reads neither a group's entries nor its ``last``: appends do
#: not change what they are checked against, so a batch may check them before
#: appends that come first (a batch's ``then``: batch.py).
AFTER_APPENDS = frozenset(("save_vote", "commit"))

#: What ``check`` returns for an op that changes nothing (a purge below ``purged``).
NO_RECORD = object()


def above(a, b):
    """``a > b`` where None is below everything (Option ordering in Rust)."""
    if a is None:
        return False
    return b is None or a > b


# ------------------------------------------------------------ checks


def check_vote(g, vote):
    if above(g.vote, vote):
        raise VoteReversal(g.vote, vote)
    return vote


def check_append(g, entries):
    """Each entry as if appended in turn (see check_log_ids)."""
    if not entries:
        return NO_RECORD
    check_log_ids(g.last, [log_id for log_id, _ in entries])
    return entries


def check_log_ids(last, log_ids):
    """The rule of append, for log ids given one after another (rows or columns):
    each after ``last``, with the next index. Returns the new ``last``."""
    for log_id in log_ids:
        if last is not None:
            if log_id <= last:
                raise LogIdReversal(last, log_id, "append")
            if log_id[1] != last[1] + 1:
                raise LogIdNonConsecutive(last, log_id)
        last = log_id
    return last


def check_log_id_columns(last, terms, indexes):
    """``check_log_ids`` of one group's rows in columns (``array("Q")``s of one
    length, not empty), without a Python step per row when they are well
    formed: indexes one after another and terms that never go down make each
    log id follow the one before it, so only the first is checked against
    ``last`` (in bulk appends this loop ran 21 of the front's 153 bytecodes
    per entry, issue 11). Otherwise the rule runs row by row, and raises the
    error of the first log id that breaks it."""
    n = len(indexes)
    first = indexes[0]
    if (indexes[n - 1] - first == n - 1 and indexes == array("Q", range(first, first + n))
            and all(map(le, terms, islice(terms, 1, None)))):
        check_log_ids(last, ((terms[0], first),))
        return (terms[n - 1], indexes[n - 1])
    return check_log_ids(last, zip(terms, indexes))


def check_truncate(g, index):
    """The log id a truncate at ``index`` keeps as the last one (None: keep nothing).

    Accepted: the index right after ``purged`` (keep nothing), or one whose
    predecessor is held. Anything else (into the purged entries, below the
    first entry held, beyond ``last + 1``) is LogIndexNotFound, whose message
    names the entries held and the indexes a truncate accepts."""
    if index == next_index(g.purged):
        return g.purged
    term = g.term_at(index - 1) if index > 0 else None
    if term is None:
        first = g.next_held(-1)
        first, last = (None, None) if first is None else (first[1], g.last[1])
        raise LogIndexNotFound(index - 1 if index > 0 else index, index, first, last, g.purged)
    return (term, index - 1)


def check_purge(g, upto):
    """Log ids must order as their indexes do, ``purged`` included: the purge point
    agrees with the entry at its index, lies below the first entry kept above it,
    and, when nothing is kept, is not below ``last``. (Else ``last`` could be
    lifted above held entries, or end up below ``purged``.)"""
    if upto[1] < next_index(g.purged):
        return NO_RECORD
    term = g.term_at(upto[1])
    if term is not None and term != upto[0]:
        raise LogIdMismatch((term, upto[1]), upto)
    kept = g.next_held(upto[1])
    if kept is not None:
        if kept[0] < upto[0]:
            raise LogIdMismatch(kept, upto)
    elif g.last is not None and upto < g.last:
        raise LogIdMismatch(g.last, upto)
    return upto


def check_commit(g, log_id):
    if above(g.committed, log_id):
        raise LogIdReversal(g.committed, log_id, "commit")
    return log_id


def check_user_data(g, user_data):
    """raft-log saves user data as a whole State record."""
    return g.state()._replace(user_data=user_data)


# ------------------------------------------------------------ applies


def apply_vote(g, vote):
    g.vote = vote


def apply_append(g, entries):
    g.add_entries(entries)
    g.last = entries[-1][0]


def apply_truncate(g, keep):
    g.drop_from(next_index(keep))
    if above(g.last, keep):
        g.last = keep


def apply_purge(g, upto):
    g.drop_upto(upto[1])
    if above(upto, g.purged):
        g.purged = upto
    if above(upto, g.last):
        g.last = upto


def apply_commit(g, log_id):
    g.committed = log_id


def apply_state(g, state):
    g.set_state(state)


# ------------------------------------------------------------ the table


def _log_id_to_wire(value):
    return [value[0], value[1]]


def _entries_to_wire(entries):
    return [[log_id[0], log_id[1], payload] for log_id, payload in entries]


def _same(value):
    return value


class WriteOp(NamedTuple):
    name: str
    #: The request field (and the handle method's parameter) holding the argument.
    field: str
    #: One line for the handle's docstring and docs/protocol.md.
    doc: str
    #: The argument's type in docs/protocol.md, and its Python annotation (evaluated in ARG_TYPES).
    wire_type: str
    annotation: str
    #: Any user value -> the normal form the engine takes, or InvalidArgument.
    normalize: Callable
    #: Normal form -> the msgpack value a client sends.
    to_wire: Callable
    #: The msgpack value off the wire -> normal form, or InvalidArgument.
    from_wire: Callable
    #: Errors ``check`` raises (for docs/protocol.md).
    errors: tuple
    record: int
    check: Callable
    apply: Callable


def _vote(value):
    return check_pair(value, "vote")


def _log_id(value):
    return check_pair(value, "log id")


def _index(value):
    return check_u64(value, "index")


def _user_data(value):
    return check_optional_bytes(value, "user data")


WRITE_OPS = {op.name: op for op in (
    WriteOp("save_vote", "vote", "Persist the vote ``(term, voted_for)``; it never goes down.",
            "Vote", "Vote", _vote, _log_id_to_wire, _vote,
            ("VoteReversal",), SAVE_VOTE, check_vote, apply_vote),
    WriteOp("append", "entries", "Append ``[((term, index), payload), ...]``, checked as a whole first.",
            "[Entry...]", "Iterable[Entry]", check_entries, _entries_to_wire, entries_from_wire,
            ("LogIdReversal", "LogIdNonConsecutive"), APPEND, check_append, apply_append),
    WriteOp("truncate", "index", "Drop the entries at ``index`` and above.",
            "u64", "int", _index, _same, _index,
            ("LogIndexNotFound",), TRUNCATE_AFTER, check_truncate, apply_truncate),
    WriteOp("purge", "upto", "Drop the entries up to and including log id ``upto``.",
            "LogId", "LogId", _log_id, _log_id_to_wire, _log_id,
            ("LogIdMismatch",), PURGE_UPTO, check_purge, apply_purge),
    WriteOp("commit", "log_id", "Persist the commit point; it never goes down.",
            "LogId", "LogId", _log_id, _log_id_to_wire, _log_id,
            ("LogIdReversal",), COMMIT, check_commit, apply_commit),
    WriteOp("save_user_data", "user_data", "Persist ``bytes`` (or None) beside the state.",
            "bin or nil", "Optional[bytes]", _user_data, _same, _user_data,
            (), STATE, check_user_data, apply_state),
)}

#: Ops a disk out of space still takes (full, or running on its spare): they
#: free space or hold a few bytes of state a Raft node cannot do without.
#: Entries and user data (and new groups) wait until space is freed.
TAKEN_WHEN_LOW = frozenset({"truncate", "purge", "commit", "save_vote"})

#: Record type -> the transition it makes, for replay (State records come
#: from save_user_data and from raft-log's chunk heads alike).
APPLY_RECORD = {op.record: op.apply for op in WRITE_OPS.values()}


# ------------------------------------------------------------ generated handles

#: Each op's argument type, from its ``annotation`` (names of this module: typing's and types.py's).
ARG_TYPES: Dict[str, Any] = {op.name: eval(op.annotation, globals()) for op in WRITE_OPS.values()}  # noqa: S307

_C = TypeVar("_C")
#: What a handle's write methods return: what its ``_write`` returns.
R = TypeVar("R")

if TYPE_CHECKING:
    class WriteMethods(Generic[R]):
        """The methods ``with_write_ops`` adds to a handle, as type checkers see them.

        A type checker cannot see methods made at run time, so each handle
        class names this as its base for type checkers only (``_Writes`` in
        its module, ``object`` at run time): ``R`` is what the handle's
        ``_write`` returns (None, a coroutine of None, the batch group itself).
        The parameters are those of WRITE_OPS (field and annotation);
        tests/test_typing.py checks that they agree.
        """

        def save_vote(self, vote: Vote, flush: bool = False) -> R: ...

        def append(self, entries: Iterable[Entry], flush: bool = False) -> R: ...

        def truncate(self, index: int, flush: bool = False) -> R: ...

        def purge(self, upto: LogId, flush: bool = False) -> R: ...

        def commit(self, log_id: LogId, flush: bool = False) -> R: ...

        def save_user_data(self, user_data: Optional[bytes], flush: bool = False) -> R: ...


def _write_method(op: WriteOp, cls: type) -> Callable[..., Any]:
    """``def <op>(self, <field>, flush=False): return self._write(<op>, <field>, flush)``.

    Made from source, as dataclasses makes its methods, so each handle method
    has its real name, signature and docstring and costs one call. Its
    globals are those of ``cls``'s module, so its annotations read as if it
    were written there: the argument's type (ARG_TYPES), ``flush: bool``, and
    the return annotation of ``cls._write`` (a coroutine's is what it gives
    once awaited, as for an ``async def``).
    """
    assert op.name.isidentifier() and op.field.isidentifier() and not keyword.iskeyword(op.field)
    source = (f"def {op.name}(self, {op.field}, flush=False):\n"
              f"    return self._write({op.name!r}, {op.field}, flush)\n")
    module = sys.modules.get(cls.__module__)
    namespace: Dict[str, Any] = {}
    exec(source, vars(module) if module is not None else {}, namespace)  # noqa: S102 - names checked above
    method = namespace[op.name]
    annotations = {op.field: ARG_TYPES[op.name], "flush": bool}
    returns = getattr(getattr(cls, "_write", None), "__annotations__", {})
    if "return" in returns:
        annotations["return"] = returns["return"]
    method.__annotations__ = annotations
    method.__doc__ = op.doc + "\n\nWith ``flush=True``, returns once the write is durable (a batch flushes as a whole)."
    return method


def with_write_ops(cls: Type[_C]) -> Type[_C]:
    """Class decorator: one method per write op, each calling ``self._write(op, arg, flush)``."""
    for op in WRITE_OPS.values():
        if op.name not in cls.__dict__:
            method = _write_method(op, cls)
            method.__qualname__ = f"{cls.__qualname__}.{op.name}"
            setattr(cls, op.name, method)
    return cls


def markdown_table() -> str:
    """The write ops' rows of docs/protocol.md's operation table."""
    rows = []
    for op in WRITE_OPS.values():
        errors = ", ".join(f"`{e}`" for e in op.errors)
        rows.append(f"| `{op.name}` | `gid`, `{op.field}: {op.wire_type}`, `flush?` | `nil` | {errors} |")
    return "\n".join(rows)
