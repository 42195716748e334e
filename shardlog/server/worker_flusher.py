"""The front's flusher: one worker process per data directory, over ZeroMQ.

It has the interface of ``shardlog.engine.flusher.ThreadFlusher`` (``submit``,
``close``, ``stats`` and the ``on_progress`` / ``on_failure`` callbacks), so
the engine does not know whether its writes go to a thread or to a process.
It has no thread of its own: the front's loop polls its ``sub`` socket and
calls ``handle_events`` and ``tick``, so a durable write crosses no thread
boundary in the front; while the engine blocks (close, backpressure, a drop),
``pump_all`` runs the same steps.

* requests are kept until the worker confirms them durable, so when the worker
  dies (even by kill -9) a new one is started on fresh endpoints and every
  request not yet durable is sent again; positional writes make that safe;
* ``done`` and heartbeats carry the durable offset; a lost ``done`` is repeated
  by the next heartbeat;
* a ``failed`` event fails the disk for good (never retried).

This is part of the front: the one place where the engine meets sockets.
"""

import collections
import logging
import os
import subprocess
import sys
import time

import zmq

from shardlog.workers import trace
from shardlog.workers.frames import NOBLOCK, readable, send_frames
from shardlog.workers.messages import STOP, RemoveRequest, pack_request, unpack_event

log = logging.getLogger(__name__)

#: Testing only (with fault injection): where a worker notes what it syncs,
#: and the file whose content ("EIO", "ENOSPC") makes its disk misbehave.
SYNC_TRACE_FILE = ".shardlog-synced"
FAULT_FILE = ".shardlog-fault"

