"""The flush worker process of one data directory.

    python -m shardlog.workers --data-dir DIR --requests ENDPOINT --events ENDPOINT --parent PID

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
import collections
import errno
import logging
import os
import resource
import signal
import sys
import time

import zmq

from . import trace
from .frames import readable, recv_frames
from .messages import pack_event, unpack_request
from .policy import FlushPolicy
from .writer import SPARE_BYTES, ChunkWriter

log = logging.getLogger("shardlog.worker")


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="python -m shardlog.workers", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--requests", required=True, help="front's request endpoint (PULL connects)")
    ap.add_argument("--events", required=True, help="front's event endpoint (XPUB connects)")
    ap.add_argument("--parent", type=int, required=True, help="pid of the front; exit when it is gone")
    ap.add_argument("--synced", type=int, default=0, help="offset already durable")
    ap.add_argument("--heartbeat", type=float, default=0.2, help="seconds between heartbeats")
    ap.add_argument("--fault-file", help="testing only: while this file exists, fsync fails with EIO")
    ap.add_argument("--sync-trace", help="testing only: write the offset each fsync round makes durable here")
    ap.add_argument("--file-size-limit", type=int, help="testing only: RLIMIT_FSIZE of this process")
    ap.add_argument("--spare-bytes", type=int, default=SPARE_BYTES,
                    help="disk space held back for the records that free space (default %(default)s)")
    return ap.parse_args(argv)


class FaultyWriter(ChunkWriter):
    """Testing only: while ``fault_file`` exists, its content picks the fault:
    ``EIO`` makes fsync fail, ``ENOSPC`` makes writes fail as on a full disk."""

    def __init__(self, data_dir, fault_file, **kwargs):
        super().__init__(data_dir, fsync=self._faulty_fsync, **kwargs)
        self._fault_file = fault_file

    def _fault(self):
        try:
            with open(self._fault_file) as f:
                return f.read().strip() or "EIO"
        except FileNotFoundError:
            return None

    def _faulty_fsync(self, fd):
        if self._fault() == "EIO":
            raise OSError(errno.EIO, "injected fsync failure")
        os.fdatasync(fd)

    def write_batch(self, requests):
        if self._fault() == "ENOSPC" and any(getattr(r, "data", None) for r in requests):
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        return super().write_batch(requests)


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
        if args.file_size_limit:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
            resource.setrlimit(resource.RLIMIT_FSIZE, (args.file_size_limit, args.file_size_limit))
        if args.fault_file:
            writer = FaultyWriter(args.data_dir, args.fault_file, sync_trace=args.sync_trace,
                                  spare_bytes=args.spare_bytes)
        else:
            writer = ChunkWriter(args.data_dir, sync_trace=args.sync_trace, spare_bytes=args.spare_bytes)
        writer.written = writer.synced = args.synced
        done_seq = 0

        def on_done(seq, synced):
            nonlocal done_seq
            done_seq = seq
            if trace.ON:
                trace.stamp("worker.synced")
            event = pack_event("done", seq, synced, writer.stats)
            if trace.ON:
                trace.stamp("worker.published")
            pub.send(event)

        def on_full(message):
            if message is None:
                log.info("worker: %s: space is back", args.data_dir)
            else:
                log.warning("worker: %s: disk full, holding %d requests: %s", args.data_dir, len(waiting), message)
                pub.send(pack_event("full", done_seq, message))

        def on_low(message):
            if message is None:
                log.info("worker: %s: the spare is held back again", args.data_dir)
            else:
                log.warning("worker: %s", message)
            pub.send(pack_event("low", done_seq, message))

        def on_failed(exc):
            log.error("worker: %s: %s", args.data_dir, exc)
            pub.send(pack_event("failed", done_seq, policy.failed))

        # The same policy as the engine's flush thread; a full disk is tried again each heartbeat.
        policy = FlushPolicy(writer, on_done, on_full, on_failed, retry_interval=args.heartbeat, on_low=on_low)
        #: Requests received and not yet carried out (kept while the disk is full).
        waiting = collections.deque()
        pub.send(pack_event("hb", done_seq, writer.synced, writer.snapshot(), policy.failed, policy.full,
                                      policy.low))
        next_beat = time.monotonic() + args.heartbeat
        pull.rcvtimeo = int(args.heartbeat * 1000)
        stopping = False
        while not stopping:
            try:
                frames = recv_frames(pull)  # waits at most a heartbeat (RCVTIMEO)
            except zmq.Again:
                frames = None
            while frames is not None:
                # Take every request already waiting: one batch, one fsync.
                if trace.ON:
                    trace.stamp("worker.recv")
                req = unpack_request(frames)
                if req is None:
                    stopping = True
                    break
                waiting.append(req)
                frames = recv_frames(pull) if readable(pull) else None
            now = time.monotonic()
            if waiting and policy.may_write(now):
                kept = policy.write(list(waiting))  # positional writes: a kept batch is written again whole
                waiting.clear()
                waiting.extend(kept)
            if not waiting and writer.wants_prepare and not readable(pull):
                policy.prepare()  # idle: the next chunk's file, made ahead
            if now >= next_beat:
                if policy.low is not None and not waiting:  # space freed by someone else?
                    policy.look_at_space(now)
                pub.send(pack_event("hb", done_seq, writer.synced, writer.snapshot(), policy.failed, policy.full,
                                      policy.low))
                next_beat = now + args.heartbeat
                if not parent_alive(args.parent):
                    log.warning("worker: front %d is gone, exiting", args.parent)
                    return 0
        writer.close()
        return 0
    finally:
        trace.close()
        pull.close()
        pub.close()
        ctx.term()


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The front decides when we stop: a SIGTERM or Ctrl-C to the whole process
    # group (systemd's default stop) reaches the front too, which flushes,
    # then stops us. Alone, we exit once the front is gone.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return run(parse_args(sys.argv[1:] if argv is None else argv))
