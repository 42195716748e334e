"""A conformance suite for Raft log storage with raft-log's semantics (docs/semantics.md).

Every rule of docs/semantics.md is one named check, and so is the durability
of each write op across a crash. The suite knows nothing of shardlog's engine
or client: it drives *a group handle* (the methods of ``shardlog.Group``) that
a small adapter hands it, so the same checks run against the embedded Store,
the server through a Client, or anyone's own Raft log storage that promises
the same semantics. (openraft's ``testing::log::Suite`` does the same for
``RaftLogStorage``; this one is about raft-log's rules.)

The adapter (``Storage``) has three methods:

- ``open()``: a handle on a group that was never written, the check's own
  (a fresh group id, or a fresh directory);
- ``crash_and_reopen(group)``: stop the storage holding ``group`` the way a
  crash would (writes not yet flushed may be lost: do *not* flush first, or
  the durability checks prove nothing), open it again, and return a handle on
  the same group;
- ``close(group)``: the check is done with ``group`` (it may do nothing).

A group handle has ``save_vote``, ``append``, ``truncate``, ``purge``,
``commit`` and ``save_user_data`` (each taking ``flush=False``; with
``flush=True`` it returns once the write, and every write before it, is
durable), ``flush()``, ``read(start, end)`` (``[((term, index), payload),
...]``) and ``state()`` (``(vote, last, committed, purged, user_data)``, with
those names too). A refused write raises an exception whose ``code`` (or
class name) is the rule's (``VoteReversal``, ``LogIdReversal``,
``LogIdNonConsecutive``, ``LogIndexNotFound``, ``LogIdMismatch``) and whose
attributes hold the fields docs/protocol.md lists (``current``, ``given``,
...); log ids may come back as lists.

Run every check, get a report::

    from shardlog.testing import conformance

    report = conformance.run(MyStorage())          # or run(..., raise_on_failure=True)
    print(report)                                  # the failed checks, each with its rule and what was seen
    assert report.ok, report

From pytest, one test per check (the module itself never imports pytest)::

    import pytest
    from shardlog.testing import conformance

    @pytest.fixture(scope="module")
    def storage(tmp_path_factory):
        storage = MyStorage(tmp_path_factory.mktemp("conformance"))
        yield storage
        storage.shutdown()

    @pytest.mark.parametrize("check", conformance.checks(), ids=str)
    def test_conformance(check, storage):
        check(storage)   # raises conformance.Nonconformance, naming the rule and what was seen

``checks(crashes=False)`` leaves out the checks that crash the storage (for a
storage that cannot be crashed, such as one kept in memory only).
tests/test_conformance.py runs the suite against the Store and a server, and
against deliberately broken storages to show that each check can fail.
"""

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, List, NamedTuple, Optional, Protocol, Sequence, Tuple

from shardlog.testing.model import ModelGroup, records_of
from shardlog.types import U64_MAX, LogId, LogState, Vote

Entry = Tuple[LogId, bytes]
Snapshot = Tuple[LogState, List[Entry]]

#: The end of a read that asks for every entry.
END = U64_MAX


# ------------------------------------------------------------ what the suite drives


class GroupLike(Protocol):
    """One group's log: ``shardlog.Group`` and ``shardlog.client.ClientGroup`` are such handles."""

    def save_vote(self, vote: Vote, flush: bool = False) -> Any: ...

    def append(self, entries: Sequence[Entry], flush: bool = False) -> Any: ...

    def truncate(self, index: int, flush: bool = False) -> Any: ...

    def purge(self, upto: LogId, flush: bool = False) -> Any: ...

    def commit(self, log_id: LogId, flush: bool = False) -> Any: ...

    def save_user_data(self, user_data: Optional[bytes], flush: bool = False) -> Any: ...

    def flush(self) -> Any: ...

    def read(self, start: int, end: int) -> Iterable[Entry]: ...

    def state(self) -> Sequence[Any]: ...


class Storage(Protocol):
    """The adapter the suite takes: fresh groups, and a crash."""

    def open(self) -> GroupLike:
        """A group never written, which no other check uses."""
        ...

    def crash_and_reopen(self, group: GroupLike) -> GroupLike:
        """Crash the storage under ``group`` without flushing, open it again; the same group."""
        ...

    def close(self, group: GroupLike) -> None:
        """The check is done with ``group``."""
        ...


# ------------------------------------------------------------ checks and reports


class Nonconformance(AssertionError):
    """The storage broke a rule; the message says what was expected and what was seen."""


class Check(NamedTuple):
    """One rule, checked on a fresh group; ``check(storage)`` runs it (pytest-friendly)."""

    name: str
    fn: Callable[["Session"], None]

    @property
    def rule(self) -> str:
        """The rule, as the check's docstring states it."""
        return " ".join((self.fn.__doc__ or self.name).split())

    @property
    def crashes(self) -> bool:
        """Whether the check crashes the storage (``Storage.crash_and_reopen``)."""
        return getattr(self.fn, "crashes", False)

    def __call__(self, storage: Storage) -> None:
        session = Session(storage)
        try:
            self.fn(session)
        finally:
            storage.close(session.raw)

    def __str__(self) -> str:
        return self.name


@dataclass
class Failure:
    """A check that failed: its name, its rule, and the error that says what was seen."""

    name: str
    rule: str
    error: BaseException

    def __str__(self) -> str:
        kind = "" if isinstance(self.error, Nonconformance) else f"{type(self.error).__name__}: "
        return f"{self.name}: {kind}{self.error}\n    rule: {self.rule}"


