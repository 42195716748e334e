#!/usr/bin/env python3
"""Benchmark of the embedded engine, each figure beside a floor measured in the same run.

    python scripts/bench_engine.py [--entries 1000000] [--dir DIR] [--json]

Baselines: a raw ``write + fdatasync`` loop (the disk's floor for durable
writes) and sqlite3 (WAL, synchronous=FULL), the store a Python user would
reach for. Machines here are shared and noisy: compare ratios, not absolutes.
"""

import argparse
import gc
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from shardlog import Store  # noqa: E402

PAYLOAD = b"x" * 100


def raw_fsync(path, n):
    """Durable 100-byte appends per second with write + fdatasync."""
    fd = os.open(os.path.join(path, "raw"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            os.write(fd, PAYLOAD)
            os.fdatasync(fd)
        return n / (time.perf_counter() - t0)
    finally:
        os.close(fd)


def one_group_no_flush(path, n, batch):
    with Store.open(path, cache_max_items=n + 1, cache_max_bytes=1 << 31) as store:
        g = store.group(1)
        t0 = time.perf_counter()
        for start in range(0, n, batch):
            g.append([((1, i), PAYLOAD) for i in range(start, min(n, start + batch))])
        return n / (time.perf_counter() - t0)


def one_group_durable(path, n):
    with Store.open(path) as store:
        g = store.group(1)
        t0 = time.perf_counter()
        for i in range(n):
            g.append([((1, i), PAYLOAD)])
            g.flush()
        return n / (time.perf_counter() - t0)


def many_groups_round(path, groups, rounds):
    """Every group appends one entry, then one flush: durable entries/s and entries per fsync."""
    with Store.open(path) as store:
        handles = [store.group(g) for g in range(groups)]
        store.flush()
        fsyncs0 = store.stat()["disks"][0]["flusher"]["fsyncs"]
        t0 = time.perf_counter()
        for r in range(rounds):
            for g in handles:
                g.append([((1, r), PAYLOAD)])
            store.flush()
        dt = time.perf_counter() - t0
        fsyncs = store.stat()["disks"][0]["flusher"]["fsyncs"] - fsyncs0
        return groups * rounds / dt, groups * rounds / max(fsyncs, 1)


def sqlite_many_groups(path, groups, rounds):
    db = sqlite3.connect(os.path.join(path, "bench.sqlite"), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE log (gid INTEGER, idx INTEGER, term INTEGER, payload BLOB, "
               "PRIMARY KEY (gid, idx))")
    t0 = time.perf_counter()
    for r in range(rounds):
        db.execute("BEGIN")
        db.executemany("INSERT INTO log VALUES (?, ?, 1, ?)", ((g, r, PAYLOAD) for g in range(groups)))
        db.execute("COMMIT")
    dt = time.perf_counter() - t0
    db.close()
    return groups * rounds / dt


def sqlite_durable(path, n):
    db = sqlite3.connect(os.path.join(path, "one.sqlite"), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE log (idx INTEGER PRIMARY KEY, term INTEGER, payload BLOB)")
    t0 = time.perf_counter()
    for i in range(n):
        db.execute("INSERT INTO log VALUES (?, 1, ?)", (i, PAYLOAD))
    dt = time.perf_counter() - t0
    db.close()
    return n / dt


def big_log(path, n):
    """Write n entries, then time reopen, cached reads and the index's size."""
    out = {}
    with Store.open(path, cache_max_items=n + 1, cache_max_bytes=1 << 31) as store:
        g = store.group(1)
        for start in range(0, n, 1000):
            g.append([((1, i), PAYLOAD) for i in range(start, min(n, start + 1000))])
        store.flush()
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            got = g.read(0, n)
            count = sum(1 for _ in got)
            times.append(time.perf_counter() - t0)
        assert count == n
        out["read_cached_per_s"] = n / statistics.median(times)
        out["index_bytes_per_entry"] = store.stat()["index_bytes"] / n
    gc.collect()
    t0 = time.perf_counter()
    with Store.open(path) as store:
        out["reopen_s"] = time.perf_counter() - t0
        assert store.group(1).state().last == (1, n - 1)
        t0 = time.perf_counter()
        count = sum(1 for _ in store.group(1).read(0, n))
        out["read_from_files_per_s"] = n / (time.perf_counter() - t0)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=1_000_000, help="entries of the big log (default 1M)")
    ap.add_argument("--fsyncs", type=int, default=2000, help="sequential durable writes per fsync test")
    ap.add_argument("--groups", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--dir", help="where to write (default: a temporary directory)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()

    base = tempfile.mkdtemp(prefix="shardlog-bench-", dir=args.dir)
    try:
        def fresh(name):
            p = os.path.join(base, name)
            os.makedirs(p)
            return p

        r = {}
        r["raw_fsync_per_s"] = raw_fsync(fresh("raw"), args.fsyncs)
        r["store_durable_append_per_s"] = one_group_durable(fresh("durable"), args.fsyncs)
        r["sqlite_durable_insert_per_s"] = sqlite_durable(fresh("sqlite1"), args.fsyncs)
        r["append_1_per_call_per_s"] = one_group_no_flush(fresh("nf1"), 200_000, 1)
        r["append_100_per_call_per_s"] = one_group_no_flush(fresh("nf100"), 1_000_000, 100)
        r["groups_durable_per_s"], r["groups_entries_per_fsync"] = many_groups_round(
            fresh("groups"), args.groups, args.rounds)
        r["sqlite_groups_per_s"] = sqlite_many_groups(fresh("sqlite"), args.groups, args.rounds)
        r.update(big_log(fresh("big"), args.entries))
        r["raw_fsync_again_per_s"] = raw_fsync(fresh("raw2"), args.fsyncs)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    if args.json:
        print(json.dumps(r, indent=2))
        return
    raw = (r["raw_fsync_per_s"] + r["raw_fsync_again_per_s"]) / 2
    rows = [
        ("raw write+fdatasync, 100 B", f"{raw:,.0f} /s", "1.00x raw (baseline)"),
        ("Store: append 1 entry + flush, sequential", f"{r['store_durable_append_per_s']:,.0f} /s",
         f"{r['store_durable_append_per_s'] / raw:.2f}x raw"),
        ("sqlite3 WAL FULL: insert, sequential", f"{r['sqlite_durable_insert_per_s']:,.0f} /s",
         f"{r['sqlite_durable_insert_per_s'] / raw:.2f}x raw"),
        ("Store: 1 group, 1 entry per append, no flush", f"{r['append_1_per_call_per_s']:,.0f} entries/s", ""),
        ("Store: 1 group, 100 entries per append, no flush", f"{r['append_100_per_call_per_s']:,.0f} entries/s", ""),
        (f"Store: {args.groups} groups x 1 entry, 1 flush per round",
         f"{r['groups_durable_per_s']:,.0f} durable entries/s",
         f"{r['groups_durable_per_s'] / raw:.1f}x raw; {r['groups_entries_per_fsync']:.0f} entries/fsync"),
        (f"sqlite3: {args.groups} rows per transaction", f"{r['sqlite_groups_per_s']:,.0f} durable rows/s",
         f"store is {r['groups_durable_per_s'] / r['sqlite_groups_per_s']:.1f}x sqlite3"),
        (f"Store: reopen of {args.entries:,} entries", f"{r['reopen_s']:.2f} s", ""),
        (f"Store: read {args.entries:,} cached entries", f"{r['read_cached_per_s']:,.0f} entries/s", ""),
        (f"Store: read {args.entries:,} entries from files", f"{r['read_from_files_per_s']:,.0f} entries/s", ""),
        ("Store: index memory", f"{r['index_bytes_per_entry']:.1f} bytes/entry", ""),
    ]
    w = max(len(a) for a, _, _ in rows)
    v = max(len(b) for _, b, _ in rows)
    for a, b, c in rows:
        print(f"{a:<{w}}  {b:>{v}}  {c}")


if __name__ == "__main__":
    main()
