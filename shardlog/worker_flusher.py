"""The front's flusher: one worker process per data directory, over ZeroMQ.

It has the interface of ``shardlog.flusher.ThreadFlusher`` (``submit``,
``close``, ``stats`` and the ``on_progress`` / ``on_failure`` callbacks), so
the engine does not know whether its writes go to a thread or to a process.
A thread of the front owns the worker's sockets and its process:

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
import threading
import time

import zmq

from .wire import STOP, RemoveRequest, pack_request, unpack_event

log = logging.getLogger(__name__)

_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class WorkerFlusher:
    """Supervises the flush worker of one data directory."""

    def __init__(self, data_dir, on_progress, on_failure, synced=0, *, ctx, run_dir, name,
                 heartbeat=0.2, fault_file=None):
        self.data_dir = data_dir
        self._on_progress = on_progress
        self._on_failure = on_failure
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
        self._submitted = collections.deque()
        self._submit_lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._closing = False
        #: seq -> (request, frames), in order: everything not yet durable.
        self._inflight = collections.OrderedDict()
        self._outbox = collections.deque()
        self._generation = 0
        self._ready = threading.Event()
        self._start_error = None
        self._thread = threading.Thread(target=self._run, name=f"worker-flusher:{name}", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            self._start_error = "no heartbeat within 30 s"
        if self._start_error:
            self.close()
            raise RuntimeError(f"flush worker for {data_dir} did not start: {self._start_error}")

    # ------------------------------------------------------------ the engine's side

    def submit(self, request):
        with self._submit_lock:
            self._submitted.append(request)
        os.write(self._wake_w, b"x")

    def stats(self):
        stats = dict(self.worker_stats)
        stats.update(pid=self.proc.pid if self.proc else None, restarts=self.restarts,
                     inflight=len(self._inflight),
                     heartbeat_age=None if self.last_heartbeat is None
                     else round(time.monotonic() - self.last_heartbeat, 3))
        return stats

    def close(self):
        """Wait until everything submitted is durable (or failed), stop the worker."""
        self._closing = True
        os.write(self._wake_w, b"x")
        self._thread.join()
        os.close(self._wake_r)
        os.close(self._wake_w)

    # ------------------------------------------------------------ the thread

    def _endpoint(self, kind):
        return f"ipc://{self._run_dir}/{self._name}-{self._generation}-{kind}"

    def _start_worker(self):
        self._generation += 1
        push = self._ctx.socket(zmq.PUSH)
        push.sndhwm = 100_000
        sub = self._ctx.socket(zmq.SUB)
        sub.subscribe(b"")
        push.bind(self._endpoint("req"))
        sub.bind(self._endpoint("ev"))
        cmd = [sys.executable, "-m", "workers", "--data-dir", self.data_dir,
               "--requests", self._endpoint("req"), "--events", self._endpoint("ev"),
               "--parent", str(os.getpid()), "--synced", str(self.synced),
               "--heartbeat", str(self._heartbeat)]
        if self._fault_file:
            cmd += ["--fault-file", self._fault_file]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PROJECT_ROOT, env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL)
        self._push, self._sub = push, sub
        self._outbox = collections.deque(frames for _, frames in self._inflight.values())
        log.info("%s: flush worker started (pid %d)", self.data_dir, self.proc.pid)

    def _stop_sockets(self):
        self._push.close()
        self._sub.close()

    def _take_submitted(self):
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        with self._submit_lock:
            taken = list(self._submitted)
            self._submitted.clear()
        for req in taken:
            if self.failed is not None:
                continue
            frames = pack_request(req)
            self._inflight[req.seq] = (req, frames)
            self._outbox.append(frames)

    def _send_outbox(self):
        while self._outbox:
            try:
                self._push.send_multipart(self._outbox[0], zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self._outbox.popleft()

    def _handle_event(self, data):
        event = unpack_event(data)
        kind = event[0]
        self._ready.set()
        if kind == "hb":
            self.last_heartbeat = time.monotonic()
            if event[4] and self.failed is None:
                self._fail(event[4])
                return
        if kind in ("done", "hb"):
            seq, synced = event[1], event[2]
            self.worker_stats = event[3]
            if seq > self.done_seq or synced > self.synced:
                self.done_seq = max(seq, self.done_seq)
                self.synced = max(synced, self.synced)
                self._prune()
                self._on_progress(self.done_seq, self.synced)
        elif kind == "failed":
            self._fail(event[2])

    def _prune(self):
        """Forget requests that are done and durable; keep the rest for a resend."""
        while self._inflight:
            seq, (req, _) = next(iter(self._inflight.items()))
            if seq > self.done_seq:
                break
            if not isinstance(req, RemoveRequest) and req.at + len(req.data) > self.synced:
                break
            self._inflight.popitem(last=False)

    def _fail(self, message):
        self.failed = message
        self._inflight.clear()
        self._outbox.clear()
        self._on_failure(OSError(message))

    def _check_worker(self):
        code = self.proc.poll()
        if code is None:
            return
        if not self._ready.is_set():
            self._start_error = f"it exited with code {code} before its first heartbeat"
            self._closing = True
            self._ready.set()
            return
        log.warning("%s: flush worker (pid %d) died with exit code %s; restarting and "
                    "resending %d requests not yet durable", self.data_dir, self.proc.pid, code,
                    len(self._inflight))
        self.restarts += 1
        self._stop_sockets()
        self._start_worker()

    def _run(self):
        self._start_worker()
        poller_sockets = None
        try:
            while True:
                if poller_sockets is not (self._push, self._sub):
                    poller = zmq.Poller()
                    poller.register(self._sub, zmq.POLLIN)
                    poller.register(self._wake_r, zmq.POLLIN)
                    poller_sockets = (self._push, self._sub)
                events = dict(poller.poll(10 if self._outbox else 100))
                if self._wake_r in events:
                    self._take_submitted()
                if self._sub in events:
                    while True:
                        try:
                            self._handle_event(self._sub.recv(zmq.NOBLOCK))
                        except zmq.Again:
                            break
                self._send_outbox()
                if self._closing and (not self._inflight or self.failed is not None
                                      or self._start_error):
                    with self._submit_lock:
                        if not self._submitted:
                            break
                self._check_worker()
                if poller_sockets is not (self._push, self._sub):
                    continue
        except Exception:
            log.exception("%s: worker flusher thread crashed", self.data_dir)
            self._fail("worker flusher thread crashed")
        finally:
            self._shutdown_worker()

    def _shutdown_worker(self):
        try:
            self._push.send(STOP, zmq.NOBLOCK)
        except zmq.ZMQError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            log.warning("%s: flush worker did not stop; killing it", self.data_dir)
            self.proc.kill()
            self.proc.wait()
        self._stop_sockets()


def worker_flusher_factory(ctx, run_dir, heartbeat=0.2, fault_injection=False):
    """A ``flusher_factory`` for ``Store.open`` that runs one worker process per disk."""
    counter = [0]

    def factory(data_dir, on_progress, on_failure, synced=0):
        counter[0] += 1
        fault = os.path.join(data_dir, ".shardlog-fault-fsync") if fault_injection else None
        return WorkerFlusher(data_dir, on_progress, on_failure, synced, ctx=ctx, run_dir=run_dir,
                             name=f"disk{counter[0]}", heartbeat=heartbeat, fault_file=fault)

    return factory
