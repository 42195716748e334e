"""One PySyncObj node for tests/test_pysyncobj.py: a replicated counter whose journal is a shardlog group.

Run as a child process (``python tests/pysyncobj_node.py --endpoint ... --gid ... --self ... --partner ...``).
It reads one JSON command per line on stdin and answers each with one JSON
line on stdout; its log goes to stderr. Commands:

- ``{"op": "status"}``: the counter and the node's Raft figures;
- ``{"op": "incr", "tokens": [...], "timeout": s}``: count each token once, retrying
  a command whose outcome is unknown (the counter is idempotent), until all are applied;
- ``{"op": "incr_nowait", "tokens": [...]}``: submit and answer at once, no retry;
- ``{"op": "cut", "on": bool}``: drop every Raft message to and from the other nodes
  (a partition that keeps the TCP connections up);
- ``{"op": "compact_after", "entries": n}``: compact the log once it holds more than n entries;
- ``{"op": "quit"}``: destroy the SyncObj and exit 0.
"""

import argparse
import json
import logging
import sys
import threading
import time
import zlib

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, SyncObjConsumer, replicated
from pysyncobj.transport import TCPTransport

from shardlog.client import Client
from shardlog.integrations.pysyncobj import ShardlogJournal


class Tally(SyncObjConsumer):
    """The replicated counter. ``value`` counts distinct tokens, so a command retried after an
    unknown outcome counts once; ``applied`` and ``checksum`` follow every command applied, in
    order, so two nodes that applied different logs (or one twice) differ in them."""

    def __init__(self):
        super().__init__()
        self.value = 0
        self.applied = 0
        self.checksum = 0
        self.tokens = set()

    @replicated
    def incr(self, token):
        self.applied += 1
        self.checksum = zlib.crc32(token.encode(), self.checksum)
        if token not in self.tokens:
            self.tokens.add(token)
            self.value += 1
        return self.value


class CountingJournal(ShardlogJournal):
    """The journal, counting the deletions that removed entries (what the test must see happen)."""

    def __init__(self, group):
        super().__init__(group, retry_for=20.0)
        self.counts = {"truncated": 0, "purged": 0, "cleared": 0}

    def deleteEntriesFrom(self, entryFrom):
        before = len(self)
        super().deleteEntriesFrom(entryFrom)
        self.counts["truncated"] += before - len(self)

    def deleteEntriesTo(self, entryTo):
        before = len(self)
        super().deleteEntriesTo(entryTo)
        self.counts["purged"] += before - len(self)

    def clear(self):
        self.counts["cleared"] += 1
        super().clear()


class CuttableTransport(TCPTransport):
    """TCP transport that can drop every Raft message, both ways (``cut``)."""

    cut = False

    def send(self, node, message):
        if self.cut:
            return True  # lost on the way, as far as the sender can tell
        return super().send(node, message)

    def _onMessageReceived(self, node, message):
        if not self.cut:
            super()._onMessageReceived(node, message)


def conf(args, journal):
    return SyncObjConf(
        journalFile=journal, fullDumpFile=args.dump, useFork=False,
        logCompactionMinEntries=10, logCompactionMinTime=10 ** 6,
        appendEntriesPeriod=0.05, raftMinTimeout=0.4, raftMaxTimeout=0.9,
        connectionTimeout=1.5, connectionRetryTime=0.2, leaderFallbackTimeout=2.0,
    )


def incr(tally, tokens, timeout, retry):
    """Apply every token; with ``retry``, submit again those whose outcome is not success."""
    deadline = time.monotonic() + timeout
    pending = list(tokens)
    while pending and time.monotonic() < deadline:
        results = {}
        done = threading.Event()

        def callback(result, error, token):
            results[token] = error
            if len(results) == len(pending):
                done.set()

        for token in pending:
            tally.incr(token, callback=lambda result, error, token=token: callback(result, error, token))
        if not retry:
            return []
        done.wait(max(0.0, deadline - time.monotonic()))
        pending = [t for t in pending if results.get(t) != FAIL_REASON.SUCCESS]
        if pending:
            time.sleep(0.1)
    return pending


def status(node, tally, journal, transport):
    leader = node._getLeader()
    return {"value": tally.value, "applied": tally.applied, "checksum": tally.checksum,
            "leader": node._isLeader(), "leader_addr": None if leader is None else leader.address,
            "term": node.raftCurrentTerm, "commit": node.raftCommitIndex, "last_applied": node.raftLastApplied,
            "counts": dict(journal.counts), "cut": transport.cut}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--gid", type=int, required=True)
    parser.add_argument("--self", dest="self_addr", required=True)
    parser.add_argument("--partner", action="append", default=[])
    parser.add_argument("--dump", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format=f"%(asctime)s {args.self_addr} %(name)s %(levelname)s %(message)s")

    client = Client(args.endpoint, timeout=3)
    journal = CountingJournal(client.group(args.gid))
    tally = Tally()
    transports = []

    def transport_class(*a):
        transports.append(CuttableTransport(*a))
        return transports[0]

    node = SyncObj(args.self_addr, args.partner, conf(args, journal), consumers=[tally],
                   transportClass=transport_class)
    transport = transports[0]
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        op = command["op"]
        if op == "status":
            reply = status(node, tally, journal, transport)
        elif op == "incr":
            reply = {"failed": incr(tally, command["tokens"], command.get("timeout", 20), retry=True)}
        elif op == "incr_nowait":
            reply = {"failed": incr(tally, command["tokens"], 1, retry=False)}
        elif op == "cut":
            transport.cut = command["on"]
            reply = {"cut": transport.cut}
        elif op == "compact_after":
            node.conf.logCompactionMinEntries = command["entries"]  # read by every tick
            reply = {"compact_after": command["entries"]}
        elif op == "quit":
            node.destroy_synchronous()
            client.close()
            print(json.dumps({"bye": True}), flush=True)
            return
        else:
            reply = {"error": f"unknown op {op}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
