"""The command line: ``python -m shardlog serve | stat | top | dump | export | import | bench | keygen``."""

import argparse
import contextlib
import errno
import importlib.metadata
import json
import logging
import os
import sys
import time

from shardlog.engine.settings import RECOVERY_MODES
from shardlog.errors import ShardlogError
from shardlog.server.config import DEFAULTS, engine_settings, load

from .report import format_stat

SETTING_FLAGS = [
    ("max_message_size", int, "largest request in bytes"),
    ("max_read_entries", int, "most entries in one read reply (the rest is paged)"),
    ("max_read_bytes", int, "about this many payload bytes in one read reply (the rest is paged)"),
    ("max_request_entries", int, "most entries in one request (append or batch)"),
    ("max_request_bytes", int, "most payload bytes in one request"),
    ("max_groups", int, "most groups the server holds; creating more is refused"),
    ("disk_reserve_bytes", int, "under this much free space, refuse entries, user data and new groups with "
                                "DiskFull (purge, truncate, drop_group, commit, save_vote are still taken); "
                                "-1: 64 MiB, or a 20th of a smaller disk"),
    ("disk_spare_bytes", int, "disk space each worker holds back so that purge, truncate and drop_group can "
                              "still be written once the disk is really full"),
    ("heartbeat", float, "seconds between the workers' heartbeats"),
    ("chunk_max_size", int, "close a chunk once it holds this many bytes"),
    ("chunk_max_records", int, "close a chunk once it holds this many records"),
    ("cache_max_items", int, "durable payloads kept in memory, per disk (items)"),
    ("cache_max_bytes", int, "durable payloads kept in memory, per disk (bytes)"),
    ("write_buffer_size", int, "hand encoded records to the worker once this many bytes wait"),
    ("max_unsynced_bytes", int, "stop taking writes for a disk holding this many unsynced bytes"),
    ("max_open_chunk_files", int, "chunk files kept open for reads, per disk (the newest opened)"),
    ("relocate_max_bytes", int, "copy forward at once the groups pinning the oldest chunk that hold at most "
                                "this many bytes (when a disk holds over twice its live data plus four chunks)"),
    ("lagging_rounds", int, "copy forward a bigger (lagging) group after it pinned the oldest chunk through "
                            "this many rotations"),
]


class CliError(Exception):
    """A mistake of the command line's user: printed as one line, without a traceback."""


def _os_message(exc):
    """``path: reason`` of an OSError (its own text if it names no file)."""
    if exc.filename is None or exc.strerror is None:
        return str(exc)
    also = "" if exc.filename2 is None else f" -> {exc.filename2}"
    return f"{exc.filename}{also}: {exc.strerror}"


def _check_data_dirs(data_dirs, must_exist=False):
    from shardlog.engine.membership import refuse_twice

    refuse_twice(data_dirs)
    for path in data_dirs:
        if not os.path.exists(path):
            if must_exist:
                raise CliError(f"no such data directory: {path}; give every --data-dir of the server, "
                               "or its --config")
        elif not os.path.isdir(path):
            raise CliError(f"data directory {path} is not a directory; choose another --data-dir")


@contextlib.contextmanager
def _data_dir_errors(data_dirs):
    """An OSError on a data directory (or on a path on the way to it) says which one, and the fix."""
    try:
        yield
    except OSError as exc:
        name = exc.filename
        if isinstance(exc, BrokenPipeError) or name is None or exc.strerror is None:
            raise
        name = os.path.abspath(os.fsdecode(name))
        for path in map(os.path.abspath, data_dirs):
            if name == path or name.startswith(path + os.sep) or path.startswith(name + os.sep):
                where = "" if name == path else f" ({name})"
                raise CliError(f"data directory {path}: {exc.strerror}{where}; choose another --data-dir, "
                               "or make this one a writable directory") from None
        raise


def _add_setting(parser, name, kind, text):
    default = DEFAULTS[name]
    parser.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=None,
                        help=f"{text} (default {default})")


