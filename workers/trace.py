"""Tracing mode: each process of the service stamps the steps of its requests.

``SHARDLOG_TRACE=DIR`` in the environment of ``shardlog serve`` (its flush
workers inherit it) makes the front and each worker append one line per
step to ``DIR/trace-<pid>.txt``: ``<step> <time.monotonic_ns()>``. The
monotonic clock is the machine's, so stamps of different processes on one
host compare. ``scripts/bench_latency.py --trace`` stamps the client's side
too and lines the steps of sequential requests up into a breakdown of where
a durable append spends its time (docs/bench.md).

Steps (in the order one durable append takes them). A sender stamps right
before it sends, a receiver right after it reads, so the stamps of one
request are in this order whatever the scheduling:

    front.recv         request read off the client socket
    front.submit       its bytes about to go to the worker's socket
    worker.recv        request read off the worker's socket
    worker.synced      its batch written and fdatasync'ed
    worker.published   "done" packed, about to go to the events socket
    front.done         "done" read off the events socket
    front.replied      reply about to go to the client socket

Off (the default), a step costs one test of a module-level flag.
"""

import os
import time

_DIR = os.environ.get("SHARDLOG_TRACE") or None
#: Whether steps are stamped: the hot paths test this before calling ``stamp``.
ON = _DIR is not None
_file = None


def stamp(step):
    """Note that ``step`` happens now."""
    global _file
    if _file is None:
        _file = open(os.path.join(_DIR, f"trace-{os.getpid()}.txt"), "a", buffering=1 << 16)
    _file.write(f"{step} {time.monotonic_ns()}\n")


def close():
    """Write out what is buffered (at exit of a traced process)."""
    global _file
    if _file is not None:
        _file.close()
        _file = None


def read(path):
    """``{step: [ns, ...]}`` of one process's trace file."""
    steps = {}
    with open(path) as f:
        for line in f:
            step, ns = line.split()
            steps.setdefault(step, []).append(int(ns))
    return steps
