#!/usr/bin/env python3
"""Crash and power-loss torture: nothing acknowledged as durable may be lost.

    .venv/bin/python scripts/torture.py --cycles 200 --seed 1

Each cycle drives a real server (two data directories, so two workers) with
several clients doing random operations on many groups, and records, per
group, every record it asked for and the point up to which a durable
acknowledgement arrived. At a random instant it kills (SIGKILL) the front,
one worker (the service must carry on; the front is killed a moment later),
or both. Then, per data directory, it simulates a power loss: the bytes past
what the worker was about to make durable (its sync trace) are cut at a
random point, overwritten with zeros, or with garbage. The server is started
again and every group must be in a state the model reaches after some prefix
of its records that holds everything acknowledged as durable, with exactly the
payloads written; the next cycle goes on from there.

A failing seed reproduces the same operations and kill points (the timing of
the processes is not reproducible, so a rare race may need a few runs).
Prints one summary line; exits 1 on the first loss.
"""

import argparse
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from shardlog.client import Client  # noqa: E402
from shardlog.errors import ShardlogError, StoreClosed, Timeout  # noqa: E402
from shardlog.server.worker_flusher import SYNC_TRACE_FILE  # noqa: E402
from shardlog.testing.model import ModelGroup, records_of  # noqa: E402
from shardlog.testing.process import ServerProcess  # noqa: E402
from shardlog.types import LogState  # noqa: E402
from shardlog.workers.naming import list_chunks  # noqa: E402


class Lost(AssertionError):
    pass


class GroupLog:
    """What a client asked of one group this cycle, and what was acknowledged durable."""

    def __init__(self, base_state, base_entries):
        self.base = (base_state, base_entries)
        self.model = ModelGroup(base_state, base_entries)
        #: (op, arg) per record, in the order they were accepted (or maybe accepted).
        self.records = []
        #: records[:durable] are acknowledged durable.
        self.durable = 0

    def candidates(self):
        """(k, state, entries) after each prefix k >= durable of the records."""
        model = ModelGroup(*self.base)
        for k in range(len(self.records) + 1):
            if k >= self.durable:
                yield k, model.state(), model.read()
            if k < len(self.records):
                model.apply(*self.records[k])


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def start_server(work, dirs, sock):
    server = ServerProcess(dirs, sock, os.path.join(work, "serve.log"),
                           ["--fault-injection", "--disk-reserve-bytes", "0", "--chunk-max-size", "65536",
                            "--heartbeat", "0.1", "--write-buffer-size", "2048"])
    try:
        server.wait_ready()
    except BaseException:
        server.kill()
        raise
    return server


def client_loop(endpoint, gids, logs, rng, stop, counters, failures):
    """Random operations on ``gids``, recording what was accepted and what is durable."""
    try:
        _client_loop(endpoint, gids, logs, rng, stop, counters)
    except Lost as exc:
        failures.append(exc)


def _client_loop(endpoint, gids, logs, rng, stop, counters):
    try:
        client = Client(endpoint, timeout=2)
    except ShardlogError:
        return
    with client:
        while not stop.is_set():
            gid = rng.choice(gids)
            log = logs[gid]
            op, arg, flush = random_op(rng, log.model)
            try:
                expected = log.model.copy()
                expected.apply(op, arg)
            except ShardlogError as exc:
                expected = exc
            if not isinstance(expected, ShardlogError):
                # Sent and maybe applied: a crash may keep any prefix of its records.
                pending = records_of(op, arg)
                log.records.extend(pending)
            try:
                if op == "flush":
                    if flush:
                        client.group(gid).flush()
                else:
                    getattr(client.group(gid), op)(arg, flush=flush)
            except (Timeout, StoreClosed):
                return  # the server went away: what is in flight stays "maybe"
            except ShardlogError as exc:
                if isinstance(expected, ShardlogError) and type(exc) is type(expected):
                    continue
                raise Lost(f"group {gid}: {op}{arg!r:.80} failed with {exc!r}; the model says "
                           f"{expected!r:.80}") from None
            if isinstance(expected, ShardlogError):
                raise Lost(f"group {gid}: {op}{arg!r:.80} was accepted, the model refuses it: {expected}")
            log.model = expected
            counters["ops"] += 1
            if flush:
                log.durable = len(log.records)
                counters["durable"] += 1


def random_op(rng, model):
    last = model.last
    kind = rng.random()
    nxt = 0 if last is None else last[1] + 1
    term = 1 if last is None else last[0]
    if kind < 0.45:
        n = rng.randint(1, 5)
        if rng.random() < 0.05:
            nxt += rng.choice([-1, 2])  # an error the server must refuse
        if rng.random() < 0.1:
            term += 1
        payloads = [rng.randbytes(rng.randint(0, 300)) for _ in range(n)]
        return "append", [((term, max(0, nxt + k)), payloads[k]) for k in range(n)], rng.random() < 0.15
    if kind < 0.55:
        entries = model.read()
        index = entries[rng.randrange(len(entries))][0][1] + 1 if entries and rng.random() < 0.9 else nxt
        return "truncate", index, rng.random() < 0.2
    if kind < 0.65:
        entries = model.read()
        if entries:
            upto = entries[rng.randrange(len(entries))][0]
        else:
            upto = (term, nxt)
        return "purge", upto, rng.random() < 0.2
    if kind < 0.75:
        entries = model.read()
        log_id = entries[-1][0] if entries else (term, nxt)
        return "commit", log_id, rng.random() < 0.2
    if kind < 0.82:
        vote = model.vote or (0, 0)
        return "save_vote", (vote[0] + rng.randint(0, 1), rng.randint(0, 3)), rng.random() < 0.15
    if kind < 0.88:
        return "save_user_data", rng.choice([None, rng.randbytes(rng.randint(0, 50))]), rng.random() < 0.15
    return "flush", None, rng.random() < 0.5


