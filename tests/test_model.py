"""Random operation sequences on many groups against a plain in-memory model.

The model implements DESIGN.md section 1 on its own (dicts, no index, no
files); the store must agree with it on every result, every error, every
state and every read, across chunk rotations, cache evictions, chunk removals
and reopens at random points.
"""

import shutil
import tempfile

from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from shardlog import GroupNotFound, Store
from shardlog.model import ModelGroup

GIDS = st.integers(0, 5)
SETTINGS = dict(chunk_max_records=7, chunk_max_size=600, cache_max_items=4, cache_max_bytes=64)


def outcome(call):
    """The exception ``call()`` raises, or None."""
    try:
        call()
    except Exception as exc:
        return exc
    return None


def _next(log_id):
    return 0 if log_id is None else log_id[1] + 1


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
        hi = _next(model.last) + 1
        self.both(gid, "truncate", data.draw(st.integers(0, hi)))

    @rule(gid=GIDS, data=st.data())
    def purge(self, gid, data):
        model = self.model.get(gid) or ModelGroup()
        hi = _next(model.last) + 1
        index = data.draw(st.integers(0, hi))
        if index in model.entries and data.draw(st.integers(0, 4)):
            term = model.entries[index][0][0]
        else:
            term = data.draw(st.integers(0, 4))
        self.both(gid, "purge", (term, index))

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
        shadow = {gid: (m.copy() if m else None) for gid, m in self.model.items()}
        for _ in range(data.draw(st.integers(1, 5))):
            gid = data.draw(GIDS)
            model = shadow.get(gid) or ModelGroup()
            kind = data.draw(st.sampled_from(["append", "commit", "truncate", "purge", "save_vote"]))
            last = model.last
            if kind == "append":
                term, first = (1, 0) if last is None else (last[0], last[1] + 1)
                arg = [((term, first + k), b"b%d" % k) for k in range(data.draw(st.integers(1, 3)))]
                if data.draw(st.integers(0, 6)) == 0:
                    arg = [((0, 0), b"reversal")]
            elif kind == "truncate":
                arg = data.draw(st.integers(0, (last[1] + 2) if last else 1))
            elif kind == "purge":
                entries = model.read()
                arg = entries[0][0] if entries and data.draw(st.booleans()) else (0, 0)
            elif kind == "commit":
                arg = data.draw(st.tuples(st.integers(0, 3), st.integers(0, 20)))
            else:
                arg = data.draw(st.tuples(st.integers(0, 3), st.integers(0, 3)))
            ops.append((kind, gid, arg))
            shadow[gid] = model
        # The model applies them in order; the first failure means nothing is applied.
        trial = {gid: (m.copy() if m else ModelGroup()) for gid, m in self.model.items()}

        def in_model():
            for kind, gid, arg in ops:
                trial.setdefault(gid, ModelGroup()).apply(kind, arg)

        def in_store():
            with self.store.batch() as b:
                for kind, gid, arg in ops:
                    getattr(b.group(gid), kind)(arg)

        expected, got = outcome(in_model), outcome(in_store)
        assert type(got) is type(expected), f"batch {ops}: store {got!r}, model {expected!r}"
        if expected is None:
            for kind, gid, arg in ops:
                self.model[gid] = trial[gid]
        for gid in {gid for _, gid, _ in ops}:
            self.check(gid)

    @rule(gid=GIDS)
    def flush(self, gid):
        self.store.group(gid).flush()

    @rule()
    def reopen(self):
        self.store.close()
        self.store = Store.open(self.dirs, **SETTINGS)

    @invariant()
    def same_groups(self):
        assert self.store.groups() == sorted(self.model)

    @precondition(lambda self: self.model)
    @invariant()
    def all_groups_agree(self):
        for gid in self.model:
            self.check(gid)


StoreVsModel.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestStoreVsModel = StoreVsModel.TestCase
