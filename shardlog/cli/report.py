"""The figures of a running server as text, for ``stat`` and ``top``."""


def _log_id(v):
    return "-" if v is None else f"{v[0]}/{v[1]}" if isinstance(v, (list, tuple)) else str(v)


def _percent(value):
    """A CPU percent, or "-" before there is an interval to measure it over."""
    return "-" if value is None else f"{value:.0f}%"


def format_stat(stat, previous=None):
    """Lines for a person; with ``previous`` (an earlier stat, with ``taken_at``), rates between the two."""
    lines = []
    say = lines.append
    if previous is not None:
        elapsed = max(stat["taken_at"] - previous["taken_at"], 1e-9)
        appended = sum(d["appended_entries"] for d in stat["disks"])
        before = sum(d["appended_entries"] for d in previous["disks"])
        say(f"appending {max(appended - before, 0) / elapsed:,.0f} entries/s")
    say(f"server {stat['endpoint']}: {stat['groups']} groups, {stat['entries']} entries, "
        f"index {stat['index_bytes']} bytes")
    front = stat["front"]
    say(f"  front pid {front['pid']}: rss {front['rss'] / 2**20:.1f} MiB, cpu {_percent(front.get('cpu_percent'))}")
    for disk in stat["disks"]:
        worker, flusher, cache = disk["worker"] or {}, disk["flusher"], disk["cache"]
        flag = (f"  FAILED: {disk['failed']}" if disk["failed"]
                else f"  FULL: {disk['full']}" if disk["full"]
                else f"  ON ITS SPARE: {disk['low']}" if disk.get("low")
                else "  UNDER THE RESERVE: entries refused" if disk.get("under_reserve") else "")
        say(f"  disk {disk['path']}{flag}")
        if "free_bytes" in disk:
            say(f"    {disk['free_bytes'] / 2**20:,.1f} MiB free of {disk['total_bytes'] / 2**20:,.1f} MiB, "
                f"reserve {disk['reserve_bytes'] / 2**20:,.1f} MiB")
        say(f"    {disk['groups']} groups, {disk['chunks']} chunks, {disk['bytes_on_disk']} bytes on disk, "
            f"{disk['unsynced_bytes']} unsynced")
        say(f"    worker pid {worker.get('pid')}: rss {worker.get('rss', 0) / 2**20:.1f} MiB, "
            f"cpu {_percent(worker.get('cpu_percent'))}, {flusher.get('restarts', 0)} restarts")
        say(f"    syncs {flusher.get('sync_rounds', 0)} ({flusher.get('sync_rounds_per_s', 0)}/s), "
            f"p50 {flusher.get('sync_p50_us', '-')} us, p99 {flusher.get('sync_p99_us', '-')} us, "
            f"{disk['entries_per_sync'] or '-'} entries per sync")
        looked = cache["hits"] + cache["misses"]
        rate = f"hit rate {cache['hits'] / looked:.1%}" if looked else "no reads yet"
        say(f"    cache {cache['items']} items, {cache['bytes']} bytes, {rate}")
        if disk["pinning_groups"]:
            say(f"    oldest chunk pinned by groups {disk['pinning_groups']}")
        for lag in disk.get("lagging_groups", []):
            say(f"    lagging group {lag['gid']}: {lag['entries']} entries, {lag['bytes']} bytes; "
                f"relocated in {lag['relocated_in']} rotations unless it purges")
    figures = stat.get("group_figures") or []
    if figures:
        say(f"  groups (the {len(figures)} holding the most entries):")
        say(f"    {'gid':>10} {'entries':>9} {'first':>9} {'last':>16} {'committed':>16} {'purged':>16} {'cached':>7}")
        for g in figures:
            say(f"    {g['gid']:>10} {g['entries']:>9} {_log_id(g['first']):>9} {_log_id(g['last']):>16} "
                f"{_log_id(g['committed']):>16} {_log_id(g['purged']):>16} {g['cached']:>7}")
    return "\n".join(lines)