def _cmd_serve(args):
    import zmq

    from shardlog.server.front import Front

    flags = {k: v for k, v in vars(args).items() if k in DEFAULTS}
    settings = load(flags, config_file=args.config)
    _check_data_dirs(settings["data_dir"])
    logging.basicConfig(level=settings["log_level"].upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        with _data_dir_errors(settings["data_dir"]):
            front = Front(settings)
        front.install_signal_handlers()
        front.serve()
    except zmq.ZMQError as exc:
        bind = settings["bind"]
        if exc.errno == zmq.EADDRINUSE:
            raise CliError(f"{bind} is already in use (another server running?); choose another --bind") from None
        if f"(addr={bind!r})" in str(exc):  # (pyzmq names the address a bind failed on)
            reason = str(exc).replace(f" (addr={bind!r})", "").rstrip(".")
            raise CliError(f"cannot bind {bind}: {reason}; choose another --bind") from None
        raise
    except OSError as exc:  # (the metrics server's socket)
        if exc.errno == errno.EADDRINUSE and settings["metrics_bind"]:
            raise CliError(f"{settings['metrics_bind']} is already in use (another server running?); "
                           "choose another --metrics-bind") from None
        raise
    return 0


def _client(args, timeout):
    from shardlog.client import Client

    return Client(args.endpoint, timeout=timeout, client_key=args.client_key, server_key=args.server_key)


def _add_client_args(parser):
    parser.add_argument("--endpoint", default=DEFAULTS["bind"], help="server endpoint (default %(default)s)")
    parser.add_argument("--client-key", help="CurveZMQ: this client's .key_secret file")
    parser.add_argument("--server-key", help="CurveZMQ: the server's public .key file")


def _cmd_keygen(args):
    from shardlog.server.security import keygen

    public, secret = keygen(args.directory, args.name)
    print(f"public key: {public}\nsecret key: {secret} (keep it private)")
    return 0


def _cmd_stat(args):
    with _client(args, args.timeout) as client:
        stat = client.stat(groups=args.groups)
    if args.json:
        print(json.dumps(stat, indent=2, sort_keys=True))
        return 0
    print(format_stat(stat))
    return 0


def _cmd_top(args):
    with _client(args, args.timeout) as client:
        previous = None
        shown = 0
        try:
            while args.count == 0 or shown < args.count:
                stat = client.stat(groups=args.groups)
                stat["taken_at"] = time.monotonic()
                screen = format_stat(stat, previous)
                if sys.stdout.isatty():
                    sys.stdout.write("\033[H\033[2J")
                print(time.strftime("%H:%M:%S"), screen, sep="  ", flush=True)
                previous = stat
                shown += 1
                if args.count == 0 or shown < args.count:
                    time.sleep(args.interval)
        except KeyboardInterrupt:
            pass
    return 0


def _cmd_dump(args):
    from shardlog.engine import codec
    from shardlog.engine.recovery import prepared_chunk, resync
    from shardlog.workers.naming import PREPARED_FILE, list_chunks

    if not os.path.isdir(args.data_dir):
        raise CliError(f"{'not a directory' if os.path.exists(args.data_dir) else 'no such data directory'}: "
                       f"{args.data_dir}")
    files, ignored = list_chunks(args.data_dir)
    prepared = prepared_chunk(args.data_dir)
    if prepared is not None and prepared not in dict(files):  # the newest chunk, under its old name
        files = sorted(files + [(prepared, os.path.join(args.data_dir, PREPARED_FILE))])
    if not files:
        print(f"{args.data_dir}: no chunk files", file=sys.stderr)
        return 1
    for start, path in files:
        print(f"{os.path.basename(path)}" + (f" (chunk {start}: its rename had not reached the disk)"
                                             if os.path.basename(path) == PREPARED_FILE else ""))
        with open(path, "rb") as f:
            data = f.read()
        pos = n = 0
        room = codec.room_start(data)
        while pos < len(data):
            if pos >= room:
                print(f"  ROOM [{start + pos}, {start + len(data)}) {len(data) - pos} bytes preallocated, "
                      "not used yet")
                break
            try:
                rec, end = codec.decode(data, pos)
            except (codec.Incomplete, codec.BadRecord) as exc:
                if args.recovery_mode != "salvage":
                    print(f"  DAMAGED from offset {pos} to the end of the file: {exc}")
                    break
                end = resync(data, pos + 1)
                print(f"  DAMAGED [{start + pos}, {start + end}) {end - pos} bytes skipped: {exc}")
                pos = end
                continue
            where = f"  R-{n:05d} [{start + pos}, {start + end}) {end - pos}:"
            if args.group is None or rec.gid == args.group:
                print(f"{where} {codec.describe(rec)}")
            elif rec.type == codec.CHECKPOINT:
                state = dict(rec.value[2]).get(args.group)
                if state is not None:
                    print(f"{where} checkpoint of g={args.group}: {state}")
            elif rec.type == codec.FOOTER:
                for fg in rec.value.groups():
                    if fg.gid == args.group:
                        print(f"{where} footer of g={args.group}: "
                              f"{'dropped' if fg.state is None else fg.state}, "
                              f"{fg.run_count} entries from {fg.run_first} in this chunk")
            pos = end
            n += 1
    return 0


def _open_server_store(args, must_exist):
    """The store of every data directory of the server (--data-dir, or the server's
    --config / SHARDLOG_* settings, as ``serve`` reads them), opened as it does."""
    from shardlog.engine.store import Store

    if not (args.data_dir or args.config or os.environ.get("SHARDLOG_CONFIG")
            or os.environ.get("SHARDLOG_DATA_DIR")):
        raise CliError("which data directories? give every --data-dir of the server, or its --config")
    settings = load({"data_dir": args.data_dir}, config_file=args.config)
    _check_data_dirs(settings["data_dir"], must_exist)
    with _data_dir_errors(settings["data_dir"]):
        return Store.open(settings["data_dir"], **engine_settings(settings))


def _cmd_export(args):
    from shardlog.compat import export_raft_log

    with _open_server_store(args, must_exist=True) as store:
        names = export_raft_log(store, args.group, args.out, chunk_max_records=args.chunk_max_records,
                                chunk_max_size=args.chunk_max_size)
    print(f"wrote {len(names)} chunk files to {args.out}")
    return 0


def _cmd_import(args):
    from shardlog.compat import import_raft_log

    with _open_server_store(args, must_exist=False) as store:
        state, count = import_raft_log(store, args.group, args.source)
    print(f"imported {count} entries as group {args.group}: {state}")
    return 0


def _cmd_bench(args):
    payload = b"x" * args.size
    with _client(args, 30) as client:
        groups = [client.group(args.first_group + g) for g in range(args.groups)]
        latencies = []
        start = [g.state().last for g in groups]
        nxt = [0 if s is None else s[1] + 1 for s in start]
        term = 1 + max([s[0] for s in start if s] or [0])
        t_end = time.monotonic() + args.seconds
        rounds = 0
        t0 = time.perf_counter()
        while time.monotonic() < t_end:
            t1 = time.perf_counter()
            with client.batch(flush=True) as b:
                for k, g in enumerate(groups):
                    b.group(g.gid).append([((term, nxt[k]), payload)])
                    nxt[k] += 1
            latencies.append(time.perf_counter() - t1)
            rounds += 1
        elapsed = time.perf_counter() - t0
    latencies.sort()
    entries = rounds * args.groups
    print(f"{rounds} rounds of {args.groups} groups x {args.size} B, durable: {entries / elapsed:,.0f} "
          f"entries/s; round latency p50 {latencies[len(latencies) // 2] * 1e3:.2f} ms, "
          f"p99 {latencies[int(len(latencies) * 0.99)] * 1e3:.2f} ms")
    return 0


def _add_store_args(parser):
    parser.add_argument("--data-dir", dest="data_dir", action="append", default=None,
                        help="a data directory of the server; repeat it: give every --data-dir of the server")
    parser.add_argument("--config", help="the server's TOML file of settings: its data_dir list, and its "
                                         "engine settings")


def build_parser(prog="shardlog"):
    """``prog``: how the user ran it (the console script, or ``python -m shardlog``), for usage lines."""
    ap = argparse.ArgumentParser(prog=prog, description="Durable log storage for hosts that run many Raft groups.")
    ap.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = ap.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server (front process and one flush worker per disk)",
                           description="Run the server. Settings come from --config FILE.toml, then "
                                       "SHARDLOG_* environment variables, then these flags (flags win).")
    serve.add_argument("--config", help="TOML file of settings (names as the flags, with _)")
    serve.add_argument("--data-dir", dest="data_dir", action="append", default=None,
                       help="a data directory, one per disk; repeat for several "
                            f"(default {DEFAULTS['data_dir'][0]})")
    serve.add_argument("--bind", default=None, help=f"client endpoint (default {DEFAULTS['bind']})")
    serve.add_argument("--insecure", action="store_const", const=True, default=None,
                       help="allow binding to a non-loopback address without CurveZMQ")
    serve.add_argument("--curve-secret-key", dest="curve_secret_key", default=None,
                       help="CurveZMQ: the server's .key_secret file (see `keygen`)")
    serve.add_argument("--curve-authorized-keys", dest="curve_authorized_keys", default=None,
                       help="CurveZMQ: directory of the .key files of the clients let in")
    serve.add_argument("--log-level", dest="log_level", default=None, help="DEBUG, INFO, WARNING (default INFO)")
    serve.add_argument("--metrics-bind", dest="metrics_bind", default=None,
                       help="serve Prometheus metrics at http://HOST:PORT/metrics (default: off)")
    serve.add_argument("--fault-injection", dest="fault_injection", action="store_const", const=True,
                       default=None, help=argparse.SUPPRESS)
    serve.add_argument("--worker-file-size-limit", dest="worker_file_size_limit", type=int, default=None,
                       help=argparse.SUPPRESS)
    for name, kind, text in SETTING_FLAGS:
        _add_setting(serve, name, kind, text)
    serve.add_argument("--recovery-mode", dest="recovery_mode", choices=RECOVERY_MODES, default=None,
                       help="on open: tolerate-tail cuts damage in the newest chunk and refuses it elsewhere; "
                            "strict cuts only a torn record or zeros (raft-log); salvage skips damage "
                            f"anywhere and logs what was lost (default {DEFAULTS['recovery_mode']})")
    serve.set_defaults(func=_cmd_serve)

    stat = sub.add_parser("stat", help="print a running server's figures")
    _add_client_args(stat)
    stat.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (default %(default)s)")
    stat.add_argument("--json", action="store_true", help="print JSON for scripts")
    stat.add_argument("--groups", type=int, default=20,
                      help="per-group figures of this many groups, biggest first (default %(default)s)")
    stat.set_defaults(func=_cmd_stat)

    top = sub.add_parser("top", help="the figures of stat, refreshed live; Ctrl-C to leave")
    _add_client_args(top)
    top.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes (default %(default)s)")
    top.add_argument("--count", type=int, default=0, help="stop after this many screens (default: never)")
    top.add_argument("--groups", type=int, default=10, help="biggest groups to show (default %(default)s)")
    top.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the server")
    top.set_defaults(func=_cmd_top)

    dump = sub.add_parser("dump", help="print the records of a data directory (offline, read-only)")
    dump.add_argument("data_dir")
    dump.add_argument("--group", type=int, help="only this group's records")
    dump.add_argument("--recovery-mode", choices=RECOVERY_MODES, default="strict",
                      help="salvage: go on past damage to the next valid record (default: stop at it)")
    dump.set_defaults(func=_cmd_dump)

    every = ("Give every --data-dir of the server, or its --config: the directories of a server are "
             "opened together or not at all.")
    export = sub.add_parser("export", help="write a group as a raft-log directory (server stopped)",
                            description="Write a group as a raft-log directory, with the server stopped. " + every)
    _add_store_args(export)
    export.add_argument("--group", type=int, required=True)
    export.add_argument("out", help="new or empty directory to write")
    export.add_argument("--chunk-max-records", type=int, help="raft-log's chunk_max_records")
    export.add_argument("--chunk-max-size", type=int, help="raft-log's chunk_max_size")
    export.set_defaults(func=_cmd_export)

    imp = sub.add_parser("import", help="load a raft-log directory as a new group (server stopped)",
                         description="Load a raft-log directory as a new group, with the server stopped. " + every)
    _add_store_args(imp)
    imp.add_argument("--group", type=int, required=True)
    imp.add_argument("source", help="raft-log directory")
    imp.set_defaults(func=_cmd_import)

    bench = sub.add_parser("bench", help="durable batched appends against a running server")
    _add_client_args(bench)
    bench.add_argument("--groups", type=int, default=1000)
    bench.add_argument("--first-group", type=int, default=1_000_000)
    bench.add_argument("--size", type=int, default=100, help="payload bytes (default %(default)s)")
    bench.add_argument("--seconds", type=float, default=5.0)
    bench.set_defaults(func=_cmd_bench)

    keygen = sub.add_parser("keygen", help="write a CurveZMQ key pair (NAME.key, NAME.key_secret)")
    keygen.add_argument("directory")
    keygen.add_argument("--name", default="server", help="file name of the pair (default %(default)s)")
    keygen.set_defaults(func=_cmd_keygen)
    return ap


def _version():
    try:
        return importlib.metadata.version("shardlog")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


def main(argv=None, prog="shardlog"):
    """Run a command; a mistake of the user (a ShardlogError, an OSError, a port in use, ...)
    is one line on stderr and a non-zero exit. Anything else is a bug: its traceback shows."""
    args = build_parser(prog).parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()  # (a reader gone shows here, not in the flush at exit)
        return code
    except BrokenPipeError:
        # The reader left (``dump | head``): no error of ours. Python would
        # complain again when it flushes stdout at exit: point it at devnull.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13  # as a process killed by SIGPIPE
    except KeyboardInterrupt:
        return 130
    except (CliError, ShardlogError) as exc:
        print(f"shardlog {args.command}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"shardlog {args.command}: {_os_message(exc)}", file=sys.stderr)
        return 1
