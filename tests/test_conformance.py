"""The conformance suite (shardlog/testing/conformance.py) against the embedded Store and a
real server, and against storages broken on purpose, to show that each check can fail.

A crash is as real as it can be here. The server's is a kill -9 of its front
and workers. The Store's is the same within this process: its flush threads
finish what they were handed (bytes a killed process wrote stay in the page
cache) and whatever it still buffered is dropped, nothing sealed or flushed;
then a new Store opens the directories. Both run with small chunks, so a
reopen reads sealed chunks' footers as well as the newest chunk's records.
"""

import os
import signal
import time

import psutil
import pytest

from shardlog import ShardlogError, Store
from shardlog.args import check_u64
from shardlog.errors import LogIdMismatch, LogIndexNotFound
from shardlog.ops import WRITE_OPS
from shardlog.testing import conformance
from shardlog.testing.model import ModelGroup

from .service import Server

#: Small chunks: a reopen reads footers of sealed chunks, not only records.
CHUNK_MAX_RECORDS = 16

CRASH_CHECKS = {c.name for c in conformance.checks() if c.crashes}
ALL_CHECKS = {c.name for c in conformance.checks()}


# ------------------------------------------------------------ the adapters of shardlog itself


def abandon(store):
    """Stop ``store`` as a kill -9 would, without flushing: what its flush threads
    were handed is written (as a killed process's writes stay in the page cache),
    what it still buffered is lost; the directories are free for the next open."""
    for disk in store._disks:
        disk.close()
    for lock in store._dir_locks:
        lock.release()
    store._closed = True


class StoreStorage:
    """The embedded Store: a fresh group id per check, one Store at a time on the same directory."""

    def __init__(self, data_dir, **settings):
        self.data_dir = data_dir
        self.settings = settings
        self.store = Store.open(data_dir, **settings)
        self.next_gid = 1

    def open(self):
        self.next_gid += 1
        return self.store.group(self.next_gid)

    def crash_and_reopen(self, group):
        abandon(self.store)
        self.store = Store.open(self.data_dir, **self.settings)
        return self.store.group(group.gid)

    def close(self, group):
        """Groups are left as the check left them: later reopens recover them too."""

    def shutdown(self):
        self.store.close()


