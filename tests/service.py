"""Helpers to run real servers in tests: ipc endpoints in short temporary paths, timeouts, reaping."""

import os
import shutil
import signal
import tempfile
import time

from shardlog.client import Client
from shardlog.testing.process import ServerProcess, reap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def poll_for(predicate, timeout, interval=0.02):
    """Wait until ``predicate()`` is true; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


class Server(ServerProcess):
    """A server on an ipc endpoint in a short temporary directory, with no disk reserve."""

    def __init__(self, data_dirs, *args, env=None):
        self.sock_dir = tempfile.mkdtemp(prefix="sl-")  # ipc paths must stay under ~100 chars
        super().__init__(data_dirs, f"ipc://{self.sock_dir}/front", os.path.join(self.sock_dir, "serve.log"),
                         ["--disk-reserve-bytes", "0", *args], env)
        self.workers = []

    def wait_ready(self, timeout=20):
        stat = super().wait_ready(timeout)
        self.workers = [d["worker"]["pid"] for d in stat["disks"]]
        return self

    def client(self, timeout=20):
        return Client(self.endpoint, timeout=timeout)

    def cleanup(self):
        if self.proc.poll() is None:
            self.stop(signal.SIGKILL)  # reaps the workers too
        else:
            # The test ended the front itself: its workers are no longer its
            # children, so reap the ones seen at start (and any restarted).
            reap(self.workers)
            self._log.close()
        shutil.rmtree(self.sock_dir, ignore_errors=True)
