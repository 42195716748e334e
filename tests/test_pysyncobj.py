"""PySyncObj with its journal in shardlog (shardlog/integrations/pysyncobj.py).

The journal alone, on an embedded Store: what PySyncObj reads back after each
call, durability across power loss, term and vote, the commit clamp, the hook.
Then real PySyncObj clusters, each node a child process (tests/pysyncobj_node.py),
four clusters of three on one shardlog server, through kill -9 of nodes and
of the server, log compaction and the truncation of conflicting entries.
"""

import json
import os
import queue
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import psutil
import pytest

pytest.importorskip("pysyncobj")

import pysyncobj.journal  # noqa: E402
import pysyncobj.syncobj  # noqa: E402
from pysyncobj.journal import FileJournal, MemoryJournal  # noqa: E402

from shardlog import LogIdNonConsecutive, Timeout, VoteReversal  # noqa: E402
from shardlog.client import Client  # noqa: E402
from shardlog.integrations.pysyncobj import JournalRewind, ShardlogJournal  # noqa: E402
from shardlog.testing.process import ServerProcess  # noqa: E402
from shardlog.testing.simfs import SimFiles  # noqa: E402
from shardlog.testing.simfs import open_store as open_sim_store  # noqa: E402

from .service import ROOT, poll_for  # noqa: E402

SIM_PATH = "/sim/data"


def pysyncobj_like_log(journal, terms=(0, 1, 1, 1, 2, 2)):
    """PySyncObj's first entry (a no-op at index 1, term 0), then a command per term given."""
    for idx, term in enumerate(terms, start=1):
        journal.add(b"\x01" if idx == 1 else b"\x00cmd%d" % idx, idx, term)


def journal_state(journal):
    return (list(journal), journal.getCurrentTerm(), journal.getVotedForNodeId())


class KeepNothing:
    """A reboot that finds no write made since the last fsync (``SimFiles.after_crash``'s choices, all minimal)."""

    def randint(self, low, high):
        return low


def after_power_loss(fs):
    """The journal of group 1 as a reboot finds it after the machine lost power now."""
    store = open_sim_store(fs.after_crash(KeepNothing()), SIM_PATH)
    try:
        return journal_state(ShardlogJournal(store.group(1))), store.group(1).state()
    finally:
        store.close()


# ------------------------------------------------------------ the journal alone


def test_every_write_is_durable_when_it_returns():
    """After each call, the machine loses power: a reboot finds the journal as
    PySyncObj's memory journal holds it. The flushers of this store run only
    when a write asks for durability, so a write that does not is lost."""
    fs = SimFiles()
    store = open_sim_store(fs, SIM_PATH)
    journal, model = ShardlogJournal(store.group(1)), MemoryJournal()
    steps = [
        ("add", b"\x01", 1, 0),
        ("setCurrentTerm", 1, None),
        ("setCurrentTerm", 1, "127.0.0.1:4001"),
        ("add", b"\x01", 2, 1),
        *[("add", b"\x00cmd%d" % i, i, 1) for i in range(3, 9)],
        ("deleteEntriesFrom", 5),  # a follower drops its conflicting suffix: indexes 6..8
        ("setCurrentTerm", 2, None),
        ("add", b"\x00new6", 6, 2),
        ("add", b"\x00new7", 7, 2),
        ("deleteEntriesTo", 3),  # compaction: indexes 1..3 go
        ("setCurrentTerm", 3, "127.0.0.1:4002"),
        ("clear",),  # a snapshot install: the journal is replaced by the snapshot's last two entries
        ("add", b"\x00snap20", 20, 3),
        ("add", b"\x00snap21", 21, 3),
        ("add", b"\x00cmd22", 22, 3),
    ]
    for name, *args in steps:
        getattr(journal, name)(*args)
        getattr(model, name)(*args)
        if name == "clear":
            continue  # written together with the add that follows it
        found, _ = after_power_loss(fs)
        assert found == journal_state(model), f"after {name}{tuple(args)}"
    journal.setRaftCommitIndex(21)
    assert after_power_loss(fs)[1].committed is None, "the commit point is saved without a flush..."
    journal.onOneSecondTimer()
    assert after_power_loss(fs)[1].committed == (3, 21), "...and made durable within the second"
    store.close()


