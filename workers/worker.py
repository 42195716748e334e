"""The flush worker process of one data directory.

    python -m workers --data-dir DIR --requests ENDPOINT --events ENDPOINT --parent PID

It connects a PULL socket to the front's request endpoint and an XPUB socket
to the front's event endpoint, waits until the front's subscription arrives
(so nothing it publishes is lost to the slow-joiner problem), then loops:
take every request already waiting as one batch, write it at its offsets,
fsync once, publish ``done``. A heartbeat repeats the last ``done`` with the
writer's statistics. A failed write or fsync is published and the worker
writes nothing more: the page cache may have dropped the data, so an fsync is
never retried as if nothing happened. It exits when the front is gone.
"""

import argparse
import errno
import logging
import os
import signal
import sys
import time

import zmq

from shardlog.wire import pack_event, unpack_request
from workers.writer import ChunkWriter

log = logging.getLogger("shardlog.worker")


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="python -m workers", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--requests", required=True, help="front's request endpoint (PULL connects)")
    ap.add_argument("--events", required=True, help="front's event endpoint (XPUB connects)")
    ap.add_argument("--parent", type=int, required=True, help="pid of the front; exit when it is gone")
    ap.add_argument("--synced", type=int, default=0, help="offset already durable")
    ap.add_argument("--heartbeat", type=float, default=0.2, help="seconds between heartbeats")
    ap.add_argument("--fault-file", help="testing only: while this file exists, fsync fails with EIO")
    ap.add_argument("--sync-trace", help="testing only: write the offset each fsync round makes durable here")
    return ap.parse_args(argv)


def faulty_fsync(path):
    def fsync(fd):
        if os.path.exists(path):
            raise OSError(errno.EIO, "injected fsync failure")
        os.fsync(fd)
    return fsync


def parent_alive(parent):
    return os.getppid() == parent


def run(args):
    ctx = zmq.Context()
    ctx.linger = 0
    pull = ctx.socket(zmq.PULL)
    pub = ctx.socket(zmq.XPUB)
    try:
        pull.connect(args.requests)
        pub.connect(args.events)
        # Wait for the front's subscription: from then on nothing is dropped.
        while not pub.poll(100):
            if not parent_alive(args.parent):
                return 0
        pub.recv()
        kwargs = {"sync_trace": args.sync_trace}
        if args.fault_file:
            kwargs["fsync"] = faulty_fsync(args.fault_file)
        writer = ChunkWriter(args.data_dir, **kwargs)
        writer.written = writer.synced = args.synced
        done_seq = 0
        failed = None
        pub.send(pack_event("hb", done_seq, writer.synced, writer.stats, failed))
        next_beat = time.monotonic() + args.heartbeat
        interval_ms = int(args.heartbeat * 1000)
        stopping = False
        while not stopping:
            batch = []
            if pull.poll(interval_ms):
                # Take every request already waiting: one batch, one fsync.
                while pull.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                    req = unpack_request(pull.recv_multipart())
                    if req is None:
                        stopping = True
                        break
                    batch.append(req)
            if batch and failed is None:
                try:
                    synced = writer.write_batch(batch)
                except OSError as exc:
                    failed = f"{args.data_dir}: {exc}"
                    log.error("worker: %s", failed)
                    pub.send(pack_event("failed", done_seq, failed))
                else:
                    done_seq = batch[-1].seq
                    pub.send(pack_event("done", done_seq, synced, writer.stats))
            now = time.monotonic()
            if now >= next_beat:
                pub.send(pack_event("hb", done_seq, writer.synced, writer.stats, failed))
                next_beat = now + args.heartbeat
                if not parent_alive(args.parent):
                    log.warning("worker: front %d is gone, exiting", args.parent)
                    return 0
        writer.close()
        return 0
    finally:
        pull.close()
        pub.close()
        ctx.term()


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the front decides when we stop
    return run(parse_args(sys.argv[1:] if argv is None else argv))
