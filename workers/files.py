"""Every file operation of the engine and the flush writer, in one small interface.

Durability is decided by the order of a handful of calls (write, fsync the
file, fsync the directory, unlink). Putting them behind one object lets a test
swap in a file system that keeps what was synced apart from what was only
written and, at a simulated crash, loses or tears the rest
(``shardlog.testing.simfs``). ``OS_FILES`` is the real one.

Descriptors are whatever ``open`` returns; only this object uses them.
"""

import fcntl
import os


class DirectoryBusy(Exception):
    """Another process holds the directory's lock; ``holder`` is what it wrote there."""

    def __init__(self, holder):
        super().__init__(holder)
        self.holder = holder


class OsFiles:
    # -- descriptors

    def open(self, path, mode):
        """``mode``: "r" (read), "w" (write, created if missing) or "rw" (both, created)."""
        flags = {"r": os.O_RDONLY, "w": os.O_WRONLY | os.O_CREAT, "rw": os.O_RDWR | os.O_CREAT}[mode]
        return os.open(path, flags, 0o644)

    def close(self, fd):
        os.close(fd)

    def pread(self, fd, size, offset):
        return os.pread(fd, size, offset)

    # The calls of every durable write are the os functions themselves, with
    # no frame of ours around them: the embedded durable append makes three.
    #: ``pwrite(fd, data, offset)``: bytes written (maybe fewer than given: the caller loops).
    pwrite = staticmethod(os.pwrite)
    fsync = staticmethod(os.fsync)
    fdatasync = staticmethod(os.fdatasync)

    def fsize(self, fd):
        return os.fstat(fd).st_size

    def ftruncate(self, fd, size):
        """Cut the file at ``size`` (durable at its next fsync)."""
        os.ftruncate(fd, size)

    # -- paths

    def listdir(self, path):
        return os.listdir(path)

    def exists(self, path):
        return os.path.exists(path)

    def size(self, path):
        return os.path.getsize(path)

    def read(self, path):
        """The whole file."""
        with open(path, "rb") as f:
            return f.read()

    def unlink(self, path):
        os.unlink(path)

    def rename(self, source, target):
        """Atomically (durable once the directory is synced)."""
        os.rename(source, target)

    def makedirs(self, path):
        os.makedirs(path, exist_ok=True)

    def sync_dir(self, path):
        """Make the directory's entries (files created, deleted) durable."""
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def allocate(self, path, size):
        """Create the file at ``path`` holding ``size`` bytes of disk space, durably
        (its blocks really allocated: ENOSPC now, not at a later write)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.posix_fallocate(fd, 0, size)
            os.fsync(fd)
        finally:
            os.close(fd)

    def space(self, path):
        """``(free bytes, total bytes)`` of the file system holding ``path``."""
        st = os.statvfs(path)
        return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize

    def truncate(self, path, size):
        """Cut the file at ``size``, durably."""
        with open(path, "r+b") as f:
            f.truncate(size)
            f.flush()
            os.fsync(f.fileno())

    def lock(self, path):
        """Take the lock file at ``path`` (exclusive, held until ``unlock``), writing
        this process's pid into it; raises DirectoryBusy if another holds it."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DirectoryBusy(holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    def unlock(self, lock):
        os.close(lock)


OS_FILES = OsFiles()
