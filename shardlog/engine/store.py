"""The embedded engine: ``Store.open(data_dirs)`` and its group handles.

The store owns every group's state and places each new group on the least
loaded disk, where it stays. Writes have one way in, ``write_normalized``
(``Store.write`` checks arguments, then calls it); a single op is a batch of
one. A batch is checked whole, each op against the state the ones before it
leave (a copy-on-write shadow), before a byte is encoded, so a rejected batch
leaves no byte behind and no change in memory; then each op's record is
encoded and applied by the same ``ops.apply`` that recovery replays. One lock
guards all state; flushers report from their own threads and user callbacks
run outside the lock.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import threading
import time
from array import array
from bisect import bisect_right
from itertools import accumulate
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Optional, Self, Tuple, Union

from shardlog.args import check_u64
from shardlog.batch import Batch
from shardlog.columns import AppendColumns, Column
from shardlog.errors import (
    CorruptedLog,
    GroupExists,
    GroupNotFound,
    InvalidArgument,
    ShardlogError,
    StoreClosed,
    Timeout,
    TooManyGroups,
)
from shardlog.ops import (
    AFTER_APPENDS,
    APPEND,
    NO_RECORD,
    WRITE_OPS,
    apply_append,
    check_log_id_columns,
    check_log_ids,
    with_write_ops,
)
from shardlog.types import Entry, FlushCallback, LogState
from shardlog.workers.files import OS_FILES
from shardlog.workers.naming import chunk_path

from . import codec, membership
from .disk import Disk
from .events import EventLog
from .flusher import ThreadFlusher
from .group import NEW_GROUP, Shadow
from .lockfile import DirLock
from .recovery import replay
from .settings import resolve

if TYPE_CHECKING:
    from shardlog.ops import WriteMethods

    _Writes = WriteMethods[None]
else:
    _Writes = object

log = logging.getLogger(__name__)

#: A data directory's path (``Store.open`` takes one, or a list of them: one per disk).
StrPath = Union[str, os.PathLike[str]]


def _replay_without_gc(path, settings, files):
    """Recovery builds an object or more per group and keeps them all: at a
    million groups the collector's passes over them took a third of the open
    time (2.7 of 8.6 s), finding nothing to free. It is off meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return replay(path, settings["truncate_incomplete_record"], settings["recovery_mode"],
                      settings["read_footers"], files)
    finally:
        if enabled:
            gc.enable()