def test_entries_read_back_as_pysyncobj_journals_hold_them(open_store, tmp_path):
    """Random sequences of what PySyncObj does to its journal (append, drop a conflicting
    suffix, compact, install a snapshot), beside its memory and file journals: after every
    call the three read the same, by index and by slice; so does the journal read again
    from a reopened store."""
    rng = random.Random(7)
    store = open_store(tmp_path / "data")
    journal = ShardlogJournal(store.group(1))
    memory, file = MemoryJournal(), FileJournal(str(tmp_path / "file-journal"))
    journals = (journal, memory, file)
    calls = {"truncate": 0, "purge": 0, "clear": 0}
    term = 0
    for j in journals:
        j.add(b"\x01", 1, 0)
    for step in range(400):
        last = journal[-1][1]
        roll = rng.random()
        if roll < 0.1 and len(journal) > 1:
            position = rng.randrange(1, len(journal))
            for j in journals:
                j.deleteEntriesFrom(position)
            calls["truncate"] += 1
        elif roll < 0.2 and len(journal) > 1:
            position = rng.randrange(1, len(journal))
            for j in journals:
                j.deleteEntriesTo(position)
            calls["purge"] += 1
        elif roll < 0.23:
            start = last + rng.randrange(-1, 5) if len(journal) > 2 else last + 1
            start = max(start, journal[0][1] + 1)
            term += 1
            for j in journals:
                j.clear()
                j.add(b"\x00snapshot-a", start, term)
                j.add(b"\x00snapshot-b", start + 1, term)
            calls["clear"] += 1
        else:
            term += rng.random() < 0.1
            command = rng.randbytes(rng.randrange(0, 40))
            for j in journals:
                j.add(command, last + 1, term)
        expected = memory[:]
        assert journal[:] == expected and file[:] == expected, f"step {step}"
        assert len(journal) == len(expected) and journal[0] == expected[0] and journal[-1] == expected[-1]
        lo, hi = sorted(rng.randrange(-len(expected) - 1, len(expected) + 2) for _ in range(2))
        assert journal[lo:hi] == expected[lo:hi]
        if step % 100 == 99:
            store.close()
            store = open_store(tmp_path / "data")
            journal = ShardlogJournal(store.group(1))
            journals = (journal, memory, file)
            assert journal[:] == expected
    file._destroy()
    assert min(calls.values()) >= 5, calls


def test_positions_count_from_the_end_as_in_a_list(open_store):
    journal, model = ShardlogJournal(open_store().group(1)), MemoryJournal()
    for j in (journal, model):
        pysyncobj_like_log(j)
        j.deleteEntriesFrom(-2)
        j.deleteEntriesTo(-3)
        j.deleteEntriesFrom(10)
        j.deleteEntriesTo(0)
    assert journal[:] == model[:] and journal[-1] == model[-1] and journal[-3] == model[-3]
    with pytest.raises(IndexError):
        journal[len(model)]


def test_purge_keeps_the_entry_pysyncobj_keeps(open_store, tmp_path):
    store = open_store()
    journal = ShardlogJournal(store.group(1))
    pysyncobj_like_log(journal)
    journal.deleteEntriesTo(3)  # PySyncObj after a snapshot at index 4: keeps 4 (its term is prevLogTerm)
    assert store.group(1).state().purged == (1, 3)
    assert [e[1:] for e in journal] == [(4, 1), (5, 2), (6, 2)]
    assert [e[1:] for e in ShardlogJournal(store.group(1))] == [(4, 1), (5, 2), (6, 2)]
    journal.deleteEntriesTo(len(journal))  # every entry: the group is empty, purged up to its last
    assert len(journal) == 0 and store.group(1).state().purged == (2, 6) == store.group(1).state().last
    journal.add(b"\x00next", 7, 2)
    assert journal[:] == [(b"\x00next", 7, 2)]


