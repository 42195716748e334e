#!/usr/bin/env python3
"""Latency of one durable append, and its tail under rotations, each beside its floor (issue 12).

    .venv/bin/python scripts/bench_latency.py [--n 1000] [--rounds 20] [--dir DIR] [--trace] [--json]

Every figure comes from one run, on the working disk (or --dir); read the
ratios, machines here are shared and noisy. 100 B payloads.

Single durable append, one at a time; every case is set up at once and they
take turns (--rounds), so that a slow spell of the machine falls on all alike:
  raw              pwrite + fdatasync appending to a file: the naive floor
  raw prealloc     the same into a preallocated (fallocate'd) file
  embedded         Store: group.append(..., flush=True), chunk files preallocated
  embedded plain   the same with chunk_preallocate=False
  sqlite3          WAL, synchronous=FULL, one insert per transaction
  bare chain       the service's three processes and sockets with no shardlog code:
                   client DEALER -tcp-> front ROUTER -PUSH/ipc-> worker
                   (pwrite + fdatasync appending) -PUB/ipc-> front -> client
  bare chain prealloc   the same, the worker writing into a preallocated file
  service          ``python -m shardlog serve``: client.group(1).append(..., flush=True)

--trace also runs the service with SHARDLOG_TRACE (workers/trace.py) and
prints where a durable append spends its time, step by step (medians).

Tail latency under rotations and deletions (the service):
  1 group          durable single appends, chunks of 256 KiB (a rotation every
                   ~2000 appends), the group purging behind itself
  1000 groups      durable rounds (a batch of one append per group), chunks of
                   4 MiB (a rotation every ~30 rounds), each group purging
                   behind itself every 10 rounds, a tenth of them each round
                   (a purge before the group's append: see docs/raft.md)
  p99 and max of each are reported as multiples of the median.
"""

import argparse
import bisect
import contextlib
import json
import multiprocessing
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

import zmq  # noqa: E402

from shardlog import Store  # noqa: E402
from shardlog.client import Client  # noqa: E402
from shardlog.testing.process import ServerProcess  # noqa: E402
from shardlog.workers import trace  # noqa: E402

PAYLOAD = b"x" * 100
WARMUP = 50


def summary(samples):
    s = sorted(samples)
    median = statistics.median(s)
    return {"median_us": round(median * 1e6, 1), "p99_us": round(s[min(len(s) - 1, int(0.99 * len(s)))] * 1e6, 1),
            "max_us": round(s[-1] * 1e6, 1), "n": len(s)}


def timed(fn, first, count):
    """Seconds of each of ``fn(first)`` .. ``fn(first + count - 1)``."""
    out = []
    for i in range(first, first + count):
        t0 = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t0)
    return out


