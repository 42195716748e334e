#!/usr/bin/env python3
"""shardlog beside RocksDB, LMDB and sqlite3, on a Raft host's workloads, in one run.

    .venv/bin/pip install -e '.[bench]'      # rocksdict, lmdb (skipped, and said so, when missing)
    .venv/bin/python scripts/bench_peers.py [--rounds 100] [--groups 1000] [--bulk 200000] [--reads 50000]

Workloads (100 B payloads):
  rounds  GROUPS groups append one entry each, then one durable commit, ROUNDS
          times: what a host running many Raft groups does each cycle.
  bulk    one group appends BULK entries in durable batches of 1000.
  reads   the last READS entries of that group read back in order (shardlog: from
          its payload cache, which holds the latest 100,000 entries of a disk).

Stores, each as a Raft log would use it:
  raw        one pwrite + fdatasync of the round's bytes: the floor.
  rocksdb    rocksdict, a WriteBatch per round, sync=True; key (gid, index).
  lmdb       one write transaction per round, synced at commit.
  sqlite3    WAL, synchronous=FULL, WITHOUT ROWID table keyed (gid, idx), one
             transaction per round.
  embedded   shardlog's Store: a batch per round, flush=True.
  service    ``python -m shardlog serve`` on loopback TCP: client.batch(flush=True).

Machines here are shared and noisy: read the ratios (to RocksDB, measured in
the same run), not the absolute figures.
"""

import argparse
import json
import os
import shutil
import sqlite3
import struct
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from shardlog import Store  # noqa: E402
from shardlog.client import Client  # noqa: E402
from shardlog.testing.process import ServerProcess  # noqa: E402

PAYLOAD = b"x" * 100
BULK_BATCH = 1000
KEY = struct.Struct(">QQ")


class Raw:
    name = "raw"

    def __init__(self, path):
        self.fd = os.open(os.path.join(path, "raw"), os.O_WRONLY | os.O_CREAT, 0o644)
        self.at = 0

    def write(self, entries):
        data = b"".join(KEY.pack(gid, index) + payload for gid, index, payload in entries)
        os.pwrite(self.fd, data, self.at)
        self.at += len(data)
        os.fdatasync(self.fd)

    def read(self, gid, first, n):
        return n  # (a file has no index to read by)

    def close(self):
        os.close(self.fd)


class Rocks:
    name = "rocksdb"

    def __init__(self, path):
        import rocksdict

        self.rocksdict = rocksdict
        self.db = rocksdict.Rdict(os.path.join(path, "rocks"), options=rocksdict.Options(raw_mode=True))
        options = rocksdict.WriteOptions()
        options.sync = True
        self.db.set_write_options(options)

    def write(self, entries):
        batch = self.rocksdict.WriteBatch(raw_mode=True)
        for gid, index, payload in entries:
            batch.put(KEY.pack(gid, index), payload)
        self.db.write(batch)

    def read(self, gid, first, n):
        count = 0
        for _key, _value in self.db.items(from_key=KEY.pack(gid, first)):
            count += 1
            if count == n:
                break
        return count

    def close(self):
        self.db.close()


class Lmdb:
    name = "lmdb"

    def __init__(self, path):
        import lmdb

        self.env = lmdb.open(os.path.join(path, "lmdb"), map_size=8 << 30, sync=True, metasync=True)

    def write(self, entries):
        with self.env.begin(write=True) as txn:
            for gid, index, payload in entries:
                txn.put(KEY.pack(gid, index), payload)

    def read(self, gid, first, n):
        count = 0
        with self.env.begin() as txn:
            cursor = txn.cursor()
            cursor.set_range(KEY.pack(gid, first))
            for _key, _value in cursor:
                count += 1
                if count == n:
                    break
        return count

    def close(self):
        self.env.close()