@dataclass
class Report:
    """What ``run`` found: the checks passed, and the failures, each in the suite's order."""

    passed: List[str] = field(default_factory=list)
    failures: List[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def failed(self) -> List[str]:
        """The names of the checks that failed, in the suite's order."""
        return [f.name for f in self.failures]

    def raise_for_failures(self) -> None:
        if self.failures:
            raise ConformanceError(self)

    def __str__(self) -> str:
        head = f"{len(self.passed)} passed, {len(self.failures)} failed"
        return "\n".join([head, *(str(f) for f in self.failures)])


class ConformanceError(AssertionError):
    """Raised by ``run(..., raise_on_failure=True)``; ``report`` holds every failure."""

    def __init__(self, report: Report):
        super().__init__(str(report))
        self.report = report


_CHECKS: List[Check] = []


def checks(crashes: bool = True) -> List[Check]:
    """Every check, in the suite's order; ``crashes=False`` leaves out those that crash the storage."""
    return [c for c in _CHECKS if crashes or not c.crashes]


def run(storage: Storage, *, crashes: bool = True, only: Optional[Iterable[str]] = None,
        raise_on_failure: bool = False) -> Report:
    """Run the checks (those named in ``only``, if given) one after the other on ``storage``.

    Every check runs even when earlier ones failed: a report that lists all
    the broken rules at once says more about a storage than its first one."""
    wanted = None if only is None else set(only)
    unknown = (wanted or set()) - {c.name for c in _CHECKS}
    if unknown:
        raise ValueError(f"no such checks: {sorted(unknown)}")
    report = Report()
    for check in checks(crashes):
        if wanted is None or check.name in wanted:
            _run_one(check, storage, report)
    if raise_on_failure:
        report.raise_for_failures()
    return report


def _run_one(check: Check, storage: Storage, report: Report) -> None:
    try:
        check(storage)
    except Exception as exc:  # any error is the storage's failure to follow the rule
        report.failures.append(Failure(check.name, check.rule, exc))
    else:
        report.passed.append(check.name)


def _check(fn: Callable[["Session"], None]) -> Callable[["Session"], None]:
    if any(c.name == fn.__name__ for c in _CHECKS):
        raise ValueError(f"two checks named {fn.__name__}")
    _CHECKS.append(Check(fn.__name__, fn))
    return fn


def _crash_check(fn: Callable[["Session"], None]) -> Callable[["Session"], None]:
    fn.crashes = True  # type: ignore[attr-defined]
    return _check(fn)


# ------------------------------------------------------------ a check's view of its group


#: The codes of the refusals the rules make (docs/semantics.md).
RULE_CODES = frozenset({"VoteReversal", "LogIdReversal", "LogIdNonConsecutive", "LogIndexNotFound", "LogIdMismatch"})

WRITE_OPS = ("save_vote", "append", "truncate", "purge", "commit", "save_user_data")


class _AcceptedWrites:
    """The group as a check writes to it: every write is one the rules accept, so
    a refusal is the storage's nonconformance and is reported as such, naming the
    write (other errors, a lost connection say, go through as they are)."""

    def __init__(self, raw: GroupLike):
        self._raw = raw

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._raw, name)
        if name not in WRITE_OPS:
            return method

        def write(arg: Any, flush: bool = False) -> Any:
            try:
                return method(arg, flush=True) if flush else method(arg)
            except Exception as exc:
                if error_code(exc) not in RULE_CODES:
                    raise
                raise Nonconformance(f"{name}({arg!r}) was refused ({error_code(exc)}: {exc}); "
                                     f"the rules accept it") from exc
        return write


class Session:
    """A check's group, seen through normal forms (tuples, bytes) so any
    storage's values compare: a client may hand back lists for log ids."""

    def __init__(self, storage: Storage):
        self.storage = storage
        #: The adapter's handle; ``group`` is it, for writes the rules accept.
        self.raw = storage.open()

    @property
    def group(self) -> Any:
        return _AcceptedWrites(self.raw)

    def crash(self) -> None:
        self.raw = self.storage.crash_and_reopen(self.raw)

    def state(self) -> LogState:
        return _normal_state(self.raw.state())

    def entries(self, start: int = 0, end: int = END) -> List[Entry]:
        return [(_pair(log_id), _bytes(payload)) for log_id, payload in self.raw.read(start, end)]

    def snapshot(self) -> Snapshot:
        return self.state(), self.entries()

    def write(self, op: str, arg: Any, flush: bool = False) -> None:
        """``op(arg)``, a write the rules accept."""
        getattr(self.group, op)(arg, flush)


def _pair(value: Any) -> Any:
    """A log id or vote as a tuple (a client may hand back a list); anything else as it is, to fail."""
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _bytes(value: Any) -> Any:
    """Bytes-like as bytes; anything else (None included) as it is."""
    return bytes(value) if isinstance(value, (bytes, bytearray, memoryview)) else value


def _normal_state(raw: Sequence[Any]) -> LogState:
    vote, last, committed, purged, user_data = raw
    return LogState(_pair(vote), _pair(last), _pair(committed), _pair(purged), _bytes(user_data))


def _normal(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_normal(v) for v in value)
    return value


def error_code(exc: BaseException) -> str:
    """The rule an error names: its ``code`` (shardlog's errors, and error replies), else its class name."""
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) else type(exc).__name__


