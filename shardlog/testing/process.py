"""A ``python -m shardlog serve`` child process, for tests, the benchmark and the torture.

One place that knows how to start a server on given data directories, wait
until it answers (by asking, not by sleeping), stop it politely or kill it,
and reap its flush workers.
"""

import os
import re
import signal
import subprocess
import sys
import time

import psutil

from shardlog.client import Client
from shardlog.errors import ShardlogError

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class ServerProcess:
    def __init__(self, data_dirs, bind, log_path, args=(), env=None):
        cmd = [sys.executable, "-m", "shardlog", "serve", "--bind", bind]
        for d in data_dirs:
            cmd += ["--data-dir", os.fspath(d)]
        cmd += list(args)
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [_ROOT, full_env.get("PYTHONPATH")]))
        full_env.update(env or {})
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=full_env)
        self.endpoint = bind

    def log(self):
        if not self._log.closed:
            self._log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_ready(self, timeout=30):
        """Wait until the server answers ``stat``; returns that answer.

        With a ``:0`` port the endpoint is read from the startup log line.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            if self.endpoint.endswith(":0"):
                found = re.search(r"serving on (tcp://\S+)", self.log())
                if found is None:
                    time.sleep(0.05)
                    continue
                self.endpoint = found.group(1)
            try:
                with Client(self.endpoint, timeout=0.5) as client:
                    return client.stat()
            except ShardlogError:
                time.sleep(0.05)
        raise RuntimeError(f"server not ready in {timeout} s:\n{self.log()}")

    def worker_pids(self):
        try:
            return [child.pid for child in psutil.Process(self.proc.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Stop the server; returns its exit code. Kills and reaps whatever is left."""
        workers = self.worker_pids()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        reap(workers)
        self._log.close()
        return code

    def kill(self):
        """SIGKILL the front only; its workers notice and exit by themselves."""
        return self.stop(signal.SIGKILL)


def reap(pids, timeout=10):
    """Wait for ``pids`` to end; kill those that do not."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            proc.wait(max(0.1, deadline - time.monotonic()))
        except psutil.NoSuchProcess:
            pass
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(5)
