"""Random operation sequences on many groups against a plain in-memory model.

The model implements DESIGN.md section 1 on its own (dicts, no index, no
files): a second, independent reading of the rules, so it can catch a wrong
one in ops.py. The store must agree with it on every result, every error,
every state and every read, across chunk rotations, cache evictions, chunk
removals and reopens at random points, and its own invariants (``last``, the
index, ``purged`` and the entries read back agree) hold after every step.
Batches are drawn from states reached by purges beyond ``last``, truncates
to the purge point and appends at it: a rejected batch must leave the files
byte-identical and every group as it was; an accepted one must equal its ops
applied one by one.

``SHARDLOG_MODEL_EXAMPLES=100000`` runs a long one.
"""

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from shardlog import GroupNotFound, Store
from shardlog.batch import Batch
from shardlog.testing.model import ModelGroup
from shardlog.types import next_index

from .conftest import snapshot
from .test_atomicity import memory

GIDS = st.integers(0, 5)
SETTINGS = dict(chunk_max_records=7, chunk_max_size=600, cache_max_items=4, cache_max_bytes=64)


def outcome(call):
    """The exception ``call()`` raises, or None."""
    try:
        call()
    except Exception as exc:
        return exc
    return None


def check_invariants(store):
    """What must hold of every group between any two steps, whatever the ops were."""
    for gid, group in store._groups.items():
        index, last, purged = group.index, group.last, group.purged
        entries = list(store.group(gid).read(0, 2 ** 64 - 1))
        assert [(t, i) for (t, i), _ in entries] == [
            (index.term_at(index.first + k), index.first + k) for k in range(len(index))], gid
        if purged is not None:
            assert last is not None and last >= purged, (gid, last, purged)
        if entries:
            assert entries[-1][0] == last, (gid, entries[-1][0], last)
            if purged is not None:  # a gap is fine: a log may start anywhere
                assert entries[0][0][1] > purged[1], (gid, entries[0][0], purged)
        else:
            assert last == purged, (gid, last, purged)
        if last is not None:
            assert index.next_index() == next_index(last), (gid, index.next_index(), last)


def draw_purge_point(data, model):
    """A purge point: at a held entry, beyond ``last`` (at, below or above its term), or anywhere."""
    last = model.last
    kind = data.draw(st.sampled_from(["held", "beyond", "any"]))
    if kind == "held" and model.entries:
        return data.draw(st.sampled_from(model.read()))[0]
    if kind == "beyond" and last is not None:
        return (max(0, last[0] + data.draw(st.integers(-1, 1))), last[1] + data.draw(st.integers(1, 4)))
    return (data.draw(st.integers(0, 4)), data.draw(st.integers(0, next_index(last) + 1)))


def draw_write(data, model):
    """One write for a group in ``model``'s state: ``(op, arg)``, often valid, sometimes not."""
    kind = data.draw(st.sampled_from(["append", "commit", "truncate", "purge", "save_vote", "save_user_data"]))
    last = model.last
    if kind == "append":
        if last is None or data.draw(st.integers(0, 9)) == 0:
            term, first = data.draw(st.integers(0, 3)), data.draw(st.integers(0, 12))
        else:  # after last: at the purge point when the purge went beyond it
            term, first = last[0] + data.draw(st.integers(0, 1)), last[1] + 1
        return kind, [((term, first + k), b"b%d" % k) for k in range(data.draw(st.integers(1, 3)))]
    if kind == "truncate":
        if data.draw(st.booleans()):
            return kind, next_index(model.purged)  # to the purge point
        return kind, data.draw(st.integers(0, next_index(last) + 1))
    if kind == "purge":
        return kind, draw_purge_point(data, model)
    if kind == "commit":
        return kind, data.draw(st.tuples(st.integers(0, 4), st.integers(0, 20)))
    if kind == "save_vote":
        return kind, data.draw(st.tuples(st.integers(0, 4), st.integers(0, 3)))
    return kind, data.draw(st.one_of(st.none(), st.binary(max_size=8)))


def applied_order(ops):
    """``ops`` (``[(op, gid, arg)]``) in the order a batch recording them applies them."""
    applied = []

    def submit(rows, columns, then):
        applied.extend(rows + (columns.rows() if columns is not None else []) + then)

    with Batch(submit, record=lambda op, arg: arg) as b:
        for kind, gid, arg in ops:
            getattr(b.group(gid), kind)(arg)
    return applied


