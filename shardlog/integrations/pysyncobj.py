"""A PySyncObj journal kept in one shardlog group.

    from shardlog.integrations.pysyncobj import ShardlogJournal
    conf = SyncObjConf(journalFile=ShardlogJournal(store.group(7)))   # or Client(...).group(7)

PySyncObj 0.3.17 has no setting for a journal object: ``SyncObj.__init__``
calls ``createJournal(conf.journalFile)``, a function ``pysyncobj.syncobj``
imported by name from ``pysyncobj.journal``, which makes a file journal of a
file name and a memory journal of None. **Importing this module installs a
hook in its place** (in ``pysyncobj.journal``, ``pysyncobj.syncobj`` and
``pysyncobj``): a ``ShardlogJournal`` given as ``journalFile`` is the journal;
anything else goes to PySyncObj's own ``createJournal``, unchanged. Importing
the module again or reloading it replaces the hook and never wraps it twice.

docs/raft.md says how the journal maps onto the group and why.
"""

import functools
import inspect
import json
import logging
import time
from typing import Any, Callable, Iterable, Iterator, List, Optional, Protocol, Sequence, Tuple, Union

import pysyncobj
import pysyncobj.journal
import pysyncobj.syncobj
from pysyncobj.journal import Journal

from shardlog.errors import LogIdReversal, StaleRequest, Timeout, VoteReversal
from shardlog.types import LogId, LogState, Vote, next_index

__all__ = ["Entry", "GroupHandle", "JournalRewind", "NodeId", "ShardlogJournal"]

log = logging.getLogger(__name__)

#: One of PySyncObj's journal entries: ``(command, idx, term)``.
Entry = Tuple[bytes, int, int]
#: A PySyncObj node id as the journal can keep it (``TCPNode`` ids are ``"host:port"``).
NodeId = Union[str, int]

#: Errors after which the write may or may not have taken effect, or was refused
#: because the server restarted: the journal reads the group again and retries.
_UNCERTAIN = (Timeout, StaleRequest)
#: Tag of the user data the journal keeps in its group.
_USER_DATA_TAG = "shardlog.pysyncobj"


class GroupHandle(Protocol):
    """What the journal uses of a group: ``Store.group(gid)`` and ``Client(...).group(gid)`` both are one."""

    gid: int

    def append(self, entries: Iterable[Tuple[LogId, bytes]], flush: bool = False) -> None: ...
    def truncate(self, index: int, flush: bool = False) -> None: ...
    def purge(self, upto: LogId, flush: bool = False) -> None: ...
    def commit(self, log_id: LogId, flush: bool = False) -> None: ...
    def save_vote(self, vote: Vote, flush: bool = False) -> None: ...
    def save_user_data(self, user_data: Optional[bytes], flush: bool = False) -> None: ...
    def flush(self, callback: Any = None, timeout: Optional[float] = None) -> None: ...
    def read(self, start: int, end: int) -> Iterator[Tuple[LogId, bytes]]: ...
    def state(self) -> LogState: ...


class JournalRewind(ValueError):
    """An entry added to an empty journal at or below the group's purge point.

    A shardlog log never goes back below what it purged (raft-log's rule), so
    the entry cannot be kept. PySyncObj adds one when it starts on a group
    that holds no entries but was purged: it starts its log again at index 1.
    The journal never leaves a group so on its own (a clear is written in one
    batch with the add after it); a power loss that tore that batch on disk
    can. Refusing is better than a log that lost its place: drop the group,
    and the node starts empty and catches up from its peers.
    """