def test_conflicting_entries_are_truncated(open_store):
    """A follower holding uncommitted entries of term 1 at 4..6 hears from a leader of term 2
    whose entries differ from index 4: PySyncObj drops them (deleteEntriesFrom) and adds the
    leader's."""
    store = open_store()
    journal = ShardlogJournal(store.group(1))
    pysyncobj_like_log(journal, terms=(0, 1, 1, 1, 1, 1))
    journal.setRaftCommitIndex(3)
    journal.deleteEntriesFrom(3)  # position 3 is index 4: PySyncObj's __deleteEntriesFrom(prevLogIdx + 1)
    journal.add(b"\x00leader4", 4, 2)
    journal.add(b"\x00leader5", 5, 2)
    assert store.group(1).state().last == (2, 5)
    assert list(store.group(1).read(0, 10))[3:] == [((2, 4), b"\x00leader4"), ((2, 5), b"\x00leader5")]
    assert ShardlogJournal(store.group(1))[:] == journal[:]
    with pytest.raises(LogIdNonConsecutive):
        journal.add(b"\x00gap", 9, 2)  # refused by the group's rule: nothing written, nothing changed
    assert journal[-1] == (b"\x00leader5", 5, 2) and store.group(1).state().last == (2, 5)


def test_a_snapshot_install_replaces_the_log_in_one_batch(open_store):
    store = open_store()
    journal = ShardlogJournal(store.group(1))
    pysyncobj_like_log(journal)
    journal.deleteEntriesTo(2)
    journal.clear()
    assert len(journal) == 0 and journal[:] == []
    assert store.group(1).state().last == (2, 6), "nothing written at clear()"
    journal.add(b"\x00snap-a", 40, 5)
    state = store.group(1).state()
    assert state.purged == (1, 39) and state.last == (5, 40), "held entries dropped, purge point raised"
    journal.add(b"\x00snap-b", 41, 5)
    assert ShardlogJournal(store.group(1))[:] == [(b"\x00snap-a", 40, 5), (b"\x00snap-b", 41, 5)]
    journal.clear()
    with pytest.raises(JournalRewind):
        journal.add(b"\x01", 1, 0)  # PySyncObj starting again at index 1, below the purge point
    assert store.group(1).state() == state._replace(last=(5, 41)), "nothing written"


def test_a_snapshot_install_is_all_or_nothing_across_power_loss():
    """clear() and the add after it are one batch: a reboot finds the old log or the new one."""
    fs = SimFiles()
    store = open_sim_store(fs, SIM_PATH)
    journal = ShardlogJournal(store.group(1))
    pysyncobj_like_log(journal)
    before = journal[:]
    journal.clear()
    assert after_power_loss(fs)[0][0] == before
    journal.add(b"\x00snap", 30, 4)
    assert after_power_loss(fs)[0][0] == [(b"\x00snap", 30, 4)]
    store.close()


def test_term_and_vote_come_back_exactly(open_store, data_dir):
    votes = [(0, None), (1, None), (1, "127.0.0.1:4001"), (2, None), (2, "10.0.0.7:4321"), (5, 42),
             (6, "127.0.0.1:4001")]
    store = open_store()
    for term, voted_for in votes:
        journal = ShardlogJournal(store.group(1))
        if (term, voted_for) != (0, None):
            journal.setCurrentTerm(term, voted_for)
        store.close()
        store = open_store()
        journal = ShardlogJournal(store.group(1))
        assert (journal.getCurrentTerm(), journal.getVotedForNodeId()) == (term, voted_for)
    assert store.group(1).state().vote == (6, 1), "a node voted for twice keeps its number"
    state = store.group(1).state()
    with pytest.raises(VoteReversal):
        journal.setCurrentTerm(6, None)  # a vote taken back within its term
    with pytest.raises(VoteReversal):
        journal.setCurrentTerm(4, "127.0.0.1:4009")  # a term going back
    assert (journal.getCurrentTerm(), journal.getVotedForNodeId()) == (6, "127.0.0.1:4001")
    with pytest.raises(TypeError):
        journal.setCurrentTerm(7, ("10.0.0.1", 1))  # a node id the journal could not give back exactly
    assert store.group(1).state() == state, "refused before anything was written"