# ------------------------------------------------------------ expectations


def expect(ok: bool, message: str) -> None:
    if not ok:
        raise Nonconformance(message)


def expect_equal(got: Any, want: Any, what: str) -> None:
    if got != want:
        raise Nonconformance(f"{what}: expected {want!r}, got {got!r}")


def expect_state(s: Session, want: LogState, when: str) -> None:
    expect_equal(s.state(), want, f"state() {when}")


def expect_entries(s: Session, want: List[Entry], when: str, start: int = 0, end: int = END) -> None:
    expect_equal(s.entries(start, end), want, f"read({start}, {end}) {when}")


def expect_refused(s: Session, op: str, arg: Any, code: str, **fields: Any) -> None:
    """``op(arg)`` raises the error ``code`` with ``fields``, and leaves state and entries as they were."""
    call = f"{op}({arg!r})"
    before = s.snapshot()
    try:
        getattr(s.raw, op)(arg)
    except Exception as exc:
        expect_equal(error_code(exc), code, f"the error of {call}")
        for name, want in fields.items():
            expect_equal(_normal(getattr(exc, name, "<missing>")), want, f"{code}.{name} of {call}")
    else:
        raise Nonconformance(f"{call} was accepted; {code} expected (state before: {before[0]})")
    expect_equal(s.snapshot(), before, f"state and entries after the refused {call}")


def expect_read_refused(s: Session, start: Any, end: Any, code: str) -> None:
    """``read(start, end)`` raises the error ``code``."""
    try:
        got = list(s.raw.read(start, end))
    except Exception as exc:
        expect_equal(error_code(exc), code, f"the error of read({start!r}, {end!r})")
    else:
        raise Nonconformance(f"read({start!r}, {end!r}) returned {got!r}; {code} expected")


def expect_accepted_and_unchanged(s: Session, op: str, arg: Any) -> None:
    """``op(arg)`` is accepted and changes nothing (a no-op)."""
    before = s.snapshot()
    s.write(op, arg)
    expect_equal(s.snapshot(), before, f"state and entries after {op}({arg!r}), a no-op")


# ------------------------------------------------------------ logs the checks start from


def entries(term: int, indexes: Iterable[int]) -> List[Entry]:
    """Entries whose payloads name their term and index, so a stale entry never reads as a new one."""
    return [((term, i), b"t%d-i%d" % (term, i)) for i in indexes]


def _purged_log(s: Session) -> List[Entry]:
    """Entries 0..7 at term 1, purged up to (1, 3); returns the entries held, [4, 7]."""
    s.group.append(entries(1, range(8)))
    s.group.purge((1, 3))
    return entries(1, range(4, 8))


# ------------------------------------------------------------ state


@_check
def new_group_is_empty(s: Session) -> None:
    """A group never written reads as LogState() (every field None) and holds no entries."""
    expect_state(s, LogState(), "of a new group")
    expect_entries(s, [], "of a new group")


@_check
def state_has_five_named_fields(s: Session) -> None:
    """state() is (vote, last, committed, purged, user_data), by position and by name."""
    s.group.save_vote((2, 1))
    s.group.append(entries(2, range(4)))
    s.group.commit((2, 2))
    s.group.purge((2, 1))
    s.group.save_user_data(b"u")
    raw = s.raw.state()
    want = LogState(vote=(2, 1), last=(2, 3), committed=(2, 2), purged=(2, 1), user_data=b"u")
    expect_equal(_normal_state(raw), want, "state() by position")
    by_name = [getattr(raw, name, "<missing>") for name in LogState._fields]
    expect_equal(_normal_state(by_name), want, "state() by name")


@_check
def state_and_reads_show_writes_before_flush(s: Session) -> None:
    """An accepted write shows in state() and read() at once, durable or not (raft-log's log_state())."""
    s.group.append(entries(1, range(3)))
    s.group.save_vote((1, 1))
    expect_state(s, LogState(vote=(1, 1), last=(1, 2)), "before any flush")
    expect_entries(s, entries(1, range(3)), "before any flush")


# ------------------------------------------------------------ save_vote


@_check
def vote_is_saved(s: Session) -> None:
    """save_vote(v) sets the vote and nothing else."""
    s.group.save_vote((1, 2))
    expect_state(s, LogState(vote=(1, 2)), "after save_vote((1, 2))")


@_check
def vote_equal_is_accepted(s: Session) -> None:
    """A vote equal to the saved one is accepted (and written again)."""
    s.group.save_vote((2, 3))
    s.group.save_vote((2, 3))
    expect_state(s, LogState(vote=(2, 3)), "after saving (2, 3) twice")


@_check
def vote_orders_as_a_tuple(s: Session) -> None:
    """Votes compare as (term, voted_for) tuples: a higher node id in the same term is
    higher, so it is accepted (one vote per term is the Raft node's rule, not storage's)."""
    s.group.save_vote((2, 3))
    s.group.save_vote((2, 5))
    expect_state(s, LogState(vote=(2, 5)), "after (2, 3) then (2, 5)")
    s.group.save_vote((3, 0))
    expect_state(s, LogState(vote=(3, 0)), "after (3, 0): a higher term, a lower node id")


@_check
def vote_reversal_is_refused(s: Session) -> None:
    """A vote below the saved one is VoteReversal (current, given) and changes nothing."""
    s.group.save_vote((2, 5))
    expect_refused(s, "save_vote", (2, 3), "VoteReversal", current=(2, 5), given=(2, 3))
    expect_refused(s, "save_vote", (1, 9), "VoteReversal", current=(2, 5), given=(1, 9))