class ShardlogJournal(Journal):
    """PySyncObj's journal, every entry durable in one shardlog group before ``add`` returns.

    The journal keeps the group's entries in memory as well (as PySyncObj's
    file journal does) and writes through: every ``add``, ``deleteEntriesFrom``,
    ``deleteEntriesTo`` and ``setCurrentTerm`` is flushed before it returns.
    After a Timeout or StaleRequest (a server that was down or restarted) it
    reads the group again and retries until what the call asked for holds,
    for ``retry_for`` seconds, then raises.

    Use one journal per group, from the SyncObj's thread (as PySyncObj does).
    """

    #: What the hook looks for: a class attribute survives a reload of this module, an isinstance test would not.
    _is_shardlog_journal = True

    def __init__(self, group: GroupHandle, *, retry_for: float = 30.0) -> None:
        if inspect.iscoroutinefunction(getattr(group, "state", None)):
            raise TypeError("ShardlogJournal needs a blocking group handle (Store.group or Client.group), "
                            "not an AsyncClient's")
        self.group = group
        self.retry_for = retry_for
        self._batch = _owner_batch(group)
        #: The entries the group holds, as PySyncObj's ``(command, idx, term)``, oldest first.
        self._log: List[Entry] = []
        #: ``clear()`` was called and no entry added since: PySyncObj sees an empty
        #: journal while the group still holds ``_log`` (see ``add``).
        self._hidden = False
        self._purged: Optional[LogId] = None
        self._vote: Optional[Vote] = None
        self._committed: Optional[LogId] = None
        #: Node ids a vote was ever cast for; the vote's ``voted_for`` is a position in it, plus one.
        self._node_ids: List[NodeId] = []
        #: The group may differ from what this object holds (a write's outcome is unknown).
        self._stale = False
        self._commit_unflushed = False
        self._load()
        #: What PySyncObj last set (it may be below ``_committed``: see setRaftCommitIndex).
        self._commit_index = self._committed[1] if self._committed is not None else 1

    def __repr__(self) -> str:
        return f"ShardlogJournal({self.group!r}, {len(self)} entries)"

    # ------------------------------------------------------------ entries

    def __len__(self) -> int:
        return 0 if self._hidden else len(self._log)

    def __getitem__(self, item: Union[int, slice]) -> Union[Entry, List[Entry]]:
        """As a list: an int gives one entry (negative from the end), a slice a new list."""
        return [][item] if self._hidden else self._log[item]

    def __iter__(self) -> Iterator[Entry]:
        return iter(()) if self._hidden else iter(list(self._log))

    def add(self, command: bytes, idx: int, term: int) -> None:
        """Append ``(command, idx, term)`` as the entry ``((term, idx), command)``; durable on return.

        After ``clear()``, or when the journal holds nothing, the entry may be
        anywhere above the group's purge point (PySyncObj installing a
        snapshot adds its last two entries): the entries the group still
        holds are dropped and the purge point raised to ``idx - 1`` in the
        same batch as the append, so a crash of the node between the two does
        not leave the group empty (see JournalRewind).
        """
        entry = (_as_bytes(command), idx, term)

        def plan(retrying):
            if not self._hidden and self._log:
                if retrying and self._log[-1] == entry:
                    return [], None
                return [("append", [((term, idx), entry[0])])], lambda: self._log.append(entry)
            if self._log == [entry]:  # after clear(): the group holds it already (or an earlier try did it)
                return [], self._unhide
            return self._start_at(entry)

        self._durably(plan)

    def _start_at(self, entry: Entry):
        """The writes that make ``entry`` the group's only entry."""
        command, idx, term = entry
        purged = self._purged
        if purged is not None and (idx <= purged[1] or term < purged[0]):
            raise JournalRewind(f"group {self.group.gid}: cannot start the journal at entry (term {term}, index "
                                f"{idx}): the group is purged up to {purged} and a log never goes back below its "
                                f"purge point; if the group holds no entries (a torn write?), drop it and let the "
                                f"node catch up from its peers")
        ops = []
        if self._log:
            ops.append(("truncate", next_index(purged)))
        raised = None
        if purged is not None and idx > purged[1] + 1:
            # The term of the entry at idx - 1 is not known (a snapshot carries
            # PySyncObj's last two entries only); the purge point keeps its own.
            raised = (purged[0], idx - 1)
            ops.append(("purge", raised))
        ops.append(("append", [((term, idx), command)]))

        def effect():
            self._log = [entry]
            self._hidden = False
            if raised is not None:
                self._purged = raised
        return ops, effect

    def _unhide(self) -> None:
        self._hidden = False

    def clear(self) -> None:
        """Forget every entry. Nothing is written until the next ``add``, which writes both at once."""
        self._hidden = bool(self._log)

    def deleteEntriesFrom(self, entryFrom: int) -> None:
        """Drop the entries from position ``entryFrom`` on (``del journal[entryFrom:]``): shardlog's
        ``truncate`` at that entry's index. Durable on return."""
        if self._hidden:
            return
        start = slice(entryFrom, None).indices(len(self._log))[0]
        if start >= len(self._log):
            return
        index = self._log[start][1]

        def plan(retrying):
            if not self._log or self._log[-1][1] < index:
                return [], None
            keep = max(0, index - self._log[0][1])
            # Dropping every entry is a truncate at the index right after the purge point.
            cut = index if keep else next_index(self._purged)

            def effect():
                del self._log[keep:]
            return [("truncate", cut)], effect

        self._durably(plan)

    def deleteEntriesTo(self, entryTo: int) -> None:
        """Drop the entries before position ``entryTo`` (``journal = journal[entryTo:]``): shardlog's
        ``purge`` up to the last entry dropped, whose log id becomes the purge point. The entry
        at ``entryTo``, which PySyncObj keeps as the one its snapshot ends before, stays
        readable. Durable on return."""
        if self._hidden:
            return
        stop = slice(entryTo, None).indices(len(self._log))[0]
        if stop == 0:
            return
        _, index, term = self._log[stop - 1]

        def plan(retrying):
            if self._purged is not None and self._purged[1] >= index:
                return [], None
            drop = 0 if not self._log else max(0, index - self._log[0][1] + 1)

            def effect():
                del self._log[:drop]
                self._purged = (term, index)
            return [("purge", (term, index))], effect

        self._durably(plan)

    # ------------------------------------------------------------ term, vote and commit

    def setCurrentTerm(self, term: int, votedForNodeId: Optional[NodeId]) -> None:
        """Persist ``(term, votedFor)`` as shardlog's vote ``(term, n)``: ``n`` is 0 for no vote, else
        the node's position plus one in the list of node ids kept in the group's user data (written,
        durably, before the first vote that needs it). Within a term PySyncObj only goes from no
        vote to a vote, so the vote never goes back; a call that would is refused (VoteReversal)
        before anything is written. Durable on return."""
        known = votedForNodeId is None or votedForNodeId in self._node_ids
        if not known:
            _check_node_id(votedForNodeId)
        if self._vote is not None and (term, self._vote_code(votedForNodeId)) < self._vote:
            raise VoteReversal(self._vote, (term, self._vote_code(votedForNodeId)))
        if not known:
            def remember(retrying):
                if votedForNodeId in self._node_ids:
                    return [], None
                node_ids = self._node_ids + [votedForNodeId]
                return [("save_user_data", _encode_node_ids(node_ids))], lambda: setattr(self, "_node_ids", node_ids)

            self._durably(remember)

        def vote(retrying):
            wanted = (term, self._vote_code(votedForNodeId))
            if self._vote == wanted:
                return [], None
            return [("save_vote", wanted)], lambda: setattr(self, "_vote", wanted)

        self._durably(vote)

    def _vote_code(self, node_id: Optional[NodeId]) -> int:
        """``voted_for`` of the vote for ``node_id``: a node not listed yet gets the next number."""
        if node_id is None:
            return 0
        if node_id in self._node_ids:
            return self._node_ids.index(node_id) + 1
        return len(self._node_ids) + 1

    def getCurrentTerm(self) -> int:
        return 0 if self._vote is None else self._vote[0]

    def getVotedForNodeId(self) -> Optional[NodeId]:
        if self._vote is None or self._vote[1] == 0:
            return None
        return self._node_ids[self._vote[1] - 1]

    def setRaftCommitIndex(self, raftCommitIndex: int) -> None:
        """Keep the commit index, at most the journal's end, as shardlog's commit log id.

        Written without a flush, when it rises (PySyncObj sets it at every
        append_entries); it becomes durable with the next add or within the
        second (``onOneSecondTimer``), as the file journal's meta file does.
        A lower one, which PySyncObj sets only after truncating below its
        commit index, is kept in memory only: raft-log's commit never goes
        down, and on load the stored one is clamped to the journal's end.
        """
        self._commit_index = index = min(raftCommitIndex, self._end())
        log_id = self._log_id_at(index)
        if log_id is None or (self._committed is not None and log_id <= self._committed):
            return
        try:
            self.group.commit(log_id)
        except (*_UNCERTAIN, LogIdReversal) as exc:  # a reversal: the group's commit point is not what was read
            self._stale = True
            log.warning("group %s: commit %s not saved (%s); PySyncObj sets it again", self.group.gid, log_id, exc)
            return
        self._committed = log_id
        self._commit_unflushed = True

    def getRaftCommitIndex(self) -> int:
        return min(self._commit_index, self._end())

    def flush(self) -> None:
        """Make the commit index durable (everything else is durable already)."""
        if self._commit_unflushed:
            self.group.flush()
            self._commit_unflushed = False

    def onOneSecondTimer(self) -> None:
        try:
            self.flush()
        except _UNCERTAIN as exc:
            self._stale = True
            log.warning("group %s: flush of the commit index failed (%s); trying again in a second",
                        self.group.gid, exc)

    def _destroy(self) -> None:
        """PySyncObj's SyncObj is going: make the commit index durable. The group handle stays
        open; its Store or Client belongs to whoever made it."""
        self.onOneSecondTimer()

    # ------------------------------------------------------------ plumbing

    def _end(self) -> int:
        return self._log[-1][1] if self._log and not self._hidden else 0

    def _log_id_at(self, index: int) -> Optional[LogId]:
        if self._hidden or not self._log or index < self._log[0][1]:
            return self._purged if self._purged is not None and self._purged[1] == index else None
        _, idx, term = self._log[index - self._log[0][1]]
        return (term, idx)

    def _durably(self, plan: Callable[[bool], Tuple[Sequence[Tuple[str, Any]], Optional[Callable[[], None]]]]) -> None:
        """Bring the group to what ``plan`` asks for, durably.

        ``plan(retrying)`` looks at what the journal holds and gives the writes
        still needed and the change they make to it (``[]`` when none is
        needed). It is asked again after an uncertain failure, once the group
        is read again, so that a write that took effect is not made twice.
        """
        deadline = time.monotonic() + self.retry_for
        retrying = False
        while True:
            try:
                if self._stale:
                    self._load()
                ops, effect = plan(retrying)
                if ops:
                    self._write(ops)
                if effect is not None:
                    effect()
                return
            except _UNCERTAIN as exc:
                self._stale = True
                if time.monotonic() >= deadline:
                    raise
                log.warning("group %s: %s; reading the group again and retrying", self.group.gid, exc)
                retrying = True
                time.sleep(0.05)

    def _write(self, ops: Sequence[Tuple[str, Any]]) -> None:
        """One write op, or several as one batch; durable on return."""
        if len(ops) == 1:
            name, arg = ops[0]
            getattr(self.group, name)(arg, flush=True)
            self._commit_unflushed = False
            return
        if self._batch is None:
            raise TypeError(f"{self.group!r} belongs to no Store or Client whose batch the journal could use")
        with self._batch(flush=True) as batch:
            group = batch.group(self.group.gid)
            for name, arg in ops:
                getattr(group, name)(arg)
        self._commit_unflushed = False

    def _load(self) -> None:
        """Read the group: the state the journal starts from, or starts again from after an uncertain failure."""
        state = self.group.state()
        entries: List[Entry] = []
        start = next_index(state.purged)
        if state.last is not None and state.last[1] >= start:
            entries = [(_as_bytes(payload), index, term)
                       for (term, index), payload in self.group.read(start, state.last[1] + 1)]
            held = [index for _, index, _ in entries]
            if not held or held != list(range(held[0], state.last[1] + 1)):
                raise RuntimeError(f"group {self.group.gid} changed while the journal read it: is another "
                                   f"writer using it?")
        node_ids = _decode_node_ids(state.user_data, self.group.gid)
        if state.vote is not None and state.vote[1] > len(node_ids):
            raise ValueError(f"group {self.group.gid}: the vote {state.vote} names node #{state.vote[1]}, but "
                             f"the group's user data lists {len(node_ids)} node ids")
        self._log = entries
        self._purged = state.purged
        self._vote = state.vote
        self._committed = state.committed
        self._node_ids = node_ids
        self._stale = False


