"""The front process: ``python -m shardlog serve``.

It is the only process clients talk to. It owns the engine (every group's
state, index and payload cache), answers requests on a ROUTER socket, and
runs one flush worker process per data directory through
``WorkerFlusher``. One thread does it all: the loop polls the ROUTER and the
workers' event sockets, so a durable write's reply goes out from the same
loop that hears the worker's ``done``, with no thread hand-off on the way.

Garbage on the socket is logged and answered or dropped, never fatal; a
request that fails its checks writes nothing (the engine sees to that).
"""

import collections
import gc
import logging
import os
import re
import secrets
import shutil
import signal
import tempfile
import time

import psutil
import zmq

from shardlog.args import check_u64
from shardlog.client import protocol
from shardlog.client.protocol import PROTOCOL_VERSIONS
from shardlog.columns import AppendColumns
from shardlog.engine.store import Store
from shardlog.errors import (
    BadRequest,
    DiskFull,
    InvalidArgument,
    ShardlogError,
    StaleRequest,
    StoreClosed,
    TooLarge,
    UnknownOp,
    VersionMismatch,
)
from shardlog.ops import AFTER_APPENDS, TAKEN_WHEN_LOW, WRITE_OPS
from shardlog.workers import trace
from shardlog.workers.frames import NOBLOCK, readable, recv_frames, send_frames

from .config import DEFAULT_RESERVE, engine_settings
from .metrics import serve_metrics
from .ratelog import RateLimitedLog
from .security import serve_curve
from .worker_flusher import WorkerFlusher, pump_all, worker_flusher_factory

log = logging.getLogger("shardlog.front")

SERVER_NAME = "shardlog 0.1.0"
#: Allocations that start a collection of the youngest generation (Python's
#: default: 700). A batch of a 1000-group round holds a few thousand objects
#: at once (rows per entry) that all die with it: at 700 the collector ran
#: every ~540 entries and walked them. In 1000-group rounds, the front's
#: collections took 0.86 ms a round at 700, 0.19 at this (its pauses 4.3 ms
#: at most), and its CPU an entry went from 8.0-8.6 to 7.8-8.1 us.
GC_YOUNG_THRESHOLD = 10_000
_LOOPBACK = ("tcp://127.", "tcp://localhost:", "tcp://[::1]:", "ipc://", "inproc://")


def _field(msg, name):
    try:
        return msg[name]
    except KeyError:
        raise BadRequest(f"request {msg.get('op')!r} needs the field {name!r}") from None


def warn_shared_devices(data_dirs):
    """Two data directories on one device share its fsyncs: say so at start."""
    seen = {}
    for path in data_dirs:
        os.makedirs(path, exist_ok=True)
        dev = os.stat(path).st_dev
        if dev in seen:
            mount = _mountpoint(path)
            log.warning("data directories %s and %s are on the same device (%s): they share "
                        "its bandwidth and fsyncs; use one per disk", seen[dev], path, mount)
        seen.setdefault(dev, path)


def _mountpoint(path):
    path = os.path.realpath(path)
    best = ""
    try:
        for part in psutil.disk_partitions(all=True):
            if path.startswith(part.mountpoint) and len(part.mountpoint) > len(best):
                best = part.mountpoint
    except (psutil.Error, OSError):
        return "unknown"
    return best or "unknown"


def _remove_stale_run_dirs(base):
    """Run directories (the workers' ipc sockets) of fronts that died without cleaning up."""
    for name in os.listdir(base):
        found = re.fullmatch(r"shardlog-run-(\d+)-\w+", name)
        if found and not psutil.pid_exists(int(found.group(1))):
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)


