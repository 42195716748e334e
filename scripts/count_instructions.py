#!/usr/bin/env python3
"""Instructions per durable append, by process: a measure of our Python work that noise does not move.

    .venv/bin/python scripts/count_instructions.py [--src CHECKOUT] [--only embedded|service]

Timings on these shared machines move by 2x from one run to the next; the
instructions a process executes (valgrind's callgrind counts them) do not.
Each figure is the difference of two runs, of 200 and 700 durable single
appends of 100 B, divided by 500: start-up and shut-down cancel out.

  embedded   Store.group(1).append(..., flush=True), in one process
  service    the client, the front and the flush worker, each counted in its
             own process (their ZeroMQ I/O threads included)

``--src`` counts another checkout of shardlog (a ``git worktree`` of the base
of a change, say) with this interpreter, to compare the two.
Needs valgrind; it takes about a minute per case.
"""

import argparse
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SMALL, LARGE = 200, 700

_APPENDS = """
import sys, time
sys.path.insert(0, {path!r})
{setup}
import os, shardlog.workers.writer
assert os.path.realpath(shardlog.workers.writer.__file__).startswith({src!r} + os.sep), shardlog.workers.writer.__file__
P = b"x" * 100
for i in range({n}):
    g.append([((1, i), P)], flush=True)
{teardown}
"""

_EMBEDDED = ("from shardlog import Store\nstore = Store.open({dir!r})\ng = store.group(1)", "store.close()")
_CLIENT = ("""from shardlog.client import Client
deadline = time.time() + 120
while True:  # the front starts slowly under valgrind
    try:
        client = Client({endpoint!r}, timeout=5)
        break
    except Exception:
        if time.time() > deadline:
            raise
        time.sleep(1)
g = client.group(1)""", "client.close()")


def _callgrind(out_file, args):
    return ["valgrind", "--tool=callgrind", "--trace-children=yes", f"--callgrind-out-file={out_file}",
            sys.executable, *args]


def _totals(pattern):
    """``{role: instructions}`` of the callgrind files matching ``pattern``."""
    out = {}
    for path in glob.glob(pattern):
        with open(path, errors="replace") as f:
            text = f.read()
        count = re.search(r"^(?:summary|totals):\s*(\d+)", text, re.M)
        cmd = re.search(r"^cmd:\s*(.*)$", text, re.M)
        if count is None or cmd is None:
            continue
        cmd = cmd.group(1)
        role = ("worker" if "-m shardlog.workers" in cmd else "front" if " serve " in cmd
                else "client" if os.path.basename(path).startswith("client") else "embedded")
        out[role] = out.get(role, 0) + int(count.group(1))
    return out


def _importable(src, work):
    """A directory to put first on the path, where ``shardlog`` is ``src``'s,
    its ``workers`` included. The editable install maps ``shardlog.workers``
    to this checkout's workers/ folder (pyproject's package-dir): with only
    ``src`` first on the path, another checkout was counted with this one's
    workers."""
    package = os.path.join(work, "path", "shardlog")
    os.makedirs(package)
    for name in os.listdir(os.path.join(src, "shardlog")):
        os.symlink(os.path.join(src, "shardlog", name), os.path.join(package, name))
    os.symlink(os.path.join(src, "workers"), os.path.join(package, "workers"))
    return os.path.dirname(package)


def run_embedded(src, n, work):
    data = os.path.join(work, "store")
    code = _APPENDS.format(path=_importable(src, work), src=src, n=n, setup=_EMBEDDED[0].format(dir=data),
                           teardown=_EMBEDDED[1])
    subprocess.run(_callgrind(os.path.join(work, "embedded.%p"), ["-c", code]), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return _totals(os.path.join(work, "embedded.*"))


def run_service(src, n, work):
    endpoint = f"ipc://{work}/front.sock"
    path = _importable(src, work)
    env = dict(os.environ, PYTHONPATH=path)
    with open(os.path.join(work, "front.log"), "w") as log:
        front = subprocess.Popen(_callgrind(os.path.join(work, "server.%p"),
                                            ["-m", "shardlog", "serve", "--bind", endpoint, "--data-dir",
                                             os.path.join(work, "data"), "--disk-reserve-bytes", "0"]),
                                 cwd=path, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            code = _APPENDS.format(path=path, src=src, n=n, setup=_CLIENT[0].format(endpoint=endpoint),
                                   teardown=_CLIENT[1])
            subprocess.run(_callgrind(os.path.join(work, "client.%p"), ["-c", code]), env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
        finally:
            front.send_signal(signal.SIGTERM)
            try:
                front.wait(120)
            except subprocess.TimeoutExpired:
                front.kill()
                front.wait()
    return _totals(os.path.join(work, "*.*[0-9]"))


def per_append(run, src):
    counts = []
    for n in (SMALL, LARGE):
        work = tempfile.mkdtemp(prefix="instructions-")
        try:
            counts.append(run(src, n, work))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    small, large = counts
    return {role: (large[role] - small.get(role, 0)) // (LARGE - SMALL) for role in large}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", default=ROOT, help="the checkout to count (default: this one)")
    parser.add_argument("--only", choices=("embedded", "service"))
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is needed (apt-get install valgrind)")
    src = os.path.realpath(args.src)
    print(f"instructions per durable append of {src}:")
    if args.only in (None, "embedded"):
        for role, count in per_append(run_embedded, src).items():
            print(f"  {role:10} {count:>9,}")
    if args.only in (None, "service"):
        for role, count in sorted(per_append(run_service, src).items()):
            print(f"  {role:10} {count:>9,}")


if __name__ == "__main__":
    main()