# ------------------------------------------------------------ values


def _as_bytes(command: Any) -> bytes:
    """PySyncObj's commands are bytes; anything that exposes bytes is copied, a str or int refused."""
    if type(command) is bytes:
        return command
    try:
        return memoryview(command).tobytes()
    except TypeError:
        raise TypeError(f"a journal entry's command must be bytes, not {type(command).__name__}") from None


def _check_node_id(node_id: Any) -> None:
    if type(node_id) not in (str, int):
        raise TypeError(f"the journal keeps node ids that are str or int, not {type(node_id).__name__} "
                        f"({node_id!r})")


def _encode_node_ids(node_ids: List[NodeId]) -> bytes:
    return json.dumps({_USER_DATA_TAG: 1, "node_ids": node_ids}, separators=(",", ":")).encode()


def _decode_node_ids(user_data: Optional[bytes], gid: int) -> List[NodeId]:
    if user_data is None:
        return []
    try:
        value = json.loads(user_data)
        if value.get(_USER_DATA_TAG) != 1:
            raise ValueError
        return list(value["node_ids"])
    except (ValueError, TypeError, KeyError, AttributeError):
        raise ValueError(f"group {gid} holds user data that is not a PySyncObj journal's: "
                         f"{bytes(user_data[:60])!r}") from None


def _owner_batch(group: GroupHandle) -> Optional[Callable[..., Any]]:
    """The ``batch`` of the Store or Client the handle belongs to.

    A group handle has no batch of its own, and a ``clear()`` must reach the
    disk in the same batch as the add after it (see ``ShardlogJournal.add``);
    both handles keep their owner.
    """
    for attribute in ("_store", "_client"):
        owner = getattr(group, attribute, None)
        if owner is not None and callable(getattr(owner, "batch", None)):
            return owner.batch
    return None


# ------------------------------------------------------------ the hook


_ORIGINAL = "__shardlog_original__"


def _install_hook() -> None:
    """Put ``createJournal`` (see the module docstring) where PySyncObj looks it up."""
    current = pysyncobj.journal.createJournal
    original = getattr(current, _ORIGINAL, current)

    @functools.wraps(original)
    def createJournal(journalFile: Any = None) -> Journal:
        if getattr(type(journalFile), "_is_shardlog_journal", False) is True:
            return journalFile
        return original(journalFile)

    setattr(createJournal, _ORIGINAL, original)
    for module in (pysyncobj.journal, pysyncobj.syncobj, pysyncobj):
        module.createJournal = createJournal


_install_hook()