# ------------------------------------------------------------ append


@_check
def append_holds_entries_and_sets_last(s: Session) -> None:
    """append(entries) holds them, readable in index order, and last is the last one."""
    s.group.append(entries(1, range(3)))
    s.group.append(entries(1, range(3, 5)))
    expect_state(s, LogState(last=(1, 4)), "after appending 0..4")
    expect_entries(s, entries(1, range(5)), "after appending 0..4")


@_check
def append_first_entry_at_any_index(s: Session) -> None:
    """While last is None, the first entry may have any index (a log restored from elsewhere)."""
    s.group.append(entries(1, [5, 6]))
    expect_state(s, LogState(last=(1, 6)), "after appending 5..6 to a new group")
    expect_entries(s, entries(1, [5, 6]), "after appending 5..6 to a new group")


@_check
def append_at_next_index_with_higher_term(s: Session) -> None:
    """Once last is set, an entry at last.index + 1 of the same or a higher term is accepted."""
    s.group.append(entries(1, [0, 1]))
    s.group.append(entries(2, [2]))
    s.group.append(entries(4, [3]))
    expect_state(s, LogState(last=(4, 3)), "after terms 1, 2, 4")
    expect_entries(s, entries(1, [0, 1]) + entries(2, [2]) + entries(4, [3]), "after terms 1, 2, 4")


@_check
def append_with_gap_is_non_consecutive(s: Session) -> None:
    """An entry above last at an index other than last.index + 1 is LogIdNonConsecutive (last, given)."""
    s.group.append(entries(2, [6, 7]))
    expect_refused(s, "append", entries(2, [9]), "LogIdNonConsecutive", last=(2, 7), given=(2, 9))
    expect_refused(s, "append", entries(3, [10]), "LogIdNonConsecutive", last=(2, 7), given=(3, 10))


@_check
def append_same_index_higher_term_is_non_consecutive(s: Session) -> None:
    """Replacing an entry takes a truncate: the same index at a higher term is LogIdNonConsecutive."""
    s.group.append(entries(2, [6, 7]))
    expect_refused(s, "append", entries(3, [7]), "LogIdNonConsecutive", last=(2, 7), given=(3, 7))


@_check
def append_not_above_last_is_log_id_reversal(s: Session) -> None:
    """A log id not above last (the same one again, a lower term, a lower index) is
    LogIdReversal (current, given, when="append")."""
    s.group.append(entries(2, [6, 7]))
    for given in [(2, 7), (1, 8), (2, 6)]:
        expect_refused(s, "append", [(given, b"x")], "LogIdReversal", current=(2, 7), given=given, when="append")


@_check
def append_is_checked_as_a_whole(s: Session) -> None:
    """If any entry of a list is refused, none is appended (raft-log would keep those before it)."""
    s.group.append(entries(2, [7]))
    expect_refused(s, "append", entries(2, [8, 9, 11]), "LogIdNonConsecutive", last=(2, 9), given=(2, 11))
    expect_refused(s, "append", entries(2, [8]) + entries(3, [8]), "LogIdNonConsecutive", last=(2, 8),
                   given=(3, 8))
    expect_refused(s, "append", entries(2, [8, 8]), "LogIdReversal", current=(2, 8), given=(2, 8), when="append")


@_check
def append_of_nothing_is_a_no_op(s: Session) -> None:
    """append([]) is accepted and changes nothing, on a new group too."""
    expect_accepted_and_unchanged(s, "append", [])
    s.group.append(entries(1, [0, 1]))
    expect_accepted_and_unchanged(s, "append", [])


@_check
def append_after_purge_beyond_last_starts_after_purged(s: Session) -> None:
    """After a purge beyond last, last = purged, so the next append is at purged.index + 1."""
    s.group.append(entries(1, range(3)))
    s.group.purge((2, 5))
    expect_refused(s, "append", entries(2, [7]), "LogIdNonConsecutive", last=(2, 5), given=(2, 7))
    s.group.append(entries(2, [6]))
    expect_state(s, LogState(last=(2, 6), purged=(2, 5)), "after appending (2, 6)")
    expect_entries(s, entries(2, [6]), "after appending (2, 6)")


# ------------------------------------------------------------ truncate


@_check
def truncate_keeps_the_entries_below_index(s: Session) -> None:
    """truncate(i) drops the entries >= i; the entry at i - 1 becomes last."""
    s.group.append(entries(1, range(10)))
    s.group.truncate(6)
    expect_state(s, LogState(last=(1, 5)), "after truncate(6)")
    expect_entries(s, entries(1, range(6)), "after truncate(6)")


@_check
def truncate_at_last_plus_one_changes_nothing(s: Session) -> None:
    """truncate(last.index + 1) is accepted and keeps every entry."""
    s.group.append(entries(1, range(3)))
    expect_accepted_and_unchanged(s, "truncate", 3)


@_check
def truncate_at_zero_keeps_nothing(s: Session) -> None:
    """With nothing purged, truncate(0) drops every entry and last becomes None; the rest stays."""
    s.group.save_vote((1, 1))
    s.group.append(entries(1, [2, 3]))
    s.group.commit((1, 3))
    s.group.truncate(0)
    expect_state(s, LogState(vote=(1, 1), committed=(1, 3)), "after truncate(0)")
    expect_entries(s, [], "after truncate(0)")


