"""The LOCK file that keeps a second process out of a data directory."""

import os

from shardlog.errors import DirectoryLocked
from shardlog.workers.files import OS_FILES, DirectoryBusy
from shardlog.workers.naming import LOCK_FILE


class DirLock:
    def __init__(self, data_dir, files=OS_FILES):
        self.path = os.path.join(os.fspath(data_dir), LOCK_FILE)
        self._files = files
        try:
            self._lock = files.lock(self.path)
        except DirectoryBusy as busy:
            raise DirectoryLocked(
                f"data directory {os.path.dirname(self.path)} is in use by another "
                f"process (pid {busy.holder}); stop it or choose another directory") from None

    def release(self):
        if self._lock is not None:
            self._files.unlock(self._lock)
            self._lock = None