def kill_now(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_dead(pids, timeout=10):
    """Until every pid is gone or a zombie: a killed worker's parent is gone
    too, and whoever inherits it may be slow to reap it (psutil's wait is)."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.01)


class ServerStorage:
    """A real ``python -m shardlog serve``; a crash is kill -9 of its front and its workers."""

    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.next_gid = 1
        self._start()

    def _start(self):
        self.server = Server([self.data_dir], "--chunk-max-records", str(CHUNK_MAX_RECORDS))
        try:
            self.server.wait_ready()
        except BaseException:
            self.server.cleanup()
            raise
        self.client = self.server.client()

    def _crash(self):
        self.client.close()
        workers = self.server.worker_pids()
        kill_now(self.server.proc.pid)
        self.server.proc.wait()
        for pid in workers:
            kill_now(pid)
        wait_dead(workers)
        self.server.workers = []  # (dead: nothing left for cleanup to reap)
        self.server.cleanup()

    def open(self):
        self.next_gid += 1
        return self.client.group(self.next_gid)

    def crash_and_reopen(self, group):
        self._crash()
        self._start()
        return self.client.group(group.gid)

    def close(self, group):
        """Groups are left as the check left them."""

    def shutdown(self):
        self.client.close()
        self.server.stop()
        self.server.cleanup()


@pytest.fixture(scope="module", params=["store", "server"])
def storage(request, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("conformance") / "data"
    if request.param == "store":
        storage = StoreStorage(data_dir, chunk_max_records=CHUNK_MAX_RECORDS)
    else:
        storage = ServerStorage(data_dir)
    yield storage
    storage.shutdown()


#: (adapter, check) -> the bug that makes it fail: strict, so a fix shows.
KNOWN_BUGS = {}


@pytest.mark.parametrize("check", conformance.checks(), ids=str)
def test_conformance(check, storage, request):
    bug = KNOWN_BUGS.get((request.node.callspec.params["storage"], check.name))
    if bug:
        request.applymarker(pytest.mark.xfail(reason=bug, strict=True, raises=conformance.Nonconformance))
    check(storage)


# ------------------------------------------------------------ a storage made of the reference model


class ModelLog:
    """A group kept in the reference model (shardlog/testing/model.py); the writes
    flushed are its disk, and a crash replays them into a new one. Subclasses
    break it in one way each."""

    def __init__(self, gid):
        self.gid = gid
        self.model = ModelGroup()
        self.ops = []
        self.durable = 0

    def apply(self, op, arg):
        self.model.apply(op, arg)

    def normalize(self, op, arg):
        """The argument checks of the Store and the clients (InvalidArgument)."""
        return WRITE_OPS[op].normalize(arg)

    def check_range(self, start, end):
        check_u64(start, "start")
        check_u64(end, "end")

    def _write(self, op, arg, flush):
        arg = self.normalize(op, arg)
        self.apply(op, arg)
        self.ops.append((op, arg))
        if flush:
            self.flush()

    def save_vote(self, vote, flush=False):
        self._write("save_vote", vote, flush)

    def append(self, entries, flush=False):
        self._write("append", list(entries), flush)

    def truncate(self, index, flush=False):
        self._write("truncate", index, flush)

    def purge(self, upto, flush=False):
        self._write("purge", upto, flush)

    def commit(self, log_id, flush=False):
        self._write("commit", log_id, flush)

    def save_user_data(self, user_data, flush=False):
        self._write("save_user_data", user_data, flush)

    def flush(self):
        self.durable = len(self.ops)

    def read(self, start, end):
        self.check_range(start, end)
        return [e for e in self.model.read() if start <= e[0][1] < end]

    def state(self):
        return self.model.state()

    def recovered_ops(self):
        return self.ops[:self.durable]

    def reopened(self):
        """The group as a replay of what was durable leaves it; a record that no
        longer applies (after one that was lost) is skipped, as a lax recovery would."""
        log = type(self)(self.gid)
        for op, arg in self.recovered_ops():
            try:
                log.apply(op, arg)
            except ShardlogError:
                continue
            log.ops.append((op, arg))
        log.durable = len(log.ops)
        return log


class ModelStorage:
    """Groups of ``log_class``; a crash loses what was not flushed (see ModelLog)."""

    def __init__(self, log_class=ModelLog):
        self.log_class = log_class
        self.next_gid = 0

    def open(self):
        self.next_gid += 1
        return self.log_class(self.next_gid)

    def crash_and_reopen(self, group):
        return group.reopened()

    def close(self, group):
        pass


def test_the_reference_model_conforms():
    """The base of the broken storages below passes: their failures are their breakage."""
    report = conformance.run(ModelStorage())
    assert report.ok, report
    assert report.passed == [c.name for c in conformance.checks()]


# ------------------------------------------------------------ broken on purpose: the specific failures


class AcceptsVoteReversal(ModelLog):
    """save_vote without its check: a lower vote replaces the saved one."""

    def apply(self, op, arg):
        if op == "save_vote":
            self.model.vote = arg
        else:
            super().apply(op, arg)


class ForgetsTruncates(ModelLog):
    """Truncates take effect, but recovery does not replay them (the dropped entries come back)."""

    def recovered_ops(self):
        return [(op, arg) for op, arg in super().recovered_ops() if op != "truncate"]


class CapsCommitAtLast(ModelLog):
    """Applies Raft's follower rule in storage: keeps min(commit, last), not the commit point given."""

    def apply(self, op, arg):
        last = self.model.last
        if op == "commit" and last is not None and arg > last:
            arg = last
        super().apply(op, arg)


BROKEN = [
    (AcceptsVoteReversal, {"vote_reversal_is_refused", "refused_writes_leave_nothing_after_a_crash",
                           "rules_hold_after_a_crash"}),
    (ForgetsTruncates, {"truncate_survives_a_crash", "flush_makes_every_earlier_write_durable"}),
    (CapsCommitAtLast, {"commit_reversal_is_refused", "commit_beyond_last_is_accepted",
                        "commit_is_not_checked_against_the_entries", "commit_is_not_moved_by_append_or_truncate",
                        "user_data_is_saved_and_cleared", "commit_survives_a_crash"}),
]


@pytest.mark.parametrize("log_class, failing", BROKEN, ids=[b[0].__name__ for b in BROKEN])
def test_a_broken_storage_fails_the_checks_of_its_rule(log_class, failing):
    report = conformance.run(ModelStorage(log_class))
    assert set(report.failed) == failing, report
    for failure in report.failures:
        assert isinstance(failure.error, conformance.Nonconformance), failure  # a rule broken, not a crash


def test_the_vote_reversal_failure_says_what_was_accepted():
    report = conformance.run(ModelStorage(AcceptsVoteReversal), only=["vote_reversal_is_refused"])
    (failure,) = report.failures
    assert "save_vote((2, 3)) was accepted; VoteReversal expected" in str(failure)
    assert "A vote below the saved one is VoteReversal" in failure.rule


class NoFlush:
    """A Store group whose flush does nothing and whose writes drop ``flush=True``."""

    def __init__(self, inner):
        self.inner = inner
        self.gid = inner.gid

    def __getattr__(self, name):
        method = getattr(self.inner, name)
        if name in WRITE_OPS:
            return lambda arg, flush=False: method(arg)
        if name == "flush":
            return lambda *args, **kwargs: None
        return method


class StoreWithoutFlush(StoreStorage):
    """The Store, its groups behind NoFlush."""

    def open(self):
        return NoFlush(super().open())

    def crash_and_reopen(self, group):
        return NoFlush(super().crash_and_reopen(group.inner))


def test_a_store_that_never_flushes_fails_every_crash_check(tmp_path):
    """The Store's crash is real: a write that was not flushed is gone after it.
    (Default chunks: a rotation would hand the buffer to the flush thread.)"""
    storage = StoreWithoutFlush(tmp_path / "data")
    try:
        report = conformance.run(storage, only=CRASH_CHECKS)
    finally:
        storage.shutdown()
    assert set(report.failed) == CRASH_CHECKS, report


# ------------------------------------------------------------ every check can fail


class BlackHole(ModelLog):
    """Accepts every write and keeps nothing."""

    def apply(self, op, arg):
        pass


class SwallowsRefusals(ModelLog):
    """Refuses nothing: a refused write is silently ignored."""

    def apply(self, op, arg):
        try:
            super().apply(op, arg)
        except ShardlogError:
            pass


class ForgetsEverything(ModelLog):
    """Durable in name only: a crash loses every write."""

    def recovered_ops(self):
        return []


class StartsDirty(ModelLog):
    """A new group is not empty: it starts with a vote."""

    def __init__(self, gid):
        super().__init__(gid)
        self.model.vote = (0, 0)


class ReadsOneTooMany(ModelLog):
    """read(start, end) includes the entry at ``end``."""

    def read(self, start, end):
        return [e for e in self.model.read() if start <= e[0][1] <= end]


class FailsOnEmptyAppend(ModelLog):
    """Takes ``last`` from the list it is given, so an empty one breaks it."""

    def apply(self, op, arg):
        if op == "append" and not arg:
            raise IndexError("list index out of range")
        super().apply(op, arg)


class StateInAnotherOrder(ModelLog):
    """state() with committed and purged swapped, and no field names."""

    def state(self):
        vote, last, committed, purged, user_data = self.model.state()
        return (vote, last, purged, committed, user_data)


class RefusesTruncateAtEnd(ModelLog):
    """Wants an entry held at the truncate's index, so truncate(last.index + 1) is refused."""

    def apply(self, op, arg):
        last = self.model.last
        if op == "truncate" and last is not None and arg == last[1] + 1:
            raise LogIndexNotFound(arg - 1)
        super().apply(op, arg)


class ChecksTermOfOldPurges(ModelLog):
    """Refuses a purge at or below ``purged`` whose log id is not ``purged`` (the rule: a no-op)."""

    def apply(self, op, arg):
        purged = self.model.purged
        if op == "purge" and purged is not None and arg[1] <= purged[1] and arg != purged:
            raise LogIdMismatch(purged, arg)
        super().apply(op, arg)


class TakesAnyArgument(ModelLog):
    """Checks no argument: whatever is given goes to the log."""

    def normalize(self, op, arg):
        return arg

    def check_range(self, start, end):
        pass


def test_every_check_fails_on_some_broken_storage():
    """No check passes whatever the storage does: each one fails on at least one of these."""
    mutants = [AcceptsVoteReversal, ForgetsTruncates, CapsCommitAtLast, BlackHole, SwallowsRefusals,
               ForgetsEverything, StartsDirty, ReadsOneTooMany, FailsOnEmptyAppend, StateInAnotherOrder,
               RefusesTruncateAtEnd, ChecksTermOfOldPurges, TakesAnyArgument]
    caught = set()
    for mutant in mutants:
        caught |= set(conformance.run(ModelStorage(mutant)).failed)
    assert caught == ALL_CHECKS, sorted(ALL_CHECKS - caught)


# ------------------------------------------------------------ the suite's own interface


def test_checks_have_unique_names_and_state_their_rule():
    names = [c.name for c in conformance.checks()]
    assert len(names) == len(set(names))
    assert all(c.fn.__doc__ for c in conformance.checks())
    assert {c.name for c in conformance.checks(crashes=False)} == ALL_CHECKS - CRASH_CHECKS
    assert {"vote_survives_a_crash", "entries_survive_a_crash", "truncate_survives_a_crash", "purge_survives_a_crash",
            "commit_survives_a_crash", "user_data_survives_a_crash"} <= CRASH_CHECKS


def test_run_raises_with_every_failure_when_asked():
    with pytest.raises(conformance.ConformanceError) as caught:
        conformance.run(ModelStorage(ForgetsTruncates), raise_on_failure=True)
    assert caught.value.report.failed == ["truncate_survives_a_crash", "flush_makes_every_earlier_write_durable"]
    assert "truncate_survives_a_crash" in str(caught.value)


def test_run_refuses_unknown_check_names():
    with pytest.raises(ValueError, match="no such checks"):
        conformance.run(ModelStorage(), only=["no_such_check"])