@_check
def truncate_at_the_index_after_purged_keeps_nothing(s: Session) -> None:
    """truncate(purged.index + 1) drops every entry held and last falls to purged."""
    _purged_log(s)
    s.group.truncate(4)
    expect_state(s, LogState(last=(1, 3), purged=(1, 3)), "after truncate(4) with purged (1, 3)")
    expect_entries(s, [], "after truncate(4) with purged (1, 3)")


@_check
def truncate_beyond_last_is_refused(s: Session) -> None:
    """truncate(i) with no entry at i - 1 beyond last is LogIndexNotFound (index = i - 1)."""
    s.group.append(entries(1, [2, 3]))
    expect_refused(s, "truncate", 5, "LogIndexNotFound", index=4)


@_check
def truncate_below_the_first_entry_is_refused(s: Session) -> None:
    """A log that starts above 0 holds nothing at i - 1 below its first entry: LogIndexNotFound."""
    s.group.append(entries(1, [2, 3]))
    expect_refused(s, "truncate", 1, "LogIndexNotFound", index=0)
    expect_refused(s, "truncate", 2, "LogIndexNotFound", index=1)


@_check
def truncate_into_the_purged_entries_is_refused(s: Session) -> None:
    """A truncate below purged.index + 1, truncate(0) included, is LogIndexNotFound
    (index = i - 1, 0 for i = 0; raft-log underflows on truncate(0) there)."""
    _purged_log(s)
    expect_refused(s, "truncate", 2, "LogIndexNotFound", index=1)
    expect_refused(s, "truncate", 3, "LogIndexNotFound", index=2)
    expect_refused(s, "truncate", 0, "LogIndexNotFound", index=0)


@_check
def truncate_after_purge_beyond_last(s: Session) -> None:
    """After a purge beyond last nothing is held: only purged.index + 1 is accepted, and changes nothing."""
    s.group.append(entries(1, range(3)))
    s.group.purge((2, 5))
    expect_refused(s, "truncate", 9, "LogIndexNotFound", index=8)
    expect_refused(s, "truncate", 5, "LogIndexNotFound", index=4)
    expect_accepted_and_unchanged(s, "truncate", 6)


@_check
def truncate_of_a_group_never_written(s: Session) -> None:
    """On a group never written only truncate(0) is accepted; any other index is LogIndexNotFound."""
    expect_refused(s, "truncate", 3, "LogIndexNotFound", index=2)
    s.group.truncate(0)
    expect_state(s, LogState(), "after truncate(0) of a new group")


@_check
def truncate_below_committed_keeps_committed(s: Session) -> None:
    """committed is not looked at: a truncate below it is accepted and committed stays."""
    s.group.append(entries(1, range(10)))
    s.group.commit((1, 8))
    s.group.truncate(5)
    expect_state(s, LogState(last=(1, 4), committed=(1, 8)), "after truncate(5) below committed (1, 8)")


@_check
def truncate_then_append_replaces_entries(s: Session) -> None:
    """After truncate(i), entries of a new term are appended at i and read back, the old ones gone."""
    s.group.append(entries(1, range(8)))
    s.group.truncate(5)
    s.group.append(entries(2, [5, 6]))
    expect_state(s, LogState(last=(2, 6)), "after truncate(5) and appending (2, 5), (2, 6)")
    expect_entries(s, entries(1, range(5)) + entries(2, [5, 6]), "after the replacement")


# ------------------------------------------------------------ purge


@_check
def purge_drops_entries_up_to_and_including(s: Session) -> None:
    """purge(upto) drops the entries <= upto.index; purged = upto, last stays."""
    s.group.append(entries(1, range(10)))
    s.group.purge((1, 4))
    expect_state(s, LogState(last=(1, 9), purged=(1, 4)), "after purge((1, 4))")
    expect_entries(s, entries(1, range(5, 10)), "after purge((1, 4))")


@_check
def purge_of_the_last_entry_keeps_nothing(s: Session) -> None:
    """purge(last) drops every entry; last = purged, and appends go on at the next index."""
    s.group.append(entries(1, range(4)))
    s.group.purge((1, 3))
    expect_state(s, LogState(last=(1, 3), purged=(1, 3)), "after purge((1, 3)) of last")
    expect_entries(s, [], "after purge((1, 3)) of last")
    s.group.append(entries(1, [4]))
    expect_entries(s, entries(1, [4]), "after appending (1, 4)")


@_check
def purge_at_or_below_purged_is_a_no_op(s: Session) -> None:
    """A purge whose index is at or below purged.index is a no-op, whatever its term."""
    _purged_log(s)
    for upto in [(1, 3), (9, 3), (0, 1), (1, 0)]:
        expect_accepted_and_unchanged(s, "purge", upto)


@_check
def purge_of_another_term_at_a_held_index_is_refused(s: Session) -> None:
    """At an index the log holds, upto must be that entry's log id, else LogIdMismatch (stored, given)."""
    _purged_log(s)
    expect_refused(s, "purge", (2, 5), "LogIdMismatch", stored=(1, 5), given=(2, 5))
    expect_refused(s, "purge", (0, 5), "LogIdMismatch", stored=(1, 5), given=(0, 5))


@_check
def purge_above_a_kept_entry_of_lower_term_is_refused(s: Session) -> None:
    """The first entry kept above upto must have a term no lower than upto's, else LogIdMismatch."""
    s.group.append(entries(3, [5, 6]))
    expect_refused(s, "purge", (4, 2), "LogIdMismatch", stored=(3, 5), given=(4, 2))