def interleaved(cases, n, rounds):
    """``{name: [seconds of each append]}``: every case set up at once, then
    measured in ``rounds`` turns of n/rounds appends each, so that a slow
    spell of this shared machine falls on every case alike (one case after
    another, the same run put the service anywhere from 1.4x to 2.4x the
    bare chain)."""
    with contextlib.ExitStack() as stack:
        appends = {name: stack.enter_context(make()) for name, make in cases.items()}
        for append in appends.values():
            timed(append, 0, WARMUP)
        out = {name: [] for name in appends}
        per_round = max(1, n // rounds)
        for r in range(rounds):
            for name, append in appends.items():
                out[name] += timed(append, WARMUP + r * per_round, per_round)
    return out


# ------------------------------------------------------------ floors and peers


@contextlib.contextmanager
def raw(path, preallocate):
    name = os.path.join(path, "raw-prealloc" if preallocate else "raw")
    fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    if preallocate:
        os.posix_fallocate(fd, 0, 64 << 20)
        os.fsync(fd)
    try:
        yield lambda i: (os.pwrite(fd, PAYLOAD, i * len(PAYLOAD)), os.fdatasync(fd))
    finally:
        os.close(fd)
        os.unlink(name)


@contextlib.contextmanager
def embedded(path, preallocate):
    store_dir = os.path.join(path, "embedded" if preallocate else "embedded-plain")
    with Store.open(store_dir, chunk_preallocate=preallocate) as store:
        g = store.group(1)
        yield lambda i: g.append([((1, i), PAYLOAD)], flush=True)
    shutil.rmtree(store_dir)


@contextlib.contextmanager
def sqlite(path):
    db = sqlite3.connect(os.path.join(path, "sqlite.db"), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE log (gid INTEGER, idx INTEGER, data BLOB, PRIMARY KEY (gid, idx)) WITHOUT ROWID")
    try:
        yield lambda i: db.execute("INSERT INTO log VALUES (1, ?, ?)", (i, PAYLOAD))
    finally:
        db.close()


# ------------------------------------------------------------ the bare chain


def _bare_worker(requests, events, file_path, preallocate):
    ctx = zmq.Context()
    pull, pub = ctx.socket(zmq.PULL), ctx.socket(zmq.XPUB)
    pull.linger = pub.linger = 0
    pull.bind(requests)
    pub.bind(events)
    pub.recv()  # the front's subscription: nothing published is lost from here on
    fd = os.open(file_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    if preallocate:
        os.posix_fallocate(fd, 0, 64 << 20)
        os.fsync(fd)
    at = 0
    while True:
        frames = pull.recv_multipart()
        if frames[0] == b"stop":
            break
        os.pwrite(fd, frames[1], at)
        at += len(frames[1])
        os.fdatasync(fd)
        pub.send_multipart([b"done", frames[0]])
    os.close(fd)
    os.unlink(file_path)
    pull.close()
    pub.close()
    ctx.term()


def _bare_front(endpoint_queue, requests, events):
    ctx = zmq.Context()
    router, push, sub = ctx.socket(zmq.ROUTER), ctx.socket(zmq.PUSH), ctx.socket(zmq.SUB)
    for sock in (router, push, sub):
        sock.linger = 0
    port = router.bind_to_random_port("tcp://127.0.0.1")
    push.connect(requests)
    sub.connect(events)
    sub.subscribe(b"")
    endpoint_queue.put(port)
    poller = zmq.Poller()
    poller.register(router, zmq.POLLIN)
    poller.register(sub, zmq.POLLIN)
    waiting = {}
    seq = 0
    while True:
        ready = dict(poller.poll())
        if router in ready:
            ident, data = router.recv_multipart()
            if data == b"stop":
                push.send_multipart([b"stop", b""])
                break
            seq += 1
            key = str(seq).encode()
            waiting[key] = ident
            push.send_multipart([key, data])
        if sub in ready:
            _, key = sub.recv_multipart()
            router.send_multipart([waiting.pop(key), b"ok"])
    for sock in (router, push, sub):
        sock.close()
    ctx.term()


@contextlib.contextmanager
def bare_chain(path, preallocate):
    """The floor of the service's durable append: its processes and sockets, no shardlog code."""
    run = tempfile.mkdtemp(prefix="bare-", dir="/tmp")
    requests, events = f"ipc://{run}/req", f"ipc://{run}/ev"
    ports = multiprocessing.Queue()
    file_path = os.path.join(path, "bare-prealloc" if preallocate else "bare")
    worker = multiprocessing.Process(target=_bare_worker, args=(requests, events, file_path, preallocate))
    front = multiprocessing.Process(target=_bare_front, args=(ports, requests, events))
    worker.start()
    front.start()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    try:
        sock.connect(f"tcp://127.0.0.1:{ports.get(timeout=10)}")
        sock.rcvtimeo = 10_000
        message = b"r" * 140  # about what a client's append of 100 B is on the wire

        def append(i):
            sock.send(message)
            sock.recv()

        yield append
        sock.send(b"stop")
    finally:
        sock.close()
        ctx.term()
        for proc in (front, worker):
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()
        shutil.rmtree(run, ignore_errors=True)


# ------------------------------------------------------------ the service


def start_service(path, name, extra=(), env=None):
    server = ServerProcess([os.path.join(path, name)], "tcp://127.0.0.1:0", os.path.join(path, name + ".log"),
                           ["--disk-reserve-bytes", "0", *extra], env=env)
    server.wait_ready()
    return server


@contextlib.contextmanager
def service(path):
    server = start_service(path, "served")
    try:
        with Client(server.endpoint, timeout=30) as client:
            g = client.group(1)
            yield lambda i: g.append([((1, i), PAYLOAD)], flush=True)
    finally:
        server.stop()


def traced(path, n):
    """Medians of each step of a durable append, from the stamps of client, front and worker."""
    trace_dir = tempfile.mkdtemp(prefix="trace-", dir=path)
    server = start_service(path, "traced", env={**os.environ, "SHARDLOG_TRACE": trace_dir})
    sent, got = [], []
    try:
        with Client(server.endpoint, timeout=30) as client:
            g = client.group(1)
            for i in range(n + WARMUP):
                t0 = time.monotonic_ns()
                g.append([((1, i), PAYLOAD)], flush=True)
                if i >= WARMUP:
                    sent.append(t0)
                    got.append(time.monotonic_ns())
    finally:
        server.stop()
    stamps = {}
    for name in os.listdir(trace_dir):
        stamps.update((step, sorted(ns)) for step, ns in trace.read(os.path.join(trace_dir, name)).items())
    order = ["front.recv", "front.submit", "worker.recv", "worker.synced", "worker.published", "front.done",
             "front.replied"]
    # One machine, one monotonic clock: the stamps taken while the client
    # waited for an append are that append's steps.
    rows = []
    for t0, t1 in zip(sent, got):
        during = [(lambda s: s[bisect.bisect_left(s, t0):bisect.bisect_right(s, t1)])(stamps.get(step, []))
                  for step in order]
        if all(len(d) == 1 for d in during):
            rows.append([t0] + [d[0] for d in during] + [t1])
    if not rows:
        return {"error": "no append had each step stamped once"}
    names = ["client.send"] + order + ["client.recv"]
    out = {"appends": len(rows)}
    for k, (a, b) in enumerate(zip(names, names[1:])):
        out[f"{a} -> {b}"] = round(statistics.median(row[k + 1] - row[k] for row in rows) / 1e3, 1)
    out["total"] = round(statistics.median(y - x for x, y in zip(sent, got)) / 1e3, 1)
    return out


ONE_GROUP_CHUNK, GROUPS_CHUNK = 256 << 10, 4 << 20


def tail_one_group(path, seconds):
    server = start_service(path, "tail1", ["--chunk-max-size", str(ONE_GROUP_CHUNK)])
    out = []
    try:
        with Client(server.endpoint, timeout=30) as client:
            g = client.group(1)
            end = time.monotonic() + seconds
            i = 0
            while time.monotonic() < end:
                t0 = time.perf_counter()
                g.append([((1, i), PAYLOAD)], flush=True)
                out.append(time.perf_counter() - t0)
                if i % 500 == 499:
                    g.purge((1, i - 100))
                i += 1
            disk = client.stat()["disks"][0]
    finally:
        server.stop()
    return out[WARMUP:], disk


def tail_groups(path, groups, seconds):
    server = start_service(path, "tailn", ["--chunk-max-size", str(GROUPS_CHUNK)])
    out = []
    try:
        with Client(server.endpoint, timeout=60) as client:
            end = time.monotonic() + seconds
            r = 0
            while time.monotonic() < end:
                t0 = time.perf_counter()
                with client.batch(flush=True) as batch:
                    for gid in range(groups):
                        b = batch.group(gid)
                        if (r + gid) % 10 == 9 and r > 5:  # each group compacts every 10 rounds, in turn
                            b.purge((1, r - 5))
                        b.append([((1, r), PAYLOAD)])
                out.append(time.perf_counter() - t0)
                r += 1
            disk = client.stat()["disks"][0]
    finally:
        server.stop()
    return out[5:], disk


def write_report(r, out_dir):
    lines = ["# Latency of a durable append", "",
             "Written by `scripts/bench_latency.py --trace --report docs` in one run on a shared, noisy",
             "machine (2 cores, a virtual disk): read the ratios. 100 B payloads.", "",
             "## One durable append at a time", "",
             "| store | median us | p99 us | rate vs raw | time vs bare chain |", "|---|---|---|---|---|"]
    for name, s in r["single"].items():
        lines.append(f"| {name} | {s['median_us']} | {s['p99_us']} | {s['rate_vs_raw']}x | "
                     f"{s['time_vs_bare_chain']}x |")
    if "trace_us" in r:
        lines += ["", "## Where a durable append through the service spends its time", "",
                  "Medians of each step, from the stamps of the tracing mode (`SHARDLOG_TRACE`).", "",
                  "| step | us |", "|---|---|"]
        lines += [f"| {step} | {us} |" for step, us in r["trace_us"].items()]
    lines += ["", "## Tail latency under rotations and deletions (the service)", "",
              "| workload | median us | p99 us | max us | p99 / median | max / median | writes | rotations "
              "| chunks deleted |", "|---|---|---|---|---|---|---|---|---|"]
    for name, s in r["tail"].items():
        lines.append(f"| {name} | {s['median_us']} | {s['p99_us']} | {s['max_us']} | {s['p99_vs_median']}x | "
                     f"{s['max_vs_median']}x | {s['n']} | {s['rotations']} | {s['chunks_removed']} |")
    with open(os.path.join(out_dir, "latency.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="durable appends per single-append figure")
    parser.add_argument("--rounds", type=int, default=20,
                        help="turns the single-append figures take, n/rounds appends each (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=15, help="length of each tail-latency run")
    parser.add_argument("--dir", help="where to write (default: a temporary directory on the working disk)")
    parser.add_argument("--trace", action="store_true", help="also break a durable append down step by step")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--report", metavar="DIR", help="also write DIR/latency.md from this run")
    args = parser.parse_args()
    path = tempfile.mkdtemp(prefix="bench-latency-", dir=args.dir or ROOT)
    r = {}
    try:
        single = interleaved({
            "raw": lambda: raw(path, False),
            "raw prealloc": lambda: raw(path, True),
            "embedded": lambda: embedded(path, True),
            "embedded plain": lambda: embedded(path, False),
            "sqlite3": lambda: sqlite(path),
            "bare chain": lambda: bare_chain(path, False),
            "bare chain prealloc": lambda: bare_chain(path, True),
            "service": lambda: service(path),
        }, args.n, args.rounds)
        r["single"] = {name: summary(s) for name, s in single.items()}
        floor, chain = r["single"]["raw"]["median_us"], r["single"]["bare chain"]["median_us"]
        for name, s in r["single"].items():
            s["rate_vs_raw"] = round(floor / s["median_us"], 2)
            s["time_vs_bare_chain"] = round(s["median_us"] / chain, 2)
        if args.trace:
            r["trace_us"] = traced(path, args.n)
        one, disk1 = tail_one_group(path, args.seconds)
        many, diskn = tail_groups(path, 1000, args.seconds)
        r["tail"] = {}
        for name, samples, disk, chunk in (("1 group", one, disk1, ONE_GROUP_CHUNK),
                                           ("1000 groups", many, diskn, GROUPS_CHUNK)):
            s = summary(samples)
            s["p99_vs_median"] = round(s["p99_us"] / s["median_us"], 2)
            s["max_vs_median"] = round(s["max_us"] / s["median_us"], 2)
            s["seconds"] = args.seconds
            s["chunks_removed"] = disk["flusher"].get("removed", 0)
            s["rotations"] = disk["end"] // chunk
            r["tail"][name] = s
    finally:
        shutil.rmtree(path, ignore_errors=True)
    if args.report:
        write_report(r, args.report)
    if args.json:
        print(json.dumps(r, indent=2))
        return
    print(f"{'single durable append':24} {'median us':>10} {'p99 us':>10} {'rate/raw':>9} {'time/chain':>11}")
    for name, s in r["single"].items():
        print(f"{name:24} {s['median_us']:>10} {s['p99_us']:>10} {s['rate_vs_raw']:>8}x {s['time_vs_bare_chain']:>10}x")
    if "trace_us" in r:
        print("\nwhere a durable append through the service spends its time (medians, us):")
        for step, us in r["trace_us"].items():
            print(f"  {step:40} {us}")
    print(f"\n{'tail, durable writes':24} {'median us':>10} {'p99 us':>10} {'max us':>10} {'p99/med':>8} "
          f"{'max/med':>8} {'n':>6} {'rotations':>9} {'removed':>8}")
    for name, s in r["tail"].items():
        print(f"{name:24} {s['median_us']:>10} {s['p99_us']:>10} {s['max_us']:>10} {s['p99_vs_median']:>7}x "
              f"{s['max_vs_median']:>7}x {s['n']:>6} {s['rotations']:>9} {s['chunks_removed']:>8}")


if __name__ == "__main__":
    main()
