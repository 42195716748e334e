"""Prometheus metrics of the front, on an optional HTTP port (``--metrics-bind``).

The text exposition format, written out from the same figures as ``stat``:
no client library needed for a dozen series. Served by a thread of the
front: ``Store.stat`` takes the store's lock for a moment, and the psutil
handles of the processes are shared with ``stat`` requests, so a scrape and a
``stat`` close together split the CPU-percent interval between them.
"""

import http.server
import logging
import threading

from shardlog.workers.writer import SYNC_BUCKETS

log = logging.getLogger(__name__)


def _labels(**labels):
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _escape(value):
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(stat):
    """The exposition text for one ``Front.stat()`` result."""
    out = []

    def family(name, kind, text):
        out.append(f"# HELP {name} {text}")
        out.append(f"# TYPE {name} {kind}")

    disks = stat["disks"]
    family("shardlog_fsync_seconds", "histogram", "Duration of one sync round (every fsync of a batch).")
    for d in disks:
        f = d["flusher"]
        buckets = f.get("sync_buckets") or [0] * (len(SYNC_BUCKETS) + 1)
        total = 0
        for bound, n in zip(SYNC_BUCKETS, buckets):
            total += n
            out.append(f"shardlog_fsync_seconds_bucket{_labels(disk=d['path'], le=bound)} {total}")
        total += buckets[-1]
        out.append(f'shardlog_fsync_seconds_bucket{_labels(disk=d["path"], le="+Inf")} {total}')
        out.append(f"shardlog_fsync_seconds_sum{_labels(disk=d['path'])} {f.get('fsync_seconds', 0.0)}")
        out.append(f"shardlog_fsync_seconds_count{_labels(disk=d['path'])} {f.get('sync_rounds', 0)}")
    series = [
        ("shardlog_appended_entries_total", "counter", "Entries appended since start.",
         lambda d: d["appended_entries"]),
        ("shardlog_appended_bytes_total", "counter", "Payload bytes appended since start.",
         lambda d: d["appended_bytes"]),
        ("shardlog_unsynced_bytes", "gauge", "Bytes written to the stream and not yet durable.",
         lambda d: d["unsynced_bytes"]),
        ("shardlog_disk_bytes", "gauge", ("Bytes of the stream's records on disk "
                                                "(the chunk being written is preallocated beyond them)."),
         lambda d: d["bytes_on_disk"]),
        ("shardlog_chunks", "gauge", "Chunk files of the disk.", lambda d: d["chunks"]),
        ("shardlog_groups", "gauge", "Groups placed on the disk.", lambda d: d["groups"]),
        ("shardlog_lagging_groups", "gauge", "Groups pinning the oldest chunk with many live entries "
         "(relocated after lagging_rounds rotations).", lambda d: len(d["lagging_groups"])),
        ("shardlog_live_bytes", "gauge", "Bytes of live entries and group states on the disk.",
         lambda d: d["live_bytes"]),
        ("shardlog_cache_items", "gauge", "Payloads held in memory.", lambda d: d["cache"]["items"]),
        ("shardlog_cache_bytes", "gauge", "Payload bytes held in memory.", lambda d: d["cache"]["bytes"]),
        ("shardlog_cache_hits_total", "counter", "Reads answered from memory.", lambda d: d["cache"]["hits"]),
        ("shardlog_cache_misses_total", "counter", "Reads answered from the chunk files.",
         lambda d: d["cache"]["misses"]),
        ("shardlog_disk_failed", "gauge", "1 when a write or fsync failed on the disk.",
         lambda d: int(bool(d["failed"]))),
        ("shardlog_disk_full", "gauge", "1 while the disk is full, or runs on its spare, or has less free "
         "space than its reserve (entries are refused).",
         lambda d: int(bool(d["full"] or d["low"] or d.get("under_reserve")))),
        ("shardlog_disk_free_bytes", "gauge", "Free bytes of the disk's file system.",
         lambda d: d.get("free_bytes", 0)),
        ("shardlog_disk_reserve_bytes", "gauge", "Free bytes under which entries are refused.",
         lambda d: d.get("reserve_bytes", 0)),
        ("shardlog_worker_restarts_total", "counter", "Flush worker restarts.",
         lambda d: d["flusher"].get("restarts", 0)),
        ("shardlog_worker_heartbeat_age_seconds", "gauge", "Seconds since the worker's last heartbeat.",
         lambda d: d["flusher"].get("heartbeat_age") or 0),
    ]
    for name, kind, text, value in series:
        family(name, kind, text)
        for d in disks:
            out.append(f"{name}{_labels(disk=d['path'])} {value(d)}")
    family("shardlog_process_resident_memory_bytes", "gauge", "RSS of the front and of each worker.")
    out.append(f"shardlog_process_resident_memory_bytes{_labels(process='front')} {stat['front'].get('rss', 0)}")
    for d in disks:
        worker = d.get("worker") or {}
        out.append(f"shardlog_process_resident_memory_bytes{_labels(process='worker', disk=d['path'])} "
                   f"{worker.get('rss', 0)}")
    return "\n".join(out) + "\n"


def serve_metrics(address, collect):
    """Serve ``render(collect())`` at ``http://address/metrics``; returns the server (``.shutdown()``)."""
    host, _, port = address.rpartition(":")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "only /metrics is here")
                return
            try:
                body = render(collect()).encode()
            except Exception:
                log.exception("collecting metrics failed")
                self.send_error(500)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("metrics on http://%s:%d/metrics", *server.server_address[:2])
    return server