class Front:
    def __init__(self, settings):
        self.settings = settings
        bind = settings["bind"]
        curve = bool(settings["curve_secret_key"])
        if curve != bool(settings["curve_authorized_keys"]):
            raise InvalidArgument("CurveZMQ needs both --curve-secret-key and --curve-authorized-keys")
        if not bind.startswith(_LOOPBACK) and not curve and not settings["insecure"]:
            raise InvalidArgument(f"refusing to bind {bind} without CurveZMQ; give --curve-secret-key and "
                                  "--curve-authorized-keys, bind to loopback, or pass --insecure if the "
                                  "network is trusted")
        data_dirs = [os.path.abspath(d) for d in settings["data_dir"]]
        warn_shared_devices(data_dirs)
        self.ctx = zmq.Context()
        self.ctx.linger = 0
        _remove_stale_run_dirs(tempfile.gettempdir())
        self.run_dir = tempfile.mkdtemp(prefix=f"shardlog-run-{os.getpid()}-")
        self.router = None
        self.store = None
        self.flushers = []
        self._auth = None
        self._replies = collections.deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._stopping = False
        self._processes = {}
        self._free_checked = {}
        self._metrics = None
        self._log_refusal = RateLimitedLog(log)
        #: This run of the server: requests naming another one are stale.
        self.incarnation = secrets.randbits(63)
        #: Requests refused because their client could no longer be waiting (see _check_fresh).
        self.stale_requests = 0
        try:
            t0 = time.perf_counter()
            factory = worker_flusher_factory(self.ctx, self.run_dir, heartbeat=settings["heartbeat"],
                                             fault_injection=settings["fault_injection"],
                                             file_size_limit=settings["worker_file_size_limit"],
                                             spare_bytes=settings["disk_spare_bytes"])
            self.store = Store.open(data_dirs, flusher_factory=factory, **engine_settings(settings))
            self.flushers = factory.flushers
            self.store.pump = lambda timeout: pump_all(self.flushers, timeout)
            # What the open built (an object or more per group) lives as long as
            # the server: out of the collector's sight, a full collection no
            # longer walks it (at 300k groups one took 588 ms, all of it a
            # pause of this loop; after the freeze, under 1 ms).
            gc.freeze()
            gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
            stat = self.store.stat()
            log.info("opened %d data director%s in %.3f s: %d groups, %d entries",
                     len(data_dirs), "y" if len(data_dirs) == 1 else "ies",
                     time.perf_counter() - t0, stat["groups"], stat["entries"])
            self.router = self.ctx.socket(zmq.ROUTER)
            if curve:
                self._auth = serve_curve(self.ctx, self.router, settings["curve_secret_key"],
                                         settings["curve_authorized_keys"])
                log.info("CurveZMQ on: clients must hold a key from %s", settings["curve_authorized_keys"])
            self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)
            self.router.maxmsgsize = settings["max_message_size"] + (1 << 20)
            self.router.sndhwm = 10_000
            # Bounded intake: at most this many requests wait in the socket; a
            # client sending faster is held back by its own queue.
            self.router.rcvhwm = 256
            self.router.bind(bind)
            self.endpoint = self.router.last_endpoint.decode()
            if settings["metrics_bind"]:
                self._metrics = serve_metrics(settings["metrics_bind"], self.collect_stat)
        except BaseException:
            self._close_resources()
            raise
        self._ops = {op: self._write for op in WRITE_OPS}
        self._ops.update(hello=self._hello, flush=self._flush, read=self._read, state=self._state,
                         groups=self._groups, drop_group=self._drop_group, batch=self._batch,
                         stat=self._stat, events=self._events)
        log.info("serving on %s (pid %d)", self.endpoint, os.getpid())

    # ------------------------------------------------------------ the loop

    def stop(self, *_):
        """Ask the loop to stop: safe from a signal handler or another thread."""
        self._stopping = True
        os.write(self._wake_w, b"s")

    def install_signal_handlers(self):
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def serve(self):
        poller, started = None, None
        next_tick = 0.0
        router = self.router
        try:
            while not self._stopping:
                if WorkerFlusher.started != started:  # a worker was (re)started on new sockets
                    started = WorkerFlusher.started
                    poller = zmq.Poller()
                    poller.register(router, zmq.POLLIN)
                    poller.register(self._wake_r, zmq.POLLIN)
                    for flusher in self.flushers:
                        poller.register(flusher.sub, zmq.POLLIN)
                events = dict(poller.poll(100))
                for flusher in self.flushers:
                    if flusher.sub in events:
                        flusher.handle_events()
                self._send_replies()  # (before the next requests: the answers are ready)
                if self._wake_r in events:
                    self._drain_wake()
                if router in events:
                    for _ in range(1000):  # (then the workers' events get their turn)
                        try:
                            frames = recv_frames(router, NOBLOCK)
                        except zmq.Again:
                            break
                        if trace.ON:
                            trace.stamp("front.recv")
                        self._handle(frames)
                        if self._stopping or not readable(router):
                            break
                self._send_replies()
                now = time.monotonic()
                if now >= next_tick:
                    for flusher in self.flushers:
                        flusher.tick()
                    next_tick = now + 0.02
        finally:
            self._shutdown()

    def _drain_wake(self):
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _send(self, ident, data):
        if trace.ON:
            trace.stamp("front.replied")
        try:
            send_frames(self.router, (ident, data), NOBLOCK)
        except zmq.Again:
            self._log_refusal("unread", logging.WARNING,
                              f"dropping a reply: client {ident.hex()} does not read its replies")
        except zmq.ZMQError as exc:
            self._log_refusal("gone", logging.INFO, f"dropping a reply to a client that is gone ({exc})")

    def _reply_later(self, ident, request_id):
        """A flush callback that queues the reply; the loop sends it (all in this thread)."""
        def callback(error):
            data = protocol.ok(request_id) if error is None else protocol.error(request_id, error)
            self._replies.append((ident, data))
        return callback

    def _send_replies(self):
        replies = self._replies
        while replies:
            self._send(*replies.popleft())

    def _handle(self, frames):
        if len(frames) != 2:
            self._log_refusal("frames", logging.WARNING,
                              f"dropping a message of {len(frames)} frames (want identity + one body)")
            return
        ident, data = frames
        request_id = None
        try:
            if len(data) > self.settings["max_message_size"]:
                request_id = protocol.peek_id(data)
                raise TooLarge(f"request of {len(data)} bytes is over max_message_size "
                               f"{self.settings['max_message_size']}")
            msg = protocol.unpack(data)
            request_id = msg.get("id")
            version = msg.get("v")
            if type(version) is not int or version not in PROTOCOL_VERSIONS:
                raise VersionMismatch(f"protocol version {msg.get('v')!r} is not supported; "
                                      f"this server speaks {', '.join(map(str, PROTOCOL_VERSIONS))}")
            op = msg.get("op")
            handler = self._ops.get(op) if type(op) is str else None
            if handler is None:
                raise UnknownOp(f"unknown op {msg.get('op')!r}; known: {', '.join(protocol.OPS)}")
            if self._stopping:
                raise StoreClosed("the server is shutting down")
            if op != "hello":  # (which has no effect, and is how a client learns the run)
                self._check_fresh(msg)
            result = handler(ident, request_id, msg)
        except ShardlogError as exc:
            if isinstance(exc, BadRequest) or request_id is None:
                self._log_refusal(exc.code, logging.WARNING if isinstance(exc, TooLarge) else logging.INFO,
                                  f"bad request from {ident.hex()}: {exc.code}: {exc}")
            self._send(ident, protocol.error(request_id, exc))
            return
        except Exception as exc:
            log.exception("request %r failed", request_id)
            self._send(ident, protocol.error(request_id, exc))
            return
        if result is not _LATER:
            self._send(ident, protocol.ok(request_id, result))

    def _check_fresh(self, msg):
        """Refuse a request its client can no longer be waiting for: meant for
        another run of the server, or past its deadline (both on this
        server's terms: ``inc`` and ``dl`` come from ``hello``). It runs
        right before the request takes effect, in the one thread that
        applies requests."""
        incarnation = msg.get("inc")
        if incarnation is not None and incarnation != self.incarnation:
            self.stale_requests += 1
            self._log_refusal("stale", logging.INFO, "refused a request meant for an earlier run of the server")
            raise StaleRequest(f"request for server run {incarnation!r}, but this is run {self.incarnation}: "
                               "the server restarted since the client said hello; not applied", self.incarnation)
        deadline = msg.get("dl")
        if deadline is not None:
            if type(deadline) not in (int, float):
                raise BadRequest(f"dl must be a number (seconds on the server's clock), not {deadline!r}")
            late = time.monotonic() - deadline
            if late >= 0:
                self.stale_requests += 1
                self._log_refusal("stale", logging.INFO, f"refused a request {late * 1e3:.1f} ms past its deadline")
                raise StaleRequest(f"request came {late * 1e3:.1f} ms after its deadline; not applied",
                                   self.incarnation)

    # ------------------------------------------------------------ operations

    def _check_space(self, ops, columns=None):
        """DiskFull before the disk really is: on a disk whose free space is
        under the reserve, only ops that free space or hold a few bytes of
        state are taken (ops.TAKEN_WHEN_LOW, drop_group); a new group needs
        a disk with room. Each disk is looked at at most every 0.1 s."""
        groups, disks = self.store._groups, self.store._disks
        growing = [gid for name, gid, _ in ops if name not in TAKEN_WHEN_LOW or gid not in groups]
        if not growing and (columns is None or not len(columns)):
            return
        if len(disks) == 1:  # (its groups and any new one: one look, not one per group)
            self._refuse_under_reserve(disks[0])
            return
        if columns is not None:
            growing.extend(set(columns.gids))
        for disk in {groups[gid].disk for gid in growing if gid in groups}:
            self._refuse_under_reserve(disk)
        if any(gid not in groups for gid in growing):  # (which also marks the disks under their reserve)
            room = {d.path: self._free_and_reserve(d) for d in disks}
            if all(free < reserve for free, reserve in room.values()):
                raise DiskFull(f"every disk is under the reserve (free, reserve bytes: {room}); "
                               "free space or add a disk")

    def _refuse_under_reserve(self, disk):
        free, reserve = self._free_and_reserve(disk)
        if free < reserve:
            raise DiskFull(f"{disk.path}: {free} bytes free, under the reserve of {reserve}; only "
                           f"{', '.join(sorted(TAKEN_WHEN_LOW))} and drop_group are taken: purge, drop "
                           "groups or free space")

    def _free_and_reserve(self, disk):
        """``(free bytes, reserve bytes)`` of ``disk``, looked at at most every
        0.1 s; keeps ``disk.under_reserve`` (placement passes such a disk over)
        and logs when it changes."""
        now = time.monotonic()
        checked = self._free_checked.get(disk.path)
        if checked is None or now - checked[0] > 0.1:
            usage = psutil.disk_usage(disk.path)
            checked = self._free_checked[disk.path] = (now, usage.free, self._reserve(usage.total))
            under = usage.free < checked[2]
            if under != disk.under_reserve:
                disk.under_reserve = under
                if under:
                    log.warning("%s: %d bytes free, under the reserve of %d: entries, user data and new "
                                "groups are refused until space is freed", disk.path, usage.free, checked[2])
                else:
                    log.warning("%s: %d bytes free, over the reserve of %d again: every write is taken",
                                disk.path, usage.free, checked[2])
        return checked[1], checked[2]

    def _reserve(self, total):
        reserve = self.settings["disk_reserve_bytes"]
        return min(DEFAULT_RESERVE, total // 20) if reserve < 0 else reserve

    def _check_size(self, ops, columns=None):
        """Refuse a request carrying more entries or payload bytes than the limits allow."""
        entries = payload = 0
        if columns is not None:
            entries, payload = len(columns), columns.payload_bytes()
        for op, _, arg in ops:
            if op == "append":
                entries += len(arg)
                payload += sum(len(p) for _, p in arg)
            elif op == "save_user_data" and arg is not None:
                payload += len(arg)
        limit_entries, limit_bytes = self.settings["max_request_entries"], self.settings["max_request_bytes"]
        if entries > limit_entries or payload > limit_bytes:
            raise TooLarge(f"request of {entries} entries and {payload} payload bytes is over the limits "
                           f"(max_request_entries {limit_entries}, max_request_bytes {limit_bytes}); split it")

    def _write(self, ident, request_id, msg):
        op = WRITE_OPS[msg["op"]]
        arg = _field(msg, op.field)
        return self._submit(ident, request_id, msg, [(op.name, check_u64(_field(msg, "gid"), "gid"),
                                                      op.from_wire(arg))])

    def _batch(self, ident, request_id, msg):
        if msg.get("ops") is None and msg.get("columns") is None:
            raise BadRequest("a batch needs ops, columns, or both")
        ops = self._batch_ops(msg.get("ops"), WRITE_OPS, "ops")
        columns, then = msg.get("columns"), []
        if columns is not None:
            if msg.get("v", 1) < 2:
                raise BadRequest("batch columns are protocol version 2")
            columns = AppendColumns.from_wire(columns)
            then = self._batch_ops(msg.get("then") or [], AFTER_APPENDS, "then")
        return self._submit(ident, request_id, msg, ops, columns, then)

    @staticmethod
    def _batch_ops(wire_ops, allowed, field):
        """A batch's ``ops`` (or ``then``) off the wire: ``[(op, gid, normal arg)]``, ops of ``allowed``."""
        if wire_ops is None:
            return []
        if not isinstance(wire_ops, list):
            raise BadRequest(f"{field} must be an array of [op, gid, arg]")
        ops = []
        for item in wire_ops:
            if not isinstance(item, list) or len(item) != 3 or type(item[0]) is not str or item[0] not in allowed:
                raise BadRequest(f"each of {field} must be [{' or '.join(sorted(allowed))}, gid, arg], "
                                 f"not {item!r:.100}")
            name, gid, arg = item
            ops.append((name, check_u64(gid, "gid"), WRITE_OPS[name].from_wire(arg)))
        return ops

    def _submit(self, ident, request_id, msg, ops, columns=None, then=()):
        """The front's one write path: a single write is a batch of one."""
        self._check_size(ops, columns)
        self._check_space(ops + list(then) if then else ops, columns)
        if msg.get("flush"):
            self.store.write_normalized(ops, flush=True, callback=self._reply_later(ident, request_id),
                                        columns=columns, then=then)
            return _LATER
        self.store.write_normalized(ops, columns=columns, then=then)
        return None

    def _flush(self, ident, request_id, msg):
        callback = self._reply_later(ident, request_id)
        if msg.get("gid") is None:
            self.store.flush(callback=callback)
        else:
            self.store.group(check_u64(msg["gid"], "gid")).flush(callback=callback)
        return _LATER

    def _read(self, ident, request_id, msg):
        gid = check_u64(_field(msg, "gid"), "gid")
        limit = msg.get("max", self.settings["max_read_entries"])
        limit = min(check_u64(limit, "max"), self.settings["max_read_entries"])
        start, end = _field(msg, "start"), _field(msg, "end")
        if msg.get("columns"):
            return protocol.columns_out(*self.store.read_columns(gid, start, end, max_entries=limit,
                                                                  max_bytes=self.settings["max_read_bytes"]))
        entries, nxt = self.store.read_page(gid, start, end, max_entries=limit,
                                            max_bytes=self.settings["max_read_bytes"])
        return {"entries": protocol.entries_out(entries), "next": nxt}

    def _state(self, ident, request_id, msg):
        return protocol.state_out(self.store.group(check_u64(_field(msg, "gid"), "gid")).state())

    def _groups(self, ident, request_id, msg):
        return self.store.groups()

    def _drop_group(self, ident, request_id, msg):
        self.store.drop_group(check_u64(_field(msg, "gid"), "gid"))
        return None

    def _hello(self, ident, request_id, msg):
        version = msg.get("v")  # a client of an older version checks that it is its own
        return {"protocol": version, "protocols": list(PROTOCOL_VERSIONS), "server": SERVER_NAME,
                "incarnation": self.incarnation, "clock": time.monotonic(),
                "max_message_size": self.settings["max_message_size"],
                "max_read_entries": self.settings["max_read_entries"]}

    def _events(self, ident, request_id, msg):
        return self.store.events(check_u64(msg.get("after", 0), "after"))

    def _stat(self, ident, request_id, msg):
        return self.collect_stat(min(check_u64(msg.get("groups", 0), "groups"), 10_000))

    def collect_stat(self, group_limit=0):
        """The figures of ``stat`` (also read by the metrics thread)."""
        stat = self.store.stat(group_limit=group_limit)
        stat["front"] = self._process_stat(os.getpid())
        stat["front"]["gc_frozen_objects"] = gc.get_freeze_count()  # (see __init__)
        stat["front"]["gc_thresholds"] = list(gc.get_threshold())
        stat["front"]["gc_collections"] = [generation["collections"] for generation in gc.get_stats()]
        for disk in stat["disks"]:
            disk["worker"] = self._process_stat(disk["flusher"].get("pid"))
            usage = psutil.disk_usage(disk["path"])
            reserve = self._reserve(usage.total)
            disk.update(free_bytes=usage.free, total_bytes=usage.total, reserve_bytes=reserve,
                        under_reserve=usage.free < reserve)
        stat["endpoint"] = self.endpoint
        stat["incarnation"] = self.incarnation
        stat["stale_requests"] = self.stale_requests
        return stat

    def _process_stat(self, pid):
        if pid is None:
            return None
        try:
            proc = self._processes.get(pid)
            first = proc is None
            if first:
                proc = self._processes.setdefault(pid, psutil.Process(pid))
            with proc.oneshot():
                # CPU percent is measured since the previous call: the first call has
                # no interval yet (psutil would divide by almost nothing), so None.
                cpu = proc.cpu_percent(None)
                return {"pid": pid, "rss": proc.memory_info().rss, "cpu_percent": None if first else cpu,
                        "cpu_seconds": sum(proc.cpu_times()[:2])}
        except (psutil.NoSuchProcess, psutil.AccessDenied) as exc:
            self._processes.pop(pid, None)
            return {"pid": pid, "error": type(exc).__name__}

    # ------------------------------------------------------------ shutdown

    def _shutdown(self):
        log.info("shutting down: flushing every disk and stopping the workers")
        try:
            self.store.close()
        finally:
            self._send_replies()
            # Whatever arrived meanwhile is answered, not left hanging.
            while True:
                try:
                    ident, data = self.router.recv_multipart(zmq.NOBLOCK)
                except (zmq.Again, ValueError):
                    break
                try:
                    request_id = protocol.unpack(data).get("id")
                except BadRequest:
                    continue
                self._send(ident, protocol.error(request_id, StoreClosed("the server is shutting down")))
            self._close_resources()
        log.info("stopped")

    def _close_resources(self):
        if getattr(self, "_metrics", None) is not None:
            self._metrics.shutdown()
            self._metrics.server_close()
        if self.store is not None:
            self.store.close()
        if self.router is not None:
            self.router.close()
        if self._auth is not None:
            self._auth.stop()
        self.ctx.term()
        os.close(self._wake_r)
        trace.close()
        os.close(self._wake_w)
        shutil.rmtree(self.run_dir, ignore_errors=True)


_LATER = object()