_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class WorkerFlusher:
    """Supervises the flush worker of one data directory; driven by the front's loop."""

    #: Workers started so far, by every flusher: the loop polls their sockets
    #: anew when it changes (a restarted worker gets new ones).
    started = 0

    def __init__(self, data_dir, on_progress, on_failure, synced=0, on_full=None, on_low=None, *, ctx, run_dir,
                 name, heartbeat=0.2, fault_file=None, file_size_limit=None, spare_bytes=None, start_timeout=30):
        self.data_dir = data_dir
        self._on_progress = on_progress
        self._on_failure = on_failure
        self._on_full = on_full or (lambda message: None)
        self._on_low = on_low or (lambda message: None)
        self._file_size_limit = file_size_limit
        self._spare_bytes = spare_bytes
        self.full = None
        #: Why the disk runs on its spare (the worker's ``low``), or None.
        self.low = None
        self._ctx = ctx
        self._run_dir = run_dir
        self._name = name
        self._heartbeat = heartbeat
        self._fault_file = fault_file
        self.synced = synced
        self.done_seq = 0
        self.failed = None
        self.restarts = 0
        self.worker_stats = {}
        self.last_heartbeat = None
        self.proc = None
        self.push = self.sub = None
        #: seq -> (request, frames), in order: everything not yet durable.
        self._inflight = collections.OrderedDict()
        self._outbox = collections.deque()
        self._generation = 0
        self._started = False
        self._stuck_reported = False
        self._start_worker()
        deadline = time.monotonic() + start_timeout
        while not self._started:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                reason = (f"it exited with code {self.proc.returncode}" if self.proc.poll() is not None
                          else f"no heartbeat within {start_timeout} s")
                self.close()
                raise RuntimeError(f"flush worker for {data_dir} did not start: {reason}")
            if self.sub.poll(50):
                self.handle_events()

    # ------------------------------------------------------------ the engine's side

    def submit(self, request):
        if self.failed is not None:
            return
        frames = pack_request(request)
        self._inflight[request.seq] = (request, frames)
        self._outbox.append(frames)
        if trace.ON:
            trace.stamp("front.submit")
        self._send_outbox()

    def stats(self):
        stats = dict(self.worker_stats)
        stats.update(pid=self.proc.pid if self.proc else None, restarts=self.restarts, full=self.full, low=self.low,
                     inflight=len(self._inflight),
                     heartbeat_age=None if self.last_heartbeat is None
                     else round(time.monotonic() - self.last_heartbeat, 3))
        return stats

    def close(self, timeout=60):
        """Wait until everything submitted is durable (or failed), then stop the worker."""
        deadline = time.monotonic() + timeout
        while self._inflight and self.failed is None and self.full is None and time.monotonic() < deadline:
            self.pump(0.05)
        if self._inflight:
            unwritten = [r for r, _ in self._inflight.values() if not isinstance(r, RemoveRequest)]
            span = (f"stream bytes {unwritten[0].at}..{unwritten[-1].at + len(unwritten[-1].data)}"
                    if unwritten else "chunk removals only")
            log.warning("%s: stopping the flush worker with %d requests not durable (%s): %s; they were "
                        "never acknowledged as durable", self.data_dir, len(self._inflight), span,
                        self.failed or self.full or "timed out")
        try:
            self.push.send(STOP, zmq.NOBLOCK)
        except zmq.ZMQError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            log.warning("%s: flush worker did not stop; killing it", self.data_dir)
            self.proc.kill()
            self.proc.wait()
        self._close_sockets()

    # ------------------------------------------------------------ the loop's side

    def handle_events(self):
        """Take every event the worker published; call when ``sub`` is readable."""
        sub = self.sub
        while readable(sub):
            self._handle_event(sub.recv())

    #: Seconds without a heartbeat after which the worker is reported as stuck.
    stuck_after = 5.0

    def tick(self):
        """Periodic duties: resend what waits, restart a dead worker, report a stuck one."""
        self._send_outbox()
        code = self.proc.poll()
        if code is None:
            silent = time.monotonic() - (self.last_heartbeat or time.monotonic())
            if silent > self.stuck_after and not self._stuck_reported:
                # Alive but silent: most likely inside an fsync that does not return.
                # Killing it would not unstick the disk; say so and keep waiting.
                log.error("%s: flush worker (pid %d) silent for %.0f s: the disk may be hung",
                          self.data_dir, self.proc.pid, silent)
                self._stuck_reported = True
            elif silent <= self.stuck_after and self._stuck_reported:
                log.warning("%s: flush worker (pid %d) is heard again: the disk answers", self.data_dir,
                            self.proc.pid)
                self._stuck_reported = False
            return
        log.warning("%s: flush worker (pid %d) died with exit code %s; restarting and "
                    "resending %d requests not yet durable", self.data_dir, self.proc.pid, code,
                    len(self._inflight))
        self.restarts += 1
        self._close_sockets()
        self._start_worker()

    def pump(self, timeout):
        """Wait up to ``timeout`` seconds for events and handle them (for blocking callers)."""
        if self.sub.poll(int(timeout * 1000)):
            self.handle_events()
        self.tick()

    # ------------------------------------------------------------ internals

    def _endpoint(self, kind):
        return f"ipc://{self._run_dir}/{self._name}-{self._generation}-{kind}"

    def _start_worker(self):
        WorkerFlusher.started += 1
        self._generation += 1
        push = self._ctx.socket(zmq.PUSH)
        push.sndhwm = 100_000
        sub = self._ctx.socket(zmq.SUB)
        sub.subscribe(b"")
        push.bind(self._endpoint("req"))
        sub.bind(self._endpoint("ev"))
        cmd = [sys.executable, "-m", "shardlog.workers", "--data-dir", self.data_dir,
               "--requests", self._endpoint("req"), "--events", self._endpoint("ev"),
               "--parent", str(os.getpid()), "--synced", str(self.synced),
               "--heartbeat", str(self._heartbeat)]
        if self._file_size_limit:
            cmd += ["--file-size-limit", str(self._file_size_limit)]
        if self._spare_bytes is not None:
            cmd += ["--spare-bytes", str(self._spare_bytes)]
        if self._fault_file:
            cmd += ["--fault-file", self._fault_file,
                    "--sync-trace", os.path.join(self.data_dir, SYNC_TRACE_FILE)]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PROJECT_ROOT, env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL)
        self.push, self.sub = push, sub
        self._outbox = collections.deque(frames for _, frames in self._inflight.values())
        log.info("%s: flush worker started (pid %d)", self.data_dir, self.proc.pid)

    def _close_sockets(self):
        for sock in (self.push, self.sub):
            if sock is not None:
                sock.close()

    def _send_outbox(self):
        outbox = self._outbox
        while outbox:
            try:
                send_frames(self.push, outbox[0], NOBLOCK, copy=False)
            except zmq.Again:
                return
            outbox.popleft()

    def _handle_event(self, data):
        event = unpack_event(data)
        kind = event[0]
        self._started = True
        if kind == "hb":
            self.last_heartbeat = time.monotonic()
            if event[4] and self.failed is None:
                self._fail(event[4])
                return
            self._set_full(event[5])
            self._set_low(event[6] if len(event) > 6 else None)
        elif kind == "full":
            self._set_full(event[2])
        elif kind == "low":
            self._set_low(event[2])
        if kind == "done":
            if trace.ON:
                trace.stamp("front.done")
            self._set_full(None)
        if kind in ("done", "hb"):
            seq, synced = event[1], event[2]
            self.worker_stats.update(event[3])
            if seq > self.done_seq or synced > self.synced:
                self.done_seq = max(seq, self.done_seq)
                self.synced = max(synced, self.synced)
                self._prune()
                self._on_progress(self.done_seq, self.synced)
        elif kind == "failed":
            self._fail(event[2])

    def _set_full(self, message):
        if message != self.full:
            self.full = message
            self._on_full(message)

    def _set_low(self, message):
        if message != self.low:
            self.low = message
            self._on_low(message)

    def _prune(self):
        """Forget requests that are done and durable; keep the rest for a resend."""
        inflight, done_seq, synced = self._inflight, self.done_seq, self.synced
        while inflight:
            seq, (req, _) = next(iter(inflight.items()))
            if seq > done_seq or (type(req) is not RemoveRequest and req.at + len(req.data) > synced):
                break
            inflight.popitem(last=False)

    def _fail(self, message):
        if self.failed is not None:
            return
        self.failed = message
        self._inflight.clear()
        self._outbox.clear()
        self._on_failure(OSError(message))


def worker_flusher_factory(ctx, run_dir, heartbeat=0.2, fault_injection=False, file_size_limit=None,
                           spare_bytes=None):
    """A ``flusher_factory`` for ``Store.open`` that runs one worker process per disk.

    The flushers it makes are listed in ``factory.flushers`` for the loop to drive.
    """
    def factory(data_dir, on_progress, on_failure, synced=0, on_full=None, on_low=None):
        fault = os.path.join(data_dir, FAULT_FILE) if fault_injection else None
        flusher = WorkerFlusher(data_dir, on_progress, on_failure, synced, on_full, on_low, ctx=ctx,
                                run_dir=run_dir, name=f"disk{len(factory.flushers) + 1}", heartbeat=heartbeat,
                                fault_file=fault, file_size_limit=file_size_limit, spare_bytes=spare_bytes)
        factory.flushers.append(flusher)
        return flusher

    factory.flushers = []
    return factory


def pump_all(flushers, timeout):
    """Handle the events of every flusher, waiting up to ``timeout`` seconds for the first."""
    poller = zmq.Poller()
    for flusher in flushers:
        poller.register(flusher.sub, zmq.POLLIN)
    poller.poll(int(timeout * 1000))
    for flusher in flushers:
        flusher.handle_events()
        flusher.tick()
