#!/usr/bin/env python3
"""Benchmark of the service, each figure beside its floor measured in the same run.

    .venv/bin/pip install -e '.[bench]'      # rocksdict, lmdb, matplotlib (skipped, and said so, when missing)
    .venv/bin/python scripts/bench.py [--quick] [--json] [--report docs]

Floors: a raw ``write + fdatasync`` loop, a ZeroMQ DEALER/ROUTER round trip
between two processes, sqlite3 (WAL, synchronous=FULL) and the embedded
Store. Then shardlog beside RocksDB, LMDB and sqlite3 on 1000-group durable
rounds, one-group bulk appends and reads (scripts/bench_peers.py, which runs
that part alone). The server runs as ``python -m shardlog serve`` on loopback
TCP in a temporary directory. Machines here are shared and noisy: read the
ratios.
"""

import argparse
import json
import multiprocessing
import os
import shutil
import sqlite3
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

import bench_peers  # noqa: E402
import zmq  # noqa: E402

from shardlog import Store  # noqa: E402
from shardlog.client import Client  # noqa: E402
from shardlog.testing.process import ServerProcess  # noqa: E402

PAYLOAD = b"x" * 100


def percentiles(samples):
    s = sorted(samples)

    def at(q):
        return s[min(len(s) - 1, int(q * len(s)))]

    return {"median": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": s[-1], "n": len(s)}


# ------------------------------------------------------------ floors


def raw_fsync_latencies(path, n):
    fd = os.open(os.path.join(path, "raw"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    out = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            os.write(fd, PAYLOAD)
            os.fdatasync(fd)
            out.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
    return out


def _echo_server(endpoint, ready):
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.linger = 0
    port = sock.bind_to_random_port(endpoint)
    ready.put(port)
    while True:
        frames = sock.recv_multipart()
        if frames[1] == b"stop":
            break
        sock.send_multipart(frames)
    sock.close()
    ctx.term()


def zmq_round_trips(n):
    """Sequential DEALER -> ROUTER -> DEALER round trips between two processes (seconds each)."""
    ready = multiprocessing.Queue()
    proc = multiprocessing.Process(target=_echo_server, args=("tcp://127.0.0.1", ready))
    proc.start()
    port = ready.get(timeout=10)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(f"tcp://127.0.0.1:{port}")
    msg = b"y" * 150
    out = []
    try:
        for i in range(n + 100):
            t0 = time.perf_counter()
            sock.send(msg)
            sock.recv()
            if i >= 100:
                out.append(time.perf_counter() - t0)
        sock.send(b"stop")
    finally:
        sock.close()
        ctx.term()
        proc.join(10)
    return out


def sqlite_db(path, name):
    db = sqlite3.connect(os.path.join(path, name), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE log (gid INTEGER, idx INTEGER, term INTEGER, payload BLOB, PRIMARY KEY (gid, idx))")
    return db


def sqlite_sequential(path, n):
    db = sqlite_db(path, "seq.db")
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        db.execute("INSERT INTO log VALUES (1, ?, 1, ?)", (i, PAYLOAD))
        out.append(time.perf_counter() - t0)
    db.close()
    return out


def sqlite_groups(path, groups, rounds):
    db = sqlite_db(path, "groups.db")
    t0 = time.perf_counter()
    for r in range(rounds):
        db.execute("BEGIN")
        db.executemany("INSERT INTO log VALUES (?, ?, 1, ?)", ((g, r, PAYLOAD) for g in range(groups)))
        db.execute("COMMIT")
    rate = groups * rounds / (time.perf_counter() - t0)
    db.close()
    return rate


def sqlite_bulk(path, requests, per):
    db = sqlite_db(path, "bulk.db")
    db.execute("PRAGMA synchronous=OFF")
    t0 = time.perf_counter()
    for r in range(requests):
        db.execute("BEGIN")
        db.executemany("INSERT INTO log VALUES (1, ?, 1, ?)", ((r * per + i, PAYLOAD) for i in range(per)))
        db.execute("COMMIT")
    rate = requests * per / (time.perf_counter() - t0)
    db.close()
    return rate


def embedded_sequential(path, n):
    out = []
    with Store.open(path) as store:
        g = store.group(1)
        for i in range(n):
            t0 = time.perf_counter()
            g.append([((1, i), PAYLOAD)], flush=True)
            out.append(time.perf_counter() - t0)
    return out


# ------------------------------------------------------------ the service


def service_sequential(client, n):
    g = client.group(1)
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        g.append([((1, i), PAYLOAD)], flush=True)
        out.append(time.perf_counter() - t0)
    return out


def service_pipelined(client, n, depth):
    start = len(list(client.group(2).read(0, 10 ** 9)))
    pending = []
    t0 = time.perf_counter()
    for i in range(start, start + n):
        pending.append(client.submit("append", gid=2, entries=[[1, i, PAYLOAD]], flush=True))
        if len(pending) >= depth:
            pending.pop(0).result()
    for p in pending:
        p.result()
    return n / (time.perf_counter() - t0)


def service_groups(client, groups, rounds, batch):
    base = 10_000 if batch else 20_000
    stat0 = client.stat()["disks"][0]["flusher"].get("fsyncs", 0)
    t0 = time.perf_counter()
    for r in range(rounds):
        if batch:
            with client.batch(flush=True) as b:
                for g in range(base, base + groups):
                    b.group(g).append([((1, r), PAYLOAD)])
        else:
            pending = [client.submit("append", gid=g, entries=[[1, r, PAYLOAD]]) for g in range(base, base + groups)]
            for p in pending:
                p.result()
            client.flush()
    rate = groups * rounds / (time.perf_counter() - t0)
    fsyncs = client.stat()["disks"][0]["flusher"].get("fsyncs", 0) - stat0
    return rate, groups * rounds / max(1, fsyncs)


def service_groups_sweep(client, counts, rounds):
    """Per number of groups: durable batched rounds, their latencies and the throughput."""
    out = {}
    base = 100_000
    for n in counts:
        latencies = []
        t0 = time.perf_counter()
        for r in range(rounds):
            t1 = time.perf_counter()
            with client.batch(flush=True) as b:
                for g in range(base, base + n):
                    b.group(g).append([((1, r), PAYLOAD)])
            latencies.append(time.perf_counter() - t1)
        out[n] = {"entries_per_s": n * rounds / (time.perf_counter() - t0), "round": percentiles(latencies)}
        base += n
    return out


def service_bulk(client, requests, per, depth=8):
    pending = []
    t0 = time.perf_counter()
    for r in range(requests):
        entries = [[1, r * per + i, PAYLOAD] for i in range(per)]
        pending.append(client.submit("append", gid=3, entries=entries))
        if len(pending) >= depth:
            pending.pop(0).result()
    for p in pending:
        p.result()
    return requests * per / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    ap.add_argument("--groups", type=int, default=1000)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--report", metavar="DIR",
                    help="also write DIR/bench.md (tables) and DIR/bench.png (plot; needs matplotlib)")
    args = ap.parse_args()
    n = 300 if args.quick else 2000
    rounds = 5 if args.quick else 30
    base = tempfile.mkdtemp(prefix="shardlog-bench-")
    r = {}
    try:
        for name in ("raw", "sqlite", "embedded"):
            os.makedirs(os.path.join(base, name))
        raw = raw_fsync_latencies(os.path.join(base, "raw"), n)
        rtt = zmq_round_trips(n)
        server = ServerProcess([os.path.join(base, "data")], "tcp://127.0.0.1:0",
                               os.path.join(base, "serve.log"))
        try:
            server.wait_ready()
            with Client(server.endpoint, timeout=60) as client:
                seq = service_sequential(client, n)
                r["pipelined32_per_s"] = service_pipelined(client, n * 2, 32)
                r["groups_separate_per_s"], r["groups_separate_per_fsync"] = service_groups(
                    client, args.groups, rounds, batch=False)
                r["groups_batch_per_s"], r["groups_batch_per_fsync"] = service_groups(
                    client, args.groups, rounds, batch=True)
                r["bulk_per_s"] = service_bulk(client, 100 if args.quick else 1000, 100)
                r["sweep"] = service_groups_sweep(client, [1, 10, 100, 1000], 10 if args.quick else 50)
        finally:
            server.stop()
        emb = embedded_sequential(os.path.join(base, "embedded"), n)
        sq = sqlite_sequential(os.path.join(base, "sqlite"), n)
        r["sqlite_groups_per_s"] = sqlite_groups(os.path.join(base, "sqlite"), args.groups, rounds)
        r["sqlite_bulk_per_s"] = sqlite_bulk(os.path.join(base, "sqlite"), 100 if args.quick else 1000, 100)
        raw2 = raw_fsync_latencies(os.path.join(base, "raw"), n)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    peer_args = argparse.Namespace(rounds=20 if args.quick else 100, groups=args.groups,
                                   bulk=20_000 if args.quick else 200_000, reads=10_000 if args.quick else 50_000,
                                   dir=None, only=None)
    r["peers"], r["peers_skipped"] = bench_peers.run(peer_args)
    r["raw_fsync"] = percentiles(raw + raw2)
    r["zmq_rtt"] = percentiles(rtt)
    r["service_durable_append"] = percentiles(seq)
    r["embedded_durable_append"] = percentiles(emb)
    r["sqlite_durable_insert"] = percentiles(sq)
    if args.json:
        print(json.dumps(r, indent=2))
        return
    report(r, args.groups)
    if args.report:
        write_report(r, args.report)


def machine():
    """What the figures came from."""
    import platform

    import psutil

    cpu = "unknown cpu"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    tmp = os.path.realpath(tempfile.gettempdir())
    fs = max((p for p in psutil.disk_partitions(all=True) if tmp.startswith(p.mountpoint)),
             key=lambda p: len(p.mountpoint), default=None)
    return (f"{platform.platform()}, {cpu}, {psutil.cpu_count()} cores, "
            f"{psutil.virtual_memory().total / 2**30:.0f} GiB, {fs.fstype if fs else '?'} at "
            f"{fs.mountpoint if fs else '?'}, Python {platform.python_version()}, "
            f"{time.strftime('%Y-%m-%d')}")


def write_report(r, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    us = 1e6
    peers = ["| store | 1000-group rounds/s | vs RocksDB | bulk/s | vs RocksDB | reads/s | vs RocksDB |",
             "|---|---|---|---|---|---|---|"]
    ref = r["peers"].get("rocksdb", {})
    for name, v in r["peers"].items():
        cells = []
        for workload in ("rounds", "bulk", "reads"):
            value = v.get(workload)
            ratio = f"{value / ref[workload]:.2f}x" if value and ref.get(workload) else "-"
            cells.append(f"{value:,.0f} | {ratio}" if value else "- | -")
        peers.append(f"| {name} | " + " | ".join(cells) + " |")
    peers += [f"- skipped {name}: {why}" for name, why in r["peers_skipped"].items()]
    rows = ["| workload | median | p90 | p99 | max |", "|---|---|---|---|---|"]
    for name, key in [("raw write+fdatasync", "raw_fsync"), ("ZeroMQ round trip, 2 processes", "zmq_rtt"),
                      ("service: 1 x 100 B append, durable reply", "service_durable_append"),
                      ("embedded Store: same", "embedded_durable_append"),
                      ("sqlite3 WAL FULL: insert", "sqlite_durable_insert")]:
        p = r[key]
        rows.append(f"| {name} | {p['median'] * us:.0f} us | {p['p90'] * us:.0f} us | {p['p99'] * us:.0f} us "
                    f"| {p['max'] * us:.0f} us |")
    sweep = ["| groups per batch | durable entries/s | round median | p90 | p99 | max |",
             "|---|---|---|---|---|---|"]
    for n, v in r["sweep"].items():
        p = v["round"]
        sweep.append(f"| {n} | {v['entries_per_s']:,.0f} | {p['median'] * 1e3:.2f} ms | {p['p90'] * 1e3:.2f} ms "
                     f"| {p['p99'] * 1e3:.2f} ms | {p['max'] * 1e3:.2f} ms |")
    text = "\n".join([
        "# Benchmark results", "",
        f"Machine: {machine()}.", "",
        "Made by `.venv/bin/python scripts/bench.py --report docs` (all figures from one run; the machine is "
        "shared and noisy, so read them as ratios against the floors measured beside them).", "",
        "## Latency of one durable write", "", *rows, "",
        "docs/latency.md (`scripts/bench_latency.py --trace --report docs`) sets it beside the bare ZeroMQ "
        "chain of the service's processes, breaks it down step by step, and measures its tail under "
        "rotations and deletions.", "",
        "## Throughput", "",
        f"- one group, 32 durable appends in flight: {r['pipelined32_per_s']:,.0f}/s",
        f"- 1000 groups, separate requests + flush: {r['groups_separate_per_s']:,.0f} durable entries/s",
        f"- 1000 groups, one batch with flush: {r['groups_batch_per_s']:,.0f} durable entries/s "
        f"({r['groups_batch_per_fsync']:.0f} entries per fsync); sqlite3, 1000 rows per transaction: "
        f"{r['sqlite_groups_per_s']:,.0f} rows/s",
        f"- bulk, 100 x 100 B per request, pipelined: {r['bulk_per_s']:,.0f} entries/s", "",
        "## Against the number of groups (one batch with flush per round)", "", *sweep, "",
        "## Beside RocksDB, LMDB and sqlite3", "",
        "100 B entries. Rounds: 1000 groups append one entry each, then one durable commit (RocksDB: a "
        "WriteBatch with sync; LMDB: a synced transaction; sqlite3: WAL, synchronous=FULL, WITHOUT ROWID, one "
        "transaction; shardlog: a batch with flush). Bulk: one group, durable batches of 1000. Reads: the last "
        "entries of that group, in order. raw is one pwrite + fdatasync of the same bytes.", "", *peers, "",
        f"The service's front used {r['peers'].get('service', {}).get('front_us_per_entry', float('nan')):.2f} us "
        "of CPU per entry in the rounds (its process's CPU time, from psutil, over the entries written).", "",
        "![throughput and latency against the number of groups; shardlog beside its peers](bench.png)", ""])
    with open(os.path.join(out_dir, "bench.md"), "w") as f:
        f.write(text)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no plot")
        return
    counts = list(r["sweep"])
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 4))
    names = list(r["peers"])
    c.barh(names, [r["peers"][name].get("rounds", 0) for name in names])
    c.set(xlabel="durable entries/s", title="1000-group rounds")
    a.plot(counts, [r["sweep"][n]["entries_per_s"] for n in counts], marker="o")
    a.set(xscale="log", yscale="log", xlabel="groups per batch", ylabel="durable entries/s",
          title="throughput")
    for q in ("median", "p99"):
        b.plot(counts, [r["sweep"][n]["round"][q] * 1e3 for n in counts], marker="o", label=q)
    b.set(xscale="log", yscale="log", xlabel="groups per batch", ylabel="ms per durable round",
          title="latency")
    b.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "bench.png"), dpi=100)
    print(f"wrote {out_dir}/bench.md and {out_dir}/bench.png")


