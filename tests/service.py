"""Helpers to run real servers in tests: free ipc endpoints, timeouts, reaping."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import psutil

from shardlog.client import Client
from shardlog.errors import ShardlogError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def poll_for(predicate, timeout, interval=0.02):
    """Wait until ``predicate()`` is true; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


class Server:
    """A ``python -m shardlog serve`` process on an ipc endpoint in a short temporary directory."""

    def __init__(self, data_dirs, *args, env=None):
        self.sock_dir = tempfile.mkdtemp(prefix="sl-")  # ipc paths must stay under ~100 chars
        self.endpoint = f"ipc://{self.sock_dir}/front"
        self.data_dirs = [str(d) for d in data_dirs]
        self.log_path = os.path.join(self.sock_dir, "serve.log")
        cmd = [sys.executable, "-m", "shardlog", "serve", "--bind", self.endpoint,
               "--disk-reserve-bytes", "0"]
        for d in self.data_dirs:
            cmd += ["--data-dir", d]
        cmd += list(args)
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = ROOT
        full_env.update(env or {})
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=full_env)
        self.workers = []

    def wait_ready(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with Client(self.endpoint, timeout=0.5) as c:
                    stat = c.stat()
                self.workers = [d["worker"]["pid"] for d in stat["disks"]]
                return self
            except ShardlogError:
                time.sleep(0.05)
        raise RuntimeError(f"server not ready in {timeout} s:\n{self.log()}")

    def client(self, timeout=20):
        return Client(self.endpoint, timeout=timeout)

    def log(self):
        if not self._log.closed:
            self._log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def worker_pids(self):
        try:
            return [c.pid for c in psutil.Process(self.proc.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Stop the server; returns its exit code. Kills whatever is left, workers included."""
        children = self.worker_pids()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        for pid in children:
            _reap(pid)
        self._log.close()
        return code

    def cleanup(self):
        if self.proc.poll() is None:
            self.stop(signal.SIGKILL)
        for pid in self.worker_pids():
            _reap(pid)
        self._log.close()
        shutil.rmtree(self.sock_dir, ignore_errors=True)


def _reap(pid, timeout=5):
    try:
        proc = psutil.Process(pid)
        proc.wait(timeout)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired:
        proc.kill()
        proc.wait(5)
