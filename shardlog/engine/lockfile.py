"""The LOCK file that keeps a second process out of a data directory."""

import fcntl
import os

from shardlog.errors import DirectoryLocked
from workers.naming import LOCK_FILE


class DirLock:
    def __init__(self, data_dir):
        self.path = os.path.join(os.fspath(data_dir), LOCK_FILE)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DirectoryLocked(
                f"data directory {os.path.dirname(self.path)} is in use by another "
                f"process (pid {holder}); stop it or choose another directory") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
