"""Opening a store: by footers beside replaying every record, at many groups and many entries, in one run.

    .venv/bin/python scripts/bench_open.py [--groups 1000000] [--entries 10000000] [--dir /dev/shm]

Builds two data directories with the embedded Store: GROUPS groups holding a
vote and one 100 B entry each (with --distinct, at log ids of their own), and ENTRIES entries of 100 B spread over
--entry-groups groups. Each is then opened in a fresh process (so memory left
over from building is not counted), once reading the sealed chunks' footers
(the default) and once replaying every record (``read_footers=False``).
Reported: open time, RSS added by the open per group and per entry, the
index's bytes per live entry (arrays, allocation slack included), the
descriptors the process holds once open, and how long a full garbage
collection takes then, before and after ``gc.freeze()`` (what the server does
after its open).

Machines here are shared and noisy: compare the two paths of one run.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from shardlog import Store  # noqa: E402

PAYLOAD = b"p" * 100
SETTINGS = {"chunk_max_size": 64 << 20}


def build_groups(path, groups, distinct):
    """Each group: a vote and one entry. With ``distinct``, each group's entry
    is at an index of its own and committed, as in a real host, so no two
    groups share a log id (the open shares equal ones)."""
    with Store.open(path, max_groups=groups + 1, **SETTINGS) as store:
        for start in range(0, groups, 10_000):
            with store.batch() as b:
                for gid in range(start, min(groups, start + 10_000)):
                    if distinct:
                        log_id = (2, 1000 + gid)
                        b.group(gid).save_vote((3, gid % 5)).append([(log_id, PAYLOAD)]).commit(log_id)
                    else:
                        b.group(gid).save_vote((1, 1)).append([((1, 0), PAYLOAD)])


def build_entries(path, entries, groups):
    per_group = entries // groups
    with Store.open(path, **SETTINGS) as store:
        for start in range(0, per_group, 1000):
            with store.batch() as b:
                for gid in range(groups):
                    b.group(gid).append([((1, i), PAYLOAD) for i in range(start, min(per_group, start + 1000))])
            store.flush()


def open_in_child(path, read_footers):
    """Open ``path`` in a fresh process; its figures as a dict."""
    code = (
        "import json, os, sys, time, psutil\n"
        f"sys.path.insert(0, {os.path.dirname(os.path.dirname(os.path.abspath(__file__)))!r})\n"
        "from shardlog import Store\n"
        "proc = psutil.Process()\n"
        "rss0 = proc.memory_info().rss\n"
        "t0 = time.perf_counter()\n"
        f"store = Store.open({path!r}, max_groups=20_000_000, read_footers={read_footers!r}, **{SETTINGS!r})\n"
        "elapsed = time.perf_counter() - t0\n"
        "stat = store.stat()\n"
        "import gc\n"
        "t1 = time.perf_counter(); gc.collect(); t2 = time.perf_counter()\n"
        "gc.freeze(); gc.collect(); t3 = time.perf_counter()\n"
        "out = {'open_s': elapsed, 'rss': proc.memory_info().rss - rss0, 'groups': stat['groups'],\n"
        "       'entries': stat['entries'], 'index_bytes': stat['index_bytes'],\n"
        "       'fds': len(os.listdir('/proc/self/fd')), 'gc_ms': (t2 - t1) * 1e3, 'gc_frozen_ms': (t3 - t2) * 1e3}\n"
        "store.close()\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=3600)
    if done.returncode:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--groups", type=int, default=1_000_000, help="groups of the first store (0: skip it)")
    ap.add_argument("--entries", type=int, default=10_000_000, help="entries of the second store (0: skip it)")
    ap.add_argument("--distinct", action="store_true",
                    help="groups of the first store at indexes of their own, committed (no log id shared)")
    ap.add_argument("--entry-groups", type=int, default=100, help="groups the entries are spread over")
    ap.add_argument("--dir", help="where to write (default: a temporary directory; /dev/shm is quickest)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args(argv)
    base = tempfile.mkdtemp(prefix="shardlog-open-", dir=args.dir)
    results = []
    try:
        for name, size, build in (("groups", args.groups, lambda p: build_groups(p, args.groups, args.distinct)),
                                  ("entries", args.entries,
                                   lambda p: build_entries(p, args.entries, args.entry_groups))):
            if not size:
                continue
            path = os.path.join(base, name)
            t0 = time.perf_counter()
            build(path)
            built = time.perf_counter() - t0
            for read_footers in (True, False):
                r = open_in_child(path, read_footers)
                r.update(store=f"{size:,} {name}", path="footers" if read_footers else "every record",
                         build_s=built)
                results.append(r)
            shutil.rmtree(path, ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'store':>20} {'open by':>13} {'open s':>7} {'RSS/group':>10} {'RSS/entry':>10} "
          f"{'index B/entry':>13} {'fds':>4} {'full gc ms':>10} {'frozen':>7}")
    for r in results:
        print(f"{r['store']:>20} {r['path']:>13} {r['open_s']:>7.2f} {r['rss'] / r['groups']:>8,.0f} B "
              f"{r['rss'] / max(r['entries'], 1):>8,.1f} B {r['index_bytes'] / max(r['entries'], 1):>13.1f} "
              f"{r['fds']:>4} {r['gc_ms']:>10.1f} {r['gc_frozen_ms']:>7.1f}")


if __name__ == "__main__":
    main()