class Sqlite:
    name = "sqlite3"

    def __init__(self, path):
        self.db = sqlite3.connect(os.path.join(path, "sqlite.db"), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE log (gid INTEGER, idx INTEGER, term INTEGER, payload BLOB, "
                        "PRIMARY KEY (gid, idx)) WITHOUT ROWID")

    def write(self, entries):
        self.db.execute("BEGIN")
        self.db.executemany("INSERT INTO log VALUES (?, ?, 1, ?)", entries)
        self.db.execute("COMMIT")

    def read(self, gid, first, n):
        rows = self.db.execute("SELECT idx, term, payload FROM log WHERE gid = ? AND idx >= ? ORDER BY idx LIMIT ?",
                               (gid, first, n))
        return sum(1 for _ in rows)

    def close(self):
        self.db.close()


class Embedded:
    name = "embedded"

    def __init__(self, path):
        self.store = Store.open(os.path.join(path, "shardlog"))

    def write(self, entries):
        with self.store.batch(flush=True) as batch:
            for gid, index, payload in entries:
                batch.group(gid).append([((1, index), payload)])

    def write_bulk(self, gid, first, payloads):
        self.store.group(gid).append([((1, first + k), p) for k, p in enumerate(payloads)], flush=True)

    def read(self, gid, first, n):
        return sum(1 for _ in self.store.group(gid).read(first, first + n))

    def close(self):
        self.store.close()


class Service:
    name = "service"

    def __init__(self, path):
        self.server = ServerProcess([os.path.join(path, "served")], "tcp://127.0.0.1:0",
                                    os.path.join(path, "serve.log"), ["--disk-reserve-bytes", "0"])
        self.server.wait_ready()
        self.client = Client(self.server.endpoint, timeout=60)

    def write(self, entries):
        with self.client.batch(flush=True) as batch:
            for gid, index, payload in entries:
                batch.group(gid).append([((1, index), payload)])

    def write_bulk(self, gid, first, payloads):
        self.client.group(gid).append([((1, first + k), p) for k, p in enumerate(payloads)], flush=True)

    def front_cpu(self):
        """CPU seconds the front process has used (the workers are its children)."""
        import psutil

        times = psutil.Process(self.server.proc.pid).cpu_times()
        return times.user + times.system

    def read(self, gid, first, n):
        return sum(1 for _ in self.client.group(gid).read(first, first + n))

    def close(self):
        self.client.close()
        self.server.stop()


STORES = [Raw, Rocks, Lmdb, Sqlite, Embedded, Service]


def measure(cls, base, args):
    """``{workload: entries per second}`` of one store, in a directory of its own."""
    path = tempfile.mkdtemp(prefix=f"{cls.name}-", dir=base)
    store = cls(path)
    try:
        out = {}
        cpu0 = store.front_cpu() if hasattr(store, "front_cpu") else None
        t0 = time.perf_counter()
        for r in range(args.rounds):
            store.write([(gid, r, PAYLOAD) for gid in range(args.groups)])
        out["rounds"] = args.rounds * args.groups / (time.perf_counter() - t0)
        if cpu0 is not None:  # the front's CPU per entry of the rounds, as the OS counts it
            out["front_us_per_entry"] = (store.front_cpu() - cpu0) / (args.rounds * args.groups) * 1e6
        bulk_gid = args.groups + 1
        t0 = time.perf_counter()
        for first in range(0, args.bulk, BULK_BATCH):
            count = min(BULK_BATCH, args.bulk - first)
            if hasattr(store, "write_bulk"):
                store.write_bulk(bulk_gid, first, [PAYLOAD] * count)
            else:
                store.write([(bulk_gid, first + k, PAYLOAD) for k in range(count)])
        out["bulk"] = args.bulk / (time.perf_counter() - t0)
        if cls is not Raw:
            t0 = time.perf_counter()
            reads = min(args.reads, args.bulk)
            got = store.read(bulk_gid, args.bulk - reads, reads)
            out["reads"] = got / (time.perf_counter() - t0)
            assert got == reads, f"{cls.name} read {got} of {reads}"
        return out
    finally:
        store.close()
        shutil.rmtree(path, ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=100, help="durable rounds of the many-group workload")
    ap.add_argument("--groups", type=int, default=1000, help="groups per round")
    ap.add_argument("--bulk", type=int, default=200_000, help="entries of the one-group workloads")
    ap.add_argument("--reads", type=int, default=50_000, help="entries of the reads workload")
    ap.add_argument("--dir", help="where to write (default: a temporary directory on the working disk)")
    ap.add_argument("--only", help="comma-separated store names to run")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    results, skipped = run(args)
    if args.json:
        print(json.dumps({"results": results, "skipped": skipped}, indent=2))
        return
    print_table(results, skipped)


def run(args):
    """``({store: {workload: entries/s}}, {store skipped: why})``; ``args`` as ``main`` parses them."""
    base = tempfile.mkdtemp(prefix="shardlog-peers-", dir=args.dir)
    results, skipped = {}, {}
    try:
        for cls in STORES:
            if args.only and cls.name not in args.only.split(","):
                continue
            try:
                results[cls.name] = measure(cls, base, args)
            except ImportError as exc:
                skipped[cls.name] = f"not installed ({exc.name}): pip install -e '.[bench]'"
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return results, skipped


def print_table(results, skipped):
    ref = results.get("rocksdb")
    print(f"{'store':>10} {'rounds/s':>12} {'vs rocksdb':>10} {'bulk/s':>12} {'vs rocksdb':>10} "
          f"{'reads/s':>12} {'vs rocksdb':>10}")
    for name, r in results.items():
        cells = []
        for workload in ("rounds", "bulk", "reads"):
            value = r.get(workload)
            ratio = f"{value / ref[workload]:.2f}x" if ref and value and ref.get(workload) else "-"
            cells.append(f"{value:>12,.0f} {ratio:>10}" if value else f"{'-':>12} {'-':>10}")
        print(f"{name:>10} " + " ".join(cells))
    if "front_us_per_entry" in results.get("service", {}):
        print(f"service front CPU per entry in the rounds: {results['service']['front_us_per_entry']:.2f} us")
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")


if __name__ == "__main__":
    main()