def power_loss(rng, data_dir):
    """Damage what was not durable: the bytes past the worker's last sync intent."""
    trace = os.path.join(data_dir, SYNC_TRACE_FILE)
    try:
        with open(trace) as f:
            synced = int(f.read().strip() or 0)
    except FileNotFoundError:
        synced = 0
    files, _ = list_chunks(data_dir)
    if not files:
        return "none"
    end = files[-1][0] + os.path.getsize(files[-1][1])
    if end <= synced:
        return "none"
    at = rng.randint(synced, end)
    how = rng.choice(["cut", "zeros", "garbage", "none"])
    if how == "none":
        return how
    for start, path in files:
        size = os.path.getsize(path)
        if start + size <= at:
            continue
        local = max(0, at - start)
        with open(path, "r+b") as f:
            if how == "cut":
                f.truncate(local)
            else:
                f.seek(local)
                n = size - local
                f.write(bytes(n) if how == "zeros" else rng.randbytes(n))
    return f"{how}@{at - synced}"


def check(endpoint, logs):
    """Every group is in a state of the model that holds all it acknowledged."""
    with Client(endpoint, timeout=30) as client:
        for gid, log in logs.items():
            g = client.group(gid)
            state, entries = g.state(), list(g.read(0, 1 << 62))
            for k, want_state, want_entries in log.candidates():
                if state == want_state and entries == want_entries:
                    break
            else:
                raise Lost(f"group {gid}: recovered {state}, {len(entries)} entries; matches no state "
                           f"after >= {log.durable} of its {len(log.records)} records "
                           f"(durable prefix: {log.durable})")
            _check_rules(gid, state, entries)
            # The next cycle goes on from what is there.
            logs[gid] = GroupLog(state, entries)


def _check_rules(gid, state, entries):
    indexes = [log_id[1] for log_id, _ in entries]
    if indexes != list(range(indexes[0], indexes[0] + len(indexes))) if indexes else False:
        raise Lost(f"group {gid}: entries are not consecutive: {indexes[:10]}...")
    if entries and state.last != entries[-1][0]:
        raise Lost(f"group {gid}: last {state.last} is not the last entry {entries[-1][0]}")
    if not entries and state.last != state.purged:
        raise Lost(f"group {gid}: no entries, but last {state.last} != purged {state.purged}")
    if state.purged is not None and entries and entries[0][0][1] != state.purged[1] + 1:
        raise Lost(f"group {gid}: first entry {entries[0][0]} does not follow purged {state.purged}")


def run(args):
    rng = random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="sl-torture-", dir=args.dir)
    dirs = [os.path.join(work, "a"), os.path.join(work, "b")]
    sock = f"ipc://{work}/front"
    logs = {gid: GroupLog(LogState(), []) for gid in range(args.groups)}
    totals = {"cycles": 0, "ops": 0, "durable": 0, "checked": 0, "kills": {}, "damage": {}}
    started = time.monotonic()
    server = start_server(work, dirs, sock)
    try:
        for cycle in range(args.cycles):
            if args.duration and time.monotonic() - started > args.duration:
                break
            stop = threading.Event()
            counters = {"ops": 0, "durable": 0}
            failures = []
            threads = []
            gids = list(logs)
            for c in range(args.clients):
                mine = gids[c::args.clients]
                crng = random.Random(rng.random())
                threads.append(threading.Thread(target=client_loop, daemon=True,
                                                args=(sock, mine, logs, crng, stop, counters, failures)))
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.05, args.max_load))
            workers = server.worker_pids()
            victim = rng.choice(["front", "worker", "both"])
            if victim == "worker" and workers:
                _kill(rng.choice(workers))
                time.sleep(rng.uniform(0.05, 0.4))  # the service carries on meanwhile
                workers = server.worker_pids()
            if victim == "both":
                for pid in workers:
                    _kill(pid)
            server.kill()  # waits for the workers to go too
            stop.set()
            for t in threads:
                t.join(30)
            if failures:
                raise failures[0]
            damage = [power_loss(rng, d) for d in dirs]
            server = start_server(work, dirs, sock)
            check(sock, logs)
            totals["cycles"] += 1
            totals["ops"] += counters["ops"]
            totals["durable"] += counters["durable"]
            totals["checked"] += sum(len(log.base[1]) for log in logs.values())
            totals["kills"][victim] = totals["kills"].get(victim, 0) + 1
            for d in damage:
                kind = d.split("@")[0]
                totals["damage"][kind] = totals["damage"].get(kind, 0) + 1
            if args.verbose:
                print(f"cycle {cycle}: killed {victim}, damage {damage}, {counters['ops']} ops, "
                      f"{counters['durable']} durable acks", flush=True)
        return totals, None
    except Lost as exc:
        return totals, exc
    finally:
        if server.proc.poll() is None:
            server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--duration", type=float, default=0, help="stop after this many seconds (0: no limit)")
    ap.add_argument("--groups", type=int, default=24)
    ap.add_argument("--clients", type=int, default=3)
    ap.add_argument("--max-load", type=float, default=1.0, help="longest load before a kill, seconds")
    ap.add_argument("--dir", help="where to work (default: a temporary directory)")
    ap.add_argument("--keep", action="store_true", help="keep the data directories")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    totals, failure = run(args)
    print(f"torture: seed={args.seed} cycles={totals['cycles']} ops={totals['ops']} "
          f"durable_acks={totals['durable']} entries_checked={totals['checked']} "
          f"kills={totals['kills']} damage={totals['damage']} lost={0 if failure is None else 1}")
    if failure is not None:
        print(f"LOST: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