@_check
def purge_beyond_last_at_lower_term_is_refused(s: Session) -> None:
    """When no entry is kept, upto must not be below last, else LogIdMismatch (stored = last)."""
    _purged_log(s)
    expect_refused(s, "purge", (0, 9), "LogIdMismatch", stored=(1, 7), given=(0, 9))


@_check
def purge_beyond_last_drops_everything(s: Session) -> None:
    """Purging beyond last (installing a snapshot) drops every entry; last and purged both become upto."""
    _purged_log(s)
    s.group.purge((2, 10))
    expect_state(s, LogState(last=(2, 10), purged=(2, 10)), "after purge((2, 10)) beyond last (1, 7)")
    expect_entries(s, [], "after purge((2, 10)) beyond last")


@_check
def purge_of_a_group_never_written(s: Session) -> None:
    """A purge on a group with no entries is accepted: last and purged become upto."""
    s.group.purge((3, 5))
    expect_state(s, LogState(last=(3, 5), purged=(3, 5)), "after purge((3, 5)) of a new group")
    expect_entries(s, [], "after purge((3, 5)) of a new group")


@_check
def purge_leaves_vote_committed_and_user_data(s: Session) -> None:
    """committed is not looked at (a purge above it is accepted), and vote and user data stay."""
    s.group.save_vote((1, 1))
    s.group.append(entries(1, range(6)))
    s.group.commit((1, 2))
    s.group.save_user_data(b"u")
    s.group.purge((1, 4))
    expect_state(s, LogState((1, 1), (1, 5), (1, 2), (1, 4), b"u"), "after purge((1, 4)) above committed (1, 2)")


# ------------------------------------------------------------ commit


@_check
def commit_is_saved_and_equal_is_accepted(s: Session) -> None:
    """commit(c) sets committed; a commit point equal to the saved one is accepted."""
    s.group.append(entries(2, range(3)))
    s.group.commit((2, 1))
    s.group.commit((2, 1))
    expect_state(s, LogState(last=(2, 2), committed=(2, 1)), "after commit((2, 1)) twice")


@_check
def commit_reversal_is_refused(s: Session) -> None:
    """A commit point below the saved one (a higher index at a lower term included) is
    LogIdReversal (current, given, when="commit"); a higher term at a lower index is higher."""
    s.group.append(entries(2, range(6)))
    s.group.commit((2, 5))
    expect_refused(s, "commit", (2, 4), "LogIdReversal", current=(2, 5), given=(2, 4), when="commit")
    expect_refused(s, "commit", (1, 9), "LogIdReversal", current=(2, 5), given=(1, 9), when="commit")
    s.group.commit((3, 0))
    expect_state(s, LogState(last=(2, 5), committed=(3, 0)), "after commit((3, 0))")


@_check
def commit_beyond_last_is_accepted(s: Session) -> None:
    """A commit point beyond last is accepted and kept as given (the Raft node applies min(commit, last))."""
    s.group.append(entries(1, range(3)))
    s.group.commit((1, 9))
    expect_state(s, LogState(last=(1, 2), committed=(1, 9)), "after commit((1, 9)) beyond last")
    expect_entries(s, entries(1, range(3)), "after commit((1, 9)) beyond last")


@_check
def commit_is_not_checked_against_the_entries(s: Session) -> None:
    """A commit point on a group with no entries, or whose term is not its entry's, is accepted."""
    s.group.commit((3, 5))
    expect_state(s, LogState(committed=(3, 5)), "after commit((3, 5)) of a new group")
    s.group.append(entries(3, [0, 1]))
    s.group.commit((4, 1))
    expect_state(s, LogState(last=(3, 1), committed=(4, 1)), "after commit((4, 1)) where (3, 1) is held")


@_check
def commit_is_not_moved_by_append_or_truncate(s: Session) -> None:
    """Neither an append nor a truncate changes committed."""
    s.group.append(entries(1, range(3)))
    s.group.commit((1, 9))
    s.group.append(entries(1, [3]))
    s.group.truncate(1)
    expect_state(s, LogState(last=(1, 0), committed=(1, 9)), "after an append and truncate(1)")


# ------------------------------------------------------------ user data


@_check
def user_data_is_saved_and_cleared(s: Session) -> None:
    """save_user_data is always accepted and changes only user_data; None clears it, b"" is not None."""
    _purged_log(s)
    s.group.commit((1, 9))
    s.group.save_user_data(b"u")
    expect_state(s, LogState(last=(1, 7), committed=(1, 9), purged=(1, 3), user_data=b"u"), "after b'u'")
    s.group.save_user_data(b"")
    expect_equal(s.state().user_data, b"", "user_data after save_user_data(b'')")
    s.group.save_user_data(None)
    expect_state(s, LogState(last=(1, 7), committed=(1, 9), purged=(1, 3)), "after save_user_data(None)")


# ------------------------------------------------------------ reads


@_check
def read_partly_below_purged_starts_after_purged(s: Session) -> None:
    """A range partly at or below purged returns only the entries above it, from purged.index + 1."""
    held = _purged_log(s)
    expect_entries(s, held[:2], "of a purged log", 0, 6)
    expect_entries(s, held, "of a purged log", 3, 100)


