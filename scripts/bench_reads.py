#!/usr/bin/env python3
"""Service reads of cached entries: pages in rows, pages in columns, and ``group.read`` (columns, the
next page asked for while one is decoded), same server, same run; then ``group.read`` after a restart,
when every entry comes from the chunk files (a lagging follower's read, or any after a restart).

    .venv/bin/python scripts/bench_reads.py [--entries 50000] [--size 100] [--repeat 3]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from shardlog.client import Client  # noqa: E402
from shardlog.client.protocol import columns_in  # noqa: E402
from shardlog.testing.process import ServerProcess  # noqa: E402


def read_all(client, entries, columns):
    out, start = [], 0
    while start is not None:
        page = client.request("read", gid=1, start=start, end=entries, **({"columns": True} if columns else {}))
        out.extend(columns_in(page) if columns else (((t, i), p) for t, i, p in page["entries"]))
        start = page["next"]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=50_000, help="entries read (all cached: at most 100,000)")
    ap.add_argument("--size", type=int, default=100, help="payload bytes")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    base = tempfile.mkdtemp(prefix="shardlog-reads-")
    server = ServerProcess([os.path.join(base, "data")], "tcp://127.0.0.1:0", os.path.join(base, "serve.log"),
                           ["--disk-reserve-bytes", "0"])
    try:
        server.wait_ready()
        with Client(server.endpoint, timeout=60) as client:
            payload = b"x" * args.size
            for first in range(0, args.entries, 1000):
                last = min(args.entries, first + 1000)
                client.group(1).append([((1, i), payload) for i in range(first, last)], flush=True)
            ways = {"rows": lambda: read_all(client, args.entries, False),
                    "columns": lambda: read_all(client, args.entries, True),
                    "group.read": lambda: list(client.group(1).read(0, args.entries))}
            best = {}
            for _ in range(args.repeat):
                for name, read in ways.items():
                    t0 = time.perf_counter()
                    got = read()
                    rate = len(got) / (time.perf_counter() - t0)
                    assert len(got) == args.entries
                    best[name] = max(best.get(name, 0), rate)
        server.stop()
        server = ServerProcess([os.path.join(base, "data")], "tcp://127.0.0.1:0", os.path.join(base, "serve-2.log"),
                               ["--disk-reserve-bytes", "0"])
        server.wait_ready()
        with Client(server.endpoint, timeout=60) as client:
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                got = list(client.group(1).read(0, args.entries))
                rate = len(got) / (time.perf_counter() - t0)
                assert len(got) == args.entries
                best["files"] = max(best.get("files", 0), rate)
            assert client.stat()["disks"][0]["cache"]["hits"] == 0, "after the restart, reads came from the files"
        names = {"group.read": "group.read (cached)", "files": "group.read after a restart (from the files)"}
        for name, rate in best.items():
            print(f"{names.get(name, name):<44} {rate:>12,.0f} entries/s  ({rate / best['rows']:.2f}x rows)")
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