def test_commit_index_is_never_ahead_of_the_journal(open_store):
    store = open_store()
    journal = ShardlogJournal(store.group(1))
    pysyncobj_like_log(journal)
    assert journal.getRaftCommitIndex() == 1, "PySyncObj's default, as its file journal's"
    journal.setRaftCommitIndex(100)
    assert journal.getRaftCommitIndex() == 6 and store.group(1).state().committed == (2, 6)
    store.close()
    store = open_store()
    journal = ShardlogJournal(store.group(1))
    assert journal.getRaftCommitIndex() == 6
    journal.deleteEntriesFrom(3)  # below the commit point (a broken cluster): the commit index follows
    assert journal.getRaftCommitIndex() == 3
    journal.setRaftCommitIndex(3)  # PySyncObj lowers it too: raft-log's commit never goes down...
    assert store.group(1).state().committed == (2, 6)
    store.close()
    store = open_store()
    assert ShardlogJournal(store.group(1)).getRaftCommitIndex() == 3, "...and loading clamps it"


def test_commands_are_kept_byte_for_byte(open_store):
    store = open_store()
    journal = ShardlogJournal(store.group(1))
    commands = [b"", bytes(range(256)), random.Random(1).randbytes(1 << 20), bytearray(b"\x00ba"),
                memoryview(b"\x02view")]
    for idx, command in enumerate(commands, start=1):
        journal.add(command, idx, 1)
    for j in (journal, ShardlogJournal(store.group(1))):
        assert [c for c, _, _ in j] == [bytes(c) for c in commands]
        assert {type(c) for c, _, _ in j} == {bytes}
    for wrong in ("text", 7):
        with pytest.raises(TypeError):
            journal.add(wrong, 6, 1)
    assert store.group(1).state().last == (1, 5)


class TimesOutOnce:
    """A group whose first ``op`` takes effect, or not, and then times out, as a server may."""

    def __init__(self, group, op, takes_effect):
        self._group, self._store, self.gid = group, group._store, group.gid
        self._op, self._takes_effect, self.failures = op, takes_effect, 0

    def __getattr__(self, name):
        method = getattr(self._group, name)
        if name != self._op:
            return method

        def once(*args, **kwargs):
            if self.failures == 0:
                self.failures += 1
                if self._takes_effect:
                    method(*args, **kwargs)
                raise Timeout("no reply in time")
            return method(*args, **kwargs)
        return once


@pytest.mark.parametrize("takes_effect", [True, False])
@pytest.mark.parametrize("op", ["append", "truncate", "purge", "save_vote"])
def test_a_write_whose_outcome_is_unknown_is_read_back_then_made_once(open_store, op, takes_effect):
    store = open_store()
    pysyncobj_like_log(ShardlogJournal(store.group(1)))
    group = TimesOutOnce(store.group(1), op, takes_effect)
    journal, model = ShardlogJournal(group), MemoryJournal()
    pysyncobj_like_log(model)
    for j in (journal, model):
        j.add(b"\x00seven", 7, 2)
        j.deleteEntriesFrom(5)
        j.deleteEntriesTo(2)
        j.setCurrentTerm(3, "127.0.0.1:4001")
    assert group.failures == 1
    assert journal_state(ShardlogJournal(store.group(1))) == journal_state(journal) == journal_state(model)


def test_the_hook_gives_a_shardlog_journal_and_leaves_the_rest_to_pysyncobj(open_store, tmp_path):
    hook = pysyncobj.syncobj.createJournal  # what SyncObj.__init__ calls
    assert hook is pysyncobj.journal.createJournal is pysyncobj.createJournal
    journal = ShardlogJournal(open_store().group(1))
    assert hook(journal) is journal
    assert type(hook(None)) is MemoryJournal and type(hook()) is MemoryJournal
    file_journal = hook(str(tmp_path / "journal"))
    assert type(file_journal) is FileJournal
    file_journal._destroy()