@_check
def read_wholly_at_or_below_purged_is_empty(s: Session) -> None:
    """A range wholly at or below purged returns [] (no error)."""
    _purged_log(s)
    expect_entries(s, [], "of a purged log", 0, 4)
    expect_entries(s, [], "of a purged log", 3, 4)


@_check
def read_beyond_last_returns_what_is_held(s: Session) -> None:
    """A range partly or wholly beyond last returns the entries up to last, [] if none."""
    held = _purged_log(s)
    expect_entries(s, held[2:], "of a log ending at 7", 6, 100)
    expect_entries(s, [], "of a log ending at 7", 8, 100)


@_check
def read_after_truncate_returns_what_is_left(s: Session) -> None:
    """After a truncate the entries cut away are not read, whatever the range."""
    held = _purged_log(s)
    s.group.truncate(6)
    expect_entries(s, held[:2], "after truncate(6)")
    expect_entries(s, [], "after truncate(6)", 6, 8)


@_check
def read_below_the_first_entry_returns_from_it(s: Session) -> None:
    """Of a log that starts above 0, a range below its first entry returns the entries from the first one."""
    s.group.append(entries(2, [10, 11]))
    expect_entries(s, entries(2, [10]), "of a log starting at 10", 0, 11)
    expect_entries(s, [], "of a log starting at 10", 0, 10)


@_check
def read_of_an_empty_or_reversed_range_is_empty(s: Session) -> None:
    """start >= end returns [] (raft-log panics on start > end)."""
    _purged_log(s)
    expect_entries(s, [], "of an empty range", 5, 5)
    expect_entries(s, [], "of a reversed range", 7, 5)


@_check
def read_returns_payloads_unchanged(s: Session) -> None:
    """Payloads come back byte for byte: empty, every byte value, and large ones."""
    payloads = [b"", bytes(range(256)), b"\x00" * 3, bytes(range(256)) * 1024]
    written = [((1, i), p) for i, p in enumerate(payloads)]
    s.group.append(written)
    expect_entries(s, written, "of the payloads written")


# ------------------------------------------------------------ arguments


@_check
def write_arguments_out_of_range_are_invalid(s: Session) -> None:
    """Write arguments of the wrong type or range (a negative number, 2**64 or more, a log id
    that is not a pair, a payload that is not bytes) are InvalidArgument and change nothing."""
    s.group.append(entries(1, [0, 1]))
    expect_refused(s, "truncate", -1, "InvalidArgument")
    expect_refused(s, "save_vote", (1, 2**64), "InvalidArgument")
    expect_refused(s, "commit", (1, 2, 3), "InvalidArgument")
    expect_refused(s, "purge", (-1, 0), "InvalidArgument")
    expect_refused(s, "append", [((1, 2), "not bytes")], "InvalidArgument")
    expect_refused(s, "save_user_data", 7, "InvalidArgument")


@_check
def read_arguments_out_of_range_are_invalid(s: Session) -> None:
    """A read whose start or end is not an integer in [0, 2**64) is InvalidArgument, as a write's would be."""
    s.group.append(entries(1, [0, 1]))
    expect_read_refused(s, -1, 5, "InvalidArgument")
    expect_read_refused(s, 0, 1.5, "InvalidArgument")
    expect_read_refused(s, 0, 2**64, "InvalidArgument")
    expect_read_refused(s, 2**64, 2**64 + 1, "InvalidArgument")


# ------------------------------------------------------------ refusals and crashes


def _refusals_of_every_rule(s: Session) -> None:
    """One refused write per rule, on a log holding (2, 4)..(2, 7), vote (2, 5), committed (2, 6)."""
    expect_refused(s, "save_vote", (1, 9), "VoteReversal")
    expect_refused(s, "append", entries(2, [9]), "LogIdNonConsecutive")
    expect_refused(s, "append", entries(1, [8]), "LogIdReversal")
    expect_refused(s, "truncate", 2, "LogIndexNotFound")
    expect_refused(s, "purge", (3, 5), "LogIdMismatch")
    expect_refused(s, "commit", (2, 4), "LogIdReversal")


@_crash_check
def refused_writes_leave_nothing_after_a_crash(s: Session) -> None:
    """A refused write leaves nothing on disk either (raft-log writes the record first): a
    crash and reopen after refusals of every rule finds the log as it was before them."""
    s.group.append(entries(2, range(8)))
    s.group.purge((2, 3))
    s.group.save_vote((2, 5))
    s.group.commit((2, 6), flush=True)
    before = s.snapshot()
    _refusals_of_every_rule(s)
    s.group.flush()
    s.crash()
    expect_equal(s.snapshot(), before, "state and entries after refusals and a crash")


@_crash_check
def rules_hold_after_a_crash(s: Session) -> None:
    """A reopened group goes on under the same rules: it knows its vote, last, purged and committed."""
    s.group.save_vote((3, 1))
    s.group.append(entries(3, range(6)))
    s.group.purge((3, 2))
    s.group.commit((3, 4), flush=True)
    s.crash()
    expect_refused(s, "save_vote", (2, 9), "VoteReversal", current=(3, 1), given=(2, 9))
    expect_refused(s, "append", entries(3, [7]), "LogIdNonConsecutive", last=(3, 5), given=(3, 7))
    expect_refused(s, "truncate", 1, "LogIndexNotFound", index=0)
    expect_refused(s, "commit", (3, 3), "LogIdReversal", current=(3, 4), given=(3, 3), when="commit")
    expect_accepted_and_unchanged(s, "purge", (3, 1))
    s.group.append(entries(3, [6]))
    expect_state(s, LogState((3, 1), (3, 6), (3, 4), (3, 2)), "after the crash and an append")
    expect_entries(s, entries(3, range(3, 7)), "after the crash and an append")


