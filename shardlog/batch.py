"""The batch recorder: writes for many groups, handed over as one request.

``with x.batch() as b: b.group(1).append(...)`` records ``(op, gid, arg)``
with each argument checked as it is recorded (a bad one raises inside the
block and nothing is submitted); leaving the block submits them all. The
same recorder serves the Store and both clients; what it stores of an
argument is the form its owner sends (the engine's normal form, or the wire
form for a client).

Appends are recorded in columns (columns.py), the other ops as rows, in two
lists: ``ops`` before the columns and ``then`` after them. The owner applies
``ops``, the columns, then ``then``. That keeps each group's order: a vote or
a commit of a group after an append of it goes to ``then``
(ops.AFTER_APPENDS: a Raft round's entries, then its commit); any other op
of such a group, or an append after its ``then``, first turns what was
recorded so far into rows. (Groups are independent, so only one thing shows
the order across groups: when several ops would fail, the error raised is
that of the first in this order.)
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Self, Set, Tuple, Type

from .args import check_u64
from .columns import AppendColumns
from .errors import InvalidArgument
from .ops import AFTER_APPENDS, WRITE_OPS, with_write_ops

if TYPE_CHECKING:
    from .ops import WriteMethods

    _Writes = WriteMethods["BatchGroup"]
else:
    _Writes = object

#: Recorded row ops: ``[(op, gid, recorded arg), ...]``.
Ops = List[Tuple[str, int, Any]]


def _normal_form(op: str, arg: Any) -> Any:
    return WRITE_OPS[op].normalize(arg)


def wire_form(op: str, arg: Any) -> Any:
    """A client's form: checked, then as it travels."""
    write_op = WRITE_OPS[op]
    return write_op.to_wire(write_op.normalize(arg))


class Batch:
    """Records writes; ``submit(ops, columns, then)`` runs when the block ends,
    with ``ops`` as ``[(op, gid, recorded arg), ...]``, ``columns`` the appends
    after them (an AppendColumns, or None when there are none) and ``then``
    the votes and commits after those (a list like ``ops``)."""

    def __init__(self, submit: Callable[[Ops, Optional[AppendColumns], Ops], Any],
                 record: Callable[[str, Any], Any] = _normal_form) -> None:
        self._submit = submit
        self._record = record
        self.ops: Ops = []
        self.columns = AppendColumns()
        self.then: Ops = []
        #: Groups with appends in ``columns``, and groups with ops in ``then``.
        self._appended: Set[int] = set()
        self._then: Set[int] = set()
        #: What ``submit`` returned (None for the Store's and the clients' batches).
        self.result: Any = None

    def record(self, op: str, gid: int, arg: Any) -> None:
        if op == "append":
            if gid in self._then:
                self._all_to_rows()
            if self.columns.add(gid, arg):
                self._appended.add(gid)
                return
            arg = ()  # no entry: a row, which writes nothing but makes a flush wait for the group's disk
        if gid in self._appended or gid in self._then:
            if op in AFTER_APPENDS:
                self.then.append((op, gid, self._record(op, arg)))
                self._then.add(gid)
                return
            self._all_to_rows()
        self.ops.append((op, gid, self._record(op, arg)))

    def _all_to_rows(self) -> None:
        self.ops.extend((op, gid, self._record(op, entries)) for op, gid, entries in self.columns.rows())
        self.ops.extend(self.then)
        self.columns, self.then = AppendColumns(), []
        self._appended.clear()
        self._then.clear()

    def _recorded(self) -> Tuple[Ops, Optional[AppendColumns], Ops]:
        """What the owner gets; the payloads become ``bytes`` (what reads give back)."""
        columns = self.columns
        if not len(columns):
            return self.ops + self.then, None, []
        columns.data = bytes(columns.data)
        return self.ops, columns, self.then

    def group(self, gid: int) -> BatchGroup:
        """The writes of group ``gid`` in this batch; each returns the BatchGroup, so they chain."""
        return BatchGroup(self, check_u64(gid, "group id"))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        if exc_type is None:
            self.result = self._submit(*self._recorded())

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:
        if exc_type is None:
            self.result = await self._submit(*self._recorded())


@with_write_ops
class BatchGroup(_Writes):
    """One group's writes inside a batch: the write methods of a group handle."""

    __slots__ = ("_batch", "gid")

    def __init__(self, batch: Batch, gid: int) -> None:
        self._batch = batch
        self.gid = gid

    def _write(self, op: str, arg: Any, flush: bool) -> BatchGroup:
        if flush:
            raise InvalidArgument("a write inside a batch cannot flush on its own; use batch(flush=True)")
        self._batch.record(op, self.gid, arg)
        return self