class StoreVsModel(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="shardlog-model-")
        self.dirs = [f"{self.dir}/a", f"{self.dir}/b"]
        self.store = Store.open(self.dirs, **SETTINGS)
        self.model = {}

    def teardown(self):
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def both(self, gid, op, *args):
        """Run ``op`` on the model and on the store; they must agree on the outcome."""
        model = self.model.get(gid) or ModelGroup()
        expected = outcome(lambda: getattr(model, op)(*args))
        got = outcome(lambda: getattr(self.store.group(gid), op)(*args))
        assert type(got) is type(expected), f"{op}{args}: store {got!r}, model {expected!r}"
        if expected is None and gid not in self.model:
            self.model[gid] = model
        self.check(gid)

    def check(self, gid):
        model = self.model.get(gid) or ModelGroup()
        g = self.store.group(gid)
        assert g.state() == model.state()
        assert list(g.read(0, 10 ** 6)) == model.read()

    @rule(gid=GIDS, data=st.data())
    def append(self, gid, data):
        model = self.model.get(gid) or ModelGroup()
        last = model.last
        n = data.draw(st.integers(1, 6))
        if last is None or data.draw(st.integers(0, 9)) == 0:
            start = (data.draw(st.integers(0, 3)), data.draw(st.integers(0, 12)))
        else:
            start = (last[0] + data.draw(st.integers(0, 1)), last[1] + 1)
        entries = [((start[0], start[1] + k), data.draw(st.binary(max_size=40))) for k in range(n)]
        self.both(gid, "append", entries)

    @rule(gid=GIDS, data=st.data())
    def truncate(self, gid, data):
        model = self.model.get(gid) or ModelGroup()
        if data.draw(st.booleans()):
            self.both(gid, "truncate", next_index(model.purged))
        else:
            self.both(gid, "truncate", data.draw(st.integers(0, next_index(model.last) + 1)))

    @rule(gid=GIDS, data=st.data())
    def purge(self, gid, data):
        self.both(gid, "purge", draw_purge_point(data, self.model.get(gid) or ModelGroup()))

    @rule(gid=GIDS, term=st.integers(0, 4), index=st.integers(0, 20))
    def commit(self, gid, term, index):
        self.both(gid, "commit", (term, index))

    @rule(gid=GIDS, vote=st.tuples(st.integers(0, 4), st.integers(0, 3)))
    def save_vote(self, gid, vote):
        self.both(gid, "save_vote", vote)

    @rule(gid=GIDS, user_data=st.one_of(st.none(), st.binary(max_size=30)))
    def save_user_data(self, gid, user_data):
        model = self.model.setdefault(gid, ModelGroup())
        model.user_data = user_data
        self.store.group(gid).save_user_data(user_data)
        self.check(gid)

    @rule(gid=GIDS)
    def drop_group(self, gid):
        if gid in self.model:
            del self.model[gid]
            self.store.drop_group(gid)
        else:
            try:
                self.store.drop_group(gid)
            except GroupNotFound:
                pass
            else:
                raise AssertionError("dropped a group that does not exist")
        self.check(gid)

    @rule(data=st.data())
    def batch(self, data):
        """Writes for several groups as one batch: all applied, or none when any fails."""
        ops = []
        drafts = {gid: m.copy() for gid, m in self.model.items()}
        for _ in range(data.draw(st.integers(1, 6))):
            gid = data.draw(GIDS)
            draft = drafts.setdefault(gid, ModelGroup())
            kind, arg = draw_write(data, draft)
            ops.append((kind, gid, arg))
            try:  # draw the next op from the state this one leaves, if it is valid
                draft.apply(kind, arg)
            except Exception:
                pass
        # The model applies them one by one, in the order the batch does (its
        # rows, then the appends it holds in columns: batch.py); the first
        # failure means nothing is applied.
        trial = {gid: m.copy() for gid, m in self.model.items()}

        def in_model():
            for kind, gid, arg in applied_order(ops):
                trial.setdefault(gid, ModelGroup()).apply(kind, arg)

        def in_store():
            with self.store.batch() as b:
                for kind, gid, arg in ops:
                    getattr(b.group(gid), kind)(arg)

        files, mem = self.settled_files(), memory(self.store)
        expected, got = outcome(in_model), outcome(in_store)
        assert type(got) is type(expected), f"batch {ops}: store {got!r}, model {expected!r}"
        if expected is None:
            for kind, gid, arg in ops:
                self.model[gid] = trial[gid]
        else:
            assert self.settled_files() == files, f"rejected batch {ops} changed the files"
            assert memory(self.store) == mem, f"rejected batch {ops} changed memory"
        for gid in {gid for _, gid, _ in ops}:
            self.check(gid)

    def files(self):
        return [snapshot(Path(d)) for d in self.dirs]

    def settled_files(self):
        """The files once the store's own work is done: freeing a chunk (state carried
        forward, then the deletion) goes on after the flush that started it returns."""
        files = None
        while True:
            self.store.flush()
            try:
                again = self.files()
            except FileNotFoundError:  # deleted while it was read
                continue
            if again == files:
                return files
            files = again

    @rule(gid=GIDS)
    def flush(self, gid):
        self.store.group(gid).flush()

    @rule(read_footers=st.booleans())
    def reopen(self, read_footers):
        """Opening by footers and replaying every record must rebuild the same store."""
        self.store.close()
        self.store = Store.open(self.dirs, read_footers=read_footers, **SETTINGS)

    @invariant()
    def same_groups(self):
        assert self.store.groups() == sorted(self.model)

    @invariant()
    def invariants_hold(self):
        check_invariants(self.store)

    @precondition(lambda self: self.model)
    @invariant()
    def all_groups_agree(self):
        for gid in self.model:
            self.check(gid)


StoreVsModel.TestCase.settings = settings(
    max_examples=int(os.environ.get("SHARDLOG_MODEL_EXAMPLES", 150)), stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestStoreVsModel = StoreVsModel.TestCase