def report(r, groups):
    raw = r["raw_fsync"]["median"]
    raw_rate = 1 / raw
    floor = raw + 2 * r["zmq_rtt"]["median"]
    print("latency (us)                         median     p90     p99     max")
    for name, key in [("raw write+fdatasync", "raw_fsync"), ("ZeroMQ round trip (2 processes)", "zmq_rtt"),
                      ("service: append 1 x 100 B, durable", "service_durable_append"),
                      ("embedded Store: same", "embedded_durable_append"),
                      ("sqlite3 WAL FULL: insert", "sqlite_durable_insert")]:
        p = r[key]
        print(f"{name:<35} {p['median'] * 1e6:7.0f} {p['p90'] * 1e6:7.0f} {p['p99'] * 1e6:7.0f} {p['max'] * 1e6:7.0f}")
    svc = r["service_durable_append"]["median"]
    print()
    print(f"service durable append: {svc / floor:.2f}x the floor (raw fsync + 2 ZeroMQ round trips = "
          f"{floor * 1e6:.0f} us); target <= 1.25x")
    print(f"embedded durable append: {raw / r['embedded_durable_append']['median']:.2f}x the raw fsync rate; "
          "target >= 0.75x")
    print(f"sqlite3 durable insert: {raw / r['sqlite_durable_insert']['median']:.2f}x the raw fsync rate")
    print(f"one group, 32 durable appends in flight: {r['pipelined32_per_s']:,.0f}/s = "
          f"{r['pipelined32_per_s'] / raw_rate:.1f}x the raw fsync rate; target >= 2x")
    print(f"{groups} groups, separate requests + flush: {r['groups_separate_per_s']:,.0f} durable entries/s, "
          f"{r['groups_separate_per_fsync']:.0f} entries/fsync")
    print(f"{groups} groups, one batch (flush=True):   {r['groups_batch_per_s']:,.0f} durable entries/s, "
          f"{r['groups_batch_per_fsync']:.0f} entries/fsync; target >= 100k; "
          f"{r['groups_batch_per_s'] / r['sqlite_groups_per_s']:.2f}x sqlite3 "
          f"({r['sqlite_groups_per_s']:,.0f} rows/s, one transaction per round)")
    print(f"bulk, 100 x 100 B per request, pipelined: {r['bulk_per_s']:,.0f} entries/s; target >= 200k; "
          f"sqlite3 (synchronous=OFF) {r['sqlite_bulk_per_s']:,.0f}/s")
    print()
    bench_peers.print_table(r["peers"], r["peers_skipped"])
    peers = r["peers"]
    rocks, sqlite_ = peers.get("rocksdb", {}), peers.get("sqlite3", {})
    for name, workload, goal in (("embedded", "rounds", "0.8x RocksDB"), ("service", "rounds", "0.5x RocksDB")):
        if rocks.get(workload) and workload in peers.get(name, {}):
            print(f"{name} {workload}: {peers[name][workload] / rocks[workload]:.2f}x RocksDB; target {goal}")
    if sqlite_.get("rounds") and "service" in peers:
        print(f"service rounds: {peers['service']['rounds'] / sqlite_['rounds']:.2f}x sqlite3; target 3x")
    if "service" in peers:
        print(f"service bulk: {peers['service']['bulk']:,.0f} entries/s; target 1,000,000")


if __name__ == "__main__":
    main()