@_crash_check
def vote_survives_a_crash(s: Session) -> None:
    """save_vote(v, flush=True) is durable when it returns."""
    s.group.save_vote((1, 1))
    s.group.save_vote((2, 3), flush=True)
    s.crash()
    expect_state(s, LogState(vote=(2, 3)), "after the crash")


@_crash_check
def entries_survive_a_crash(s: Session) -> None:
    """append(entries, flush=True) is durable when it returns, with every append before it."""
    s.group.append(entries(1, range(5)))
    s.group.append(entries(2, [5, 6]), flush=True)
    s.crash()
    expect_state(s, LogState(last=(2, 6)), "after the crash")
    expect_entries(s, entries(1, range(5)) + entries(2, [5, 6]), "after the crash")


@_crash_check
def truncate_survives_a_crash(s: Session) -> None:
    """truncate(i, flush=True) is durable: the entries it dropped never come back, even under new ones."""
    s.group.append(entries(1, range(10)), flush=True)
    s.group.truncate(7)
    s.group.append(entries(2, [7]))
    s.group.truncate(5, flush=True)
    s.crash()
    expect_state(s, LogState(last=(1, 4)), "after the crash")
    expect_entries(s, entries(1, range(5)), "after the crash")


@_crash_check
def purge_survives_a_crash(s: Session) -> None:
    """purge(upto, flush=True) is durable, and so is a purge beyond last: purged entries never come back."""
    s.group.append(entries(1, range(10)))
    s.group.purge((1, 4), flush=True)
    s.crash()
    expect_state(s, LogState(last=(1, 9), purged=(1, 4)), "after the crash")
    expect_entries(s, entries(1, range(5, 10)), "after the crash")
    s.group.purge((2, 20), flush=True)
    s.crash()
    expect_state(s, LogState(last=(2, 20), purged=(2, 20)), "after a purge beyond last and a crash")
    expect_entries(s, [], "after a purge beyond last and a crash")


@_crash_check
def commit_survives_a_crash(s: Session) -> None:
    """commit(c, flush=True) is durable, a commit point beyond last included."""
    s.group.append(entries(1, range(3)))
    s.group.commit((1, 1))
    s.group.commit((1, 9), flush=True)
    s.crash()
    expect_state(s, LogState(last=(1, 2), committed=(1, 9)), "after the crash")


@_crash_check
def user_data_survives_a_crash(s: Session) -> None:
    """save_user_data(u, flush=True) is durable, None (cleared) included, with the writes around it."""
    s.group.save_user_data(b"old")
    s.group.append(entries(1, range(3)))
    s.group.save_user_data(b"new")
    s.group.commit((1, 2), flush=True)
    s.crash()
    expect_state(s, LogState(last=(1, 2), committed=(1, 2), user_data=b"new"), "after the crash")
    s.group.save_user_data(None, flush=True)
    s.crash()
    expect_state(s, LogState(last=(1, 2), committed=(1, 2)), "after save_user_data(None) and a crash")


@_crash_check
def flush_makes_every_earlier_write_durable(s: Session) -> None:
    """flush() returns once every write of the group accepted before it is durable."""
    s.group.save_vote((1, 1))
    s.group.append(entries(1, range(6)))
    s.group.truncate(5)
    s.group.purge((1, 1))
    s.group.commit((1, 3))
    s.group.save_user_data(b"u")
    s.group.flush()
    s.crash()
    expect_state(s, LogState((1, 1), (1, 4), (1, 3), (1, 1), b"u"), "after flush() and a crash")
    expect_entries(s, entries(1, range(2, 5)), "after flush() and a crash")


#: Writes after a durable base in a_crash_keeps_a_prefix_of_the_writes: every op, none flushed.
_UNFLUSHED = [
    ("append", entries(1, range(5, 8))),
    ("truncate", 6),
    ("append", entries(2, [6, 7])),
    ("purge", (1, 3)),
    ("save_vote", (2, 2)),
    ("commit", (2, 7)),
    ("save_user_data", b"u"),
]


def _prefix_snapshots(base: ModelGroup, ops: List[Tuple[str, Any]]) -> Iterator[Snapshot]:
    """The group as each prefix of ``ops`` leaves it (an append may be cut between entries)."""
    model = base.copy()
    yield model.state(), model.read()
    for op, arg in ops:
        for record in records_of(op, arg):
            model.apply(*record)
            yield model.state(), model.read()


@_crash_check
def a_crash_keeps_a_prefix_of_the_writes(s: Session) -> None:
    """A crash may lose writes that were not flushed, but only from the end: the group is as
    some prefix of its writes, at least the flushed ones, left it (nothing reordered or skipped)."""
    base = ModelGroup()
    for op, arg in [("save_vote", (1, 1)), ("append", entries(1, range(5))), ("commit", (1, 2))]:
        s.write(op, arg)
        base.apply(op, arg)
    s.group.flush()
    for op, arg in _UNFLUSHED:
        s.write(op, arg)
    s.crash()
    got = s.snapshot()
    allowed = list(_prefix_snapshots(base, _UNFLUSHED))
    expect(got in allowed, f"after the crash the group is {got}, which no prefix of its writes leaves "
                           f"(the flushed ones leave {allowed[0]})")