RELOAD = """
import importlib, sys
import pysyncobj.journal, pysyncobj.syncobj
original = pysyncobj.journal.createJournal
import shardlog.integrations.pysyncobj as integration
from shardlog import Store
store = Store.open(sys.argv[1])
before = integration.ShardlogJournal(store.group(1))
import shardlog.integrations.pysyncobj
for _ in range(2):
    importlib.reload(integration)
hook = pysyncobj.syncobj.createJournal
assert hook is pysyncobj.journal.createJournal is pysyncobj.createJournal
assert hook.__wrapped__ is original is hook.__shardlog_original__, "wrapped once, around PySyncObj's own"
assert hook(before) is before, "a journal made before the reload is still the journal"
after = integration.ShardlogJournal(store.group(2))
assert hook(after) is after and type(hook(None)) is pysyncobj.journal.MemoryJournal
store.close()
print("ok")
"""


def test_importing_again_or_reloading_installs_the_hook_once(tmp_path):
    """In a child process: a reload would leave this one with two JournalRewind classes."""
    done = subprocess.run([sys.executable, "-c", RELOAD, str(tmp_path / "data")], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "ok\n"), done.stderr


def test_the_docs_example_runs(tmp_path, monkeypatch, capsys):
    with open(os.path.join(ROOT, "docs", "raft.md")) as f:
        text = f.read()
    section = text[text.index("## A PySyncObj example"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/raft.md", "exec"), {"__name__": "docs_raft"})
    assert capsys.readouterr().out == "5\n3 (3, 1) 1 127.0.0.1:0 3\n"
    assert (tmp_path / "raft-data").is_dir()


# ------------------------------------------------------------ real clusters

NODE_SCRIPT = os.path.join(ROOT, "tests", "pysyncobj_node.py")
CLUSTERS, NODES = 4, 3


def free_ports(count):
    """Ports nothing listens on now (PySyncObj needs each node's address before it binds)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class Node:
    """A PySyncObj node in a child process (tests/pysyncobj_node.py), spoken to in JSON lines."""

    def __init__(self, endpoint, gid, addr, partners, workdir):
        self.gid, self.addr = gid, addr
        self.args = [sys.executable, NODE_SCRIPT, "--endpoint", endpoint, "--gid", str(gid), "--self", addr,
                     "--dump", os.path.join(workdir, f"node-{gid}.dump")]
        for partner in partners:
            self.args += ["--partner", partner]
        self.log_path = os.path.join(workdir, f"node-{gid}.log")
        self.proc = None
        #: Every process this node ran, to check at the end that none is left.
        self.pids = []

    def start(self):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                         env=env, text=True, bufsize=1)
        self.pids.append(self.proc.pid)
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True)
        self.reader.start()
        return self

    @staticmethod
    def _read(stream, lines):
        for line in stream:
            lines.put(json.loads(line))
        lines.put(None)

    def send(self, op, **fields):
        self.proc.stdin.write(json.dumps(dict(op=op, **fields)) + "\n")
        self.proc.stdin.flush()

    def receive(self, timeout=30):
        try:
            reply = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"node {self.addr}: no answer in {timeout} s\n{self.log()}") from None
        if reply is None:
            raise AssertionError(f"node {self.addr} exited with {self.proc.wait(5)}\n{self.log()}")
        return reply

    def ask(self, op, timeout=30, **fields):
        self.send(op, **fields)
        return self.receive(timeout)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()[-4000:]

    def kill(self):
        """kill -9, and reap (the process, then the thread reading its output)."""
        if self.proc is not None:
            self.proc.kill()
            self._reap()

    def _reap(self):
        self.proc.wait(10)
        self.reader.join(10)
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.proc = None

    def quit(self):
        """Ask to stop (destroying the SyncObj); ``reap_or_kill`` waits for it."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.send("quit")
            except OSError:
                pass

    def reap_or_kill(self):
        if self.proc is None:
            return
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._reap()


class Harness:
    """One shardlog server on a fixed ipc endpoint (a restarted one is where the nodes
    connected) and four clusters of three PySyncObj nodes, group ``gid`` per node."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.sock_dir = tempfile.mkdtemp(prefix="sl-")  # ipc paths must stay short
        self.endpoint = f"ipc://{self.sock_dir}/front"
        self.server = None
        ports = iter(free_ports(CLUSTERS * NODES))
        self.clusters = []
        for c in range(CLUSTERS):
            addrs = [f"127.0.0.1:{next(ports)}" for _ in range(NODES)]
            self.clusters.append([Node(self.endpoint, c * NODES + n + 1, addr, [a for a in addrs if a != addr],
                                       str(tmp_path)) for n, addr in enumerate(addrs)])
        self.nodes = [node for cluster in self.clusters for node in cluster]
        self.tokens = [[] for _ in self.clusters]  # per cluster: what a node said it applied

    def start_server(self):
        self.server = ServerProcess([self.tmp_path / "data"], self.endpoint, str(self.tmp_path / "serve.log"),
                                    ["--disk-reserve-bytes", "0"])
        self.server.wait_ready()

    def kill_server(self):
        assert self.server.kill() == -signal.SIGKILL

    def start(self, nodes):
        for node in nodes:
            node.start()
        for node in nodes:
            assert node.receive() == {"ready": True}

    def close(self):
        for node in self.nodes:
            node.quit()
        for node in self.nodes:
            node.reap_or_kill()
        if self.server is not None:
            self.server.stop(signal.SIGKILL)
        shutil.rmtree(self.sock_dir, ignore_errors=True)

    def incr(self, via, count, label):
        """Apply ``count`` new tokens in each cluster, through node ``via(cluster)``, all clusters at once."""
        self.incr_applied(self.incr_sent(via, count, label))

    def incr_sent(self, via, count, label):
        sent = []
        for c, cluster in enumerate(self.clusters):
            tokens = [f"{label}-{c}-{i}" for i in range(count)]
            node = via(cluster)
            node.send("incr", tokens=tokens, timeout=25)
            sent.append((c, node, tokens))
        return sent

    def incr_applied(self, sent):
        for c, node, tokens in sent:
            assert node.receive(30) == {"failed": []}
            self.tokens[c] += tokens

    def statuses(self, cluster):
        return [node.ask("status") for node in cluster]

    def leaders(self):
        """Each cluster's leader, once all its nodes agree on it."""
        def agreed():
            found = []
            for cluster in self.clusters:
                statuses = self.statuses(cluster)
                leaders = [n for n, s in zip(cluster, statuses) if s["leader"]]
                if len(leaders) != 1 or {s["leader_addr"] for s in statuses} != {leaders[0].addr}:
                    return None
                found.append(leaders[0])
            return found
        leaders = poll_for(agreed, 20, 0.1)
        assert leaders, [self.statuses(c) for c in self.clusters]
        return leaders

    def check_converged(self, timeout=25):
        """Every node of a cluster applied the same commands, each token once, and the journals
        of the cluster's groups agree: same last entry, same entries where they overlap."""
        found = []

        def converged():
            found[:] = [self.divergence()]
            return found[0] is None
        if not poll_for(converged, timeout, 0.2):
            logs = "\n".join(f"--- {node.addr} (group {node.gid})\n{node.log()[-1500:]}" for node in self.nodes)
            raise AssertionError(f"not converged in {timeout} s: {found[0]}\n{logs}")

    def divergence(self):
        """What keeps the clusters from agreeing, or None."""
        for c, cluster in enumerate(self.clusters):
            statuses = self.statuses(cluster)
            machine = [(s["value"], s["applied"], s["checksum"], s["commit"], s["last_applied"]) for s in statuses]
            if len(set(machine)) != 1 or machine[0][0] != len(set(self.tokens[c])) or machine[0][3] != machine[0][4]:
                return (f"cluster {c}: (value, applied, checksum, commit, last applied) {machine}, "
                        f"{len(set(self.tokens[c]))} tokens applied")
        logs = self.group_logs()
        for c, cluster in enumerate(self.clusters):
            held = [logs[node.gid] for node in cluster]
            if len({state.last for state, _ in held}) != 1:
                return f"cluster {c}: last log ids {[state.last for state, _ in held]}"
            first = max(entries[0][0][1] for _, entries in held)
            if len({tuple(e for e in entries if e[0][1] >= first) for _, entries in held}) != 1:
                return f"cluster {c}: entries from index {first} differ"
        return None

    def group_logs(self):
        with Client(self.endpoint, timeout=10) as client:
            return {node.gid: (client.group(node.gid).state(), list(client.group(node.gid).read(0, 1 << 40)))
                    for node in self.nodes}


@pytest.fixture
def harness(tmp_path):
    harness = Harness(tmp_path)
    try:
        yield harness
    finally:
        harness.close()
        leftover = [pid for node in harness.nodes for pid in node.pids if psutil.pid_exists(pid)]
        assert not leftover, f"node processes left: {leftover}"


def test_clusters_on_one_server_through_kill_9(harness):
    """Four clusters of three nodes, one shardlog server, three lives.

    Between lives one node of each cluster and the server are killed with
    kill -9 (the second time, the server again with commands in flight); the
    server comes back on its data directory, the clusters go on
    without the dead nodes, which then start again from their journals and
    catch up (from entries, or from a snapshot when the others compacted past
    them). In the last life each cluster's leader is cut off while it accepts
    commands it cannot commit; its successor's entries replace them when the
    partition heals. After each life every node of a cluster holds the same
    counter and every journal of the cluster the same entries.
    """
    harness.start_server()
    harness.start(harness.nodes)
    harness.incr(lambda cluster: cluster[0], 15, "life1")
    harness.check_converged()

    restarted = []
    for life in (2, 3):
        victims = [cluster[life % NODES] for cluster in harness.clusters]
        for node in victims:
            node.kill()
        harness.kill_server()
        harness.start_server()

        def via(cluster):  # a node alive in this life
            return cluster[(life + 1) % NODES]
        harness.incr(via, 14, f"life{life}")
        if life == 3:  # the server killed again, with commands in flight this time
            sent = harness.incr_sent(via, 10, "in-flight")
            time.sleep(0.2)
            harness.kill_server()
            harness.start_server()
            harness.incr_applied(sent)
        harness.start(victims)
        restarted += victims
        harness.check_converged()

    # Conflicting entries: a leader cut off accepts commands it cannot commit. No compaction
    # meanwhile, so its successor still holds the entries before them and sends entries,
    # not a snapshot, when the partition heals.
    for node in harness.nodes:
        assert node.ask("compact_after", entries=10 ** 6) == {"compact_after": 10 ** 6}
    leaders = harness.leaders()
    before = harness.group_logs()
    for leader in leaders:
        assert leader.ask("cut", on=True) == {"cut": True}
        assert leader.ask("incr_nowait", tokens=[f"lost-{leader.gid}-{i}" for i in range(3)]) == {"failed": []}

    def appended_alone():
        logs = harness.group_logs()
        return all(logs[leader.gid][0].last[1] >= before[leader.gid][0].last[1] + 3 for leader in leaders)
    assert poll_for(appended_alone, 10, 0.1), "each cut-off leader appended the commands it cannot commit"
    uncommitted = {leader.gid: harness.group_logs()[leader.gid][1][-3:] for leader in leaders}

    harness.incr(lambda cluster: next(n for n in cluster if n not in leaders), 5, "majority")
    for leader in leaders:
        assert leader.ask("cut", on=False) == {"cut": False}
    harness.check_converged()

    logs = harness.group_logs()
    for leader in leaders:  # its own commands dropped (deleteEntriesFrom), the new leader's in their place
        status = leader.ask("status")
        assert status["counts"]["truncated"] >= 3, status
        held = dict(logs[leader.gid][1])
        for (term, index), payload in uncommitted[leader.gid]:
            assert held.get((term, index)) != payload, "the conflicting entry was replaced"
    assert all(state.purged is not None for state, _ in logs.values()), "every journal was compacted"
    for node in restarted:
        counts = node.ask("status")["counts"]
        assert counts["cleared"] >= 1, f"{node.addr} caught up from a snapshot: the others compacted past it"