def _give_back_scratch():
    """Return the heap that recovery's scratch (footer columns, replay
    buffers) left free to the system. glibc raises its mmap threshold after
    the first large free, so later large buffers come from the heap, and
    the heap's top stays pinned by what recovery kept: at 300k groups 80 B
    per group of RSS was free memory the process still held. Elsewhere than
    glibc this does nothing."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _help_each(flushers):
    """``help`` every flusher that expects it, whatever one of them raises (a
    flusher left expecting help would never wake its thread again)."""
    error = None
    for flusher in flushers:
        try:
            flusher.help()
        except BaseException as exc:  # (KeyboardInterrupt in an fsync too)
            error = error or exc
    if error is not None:
        raise error


class Store:
    """Raft logs of many groups in one stream per data directory."""

    def __init__(self, disks: List[Disk], lock: threading.Lock, settings: Dict[str, Any],
                 locks: List[DirLock]) -> None:
        self._disks = disks
        self._lock = lock
        self._dir_locks = locks
        self.settings = settings
        #: Every group by id; the disks share this dict (one entry per group, not two).
        self._groups: Dict[int, Any] = {}
        for disk in disks:
            self._groups.update(disk.groups)
        for disk in disks:
            disk.groups = self._groups
        self._closed = False
        self._max_unsynced = settings["max_unsynced_bytes"]
        self._events = disks[0].events
        #: Set by an owner whose flushers report only when driven (the front's
        #: worker flushers): ``pump(timeout)`` handles their events while a
        #: caller blocks. None for flushers with threads of their own.
        self.pump: Optional[Callable[[float], object]] = None
        #: The flushers a caller that waits may help (ThreadFlusher.help).
        self._helpable = [d.flusher for d in disks if hasattr(d.flusher, "help")]

    @classmethod
    def open(cls, data_dirs: Union[StrPath, Iterable[StrPath]], *, flusher_factory: Callable[..., Any] = ThreadFlusher,
             files: Any = OS_FILES, **settings: Any) -> Self:
        """Open (creating if needed) one data directory per disk and recover them.

        ``data_dirs`` is a path or a list of paths; settings are those of
        ``shardlog.engine.settings.DEFAULTS``.
        """
        settings = resolve(settings)
        if isinstance(data_dirs, (str, os.PathLike)):
            data_dirs = [data_dirs]
        data_dirs = [os.path.abspath(os.fspath(d)) for d in data_dirs]
        if not data_dirs:
            raise InvalidArgument("at least one data directory is needed")
        membership.refuse_twice(data_dirs)
        lock = threading.Lock()
        events = EventLog()
        locks, disks = [], []
        try:
            for path in data_dirs:
                files.makedirs(path)
                locks.append(DirLock(path, files))
            joining = membership.join(data_dirs, files)  # (refuses part of a store before a byte is written)
            seen: Dict[StrPath, Dict[int, Any]] = {}  # path -> its groups
            for path in data_dirs:
                t0 = time.perf_counter()
                recovered = _replay_without_gc(path, settings, files)
                for lost_path, offset, length, reason in recovered.lost:
                    log.error("%s: lost %d bytes at offset %d in recovery: %s", lost_path, length, offset, reason)
                for other_path, other in seen.items():  # (no dict of every gid built for this)
                    for gid in sorted(other.keys() & recovered.groups.keys())[:1]:
                        raise InvalidArgument(f"group {gid} is in both {other_path} and {path}")
                seen[path] = recovered.groups
                log.info("%s: recovered %d groups from %d footers and %d records in %d chunks in %.3f s%s",
                         path, len(recovered.groups), recovered.footers, recovered.records, len(recovered.chunks),
                         time.perf_counter() - t0,
                         f"; cut a torn tail of {recovered.cut[0]} at {recovered.cut[2]}"
                         if recovered.cut else "")
                disks.append(Disk(path, settings, recovered, lock, flusher_factory, events, files))
            membership.write(joining, files)
        except BaseException:
            for disk in disks:
                disk.close()
            for dir_lock in locks:
                dir_lock.release()
            raise
        _give_back_scratch()
        return cls(disks, lock, settings, locks)

    # ------------------------------------------------------------ store level

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def group(self, gid: int) -> Group:
        """A handle on group ``gid``; the group is created by its first write."""
        return Group(self, check_u64(gid, "group id"))

    def groups(self) -> List[int]:
        with self._lock:
            return sorted(self._groups)

    def drop_group(self, gid: int, timeout: Optional[float] = None) -> None:
        """Remove a group and everything it holds; returns once that is durable."""
        check_u64(gid, "group id")
        with self._lock:
            self._check_open()
            group = self._groups.get(gid)
            if group is None:
                raise GroupNotFound(gid)
            group.disk.check_writable("drop_group")
            group.disk.drop_group(group)  # (which takes it out of the shared dict)
        # Durable before returning, so the id cannot come back on another disk
        # while the drop is still only in memory.
        self._wait(lambda cb: self._flush_disk(group.disk, cb), timeout)

    def flush(self, callback: Optional[FlushCallback] = None, timeout: Optional[float] = None) -> None:
        """Make every write accepted so far, on every disk, durable."""
        if callback is not None:
            return self._flush_all(callback)
        self._wait(self._flush_all, timeout)

    def stat(self, group_limit: int = 0) -> Dict[str, Any]:
        """Figures of the store; with ``group_limit``, per-group figures of that many
        groups, the ones holding the most entries first."""
        with self._lock:
            disks = [d.stat() for d in self._disks]
            out = {
                "groups": len(self._groups),
                "entries": sum(len(g.index) for g in self._groups.values()),
                "index_bytes": sum(g.index.nbytes() for g in self._groups.values()),
                "disks": disks,
            }
            if group_limit:
                biggest = sorted(self._groups.values(), key=lambda g: (-len(g.index), g.gid))
                out["group_figures"] = [{
                    "gid": g.gid, "disk": g.disk.path, "entries": len(g.index),
                    "first": g.index.first if len(g.index) else None,
                    "last": g.last, "committed": g.committed, "purged": g.purged,
                    "cached": len(g.payloads),
                } for g in biggest[:group_limit]]
            return out

    def events(self, after: int = 0) -> Dict[str, Any]:
        """Events since number ``after`` (a lagging group, a forced relocation):
        ``{"events": [...], "last": n, "missed": k}``; poll with ``after=last``."""
        with self._lock:
            return self._events.since(after)

    def close(self) -> None:
        """Flush everything, stop the flushers, release the directories."""
        if self._closed:
            return
        try:
            with self._lock:
                for disk in self._disks:
                    disk.seal_for_close()
            self.flush()
        except ShardlogError as exc:
            log.error("closing with an unflushed disk: %s", exc)
        finally:
            with self._lock:
                self._closed = True
            for disk in self._disks:
                disk.close()
            for dir_lock in self._dir_locks:
                dir_lock.release()

    # ------------------------------------------------------------ internals

    def _check_open(self):
        if self._closed:
            raise StoreClosed("the store is closed")

    def _wait(self, start, timeout):
        # A bare lock, held until the callback: an Event (a Condition and two
        # locks in Python) cost more than the rest of the wait when the
        # caller does the fsync itself.
        done = threading.Lock()
        done.acquire()
        result = []

        def callback(error):
            if not result:  # (once: a second call must not release the lock again)
                result.append(error)
                done.release()

        if self.pump is None:
            helped = self._helpable
            for flusher in helped:
                flusher.expect_help()
            try:
                start(callback)
            finally:
                _help_each(helped)
            if not done.acquire(timeout=-1 if timeout is None else timeout):
                raise Timeout(f"not durable after {timeout} s")
        else:
            start(callback)
            deadline = None if timeout is None else time.monotonic() + timeout
            while not result:
                remaining = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
                if remaining <= 0:
                    raise Timeout(f"not durable after {timeout} s")
                self.pump(remaining)
        if result[0] is not None:
            raise result[0]

    def _flush_disk(self, disk, callback):
        with self._lock:
            now, result = disk.flush(callback)
        if now:
            callback(result)

    def _flush_all(self, callback):
        self._flush_disks(self._disks, callback)

    def _flush_disks(self, disks, callback):
        """Flush ``disks``; ``callback`` gets the first error or None once all are done."""
        if not disks:
            return callback(None)
        if len(disks) == 1:  # the common case: no counting
            return self._flush_disk(disks[0], callback)
        pending = [len(disks)]
        errors = []
        guard = threading.Lock()

        def one_done(error):
            with guard:
                if error is not None:
                    errors.append(error)
                pending[0] -= 1
                last = pending[0] == 0
            if last:
                callback(errors[0] if errors else None)

        for disk in disks:
            self._flush_disk(disk, one_done)

    # ------------------------------------------------------------ the write path

    def write(self, ops: Iterable[Tuple[str, int, Any]], flush: bool = False,
              callback: Optional[FlushCallback] = None, timeout: Optional[float] = None) -> None:
        """Carry out ``[(op, gid, arg), ...]``, ``op`` a name of ``ops.WRITE_OPS``.

        Every argument is checked and normalized, then every op is checked, in
        order, against the state the ops before it leave; if any fails,
        nothing is written and nothing changes. With ``flush``, waits (or calls
        ``callback``) until all of it is durable. (``store.batch()`` records
        the same thing op by op.)
        """
        try:
            normal = [(name, check_u64(gid, "group id"), WRITE_OPS[name].normalize(arg)) for name, gid, arg in ops]
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, InvalidArgument):
                raise
            raise InvalidArgument(f"ops must be [(write op, gid, arg), ...] with a write op of "
                                  f"{', '.join(WRITE_OPS)}: {exc!r}") from None
        return self.write_normalized(normal, flush, callback, timeout)

    def write_normalized(self, ops: List[Tuple[str, int, Any]], flush: bool = False,
                         callback: Optional[FlushCallback] = None, timeout: Optional[float] = None,
                         columns: Optional[AppendColumns] = None, then: List[Tuple[str, int, Any]] = ()) -> None:
        """``write`` of ops whose arguments are already checked and normalized (by the
        handles, the batch recorder, the front off the wire): the one write path.
        ``columns`` (an AppendColumns, or None) are appends that come after ``ops``,
        and ``then`` votes and commits after those (ops.AFTER_APPENDS: appends
        change nothing they are checked against, so no shadow needs the appends)."""
        with self._lock:
            if self._closed:
                self._check_open()
            if any(name not in AFTER_APPENDS for name, _, _ in then):
                raise InvalidArgument(f"only {' and '.join(sorted(AFTER_APPENDS))} may come after the columns")
            later = ()  # groups whose ops go on past ``ops``: their states are kept for the checks after
            if ops and (columns is not None or then):
                later = {gid for _, gid, _ in then}.union(columns.gids if columns is not None else ())
            planned, new, states = self._plan(ops, later)
            runs = None if columns is None else self._plan_columns(columns, new, states)
            planned_then = self._plan(then, (), states, new)[0] if then else ()
            placement = self._placement(list(new)) if new else None
            crowded = self._apply(planned, placement)
            if runs:
                crowded, column_disks = self._apply_columns(columns, runs, placement, crowded)
            if planned_then:
                more = self._apply(planned_then, placement)
                if more:
                    crowded = (crowded or set()) | more
            if flush:  # also the disks of ops that wrote nothing: what came before them
                groups = self._groups
                if len(ops) == 1 and not then and not runs:  # the common case, one group
                    group = groups.get(ops[0][1])
                    disks = [group.disk] if group is not None else []
                else:
                    disks = {groups[gid].disk for _, gid, _ in ops if gid in groups}
                    disks.update(groups[gid].disk for _, gid, _ in then if gid in groups)
                    if runs:
                        disks.update(column_disks)
                    disks = list(disks)
        if crowded:
            for disk in crowded:
                self._throttle(disk)
        if not flush:
            if callback is not None:
                callback(None)
            return
        if callback is not None:
            return self._flush_disks(disks, callback)
        self._wait(lambda cb: self._flush_disks(disks, cb), timeout)

    def _plan(self, ops, later=(), states=None, new=None):
        """Check ``ops`` without changing anything: ``([(WriteOp, gid, record value)],
        {new gid: None}, {gid: its state after the ops})``. An op is applied to a
        shadow of its group only when a later op of the batch must see its
        effect: one of ``ops``, or an append in columns (``later``: their gids).
        With ``states`` and ``new`` (of an earlier call), ops go on from there."""
        groups = self._groups
        if len(ops) == 1 and ops[0][1] not in later and states is None:  # the common case, without bookkeeping
            name, gid, arg = ops[0]
            op = WRITE_OPS[name]
            group = groups.get(gid)
            if group is not None:
                group.disk.check_writable(name)
            value = op.check(NEW_GROUP if group is None else group, arg)
            if value is NO_RECORD:
                return (), {}, {}
            return [(op, gid, value)], ({} if group is not None else {gid: None}), {}
        last_op = {gid: pos for pos, (_, gid, _) in enumerate(ops)}
        states = {} if states is None else states
        new = {} if new is None else new
        planned = []
        for pos, (name, gid, arg) in enumerate(ops):
            op = WRITE_OPS[name]
            group = groups.get(gid)
            if group is not None:
                group.disk.check_writable(name)  # per op: a disk out of space takes only some
            state = states.get(gid)
            if state is None:
                state = states[gid] = NEW_GROUP if group is None else group
            value = op.check(state, arg)
            if value is NO_RECORD:
                continue
            planned.append((op, gid, value))
            if gid not in groups:
                new[gid] = None
            if last_op[gid] != pos or gid in later:
                if type(state) is not Shadow:
                    state = states[gid] = Shadow(state)
                op.apply(state, value)
        return planned, new, states

    def _plan_columns(self, columns, new, states):
        """Check appends in columns without changing anything, each group as the
        row ops before them leave it (``states``, from ``_plan``): ``[(gid, lo,
        hi)]`` of each group's run of rows (columns.runs). New groups are added
        to ``new``."""
        groups = self._groups
        terms, indexes = columns.terms, columns.indexes
        lasts = {}
        writable = set()  # disks checked already: once per disk, not per group
        runs = columns.runs()
        for gid, lo, hi in runs:
            if gid in lasts:  # a group in two runs: the second follows the first
                last = lasts[gid]
            else:
                group = groups.get(gid)
                if group is None:
                    new[gid] = None
                elif group.disk not in writable:
                    group.disk.check_writable("append")
                    writable.add(group.disk)
                state = states.get(gid)
                last = state.last if state is not None else None if group is None else group.last
            if hi - lo == 1:
                lasts[gid] = check_log_ids(last, ((terms[lo], indexes[lo]),))
            else:
                lasts[gid] = check_log_id_columns(last, terms[lo:hi], indexes[lo:hi])
        return runs

    def _placement(self, gids):
        """The disk each new group goes on: the least loaded one neither failed nor full, counting
        the groups placed before it; raises rather than place any if one cannot go."""
        limit = self.settings["max_groups"]
        if len(self._groups) + len(gids) > limit:
            raise TooManyGroups(f"cannot create {len(gids)} group(s) ({gids[0]}, ...): the store holds "
                                f"{len(self._groups)} of at most max_groups = {limit}")
        disks = [d for d in self._disks if d.failed is None and d.full is None and d.low is None
                 and not d.under_reserve] or self._disks
        load = {disk: disk.group_count for disk in disks}
        placement = {}
        for gid in gids:
            disk = min(disks, key=load.__getitem__)
            disk.check_writable()
            load[disk] += 1
            placement[gid] = disk
        return placement

    def _apply(self, planned, placement):
        """Encode each checked op's record and apply it: nothing here can refuse.
        Returns the disks written to that hold more unsynced bytes than allowed
        (their writers wait, outside the lock), or None."""
        groups = self._groups
        crowded = None
        for op, gid, value in planned:
            group = groups.get(gid)
            if group is None:
                group = groups[gid] = placement[gid].create_group(gid)
            disk = group.disk
            if op.record == APPEND:
                disk.append(group, value, op.apply)  # applies each chunk's run before it rotates
            else:
                disk.put(group, codec.encode(op.record, gid, value))
                op.apply(group, value)
                disk.after_write()
            if disk.end - disk.synced > self._max_unsynced:
                crowded = crowded or set()
                crowded.add(disk)
        return crowded

    def _apply_columns(self, columns, runs, placement, crowded):
        """``_apply`` of the runs of appends in columns that ``_plan_columns``
        checked, handed to each disk as one list (a group's runs stay in order:
        a group is on one disk). Returns ``(crowded, the disks written to)``."""
        log_ids, payloads = columns.cut()  # (before any group is created: the allocations first)
        groups = self._groups
        by_disk = {}
        for gid, lo, hi in runs:
            group = groups.get(gid)
            if group is None:
                group = groups[gid] = placement[gid].create_group(gid)
            disk_runs = by_disk.get(group.disk)
            if disk_runs is None:
                disk_runs = by_disk[group.disk] = []
            disk_runs.append((group, lo, hi))
        for disk, disk_runs in by_disk.items():
            disk.append_columns(disk_runs, log_ids, payloads, apply_append)
            if disk.end - disk.synced > self._max_unsynced:
                crowded = crowded or set()
                crowded.add(disk)
        return crowded, by_disk.keys()

    def _throttle(self, disk):
        """Backpressure: a writer waits while its disk holds too many unsynced bytes."""
        try:
            self._wait(lambda cb: self._flush_disk(disk, cb), None)
        except ShardlogError:
            pass  # the disk failed; the next write on it says so

    def batch(self, flush: bool = False, timeout: Optional[float] = None) -> Batch:
        """Writes for many groups, checked as a whole and applied together.

        ``with store.batch(flush=True) as b: b.group(1).append(...)``; leaving
        the block applies them (and waits for durability if ``flush``).
        """
        return Batch(lambda ops, columns, then: self.write_normalized(ops, flush=flush, timeout=timeout,
                                                                      columns=columns, then=then))

    def _flush_group(self, gid, callback, timeout):
        def start(cb):
            with self._lock:
                self._check_open()
                group = self._groups.get(gid)
                disk = group.disk if group is not None else None
            if disk is None:
                cb(None)  # nothing was ever written for this group
            else:
                self._flush_disk(disk, cb)

        if callback is not None:
            return start(callback)
        self._wait(start, timeout)

    def _read(self, gid, start, end):
        return self.read_page(gid, start, end)[0]

    def read_page(self, gid: int, start: int, end: int, max_entries: Optional[int] = None,
                  max_bytes: Optional[int] = None) -> Tuple[List[Entry], Optional[int]]:
        """``(entries, next)``: entries in ``[start, end)``, at most ``max_entries`` of
        them and about ``max_bytes`` of payload (at least one entry); ``next`` is
        where to continue, or None when the range is done."""
        first, terms, _, payloads, nxt = self.read_columns(gid, start, end, max_entries, max_bytes)
        return list(zip(zip(terms, range(first, first + len(payloads))), payloads)), nxt

    def read_columns(self, gid: int, start: int, end: int, max_entries: Optional[int] = None,
                     max_bytes: Optional[int] = None) -> Tuple[int, Column, Column, List[bytes], Optional[int]]:
        """``read_page`` as columns: ``(first index, terms, sizes, payloads, next)``,
        ``terms`` an ``array("Q")``, ``sizes`` an ``array("I")``. No object is
        built per entry here (the service sends these columns as they are)."""
        check_u64(start, "start")
        check_u64(end, "end")
        with self._lock:
            self._check_open()
            group = self._groups.get(gid)
            if group is None:
                return start, array("Q"), array("I"), [], None
            index = group.index
            lo = max(start, index.first)
            stop = min(end, index.next_index())
            hi = stop if max_entries is None else min(stop, lo + max(max_entries, 1))
            if lo >= hi:
                return lo, array("Q"), array("I"), [], None
            base = index.head - index.first
            sizes = array("I", index.size_column(base + lo, base + hi))
            if max_bytes is not None:
                # Entry k is read while the bytes before it are within the budget.
                before = list(accumulate(sizes))
                hi = lo + min(len(sizes), 1 + bisect_right(before, max_bytes, 0, len(sizes) - 1))
                del sizes[hi - lo:]
            terms = index.term_column(base + lo, base + hi)
            payloads = list(map(group.payloads.get, range(lo, hi)))
            misses = 0
            if None in payloads:
                missing = [k for k, payload in enumerate(payloads) if payload is None]
                offsets = index.offset_column(base + lo, base + hi)
                read = group.disk.read_payloads([offsets[k] for k in missing], [sizes[k] for k in missing])
                for k, payload in zip(missing, read):
                    payloads[k] = payload
                misses = len(missing)
            cache = group.disk.cache
            cache.hits += len(payloads) - misses
            cache.misses += misses
            return lo, terms, sizes, payloads, (hi if hi < stop else None)

    def _import(self, gid, ops):
        """Create group ``gid`` by writing ``ops`` to it (an import); durable on return."""
        with self._lock:
            self._check_open()
            if gid in self._groups:
                raise GroupExists(f"group {gid} already exists; drop it first or choose another id")
            planned, _, _ = self._plan(ops)
            placement = self._placement([gid])
            self._apply(planned, placement)
            if gid not in self._groups:  # an empty log: the group exists all the same
                self._groups[gid] = placement[gid].create_group(gid)
        self._flush_group(gid, None, None)

    def _group_history(self, gid):
        """``(state before, [(type, value), ...])``: the group's operations, in
        raft-log's record types, for an export.

        When the group's whole history is still on disk (its creation is in
        the stream and none of its entries was relocated), these are its own
        records, in stream order, so an export is byte-identical to what
        raft-log writes. Otherwise they are its present log: the state as of
        its purge point, then every live entry (wherever relocation put it).
        Flushes first, so what is read is what is durable.
        """
        self._flush_group(gid, None, None)
        with self._lock:
            self._check_open()
            group = self._groups.get(gid)
            if group is None:
                raise GroupNotFound(gid)
            disk = group.disk
            records, whole = self._group_records(disk, gid)
            if whole:
                return LogState(), records
            start, end = group.index.first, group.index.next_index()
        entries = self._read(gid, start, end)
        initial = group.state()._replace(last=group.purged)
        return initial, [(APPEND, entry) for entry in entries]

    def _group_records(self, disk, gid):
        """``(records, whole)``: the group's raft-log records since its creation,
        and whether its creation was found with nothing relocated after it."""
        records = []
        whole = False
        for chunk in list(disk.chunks):
            end = min(chunk.end if chunk.end is not None else disk.synced, disk.synced)
            if end <= chunk.start:
                break
            path = chunk_path(disk.path, chunk.start)
            with open(path, "rb") as f:
                data = f.read(end - chunk.start)
            end = 0
            try:
                for _, rec, end in codec.iter_records(data):
                    if rec.gid != gid:
                        continue
                    if rec.type in (codec.GROUP_CREATE, codec.GROUP_DROP):
                        records, whole = [], rec.type == codec.GROUP_CREATE
                    elif rec.type == codec.RELOCATE:
                        whole = False
                    else:
                        records.append((rec.type, rec.value))
            except (codec.Incomplete, codec.BadRecord) as exc:
                raise CorruptedLog(path, end, str(exc)) from None
        return records, whole

    def _state(self, gid):
        with self._lock:
            self._check_open()
            group = self._groups.get(gid)
            return group.state() if group is not None else LogState()


@with_write_ops
class Group(_Writes):
    """One group of a Store: the operations of a Raft node's log storage.

    The same methods, with the same arguments, exist on the network client's
    group handle, so a Raft node's storage code runs unchanged on either. The
    write methods (``save_vote``, ``append``, ``truncate``, ``purge``,
    ``commit``, ``save_user_data``) come from ops.py; each takes
    ``flush=True`` to return only once it is durable.
    """

    __slots__ = ("_store", "gid")

    def __init__(self, store: Store, gid: int) -> None:
        self._store = store
        self.gid = gid

    def __repr__(self) -> str:
        return f"Group({self.gid})"

    def _write(self, op: str, arg: Any, flush: bool) -> None:
        self._store.write_normalized([(op, self.gid, WRITE_OPS[op].normalize(arg))], flush)

    def flush(self, callback: Optional[FlushCallback] = None, timeout: Optional[float] = None) -> None:
        """Block until every write accepted so far is durable, or call
        ``callback(None | error)`` later and return at once."""
        return self._store._flush_group(self.gid, callback, timeout)

    def read(self, start: int, end: int) -> Iterator[Entry]:
        """``[((term, index), payload), ...]`` for indexes in ``[start, end)``."""
        return iter(self._store._read(self.gid, start, end))

    def state(self) -> LogState:
        """The LogState, including changes not yet durable."""
        return self._store._state(self.gid)
