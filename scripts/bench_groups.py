"""Many groups and lagging groups: what idle groups cost the busy ones, in one run.

    .venv/bin/python scripts/bench_groups.py [--idle 0,20000] [--busy 100] [--json]

For each number of idle groups, in a fresh data directory of the embedded
Store: create the idle groups (a vote and one entry each), then run rounds in
which each busy group appends one 100 B entry and the round is flushed (the
busy groups purge as they go, so their live set stays small; chunks are
small, 4 MiB by default, so that a short run rotates several). Reported per
setting, beside the setting with no idle groups measured in the same run:

- durable entries/s of the busy groups, and the ratio to the fresh disk;
- bytes written to disk per payload byte (the flusher's byte count);
- RSS per idle group after creating them, open time and RSS after a reopen;
- chunk files on disk and descriptors the process holds open.

With ``--lagging N``, a second part: one group that never purges appends an
entry each round beside busy groups that do, for N rounds, and the bytes on
disk are sampled against the bound relocation keeps (twice the live bytes,
entries and group states, plus four chunks). Reported: the highest ratio of
disk bytes to that bound, and to the live bytes alone.

Machines here are shared and noisy: read the ratios, not the absolutes.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import psutil

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from shardlog import Store  # noqa: E402

PAYLOAD = b"p" * 100


def disk_bytes(store):
    return sum(d["flusher"].get("bytes", 0) for d in store.stat()["disks"])


def open_descriptors():
    return len(os.listdir("/proc/self/fd"))


def run(path, idle, busy, rounds, settings):
    proc = psutil.Process()
    out = {"idle": idle}
    with Store.open(path, max_groups=idle + busy + 1, **settings) as store:
        rss0 = proc.memory_info().rss
        for start in range(0, idle, 10_000):
            with store.batch() as b:
                for gid in range(busy + start, busy + min(idle, start + 10_000)):
                    b.group(gid).save_vote((1, 1)).append([((1, 0), PAYLOAD)])
        store.flush()
        out["rss_per_idle_group"] = (proc.memory_info().rss - rss0) / idle if idle else None
        written0 = disk_bytes(store)
        t0 = time.perf_counter()
        for r in range(rounds):
            with store.batch(flush=True) as b:
                for gid in range(busy):
                    b.group(gid).append([((1, r), PAYLOAD)])
                    if r % 10 == 9:
                        b.group(gid).purge((1, r - 5))
        elapsed = time.perf_counter() - t0
        out["busy_entries_per_s"] = busy * rounds / elapsed
        out["bytes_per_payload_byte"] = (disk_bytes(store) - written0) / (busy * rounds * len(PAYLOAD))
        out["chunks"] = sum(d["chunks"] for d in store.stat()["disks"])
        out["descriptors"] = open_descriptors()
    rss0 = proc.memory_info().rss
    t0 = time.perf_counter()
    with Store.open(path, max_groups=idle + busy + 1, **settings):
        out["open_s"] = time.perf_counter() - t0
        out["rss_after_open_per_group"] = (proc.memory_info().rss - rss0) / (idle + busy)
    return out


def run_lagging(path, busy, rounds, settings, every=10):
    """One lagging group beside ``busy`` churning ones: disk bytes over time."""
    samples = []
    with Store.open(path, **settings) as store:
        disk = store._disks[0]
        lagging = busy  # the group after the busy ones
        for r in range(rounds):
            with store.batch(flush=True) as b:
                for gid in range(busy):
                    b.group(gid).append([((1, r), PAYLOAD)])
                    if r >= 5:
                        b.group(gid).purge((1, r - 5))
                b.group(lagging).append([((1, r), PAYLOAD)])
            if r % every == every - 1:
                store.flush()
                on_disk = sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path)
                              if n.startswith("r-"))
                live = disk.live_size()
                samples.append((r + 1, on_disk, live, 2 * live + 4 * settings["chunk_max_size"]))
        events = [e["kind"] for e in store.events()["events"]]
    return {"samples": samples, "events": events,
            "max_vs_bound": max(d / bound for _, d, _, bound in samples),
            "max_vs_live": max(d / live for _, d, live, _ in samples)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--idle", default="0,20000", help="idle group counts, comma-separated")
    ap.add_argument("--busy", type=int, default=100, help="busy groups")
    ap.add_argument("--rounds", type=int, default=300, help="durable rounds of the busy groups")
    ap.add_argument("--chunk-max-size", type=int, default=4 << 20,
                    help="engine setting; small by default so that a short run rotates chunks (default 4 MiB)")
    ap.add_argument("--dir", help="where to write (default: a temporary directory)")
    ap.add_argument("--lagging", type=int, default=0, metavar="ROUNDS",
                    help="also run ROUNDS rounds with one group that never purges (see above)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args(argv)
    settings = {"chunk_max_size": args.chunk_max_size}
    base = tempfile.mkdtemp(prefix="shardlog-groups-", dir=args.dir)
    results = []
    try:
        for idle in [int(n) for n in args.idle.split(",")]:
            results.append(run(os.path.join(base, f"idle-{idle}"), idle, args.busy, args.rounds, settings))
            shutil.rmtree(os.path.join(base, f"idle-{idle}"), ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    lagging = None
    if args.lagging:
        base = tempfile.mkdtemp(prefix="shardlog-lagging-", dir=args.dir)
        try:
            lagging = run_lagging(base, args.busy, args.lagging, settings)
        finally:
            shutil.rmtree(base, ignore_errors=True)
    if args.json:
        print(json.dumps({"idle": results, "lagging": lagging}, indent=2))
        return
    fresh = next((r for r in results if r["idle"] == 0), results[0])
    print(f"{'idle groups':>12} {'busy entries/s':>15} {'vs fresh':>8} {'bytes/payload':>13} {'vs fresh':>8} "
          f"{'RSS/idle group':>14} {'open s':>7} {'RSS/group open':>14} {'chunks':>6} {'fds':>4}")
    for r in results:
        rss = "-" if r["rss_per_idle_group"] is None else f"{r['rss_per_idle_group']:,.0f} B"
        print(f"{r['idle']:>12,} {r['busy_entries_per_s']:>15,.0f} "
              f"{r['busy_entries_per_s'] / fresh['busy_entries_per_s']:>7.2f}x "
              f"{r['bytes_per_payload_byte']:>13.2f} "
              f"{r['bytes_per_payload_byte'] / fresh['bytes_per_payload_byte']:>7.2f}x "
              f"{rss:>14} {r['open_s']:>7.2f} {r['rss_after_open_per_group']:>12,.0f} B "
              f"{r['chunks']:>6} {r['descriptors']:>4}")
    if lagging:
        print(f"\none lagging group beside {args.busy} busy ones, {args.lagging} rounds "
              f"(events: {', '.join(lagging['events']) or 'none'}):")
        print(f"{'round':>6} {'disk bytes':>12} {'live bytes':>12} {'bound':>12} {'disk/bound':>10}")
        samples = lagging["samples"]
        for r, on_disk, live, bound in samples[::max(1, len(samples) // 10)] + samples[-1:]:
            print(f"{r:>6} {on_disk:>12,} {live:>12,} {bound:>12,} {on_disk / bound:>10.2f}")
        print(f"highest disk/bound {lagging['max_vs_bound']:.2f} (goal <= 1), "
              f"highest disk/live {lagging['max_vs_live']:.2f}")


if __name__ == "__main__":
    main()
